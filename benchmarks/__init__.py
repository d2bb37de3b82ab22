"""Benchmarks, run from the repository root as modules: ``python -m benchmarks.grid``.

Each prints ``name: value`` lines and ratios against a baseline measured in the same run
(machines here are noisy), and writes its figures with the commit and machine they were
measured on to ``benchmarks/results/`` (:func:`benchmarks.common.write_result`).
"""
