"""Reports: the figures of a study, search-quality curves and the paper's points.

Reads :mod:`search.study` (and ``space``, ``cse_nets``); never starts Ray or trains.
"""
