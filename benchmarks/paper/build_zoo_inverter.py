#!/usr/bin/env python
"""Refit a bundled zoo entry's own inverter (the paper's method: self-generated pairs only).

    python -m benchmarks.paper.build_zoo_inverter --name dcgan-fashion-mnist --steps 20000

Fits ``fit_inverter`` on the entry's bundled GAN (its fp16-stored weights loaded as float32, so the
fingerprints match) with the library's defaults and ``--steps`` as the ceiling on updates (the
convergence rule, ``patience``, may stop it sooner), then writes it over the entry's ``inverter/``
folder (or ``--out``) in the Hub layout in float16. The model card's metrics are its reconstruction
score on the entry's 1,000 bundled test images, beside the inverter it replaces on the same images;
``discinvert demo`` shows that score as its CN row. ``benchmarks/paper/build_zoo.py`` builds a whole
entry from a trained GAN; this script only replaces the inverter.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import command_line
from benchmarks.paper.build_zoo_real import save_zoo_inverter
from discinvert import fit_inverter, zoo
from discinvert.metrics import reconstruction_score
from discinvert.zoo.datasets import to_model_range

ZOO = Path(__file__).resolve().parents[2] / "discinvert" / "zoo"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", default="dcgan-fashion-mnist")
    parser.add_argument("--steps", type=int, default=20000, help="ceiling on CN updates")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the fit time is stated for these)")
    parser.add_argument("--out", type=Path, default=None, help="default: the entry's inverter/ folder")
    args = parser.parse_args(argv)
    command = command_line(__spec__, argv)
    print(command, flush=True)
    torch.set_num_threads(args.threads)

    G, D, previous = zoo.load(args.name)
    config = zoo.load_gan_config(args.name)
    start = time.perf_counter()
    inverter = fit_inverter(G, D, config.feature_layer, latent_shape=config.latent_shape, steps=args.steps,
                            seed=args.seed)
    seconds = time.perf_counter() - start
    fit: dict[str, Any] = inverter.config.fit
    stopped = "" if not fit["stopped"] else f", stopped at update {fit['stopped']} (plateau)"
    print(f"fit in {seconds:.1f} s: best validation MSE {fit['best_validation_mse']:.4f} at update {fit['best_step']}"
          f"{stopped}", flush=True)

    test_u8, _ = zoo.load_test_images(args.name)
    x = to_model_range(test_u8)
    score = reconstruction_score(inverter, x, n=len(x), repeats=1)
    before = reconstruction_score(previous, x, n=len(x), repeats=1)
    metrics = {
        "data": f"the {len(x)} bundled Fashion-MNIST test images (never trained on)",
        "encode PSNR (dB)": round(score["psnr_mean"], 3),
        "encode SSIM": round(score["ssim_mean"], 4),
        "the inverter this one replaced, on the same images: encode PSNR (dB) / SSIM":
            f"{before['psnr_mean']:.3f} / {before['ssim_mean']:.4f}",
        "fit seconds": f"{seconds:.1f} ({args.threads} CPU threads)",
        "command": f"`{command}`",
    }
    gan_line = (f"the reference {config.loss.upper()} trained on Fashion-MNIST by `benchmarks/paper/train_gan.py` "
                f"(bundled as discinvert.zoo entry `{args.name}`)")
    out = args.out if args.out is not None else ZOO / args.name / "inverter"
    save_zoo_inverter(inverter, G, D, x, out, gan_line, metrics, {"fp32": score, "replaced": before})


if __name__ == "__main__":
    main()
