#!/usr/bin/env python
"""The fit levers: what each one saves in wall time and what it costs in accuracy.

    python -m benchmarks.speed.fit_speed --device cpu --steps 2000 --configs default bf16 bf16+cl bf16+cl+reuse2
    python -m benchmarks.speed.fit_speed --device cuda --steps 2000 --reuse 1 2 4 8 16

On the bundled DCGAN, fits the CN once per configuration with the same seed and the same
number of CN steps. A configuration joins levers with ``+``: ``default`` (none),
``bf16``/``fp16`` (G, D and the CN's training forward under autocast), ``cl`` (channels-last
copies of G and D), ``reuseK`` (each generated batch serves about K steps). ``--reuse K``
is shorthand for the configuration ``reuseK``. Every run records wall time, generated
samples, the held-out latent MSE (always measured on full-precision pairs), the
reconstruction PSNR of the last 1,000 Fashion-MNIST **training** images (never the test
split), and when its validation error first came within 2% of its own final value and
of the *first* configuration's final value (the reference). Each device writes its own
section of ``docs/lab/fit_speed.md``.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import command_line, describe_device, write_marked_section
from discinvert import fit_inverter, zoo
from discinvert.metrics import image_quality
from discinvert.fitting.pool import POOL_BATCHES  # internal surface (benchmarks/README.md): the pool that reuse=K refreshes
from discinvert.zoo.datasets import load_fashion_mnist, to_model_range

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def parse_config(text: str) -> dict[str, Any]:
    """``"bf16+cl+reuse2"`` → fit_inverter keyword arguments."""
    kwargs: dict[str, Any] = {"reuse": 1, "autocast_dtype": None, "channels_last": False}
    for lever in text.split("+"):
        if lever == "default":
            continue
        if lever in _DTYPES:
            kwargs["autocast_dtype"] = _DTYPES[lever]
        elif lever == "cl":
            kwargs["channels_last"] = True
        elif re.fullmatch(r"reuse[1-9][0-9]*", lever):
            kwargs["reuse"] = int(lever[5:])
        else:
            raise SystemExit(f"--configs: unknown lever {lever!r} in {text!r}; expected default, bf16, fp16, cl or reuseK")
    return kwargs


def first_within(history: list[list[float]], target: float) -> float | None:
    """Seconds at the first validation whose error is within 2% of ``target``."""
    return next((row[3] for row in history if row[2] <= 1.02 * target), None)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--configs", nargs="+", default=None, help="lever sets, e.g. default bf16+cl reuse4")
    parser.add_argument("--reuse", type=int, nargs="+", default=None, help="shorthand for --configs reuseK ...")
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path("docs/lab/fit_speed.md"))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    configs = list(args.configs or []) + [f"reuse{k}" for k in args.reuse or []]
    configs = configs or ["default", "reuse2", "reuse4"]
    levers = [parse_config(text) for text in configs]
    command = command_line(__spec__, argv)
    print(command, flush=True)
    G, D, _ = zoo.load("dcgan-fashion-mnist", device=args.device)
    config = zoo.load_gan_config("dcgan-fashion-mnist")
    images, _ = load_fashion_mnist("train", root=args.data_root)
    real = to_model_range(images[-1000:]).to(args.device)

    rows: list[dict[str, Any]] = []
    for text, kwargs in zip(configs, levers):
        start = time.perf_counter()
        inverter = fit_inverter(G, D, config.feature_layer, latent_shape=config.latent_shape, steps=args.steps,
                                batch_size=args.batch_size, seed=0, progress=False,
                                eval_every=max(10, args.steps // 50), **kwargs)
        seconds = time.perf_counter() - start
        fit = inverter.config.fit
        final = fit["history"][-1][2]
        reference = rows[0]["final_val_mse"] if rows else final
        psnr = float(image_quality(real, inverter.reconstruct(real))[0].mean())
        reuse = kwargs["reuse"]
        generated = args.steps * args.batch_size if reuse == 1 else (POOL_BATCHES + args.steps // reuse) * args.batch_size
        rows.append({"config": text, "reuse": reuse, "seconds": seconds, "generated": generated,
                     "val_mse": fit["best_validation_mse"], "final_val_mse": final,
                     "seconds_to_2pct": first_within(fit["history"], final),
                     "seconds_to_2pct_of_reference": first_within(fit["history"], reference),
                     "psnr_train_1k": psnr, "history": fit["history"]})
        row = rows[-1]
        to_ref = row["seconds_to_2pct_of_reference"]
        print(f"{text:>20}: {seconds:7.1f} s, {generated} samples, val MSE {row['val_mse']:.4f}, within 2% of own final "
              f"after {row['seconds_to_2pct']:.1f} s, of the reference's after "
              f"{'never' if to_ref is None else f'{to_ref:.1f} s'}, PSNR {psnr:.2f} dB", flush=True)

    device_name = describe_device(args.device)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"command": command, "device": device_name, "torch": torch.__version__,
                                         "rows": rows}, indent=1))
    key = "cuda" if args.device.startswith("cuda") else "cpu"

    def seconds_or_never(value: float | None) -> str:
        return "never" if value is None else f"{value:.1f}"

    lines = [f"## {device_name}", "", f"Written by `benchmarks/speed/fit_speed.py` (torch {torch.__version__}):",
             "", f"    {command}", "",
             f"Bundled DCGAN, {args.steps} CN steps of {args.batch_size} pairs each, seed 0; validation on full-precision "
             "pairs; PSNR on the last 1,000 **training** images. The reference is the first row.", "",
             "| levers | fit seconds | samples generated | best val MSE | s to within 2% of own final val "
             "| s to within 2% of the reference's final val | PSNR (dB) |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['config']} | {r['seconds']:.1f} | {r['generated']:,} | {r['val_mse']:.4f} | "
              f"{seconds_or_never(r['seconds_to_2pct'])} | {seconds_or_never(r['seconds_to_2pct_of_reference'])} | "
              f"{r['psnr_train_1k']:.2f} |" for r in rows]
    write_marked_section(args.out, "fit_speed", key, lines,
                         "# Fit speed: the levers\n\nEach section is written by its own run of `benchmarks/speed/fit_speed.py`.\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
