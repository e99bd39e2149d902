"""Ablations of iterative refinement (issue 17, Build item 2): the library's step networks on the bundled DCGAN.

Starts from a bundled inverter (``--base``: by default ``real-images``, the CN after the real-image stage, see
``docs/lab/real_stage.md``) and trains the library's step networks on top of it with
:func:`discinvert.fitting.step_network_stage.train_step_networks`, as ``fit_inverter(..., iterations=k)`` does after its
real-image stage, for each variant (learning rate, width, with or without images). Every row is scored
on the held-out train slice (the last ``--holdout`` Fashion-MNIST *train* images, never trained on);
the test split is not touched, so the choices made here are not tuned on it. Columns per ``k``:
PSNR/SSIM of ``encode(iterations=k)``, encode seconds per 1k images, latent recovery on 512 fresh
``G(z)`` (MSE and cosine to the true ``z``), the codes' mean squared value per dimension, and (for the
last ``k``) hybrid-50 from those codes.

    python -m benchmarks.encoder.iterative                                 # about 40 min on 2 CPU cores
    python -m benchmarks.encoder.iterative --quick --out /tmp/it.md --json /tmp/it.json   # smoke run

Writes ``docs/lab/iterative_ablations.md`` and ``docs/results/iterative_ablations.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from benchmarks.common import command_line, describe_device, finish_run, settings_line
from discinvert import Inverter, zoo
from discinvert.guard import frozen
from discinvert.fitting.image_sets import split_images
from discinvert.step_networks import StepConfig, residual_shape
from discinvert.fitting.image_sets import ImageBatches
from discinvert.fitting.loop import Plan, Runtime
from discinvert.fitting.updates import LossWeights
from discinvert.fitting.run import FrozenGAN
from discinvert.fitting.step_network_stage import train_step_networks
from discinvert.metrics import image_quality
from discinvert.zoo.datasets import load_fashion_mnist, to_model_range

ROOT = Path(__file__).resolve().parents[2]


def _variants(spec: list[str]) -> list[dict[str, Any]]:
    """``lr=3e-4,hidden=512,images=1`` → a variant's settings."""
    out = []
    for text in spec:
        fields = dict(item.split("=", 1) for item in text.split(","))
        out.append({"lr": float(fields.get("lr", 3e-4)), "hidden": tuple(int(h) for h in fields.get("hidden", "512").split("x")),
                    "images": fields.get("images", "1") == "1", "label": text})
    return out


def _score(inverter: Inverter, k: int, holdout: torch.Tensor, fresh: tuple[torch.Tensor, torch.Tensor],
           hybrid_steps: int) -> dict[str, Any]:
    started = time.perf_counter()
    codes = inverter.encode(holdout, iterations=k, range_check="ignore")
    seconds = (time.perf_counter() - started) * 1000 / len(holdout)
    psnr, ssim = image_quality(holdout, inverter.decode(codes))
    fresh_images, fresh_z = fresh
    recovered = inverter.encode(fresh_images, iterations=k).reshape(len(fresh_z), -1)
    row = {"k": k, "psnr": float(psnr.mean()), "ssim": float(ssim.mean()), "encode_s_per_1k": seconds,
           "recovery_mse": float(F.mse_loss(recovered, fresh_z)),
           "recovery_cosine": float(F.cosine_similarity(recovered, fresh_z, dim=1).mean()),
           "code_sq_norm_per_dim": float(codes.pow(2).mean())}
    if hybrid_steps:
        from discinvert.optimize import optimize_latents

        with frozen(inverter.generator, inverter.discriminator):
            refined = optimize_latents(inverter.generator, holdout, codes, steps=hybrid_steps, batch_size=250)
        h_psnr, _ = image_quality(holdout, inverter.decode(refined))
        row[f"hybrid{hybrid_steps}_psnr"] = float(h_psnr.mean())
    return row


def run(args: argparse.Namespace, argv: list[str] | None) -> dict[str, Any]:
    G, D, base = zoo.load("dcgan-fashion-mnist", inverter=args.base)
    images, _ = load_fashion_mnist("train", root=args.data_root)
    x_all = to_model_range(images).float()
    train, holdout = x_all[: len(x_all) - args.holdout], x_all[len(x_all) - args.holdout :]
    if args.train_limit:
        train = train[: args.train_limit]
    fresh_z = torch.randn(512, 100, 1, 1, generator=torch.Generator().manual_seed(12345))
    with torch.no_grad():
        fresh = (G(fresh_z), fresh_z.reshape(512, -1))
    latent_shape = base.latent_shape
    rows: list[dict[str, Any]] = []
    base_row = _score(base, 0, holdout, fresh, args.hybrid_steps)
    rows.append({"variant": f"bundled {args.base} CN (k = 0)", **base_row, "fit_seconds": 0.0})
    print(json.dumps(rows[-1]), flush=True)
    for variant in _variants(args.variants):
        torch.manual_seed(args.seed)
        split = split_images(train, base.image_shape, held_out=512, seed=args.seed + 4, image_range=base.config.image_range) \
            if variant["images"] else None
        config = StepConfig(feature_dim=base.config.feature_dim, latent_dim=base.config.latent_dim,
                            residual_shape=residual_shape(base.image_shape), hidden=variant["hidden"])
        latent_rng = torch.Generator().manual_seed(args.seed + 6)
        validation = torch.randn(512, *latent_shape, generator=torch.Generator().manual_seed(args.seed + 1))
        with frozen(G, D):
            steps, results = train_step_networks(
                base.cn, config, FrozenGAN(G, base._gan.tap, latent_shape),
                lambda n: torch.randn(n, *latent_shape, generator=latent_rng), validation,
                None if split is None else ImageBatches(split, torch.Generator().manual_seed(args.seed + 5)),
                Plan(args.steps, variant["lr"], args.batch, args.eval_every),
                Runtime(torch.device("cpu"), autocast_dtype=torch.bfloat16 if args.autocast == "bf16" else None,
                        progress=False),
                iterations=args.iterations, weights=LossWeights(args.feature_weight, args.prior_weight))
        inverter = Inverter(dataclasses.replace(base.config, iterations=len(steps), step=config), generator=G,
                            discriminator=D)
        inverter.cn.load_state_dict(base.cn.state_dict())
        for mine, trained in zip(inverter.steps, steps):
            mine.load_state_dict(trained.state_dict())
        inverter.eval()
        for k in range(1, len(steps) + 1):
            row = _score(inverter, k, holdout, fresh, args.hybrid_steps if k == len(steps) else 0)
            rows.append({"variant": variant["label"], **row, "fit_seconds": round(sum(r.seconds for r in results[:k]), 1),
                         "best_update": results[k - 1].best_step})
            print(json.dumps(rows[-1]), flush=True)
    return {"command": command_line(__spec__, argv), "device": describe_device("cpu"), "threads": torch.get_num_threads(),
            "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                         if k not in ("out", "json", "data_root")},
            "holdout": f"Fashion-MNIST train[{len(x_all) - args.holdout}:] ({args.holdout} images, never trained on)",
            "rows": rows}


def write_page(result: dict[str, Any], path: Path) -> None:
    steps = result["settings"]["hybrid_steps"]
    lines = [
        "# Iterative refinement: ablations (issue 17, Build item 2)",
        "",
        "Written by `benchmarks/encoder/iterative.py`; the figures come from this run:",
        "",
        f"    {result['command']}",
        "",
        f"Device: {result['device']}. Scored on {result['holdout']}; the test split is not used, so nothing here "
        "is tuned on it. Each variant trains the library's step networks (`discinvert.fitting.step_network_stage.train_step_networks`) "
        f"on top of the bundled {result['settings'].get('base', 'real-images')} CN "
        f"(`zoo.load('dcgan-fashion-mnist', inverter='{result['settings'].get('base', 'real-images')}')`); a "
        "variant is `lr=…` (Adam learning rate), `hidden=…` (hidden widths, `x`-separated) and `images=1|0` "
        "(trained on the train images and self-generated pairs, or on self-generated pairs only). *fit s* is the "
        "step networks' training time up to that k.",
        "",
        f"| variant | k | PSNR dB | SSIM | encode s / 1k | hybrid-{steps} PSNR (last k) | latent recovery MSE / cosine | "
        "codes' mean z² (prior 1.0) | fit s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        hybrid = r.get(f"hybrid{steps}_psnr")
        lines.append(
            f"| {r['variant']} | {r['k']} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['encode_s_per_1k']:.2f} | "
            f"{'' if hybrid is None else f'{hybrid:.2f}'} | {r['recovery_mse']:.3f} / {r['recovery_cosine']:.3f} | "
            f"{r['code_sq_norm_per_dim']:.3f} | {r['fit_seconds']:.0f} |")
    lines += ["", settings_line(result["settings"]), ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=None, help="Fashion-MNIST IDX folder (default: Debian's)")
    parser.add_argument("--holdout", type=int, default=1000, help="last N train images scored, never trained on")
    parser.add_argument("--train-limit", type=int, default=0, help="use only the first N train images (0: all)")
    parser.add_argument("--variants", nargs="+", default=["lr=1e-4", "lr=3e-4", "lr=1e-3", "lr=3e-4,images=0"],
                        help="variants as key=value lists: lr, hidden (e.g. 512 or 1024x512), images (1 or 0)")
    parser.add_argument("--base", choices=sorted(zoo.INVERTERS), default="real-images",
                        help="the bundled inverter whose CN the step networks start from")
    parser.add_argument("--iterations", type=int, default=1, help="step networks per variant (a row per k)")
    parser.add_argument("--steps", type=int, default=1000, help="updates of each step network")
    parser.add_argument("--batch", type=int, default=64, help="pairs (and images) per update")
    parser.add_argument("--feature-weight", type=float, default=0.5)
    parser.add_argument("--prior-weight", type=float, default=0.1)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--hybrid-steps", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--autocast", choices=["off", "bf16"], default="off",
                        help="train the steps under bf16 autocast, as fit_inverter's 'auto' does on CPUs with bf16 "
                             "instructions (default off: the runs before that lever)")
    parser.add_argument("--quick", action="store_true", help="tiny budgets: a smoke run, figures meaningless")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "lab" / "iterative_ablations.md")
    parser.add_argument("--json", type=Path, default=ROOT / "docs" / "results" / "iterative_ablations.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.holdout, args.train_limit, args.steps, args.hybrid_steps, args.eval_every = 64, 512, 3, 2, 2
        args.variants = args.variants[:1]
    return finish_run(args, argv, run, write_page)


if __name__ == "__main__":
    raise SystemExit(main())
