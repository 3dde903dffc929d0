"""Benchmarks and measured figures; each module runs with `python -m bench.<name>`."""
