"""A fingerprint of one short, seeded fit: refactors of the fit must leave it unchanged.

    python tools/fit_digest.py            # SHA-256 of the CN weights after 60 steps on the bundled DCGAN

Run it before and after a change that must not change behaviour: the digests must match (on the same
machine, with the same torch and the same number of threads). It prints its settings with the digest.
"""

from __future__ import annotations

import hashlib
import sys

import torch

from discinvert import fit_inverter, zoo

SETTINGS = dict(steps=60, batch_size=64, validation_size=128, seed=7, progress=False)


def main() -> int:
    torch.set_num_threads(2)
    generator, discriminator, _ = zoo.load("dcgan-fashion-mnist")
    inverter = fit_inverter(generator, discriminator, "main.7", latent_shape=(100, 1, 1), **SETTINGS)
    digest = hashlib.sha256()
    for name, tensor in sorted(inverter.cn.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().contiguous().cpu().numpy().tobytes())
    print(f"fit {SETTINGS}, torch {torch.__version__}, 2 threads: best validation MSE "
          f"{inverter.config.fit['best_validation_mse']!r}, CN weights sha256 {digest.hexdigest()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
