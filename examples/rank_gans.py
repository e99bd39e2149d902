"""Rank several GANs with the paper's metric: reconstruct unseen test images through each GAN's inverter.

Run:  python examples/rank_gans.py --gans runs/dcgan runs/lsgan runs/wgan-gp [--fit-steps 2000] [--device cuda]
      python examples/rank_gans.py --gans zoo:dcgan-fashion-mnist --n 200 --repeats 2   # offline, bundled

A GAN that renders poor images, or misses modes of the data, cannot reconstruct some test images
well, so its PSNR/SSIM drop. Each GAN directory (from python -m benchmarks.paper.train_gan) gets an inverter fit
now (or its saved one, `<dir>/inverter.safetensors`, when present); `zoo:NAME` uses the entry's
default bundled inverter (`zoo.default_inverter`: its real-images one), as `discinvert evaluate` does.
Test images come from the Fashion-MNIST test split (Debian's dataset-fashion-mnist), or from the zoo's
1,000 bundled test images when the data set is not installed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from discinvert import Inverter, fit_inverter, zoo
from discinvert.zoo.architectures import load_gan
from discinvert.zoo.datasets import load_fashion_mnist, to_model_range
from discinvert.metrics import reconstruction_score


def inverter_for(spec: str, *, fit_steps: int, device: str) -> Inverter:
    if spec.startswith("zoo:"):
        return zoo.load(spec[4:], device=device, inverter=zoo.default_inverter(spec[4:]))[2]
    G, D, config, _ = load_gan(spec, device=device)
    saved = Path(spec) / "inverter.safetensors"
    if saved.is_file():
        return Inverter.load(saved, generator=G, discriminator=D)
    inverter = fit_inverter(G, D, config.feature_layer, latent_shape=config.latent_shape, steps=fit_steps, seed=0)
    inverter.save(saved)
    return inverter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gans", nargs="+", required=True, help="GAN directories or zoo:NAME")
    parser.add_argument("--fit-steps", type=int, default=2000)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data-root", type=Path, default=None)
    args = parser.parse_args()
    try:
        images, _ = load_fashion_mnist("test", root=args.data_root)
        source = "Fashion-MNIST test split"
    except FileNotFoundError:
        images, _ = zoo.load_test_images("dcgan-fashion-mnist")
        source = "the zoo's 1,000 bundled test images"
    x = to_model_range(images).to(args.device)

    scores = []
    for spec in args.gans:
        inverter = inverter_for(spec, fit_steps=args.fit_steps, device=args.device)
        scores.append((spec, reconstruction_score(inverter, x, n=min(args.n, len(x)), repeats=args.repeats)))
    scores.sort(key=lambda item: -item[1]["psnr_mean"])
    print(f"{len(x)} images from {source}; {args.n} drawn {args.repeats} times")
    print(f"{'rank':>4}  {'GAN':30s} {'PSNR (dB)':>15s} {'SSIM':>17s}")
    for rank, (spec, s) in enumerate(scores, 1):
        print(f"{rank:4d}  {spec:30s} {s['psnr_mean']:7.2f} ± {s['psnr_std']:.2f} {s['ssim_mean']:9.4f} ± {s['ssim_std']:.4f}")


if __name__ == "__main__":
    main()
