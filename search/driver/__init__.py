"""The driver: the one process that runs a search (``python -m search.run``).

Flags and budgets, Optuna's samplers behind Ray Tune's searcher, the MO-ASHA scheduler,
progress lines, clean stops on signals, the Ray address, and what a dead worker means.
May import every other part of ``search`` except the reports and the command lines.
"""
