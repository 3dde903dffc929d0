"""Benchmarks and measured figures.

`python -m bench` measures what the playground adds on top of Postgres, one module per figure
(capture, http_path, cold_start, honesty, memory) on shared parts (environment, server, report).
`python -m bench.figures` and `python -m bench.load` run on their own.
"""
