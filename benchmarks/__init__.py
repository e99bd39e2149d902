"""Benchmarks and the paper's protocol, run by hand; each script writes its tables into docs/ (see benchmarks/README.md)."""
