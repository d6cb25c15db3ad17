"""Benchmarks: our operators against reference layers/models, timed in the same process.

`python -m benchmarks.run --list` lists the cases; see `benchmarks/runner.py` to write one.
"""
