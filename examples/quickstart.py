"""Fit an inverter for a GAN, encode and reconstruct images, save and load it.

Run:  python examples/quickstart.py [--steps 300] [--out DIR]

The GAN here is the library's reference DCGAN architecture (28x28, z of shape
(100, 1, 1)) with freshly initialised weights, so the example runs anywhere in
about a minute on a laptop CPU; swap in your own pretrained G and D and the name
of D's last hidden layer. The figures it prints are latent errors on fresh
samples, where predicting z = 0 scores 1.0.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import torch

from discinvert import Inverter, fit_inverter, list_layers
from discinvert.zoo.architectures import GANConfig, build_gan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--out", type=Path, default=Path("out/quickstart"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    torch.manual_seed(0)
    config = GANConfig()
    G, D = build_gan(config)
    G.train(), D.train()  # as users often hand them over; discinvert leaves the modes alone

    example = G.eval()(torch.randn(2, *config.latent_shape)).detach()
    G.train()
    print("D's layers (name, type, output shape):")
    for info in list_layers(D, example):
        if info.name:
            print(f"  {info.name:10s} {info.type:14s} {info.output_shape}")

    start = time.perf_counter()
    inverter = fit_inverter(G, D, config.feature_layer, latent_shape=config.latent_shape, steps=args.steps, seed=0)
    print(f"fit {args.steps} steps in {time.perf_counter() - start:.1f} s: Inverter({inverter.extra_repr()})")

    z = torch.randn(512, *config.latent_shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        images = G.eval()(z)
    G.train()
    start = time.perf_counter()
    codes = inverter.encode(images)
    seconds = time.perf_counter() - start
    mse = float(((codes - z) ** 2).mean())
    pixel = float(((inverter.reconstruct(images) - images) ** 2).mean())
    print(f"encode: {len(images)} images in {seconds * 1000:.0f} ms; latent MSE {mse:.4f} (trivial: 1.0); pixel MSE {pixel:.4f}")

    path = inverter.save(args.out / "inverter.safetensors")
    loaded = Inverter.load(path, generator=G, discriminator=D)
    assert torch.equal(loaded.encode(images), codes)
    print(f"saved and reloaded {path} ({path.stat().st_size / 1e6:.1f} MB): identical codes")


if __name__ == "__main__":
    main()
