"""Speed, memory and the fit's levers and defaults, measured on the bundled DCGAN (see benchmarks/README.md)."""
