#!/usr/bin/env python
"""Choose fit_inverter's default ``steps`` and ``lr`` by measurement.

Fits the connection network for a reference GAN over a grid of peak learning rates and
step budgets (each budget its own fit, since the cosine schedule depends on it) and
records the held-out latent error (fresh latents, never images) plus the reconstruction
PSNR of 1,000 real *training* images (the test split is never used for tuning). Writes
``docs/lab/defaults.md`` with the table, the chosen defaults and the exact command.

    python -m benchmarks.speed.fit_defaults --gan runs/dcgan --device cuda --out docs/lab/defaults.md
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from benchmarks.common import command_line
from discinvert import fit_inverter
from discinvert.metrics import image_quality
from discinvert.zoo.architectures import load_gan
from discinvert.zoo.datasets import load_fashion_mnist, to_model_range


def psnr(real: torch.Tensor, fake: torch.Tensor) -> float:
    """Mean PSNR (dB) of ``fake`` against ``real``, both in [-1, 1] (scikit-image on [0, 1], as everywhere here)."""
    return float(image_quality(real, fake)[0].mean())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gan", type=Path, required=True, help="a save_gan directory")
    parser.add_argument("--lrs", type=float, nargs="+", default=[2e-4, 5e-4, 1e-3, 2e-3, 5e-3])
    parser.add_argument("--steps", type=int, nargs="+", default=[500, 1000, 2000, 3000, 5000, 10000])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path("docs/lab/defaults.md"))
    parser.add_argument("--json", type=Path, default=None, help="also write the raw results here")
    parser.add_argument("--from-json", type=Path, default=None,
                        help="re-write the doc from a JSON this script wrote earlier, without refitting")
    args = parser.parse_args(argv)
    command = command_line(__spec__, argv)
    print(command, flush=True)
    if args.from_json:
        saved = json.loads(args.from_json.read_text())
        write_doc(args.out, saved["command"], saved["results"], saved["meta"], rewritten_by=command)
        return

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

    device_name = torch.cuda.get_device_name(args.device) if str(args.device).startswith("cuda") else "CPU"
    meta = {"device": device_name, "torch": torch.__version__, "gan": str(args.gan), "loss": config.loss,
            "feature_layer": config.feature_layer, "latent_shape": list(config.latent_shape),
            "batch_size": args.batch_size, "seed": args.seed}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"command": command, "meta": meta, "results": results}, indent=1))
    write_doc(args.out, command, results, meta)


def choose(results: list[dict]) -> tuple[int, float, float]:
    """The rule: the smallest step budget whose best PSNR is within TOLERANCE_DB of the grid's best,
    and the learning rate with the best PSNR at that budget."""
    best = max(r["psnr_train_1k"] for r in results)
    for steps in sorted({r["steps"] for r in results}):
        rows = [r for r in results if r["steps"] == steps]
        top = max(rows, key=lambda r: r["psnr_train_1k"])
        if top["psnr_train_1k"] >= best - TOLERANCE_DB:
            return steps, top["lr"], best
    raise AssertionError("unreachable: the largest budget holds the best")


TOLERANCE_DB = 0.3


def write_doc(out: Path, command: str, results: list[dict], meta: dict, rewritten_by: str | None = None) -> None:
    lrs = sorted({r["lr"] for r in results})
    budgets = sorted({r["steps"] for r in results})
    steps, lr, best = choose(results)
    chosen = next(r for r in results if r["steps"] == steps and r["lr"] == lr)
    lines = [
        "# How fit_inverter's defaults were chosen",
        "",
        f"Measured by `benchmarks/speed/fit_defaults.py` on {meta['device']}, torch {meta['torch']}:",
        "",
        f"    {command}",
        "",
    ]
    if rewritten_by:
        lines += ["This page was re-written from that run's JSON (`docs/results/fit_defaults.json`) by", "", f"    {rewritten_by}", ""]
    lines += [
        f"GAN: the reference {meta['loss']} on Fashion-MNIST (`benchmarks/paper/train_gan.py`), feature layer",
        f"`{meta['feature_layer']}`, latent {tuple(meta['latent_shape'])}. Batch size {meta['batch_size']}, seed {meta['seed']}.",
        "Each cell is its own fit (the cosine schedule depends on the budget):",
        "*val MSE* is the best held-out latent MSE on 1,024 fresh latents (predicting z = 0 scores 1.0);",
        "*PSNR* is the reconstruction of the last 1,000 Fashion-MNIST **training** images (the test split",
        "is never used for tuning); then the wall seconds of the fit.",
        "",
        "| steps | " + " | ".join(f"lr {v:g}" for v in lrs) + " |",
        "|---|" + "---|" * len(lrs),
    ]
    for budget in budgets:
        cells = []
        for value in lrs:
            row = next(r for r in results if r["steps"] == budget and r["lr"] == value)
            cells.append(f"{row['val_mse']:.4f} / {row['psnr_train_1k']:.2f} dB / {row['seconds']:.0f} s")
        lines.append(f"| {budget} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"**Rule** (in the script): the smallest step budget whose best PSNR is within {TOLERANCE_DB} dB of the",
        "grid's best, then the learning rate with the best PSNR at that budget.",
        f"**Result**: `steps={steps}`, `lr={lr:g}` ({chosen['psnr_train_1k']:.2f} dB against the grid's best {best:.2f} dB),",
        "which are `DEFAULT_STEPS` and `DEFAULT_LR` in `discinvert/fitting/fit.py`.",
        "",
        "Observations: the learning rate matters little between 5e-4 and 5e-3 (Adam, warm-up, cosine decay);",
        "the latent error keeps falling with more steps, and PSNR with it, but slowly: a longer fit",
        "(`steps=8000` or more) buys a few tenths of a dB for 4x the cost. The latent MSE stays far from 0",
        "because many directions of this G's 100-d latent space barely change the image, so z is only",
        "partly identifiable from the image; PSNR is the figure that matters for reconstruction.",
        "",
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
