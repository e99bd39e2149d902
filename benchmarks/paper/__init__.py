"""The paper's Table 1 protocol: the reference GANs, the rivals, the scoring and the table (see benchmarks/README.md)."""
