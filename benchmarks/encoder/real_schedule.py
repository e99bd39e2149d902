"""The real-image stage's learning rate and schedule (issue 17): what the stage reaches in a fixed budget.

Each variant fine-tunes the bundled paper inverter's CN (20,000 self-generated steps) on the
Fashion-MNIST *train* images with the library's stage, :func:`discinvert.fitting.real_image_stage.train_on_images`
(pixel, D-feature and prior terms at the library's default weights, bf16 autocast as
``fit_inverter``'s ``'auto'`` gives on this CPU), from the same start, batches and prior pairs. A
variant is ``lr=…`` (Adam's peak learning rate), ``decay=1|0`` (cosine decay to 1% over the stage,
or a constant rate: the stage before this benchmark) and ``steps=…`` (updates). Every row is scored
on the held-out train slice (the last ``--holdout`` train images, never trained on): the test split is
not touched, so the default chosen from this table is not tuned on it.

    python -m benchmarks.encoder.real_schedule                      # about 20 min on 2 CPU cores
    python -m benchmarks.encoder.real_schedule --quick --out /tmp/rs.md --json /tmp/rs.json   # smoke run

Writes ``docs/lab/real_schedule.md`` and ``docs/results/real_schedule.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import command_line, describe_device, finish_run, settings_line, settings_of
from discinvert import zoo
from discinvert.guard import frozen
from discinvert.fitting.image_sets import split_images
from discinvert.metrics import image_quality
from discinvert.fitting.image_sets import ImageBatches
from discinvert.fitting.loop import Plan, Runtime
from discinvert.fitting.updates import LossWeights
from discinvert.fitting.real_image_stage import train_on_images
from discinvert.fitting.run import FrozenGAN
from discinvert.fitting.fit_config import FitConfig
from discinvert.zoo.datasets import load_fashion_mnist, to_model_range

ROOT = Path(__file__).resolve().parents[2]


def _variants(spec: list[str]) -> list[dict[str, Any]]:
    variants = []
    for text in spec:
        values = dict(item.split("=", 1) for item in text.split(","))
        unknown = set(values) - {"lr", "decay", "steps"}
        if unknown:
            raise SystemExit(f"--variants {text}: unknown keys {sorted(unknown)} (expected lr, decay, steps)")
        variants.append({"label": text, "lr": float(values["lr"]), "decay": values.get("decay", "1") == "1",
                         "steps": int(values.get("steps", FitConfig().real_steps))})
    return variants


def run(args: argparse.Namespace, argv: list[str] | None) -> dict[str, Any]:
    G, D, paper = zoo.load("dcgan-fashion-mnist", inverter="paper")
    images, _ = load_fashion_mnist("train", root=args.data_root)
    x_all = to_model_range(images).float()
    train, holdout = x_all[: len(x_all) - args.holdout], x_all[len(x_all) - args.holdout :]
    if args.train_limit:
        train = train[: args.train_limit]
    defaults = FitConfig()
    latent_shape, tap = paper.latent_shape, paper._gan.tap
    start = {k: v.clone() for k, v in paper.cn.state_dict().items()}
    rows: list[dict[str, Any]] = []
    with torch.no_grad():
        psnr, ssim = image_quality(holdout, paper.reconstruct(holdout))
    rows.append({"variant": "bundled paper CN (no real-image stage)", "steps": 0, "psnr": float(psnr.mean()),
                 "ssim": float(ssim.mean()), "seconds": 0.0, "best_step": 0, "held_out_mse": []})
    print(json.dumps(rows[-1]), flush=True)
    for variant in _variants(args.variants):
        paper.cn.load_state_dict(start)
        torch.manual_seed(args.seed)
        split = split_images(train, paper.image_shape, held_out=defaults.real_held_out, seed=args.seed + 4,
                             image_range=paper.config.image_range)
        pair_rng = torch.Generator().manual_seed(args.seed + 3)
        batch = defaults.real_batch_size

        def prior_pairs() -> tuple[torch.Tensor, torch.Tensor]:
            z = torch.randn(batch, *latent_shape, generator=pair_rng)
            with torch.no_grad(), torch.autocast("cpu", torch.bfloat16):
                features = tap(G(z))
            return features.float(), z.reshape(batch, -1)

        began = time.perf_counter()
        with frozen(G, D):
            result = train_on_images(
                paper.cn, FrozenGAN(G, tap, latent_shape), ImageBatches(split, torch.Generator().manual_seed(args.seed + 2)),
                prior_pairs, Plan(variant["steps"], variant["lr"], batch, args.eval_every),
                Runtime(torch.device("cpu"), autocast_dtype=torch.bfloat16, progress=False),
                weights=LossWeights(defaults.feature_weight, defaults.prior_weight), decay=variant["decay"])
        seconds = time.perf_counter() - began
        paper.eval()
        with torch.no_grad():
            psnr, ssim = image_quality(holdout, paper.reconstruct(holdout))
        rows.append({"variant": variant["label"], "steps": variant["steps"], "psnr": float(psnr.mean()),
                     "ssim": float(ssim.mean()), "seconds": round(seconds, 1), "best_step": result.best_step,
                     "held_out_mse": [h[2] for h in result.history]})
        print(json.dumps(rows[-1]), flush=True)
    return {"command": command_line(__spec__, argv), "device": describe_device("cpu"), "threads": torch.get_num_threads(),
            "settings": settings_of(args),
            "holdout": f"Fashion-MNIST train[{len(x_all) - args.holdout}:] ({args.holdout} images, never trained on)",
            "rows": rows}


def write_page(result: dict[str, Any], path: Path) -> None:
    lines = [
        "# The real-image stage's learning rate and schedule (issue 17)",
        "",
        "Written by `benchmarks/encoder/real_schedule.py`; the figures come from this run:",
        "",
        f"    {result['command']}",
        "",
        f"Device: {result['device']}. Scored on {result['holdout']}; the test split is not used, so nothing here "
        "is tuned on it. Every variant fine-tunes the bundled paper inverter's CN with the library's real-image "
        "stage (`discinvert.fitting.real_image_stage.train_on_images`, the default loss weights, bf16 autocast) from the same "
        "start, batches and prior pairs. A variant is `lr=…` (peak Adam learning rate), `decay=1|0` (cosine decay "
        "to 1% over the stage, or constant) and `steps=…`. *held-out pixel MSE* is the stage's own validation "
        "(512 train images it holds out) at each check, the last one at the end.",
        "",
        "| variant | updates | PSNR dB | SSIM | stage s | best update | held-out pixel MSE: start → middle → end |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        mse = r["held_out_mse"]
        trace = "" if not mse else f"{mse[0]:.4f} → {mse[len(mse) // 2]:.4f} → {mse[-1]:.4f}"
        lines.append(f"| {r['variant']} | {r['steps']} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['seconds']:.0f} | "
                     f"{r['best_step']} | {trace} |")
    lines += ["", settings_line(result["settings"]), ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=None, help="Fashion-MNIST IDX folder (default: Debian's)")
    parser.add_argument("--holdout", type=int, default=1000, help="last N train images scored, never trained on")
    parser.add_argument("--train-limit", type=int, default=0, help="use only the first N train images (0: all)")
    parser.add_argument("--variants", nargs="+",
                        default=["lr=1e-4,decay=0", "lr=3e-4,decay=0", "lr=1e-3,decay=1", "lr=3e-3,decay=1",
                                 "lr=1e-3,decay=1,steps=4000"],
                        help="variants as key=value lists: lr, decay (1 or 0), steps")
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="tiny budgets: a smoke run, figures meaningless")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "lab" / "real_schedule.md")
    parser.add_argument("--json", type=Path, default=ROOT / "docs" / "results" / "real_schedule.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.holdout, args.train_limit, args.eval_every = 64, 1024, 2
        args.variants = ["lr=1e-4,decay=0,steps=3", "lr=1e-3,decay=1,steps=3"]
    return finish_run(args, argv, run, write_page)


if __name__ == "__main__":
    raise SystemExit(main())
