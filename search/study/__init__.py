"""The study: what a search leaves behind and everyone reads.

Every key a study or trial carries (:mod:`~search.study.schema`), the objectives table,
fronts and hypervolume on arrays, opening storage, the driver's lease, the results tables
and the evaluation cache. Imports ``space`` and ``cse_nets`` only: the driver writes a
study, the reports read it, and neither is imported here.
"""
