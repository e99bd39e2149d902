"""Benchmarks and the paper's protocol, run by hand; each script writes its tables into docs/lab/ (see benchmarks/README.md)."""
