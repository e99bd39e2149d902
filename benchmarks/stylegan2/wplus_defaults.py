#!/usr/bin/env python
"""Issue 34, item 4: which defaults suit a W+ inverter — the CN's width and the fit's cost — chosen on held-out
**train** images of the reference StyleGAN2, never on the test split.

Usage::

    python -m benchmarks.stylegan2.wplus_defaults --run runs/stylegan2 --out runs/sg2defaults \\
        --name w256 --cn-hidden 256 256 [--reuse 2] [--threads 1]
    python -m benchmarks.stylegan2.wplus_defaults --out runs/sg2defaults --page docs/lab/stylegan2_defaults.md

Each variant is one fit of ``fit_inverter(MappedGenerator.nvidia(G, space="w+"), D, "b8", images=...)`` with the
library's defaults but the settings named (``--cn-hidden``, ``--reuse``, ``--steps``, ``--real-steps``), seed 0,
through G and D stored in float16 as the zoo entry stores them (``save_stylegan2`` then ``load_zoo_gan``: the
same weights as ``zoo:stylegan2-fashion-mnist``). The real-image stage gets the train split padded to 32x32 but its
last ``--holdout`` (1,000) images; those are the selection set: encode PSNR/SSIM on them, on the whole 32x32 image
(as the zoo's model cards) and on the central 28x28 (as ``benchmarks/stylegan2/table.py``), after storing the CN
in float32 and in int8. Also recorded: the fit's seconds (each stage's), the torch threads, the CN's parameters.

``--inverter DIR`` fits nothing and scores an inverter fitted elsewhere on the same split through the same G and D
(the zoo build's ``inverter-real-images``: ``(256,)`` wide, int8); its fit seconds are the sum of its stages' as
its config records them.

A variant is stored in ``OUT/rows/NAME.json`` and skipped when present; ``--page`` rewrites the table from all
rows (no fit). Runs print their command; the page quotes each row's.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Final

import numpy as np
import torch

from benchmarks.common import command_line, describe_device, write_json
from benchmarks.stylegan2.train import PAD, padded_train_images
from discinvert import Inverter, fit_inverter
from discinvert.metrics import image_quality
from discinvert.zoo.gans import load_zoo_gan
from discinvert.zoo.stylegan2 import load_stylegan2, save_stylegan2

FEATURE_LAYER: Final[str] = "b8"
INVERSION: Final[dict[str, Any]] = {"space": "w+", "noise_mode": "const", "truncation_psi": 1.0,
                                    "feature_layer": FEATURE_LAYER}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=Path("runs/stylegan2"), help="the reference StyleGAN2's run folder")
    parser.add_argument("--out", type=Path, default=Path("runs/sg2defaults"))
    parser.add_argument("--name", default=None, help="the variant's name (its row file); none: only --page")
    parser.add_argument("--cn-hidden", type=int, nargs="+", default=None, help="CN widths (default: the library's)")
    parser.add_argument("--reuse", type=int, default=None, help="CN steps per generated batch (library default 1)")
    parser.add_argument("--steps", type=int, default=None, help="self-generated steps (library default)")
    parser.add_argument("--real-steps", type=int, default=None, help="real-image steps (library default)")
    parser.add_argument("--holdout", type=int, default=1000, help="last N train images: the selection set")
    parser.add_argument("--train-limit", type=int, default=None, help="first N train images only (smoke runs)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--inverter", type=Path, default=None,
                        help="fit nothing: score this already fitted inverter (a Hub-style folder, e.g. the zoo "
                             "entry's inverter-real-images) as variant --name; its fit seconds are its stages'")
    parser.add_argument("--page", type=Path, default=None, help="rewrite this Markdown table from the rows")
    parser.add_argument("--json", type=Path, default=None, help="with --page: every row, as JSON")
    return parser.parse_args(argv)


def stored_gan(args: argparse.Namespace) -> Any:
    """G and D as the zoo entry stores them (float16 on disk, float32 in memory), in ``OUT/gan``."""
    folder = args.out / "gan"
    if not (folder / "config.json").is_file():
        G, D, config, extra = load_stylegan2(args.run)
        save_stylegan2(folder, G, D, config, dtype=torch.float16, inversion=INVERSION,
                       extra={**extra, "source_run": str(args.run)})
    return load_zoo_gan(folder)


def score(inverter: Inverter, generator: torch.nn.Module, x: torch.Tensor) -> dict[str, float]:
    """Encode PSNR/SSIM on the whole image and on its central 28x28."""
    with torch.no_grad():
        x_hat = torch.cat([generator(inverter.encode(b)) for b in x.split(250)])
    full, full_ssim = image_quality(x, x_hat)
    crop = (..., slice(PAD, -PAD), slice(PAD, -PAD))
    central, central_ssim = image_quality(x[crop], x_hat[crop])
    return {"psnr": float(np.mean(full)), "ssim": float(np.mean(full_ssim)),
            "psnr_28": float(np.mean(central)), "ssim_28": float(np.mean(central_ssim))}


def run_variant(args: argparse.Namespace, command: str) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    gan = stored_gan(args)
    train = padded_train_images(data_root=args.data_root, limit=args.train_limit)
    heldout, fit_images = train[len(train) - args.holdout:], train[: len(train) - args.holdout]
    if args.inverter is not None:
        return score_fitted(args, command, gan, heldout, len(fit_images))
    settings: dict[str, Any] = {"seed": args.seed, "progress": False}
    for key in ("cn_hidden", "reuse", "steps", "real_steps"):
        if getattr(args, key) is not None:
            settings[key] = tuple(args.cn_hidden) if key == "cn_hidden" else getattr(args, key)
    load_before = os.getloadavg()
    start = time.perf_counter()
    inverter = fit_inverter(gan.generator, gan.discriminator, FEATURE_LAYER, images=fit_images, **settings)
    seconds = time.perf_counter() - start
    load_after = os.getloadavg()
    args.out.joinpath("inverters").mkdir(parents=True, exist_ok=True)
    inverter.save(args.out / "inverters" / f"{args.name}.safetensors")
    fit = inverter.config.fit
    row: dict[str, Any] = {
        "name": args.name, "settings": {k: v for k, v in settings.items() if k != "progress"},
        "cn_hidden": list(inverter.config.cn.hidden), "cn_parameters": sum(p.numel() for p in inverter.cn.parameters()),
        "fit_seconds": round(seconds, 1), "self_generated_seconds": round(fit["seconds"], 1),
        "real_stage_seconds": round(fit["real_images"]["seconds"], 1),
        "best_validation_mse": fit["best_validation_mse"], "best_step": fit["best_step"], "stopped": fit["stopped"],
        "real_best_step": fit["real_images"]["best_step"], "threads": torch.get_num_threads(),
        "device": describe_device("cpu"), "heldout": len(heldout), "fit_images": len(fit_images),
        "command": command,
        # the machine's run-queue length (1/5/15-minute averages) before and after the fit: about the row's threads
        # when nothing else ran, more when other work shared the cores
        "load_average": {"before": [round(v, 2) for v in load_before], "after": [round(v, 2) for v in load_after]},
    }
    row["heldout_float32"] = score(inverter, gan.generator, heldout)
    with tempfile.TemporaryDirectory() as scratch:
        inverter.save_pretrained(scratch, dtype=torch.int8)
        stored = Inverter.from_pretrained(scratch, generator=gan.generator, discriminator=gan.discriminator)
        row["heldout_int8"] = score(stored, gan.generator, heldout)
        row["int8_bytes"] = (Path(scratch) / "model.safetensors").stat().st_size
    print(json.dumps(row, indent=1), flush=True)
    write_json(args.out / "rows" / f"{args.name}.json", row)
    return row


def score_fitted(args: argparse.Namespace, command: str, gan: Any, heldout: torch.Tensor,
                 n_fit: int) -> dict[str, Any]:
    """A row for an inverter fitted elsewhere on the same split (the zoo build holds out the same last images),
    loaded through the same float16-stored G and D (its fingerprints must match)."""
    inverter = Inverter.from_pretrained(args.inverter, generator=gan.generator, discriminator=gan.discriminator)
    fit = inverter.config.fit
    real = fit.get("real_images") or {}
    row: dict[str, Any] = {
        "name": args.name, "settings": {"cn_hidden": list(inverter.config.cn.hidden), "seed": fit["seed"]},
        "cn_hidden": list(inverter.config.cn.hidden), "cn_parameters": sum(p.numel() for p in inverter.cn.parameters()),
        "fit_seconds": round(fit["seconds"] + real.get("seconds", 0.0), 1),
        "self_generated_seconds": round(fit["seconds"], 1), "real_stage_seconds": round(real.get("seconds", 0.0), 1),
        "best_validation_mse": fit["best_validation_mse"], "best_step": fit["best_step"], "stopped": fit["stopped"],
        "real_best_step": real.get("best_step"), "threads": args.threads, "device": describe_device("cpu"),
        "heldout": len(heldout), "fit_images": n_fit, "command": command, "scored_from": str(args.inverter),
    }
    stored = score(inverter, gan.generator, heldout)  # the folder's weights are the stored (int8) ones
    row["heldout_float32"], row["heldout_int8"] = None, stored
    row["int8_bytes"] = (args.inverter / "model.safetensors").stat().st_size
    print(json.dumps(row, indent=1), flush=True)
    write_json(args.out / "rows" / f"{args.name}.json", row)
    return row


def write_page(out: Path, page: Path, command: str) -> None:
    rows = [json.loads(p.read_text()) for p in sorted((out / "rows").glob("*.json"))]
    rows.sort(key=lambda r: (-r["cn_parameters"], r["settings"].get("reuse", 1)))
    lines = [
        "# W+ defaults on the reference StyleGAN2: the CN's width and the fit's cost (issue 34, item 4)",
        "",
        f"Written by `{command}` from the rows of `benchmarks/stylegan2/wplus_defaults.py` (each row's command "
        "below). Every fit: `fit_inverter(MappedGenerator.nvidia(G, space=\"w+\"), D, \"b8\", images=train)` with "
        "the library's defaults but the settings named, seed 0, through G and D stored in float16 as the zoo entry "
        "stores them. `train` is the Fashion-MNIST train split padded to 32x32 without its last images, which are "
        "the selection set here (held-out **train** images; the test split is not used). PSNR (dB) and SSIM of "
        "encode then G, on the whole 32x32 image and on its central 28x28 (as `docs/lab/stylegan2.md`).",
        "",
        "| variant | settings | CN parameters | held-out PSNR 32x32 (fp32 / int8) | central 28x28 PSNR / SSIM | "
        "fit s (self-generated + real-image) | threads | load before / after | int8 file |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        settings = ", ".join(f"{k}={v}" for k, v in r["settings"].items() if k != "seed") or "defaults"
        f32, i8 = r["heldout_float32"], r["heldout_int8"]
        main = f32 or i8  # a row scored from a stored folder has only the stored (int8) weights
        f32_text = f"{f32['psnr']:.2f}" if f32 else "–"
        lines.append(
            f"| {r['name']} | {settings} | {r['cn_parameters']:,} | {f32_text} / {i8['psnr']:.2f} | "
            f"{main['psnr_28']:.2f} / {main['ssim_28']:.4f} | {r['fit_seconds']:,.0f} ({r['self_generated_seconds']:,.0f}"
            f" + {r['real_stage_seconds']:,.0f}) | {r['threads']} | {_load(r)} | {r['int8_bytes'] / 1e6:.2f} MB |")
    base = next((r for r in rows if r["name"] == "default"), None)
    if base is not None:
        lines += ["", "Against the library's defaults, held-out PSNR (32x32, int8): " + "; ".join(
            f"{r['name']} {r['heldout_int8']['psnr'] - base['heldout_int8']['psnr']:+.2f} dB"
            for r in rows if r is not base) + "."]
    lines += ["", "Fit seconds are wall-clock on the row's torch threads on the 2-core machine. *Load*: the machine's "
              "1-minute load average just before the fit and its 15-minute one just after (about the row's threads "
              "when nothing else ran, more when other work shared the cores); rows without it were recorded before "
              "it was kept and ran beside other fits or tests. Read seconds within a row (its two stages) unless "
              "both rows ran in one session and their loads say they had the cores to themselves (rows of different "
              "sessions may have run on different hosts)."]
    lines += ["", "Commands:", ""] + [
        f"- {r['name']}: `{r['command']}` ({r['device']})"
        + (f"; scored from `{r['scored_from']}`, fitted by the command in its model card" if r.get("scored_from")
           else "") for r in rows] + [""]
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text("\n".join(lines))
    print(f"wrote {page}", flush=True)


def _load(row: dict[str, Any]) -> str:
    """The row's load averages as the page shows them (1-minute before, 15-minute after), or a dash."""
    load = row.get("load_average")
    return f"{load['before'][0]:.1f} / {load['after'][2]:.1f}" if load else "–"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    command = command_line(__spec__, argv)
    print(command, flush=True)
    if args.name is not None:
        if (args.out / "rows" / f"{args.name}.json").is_file():
            print(f"{args.name}: done already ({args.out / 'rows'})", flush=True)
        else:
            run_variant(args, command)
    if args.page is not None:
        write_page(args.out, args.page, command)
        if args.json is not None:
            rows = {p.stem: json.loads(p.read_text()) for p in sorted((args.out / "rows").glob("*.json"))}
            write_json(args.json, {"command": command, "rows": rows})
            print(f"wrote {args.json}", flush=True)


if __name__ == "__main__":
    main()
