#!/usr/bin/env python
"""Choose fit_inverter's default ``steps`` and ``lr`` by measurement.

Fits the connection network for a reference GAN over a grid of peak learning rates and
step budgets (each budget its own fit, since the cosine schedule depends on it) and
records the held-out latent error (fresh latents, never images) plus the reconstruction
PSNR of 1,000 real *training* images (the test split is never used for tuning). Writes
``docs/defaults.md`` with the table, the chosen defaults and the exact command.

    python benchmarks/fit_defaults.py --gan runs/dcgan --device cuda --out docs/defaults.md
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
from skimage.metrics import peak_signal_noise_ratio

from discinvert import fit_inverter
from discinvert.architectures import load_gan
from discinvert.datasets import load_fashion_mnist, to_model_range


def psnr(real: torch.Tensor, fake: torch.Tensor) -> float:
    a = ((real.cpu().numpy() + 1) / 2).clip(0, 1)
    b = ((fake.cpu().numpy() + 1) / 2).clip(0, 1)
    return float(np.mean([peak_signal_noise_ratio(x, y, data_range=1.0) for x, y in zip(a, b)]))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gan", type=Path, required=True, help="a save_gan directory")
    parser.add_argument("--lrs", type=float, nargs="+", default=[2e-4, 5e-4, 1e-3, 2e-3, 5e-3])
    parser.add_argument("--steps", type=int, nargs="+", default=[500, 1000, 2000, 3000, 5000, 10000])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path("docs/defaults.md"))
    parser.add_argument("--json", type=Path, default=None, help="also write the raw results here")
    args = parser.parse_args(argv)
    command = "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv if argv is not None else sys.argv[1:])])
    print(command, flush=True)

    G, D, config, _ = load_gan(args.gan)
    G.to(args.device)
    D.to(args.device)
    images, _ = load_fashion_mnist("train", root=args.data_root)
    real = to_model_range(images[-1000:]).to(args.device)  # last 1,000 TRAIN images; test split untouched

    results = []
    for steps in args.steps:
        for lr in args.lrs:
            start = time.perf_counter()
            inverter = fit_inverter(G, D, config.feature_layer, latent_shape=config.latent_shape, steps=steps,
                                    batch_size=args.batch_size, lr=lr, seed=args.seed, progress=False,
                                    eval_every=max(50, steps // 20))
            seconds = time.perf_counter() - start
            fit = inverter.config.fit
            row = {"steps": steps, "lr": lr, "val_mse": fit["best_validation_mse"],
                   "psnr_train_1k": psnr(real, inverter.reconstruct(real)), "seconds": seconds,
                   "history": fit["history"]}
            results.append(row)
            print(f"steps {steps:6d} lr {lr:.0e}: val MSE {row['val_mse']:.4f}, PSNR {row['psnr_train_1k']:.2f} dB, {seconds:.1f} s", flush=True)

    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"command": command, "results": results}, indent=1))
    device_name = torch.cuda.get_device_name(args.device) if str(args.device).startswith("cuda") else "CPU"
    lines = [
        "# How fit_inverter's defaults were chosen",
        "",
        f"Written by `benchmarks/fit_defaults.py` on {device_name}, torch {torch.__version__}:",
        "",
        f"    {command}",
        "",
        f"GAN: `{args.gan}` ({config.loss}, feature layer `{config.feature_layer}`, latent {config.latent_shape}).",
        f"Batch size {args.batch_size}, seed {args.seed}. *val MSE*: best held-out latent MSE on 1,024 fresh",
        "latents (predicting z = 0 scores 1.0). *PSNR*: reconstruction of the last 1,000 Fashion-MNIST",
        "**training** images (the test split is never used for tuning).",
        "",
        "| steps | " + " | ".join(f"lr {lr:g}" for lr in args.lrs) + " |",
        "|---|" + "---|" * len(args.lrs),
    ]
    for steps in args.steps:
        cells = []
        for lr in args.lrs:
            row = next(r for r in results if r["steps"] == steps and r["lr"] == lr)
            cells.append(f"{row['val_mse']:.4f} / {row['psnr_train_1k']:.2f} dB / {row['seconds']:.0f} s")
        lines.append(f"| {steps} | " + " | ".join(cells) + " |")
    lines += ["", "Cells: val MSE / PSNR / wall seconds of the fit.", ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
