#!/usr/bin/env python
"""The batch-pool lever: how reusing generated samples trades fit time against accuracy.

    python benchmarks/fit_speed.py --device cuda --steps 2000 --reuse 1 2 4 8 16

On the bundled DCGAN, fits the CN with each ``reuse`` (1 = every batch fresh, the default)
and the same number of CN steps, and records wall time, generated samples, the held-out
latent MSE, the reconstruction PSNR of the last 1,000 Fashion-MNIST **training** images
(never the test split), and the time at which the validation error first came within 2%
of its final value. Each device writes its own section of ``docs/fit_speed.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

from discinvert import fit_inverter, zoo
from discinvert.datasets import load_fashion_mnist, to_model_range
from discinvert.metrics import image_quality
from discinvert.pool import POOL_BATCHES

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/common.py
from common import command_line, write_marked_section  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--reuse", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path("docs/fit_speed.md"))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    command = command_line(argv)
    print(command, flush=True)
    G, D, _ = zoo.load("dcgan-fashion-mnist", device=args.device)
    config = zoo.load_gan_config("dcgan-fashion-mnist")
    images, _ = load_fashion_mnist("train", root=args.data_root)
    real = to_model_range(images[-1000:]).to(args.device)

    rows = []
    for reuse in args.reuse:
        start = time.perf_counter()
        inverter = fit_inverter(G, D, config.feature_layer, latent_shape=config.latent_shape, steps=args.steps,
                                batch_size=args.batch_size, reuse=reuse, seed=0, progress=False,
                                eval_every=max(10, args.steps // 50))
        seconds = time.perf_counter() - start
        fit = inverter.config.fit
        final = fit["history"][-1][2]
        within = next(row[3] for row in fit["history"] if row[2] <= 1.02 * final)
        psnr = float(image_quality(real, inverter.reconstruct(real))[0].mean())
        generated = args.steps * args.batch_size if reuse == 1 else (POOL_BATCHES + args.steps // reuse) * args.batch_size
        rows.append({"reuse": reuse, "seconds": seconds, "generated": generated, "val_mse": fit["best_validation_mse"],
                     "final_val_mse": final, "seconds_to_2pct": within, "psnr_train_1k": psnr})
        print(f"reuse {reuse:3d}: {seconds:7.1f} s, {generated} samples, val MSE {fit['best_validation_mse']:.4f}, "
              f"within 2% of final after {within:.1f} s, PSNR {psnr:.2f} dB", flush=True)

    device_name = (torch.cuda.get_device_name(args.device) if args.device.startswith("cuda")
                   else f"CPU {platform.machine()}, {torch.get_num_threads()} torch threads")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"command": command, "device": device_name, "rows": rows}, indent=1))
    key = "cuda" if args.device.startswith("cuda") else "cpu"
    lines = [f"<!-- fit_speed:{key}:start -->", f"## {device_name}", "", f"Written by `benchmarks/fit_speed.py` (torch {torch.__version__}):",
             "", f"    {command}", "",
             f"Bundled DCGAN, {args.steps} CN steps of {args.batch_size} pairs each; PSNR on the last 1,000 **training** images.",
             "", "| reuse | fit seconds | samples generated | best val MSE | seconds to within 2% of final val | PSNR (dB) |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['reuse']} | {r['seconds']:.1f} | {r['generated']:,} | {r['val_mse']:.4f} | {r['seconds_to_2pct']:.1f} | {r['psnr_train_1k']:.2f} |" for r in rows]
    lines.append(f"<!-- fit_speed:{key}:end -->")
    write_marked_section(args.out, "fit_speed", key, lines[1:-1],
                         "# Fit speed: reusing generated samples\n\nEach section is written by its own run of `benchmarks/fit_speed.py`.\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
