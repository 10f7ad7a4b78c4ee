"""What runs in a Ray worker: one trial's trainable and the resources it asks for, its
memory estimate, GPU packing, and the dataset shared once per worker.

Imports ``space``, ``cse_nets``, :mod:`search.data`, :mod:`search.training` and
:mod:`search.study`; never the driver.
"""
