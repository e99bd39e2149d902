#!/usr/bin/env python
"""Time to quality: reconstruction PSNR against wall time while the CN fits (issue 18).

    python -m benchmarks.speed.time_to_quality --configs "today:" "light:cn_hidden=256,autocast=bf16"
    python -m benchmarks.speed.time_to_quality --quick --out /tmp/ttq.md --json /tmp/ttq.json --png /tmp/ttq.png

Fits the CN of a GAN once per configuration (``name:setting=value,...``, the settings of
``fit_inverter``; ``cn_hidden`` as ``256`` or ``128x512``, ``autocast`` as ``bf16``/``fp16``,
``channels_last`` as ``0``/``1``) and, at every validation of the fit (through
``fit_inverter(on_validation=...)``, whose time the fit's clock leaves out), scores the CN as it
stands then:

- **held-out train PSNR**: Fashion-MNIST train[59000:] (1,000 images never trained on): the
  figure every choice is made on;
- **Table 1 PSNR**: the paper's protocol (1,000 test images drawn 5 times, seed 0), reported,
  never used for a choice.

The first configuration is the reference ("today's default"). For each row the table gives the
fit time, the time per update, the final PSNRs, and the first time at which the held-out train
PSNR came within 0.1 dB of the reference's final figure and of the row's own final figure.
Writes a section of ``docs/lab/fit_speed.md``, a JSON of every curve and a PNG of the curves
(held-out train PSNR against seconds).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.common import LayerFeatures, command_line, describe_device, write_marked_section
from benchmarks.paper.protocol import Protocol
from discinvert import ValidationPoint, fit_inverter, zoo
from discinvert.metrics import image_quality, summarize_draws
from discinvert.zoo.architectures import load_gan
from discinvert.zoo.datasets import load_fashion_mnist, to_model_range

ROOT = Path(__file__).resolve().parents[2]
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "none": None}
_INTS = {"steps", "batch_size", "eval_every", "reuse", "validation_size", "patience"}
_FLOATS = {"lr"}


def parse_config(text: str) -> tuple[str, dict[str, Any]]:
    """``"light:cn_hidden=128x512,autocast=bf16,steps=3000"`` → ``("light", fit_inverter keyword arguments)``."""
    name, _, body = text.partition(":")
    if not name:
        raise SystemExit(f"--configs: expected NAME:setting=value,..., got {text!r}")
    kwargs: dict[str, Any] = {}
    for item in filter(None, body.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--configs: expected setting=value in {text!r}, got {item!r}")
        if key == "cn_hidden":
            kwargs[key] = tuple(int(w) for w in value.split("x")) if value else ()
        elif key == "autocast":
            kwargs["autocast_dtype"] = _DTYPES[value]
        elif key in ("channels_last", "cn_standardize"):
            kwargs[key] = value == "1"
        elif key == "patience" and value == "none":
            kwargs[key] = None
        elif key == "schedule":
            kwargs[key] = value
        elif key in _INTS:
            kwargs[key] = int(value)
        elif key in _FLOATS:
            kwargs[key] = float(value)
        else:
            raise SystemExit(f"--configs: unknown setting {key!r} in {text!r}")
    return name, kwargs


def first_within(curve: list[dict[str, Any]], target: float, margin: float = 0.1) -> float | None:
    """Seconds at the first point whose held-out train PSNR is within ``margin`` dB of ``target``."""
    return next((p["seconds"] for p in curve if p["heldout_psnr"] >= target - margin), None)


class Scorer:
    """Scores a CN at a validation point: decode its codes of fixed image sets through G."""

    def __init__(self, generator: torch.nn.Module, features: LayerFeatures, latent_shape: tuple[int, ...],
                 heldout: torch.Tensor, protocol: Protocol) -> None:
        self.generator = generator
        self.latent_shape = latent_shape
        self.heldout = heldout
        self.protocol = protocol
        with torch.no_grad():
            self.heldout_features = torch.cat([features(heldout[i : i + 500]) for i in range(0, len(heldout), 500)])
            self.test_features = torch.cat([features(protocol.x_used[i : i + 500])
                                            for i in range(0, len(protocol.x_used), 500)])
        self.curve: list[dict[str, Any]] = []

    def decode(self, network: torch.nn.Module, features: torch.Tensor) -> torch.Tensor:
        chunks = []
        for i in range(0, len(features), 500):
            codes = network(features[i : i + 500]).reshape(-1, *self.latent_shape)
            chunks.append(self.generator(codes))
        return torch.cat(chunks)

    def __call__(self, point: ValidationPoint) -> None:
        heldout_psnr = float(image_quality(self.heldout, self.decode(point.network, self.heldout_features))[0].mean())
        psnr_used, ssim_used = image_quality(self.protocol.x_used, self.decode(point.network, self.test_features))
        psnr = np.full(self.protocol.total, np.nan)
        ssim = np.full(self.protocol.total, np.nan)
        psnr[self.protocol.used], ssim[self.protocol.used] = psnr_used, ssim_used
        table1 = summarize_draws(psnr, ssim, self.protocol.subsets)
        self.curve.append({"step": point.step, "seconds": round(point.seconds, 3), "val_mse": point.error,
                           "heldout_psnr": heldout_psnr, "table1_psnr": table1["psnr_mean"],
                           "table1_psnr_std": table1["psnr_std"]})


def draw_png(path: Path, rows: list[dict[str, Any]]) -> None:
    """Held-out train PSNR against seconds, one line per configuration (PIL, no plotting library)."""
    from PIL import Image, ImageDraw

    width, height, left, bottom, top, right = 900, 560, 70, 50, 20, 250
    picture = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(picture)
    points = [p for r in rows for p in r["curve"]]
    x_max = max(p["seconds"] for p in points) * 1.02
    y_min = math.floor(min(p["heldout_psnr"] for p in points) * 2) / 2
    y_max = math.ceil(max(p["heldout_psnr"] for p in points) * 2) / 2
    plot_w, plot_h = width - left - right, height - top - bottom

    def xy(seconds: float, psnr: float) -> tuple[float, float]:
        return (left + plot_w * seconds / x_max, top + plot_h * (1 - (psnr - y_min) / (y_max - y_min)))

    draw.rectangle([left, top, left + plot_w, top + plot_h], outline="black")
    for k in range(6):
        seconds = x_max * k / 5
        x = left + plot_w * k / 5
        draw.line([x, top + plot_h, x, top + plot_h + 5], fill="black")
        draw.text((x - 12, top + plot_h + 8), f"{seconds:.0f}", fill="black")
    steps = int(round((y_max - y_min) / 0.5))
    for k in range(steps + 1):
        psnr = y_min + 0.5 * k
        y = xy(0, psnr)[1]
        draw.line([left - 5, y, left, y], fill="black")
        draw.text((left - 45, y - 6), f"{psnr:.1f}", fill="black")
    draw.text((left + plot_w / 2 - 80, height - 22), "fit seconds (2 CPU cores)", fill="black")
    draw.text((5, 3), "held-out train PSNR (dB)", fill="black")
    colours = ["black", "red", "blue", "green", "orange", "purple", "brown", "magenta", "cyan", "gray"]
    for i, row in enumerate(rows):
        colour = colours[i % len(colours)]
        line = [xy(p["seconds"], p["heldout_psnr"]) for p in row["curve"]]
        if len(line) > 1:
            draw.line(line, fill=colour, width=2)
        for x, y in line:
            draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=colour)
        draw.text((left + plot_w + 15, top + 15 * i), f"{row['name']}", fill=colour)
    path.parent.mkdir(parents=True, exist_ok=True)
    picture.save(path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=["today:"], help="NAME:setting=value,... (first: reference)")
    parser.add_argument("--reference", default=None, metavar="JSON:NAME",
                        help="take the reference from a row of an earlier run's JSON instead of the first config")
    parser.add_argument("--gan", type=Path, default=None, help="a save_gan directory (default: the bundled DCGAN)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 20 updates per configuration")
    parser.add_argument("--section", default="time_to_quality", help="the marked section of --out to write")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "lab" / "fit_speed.md")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--png", type=Path, default=None)
    args = parser.parse_args(argv)
    command = command_line(__spec__, argv)
    print(command, flush=True)
    configs = [parse_config(text) for text in args.configs]

    if args.gan is None:
        generator, discriminator, _ = zoo.load("dcgan-fashion-mnist", device=args.device)
        gan_config = zoo.load_gan_config("dcgan-fashion-mnist")
        gan_name = "the bundled DCGAN"
    else:
        generator, discriminator, gan_config, _ = load_gan(args.gan)
        generator.to(args.device).eval()
        discriminator.to(args.device).eval()
        gan_name = str(args.gan)
    latent_shape = tuple(gan_config.latent_shape)
    train_images, _ = load_fashion_mnist("train", root=args.data_root)
    heldout = to_model_range(train_images[59000:]).to(args.device)  # never trained on; every choice is made here
    protocol = Protocol(device=args.device, n=1000, repeats=5, seed=0, data_root=args.data_root, nn_train=0,
                        batch=500)
    features = LayerFeatures(discriminator, gan_config.feature_layer)

    rows: list[dict[str, Any]] = []
    for name, kwargs in configs:
        if args.quick:
            kwargs = {**kwargs, "steps": 20, "eval_every": 10}
        scorer = Scorer(generator, features, latent_shape, heldout, protocol)
        started = time.perf_counter()
        inverter = fit_inverter(generator, discriminator, gan_config.feature_layer, latent_shape=latent_shape,
                                seed=args.seed, progress=False, on_validation=scorer, **kwargs)
        wall = time.perf_counter() - started
        fit = inverter.config.fit
        history = fit["history"]
        per_step = (history[-1][3] - history[0][3]) / max(1, history[-1][0] - history[0][0])
        best = next(p for p in scorer.curve if p["step"] == fit["best_step"])
        rows.append({"name": name, "settings": {k: str(v) for k, v in kwargs.items()}, "fit_seconds": fit["seconds"],
                     "wall_seconds": wall, "ms_per_update": 1000 * per_step, "steps_run": history[-1][0],
                     "best_step": fit["best_step"], "best_val_mse": fit["best_validation_mse"],
                     "heldout_psnr": best["heldout_psnr"], "table1_psnr": best["table1_psnr"],
                     "table1_psnr_std": best["table1_psnr_std"], "curve": scorer.curve,
                     "cn_parameters": sum(p.numel() for p in inverter.cn.parameters()),
                     "stopped": fit.get("stopped"), "lr_drops": fit.get("lr_drops"), "levers": fit.get("levers")})
        print(f"{name}: fit {fit['seconds']:.1f} s ({1000 * per_step:.1f} ms/update, {history[-1][0]} updates), "
              f"best val {fit['best_validation_mse']:.4f}, held-out train PSNR {best['heldout_psnr']:.2f}, "
              f"Table 1 PSNR {best['table1_psnr']:.2f}", flush=True)
    reference_name, reference = rows[0]["name"], rows[0]["heldout_psnr"]
    if args.reference:
        file, _, reference_name = args.reference.rpartition(":")
        earlier = json.loads(Path(file).read_text())
        reference = next(r["heldout_psnr"] for r in earlier["rows"] if r["name"] == reference_name)
        rows_before = [r for r in earlier["rows"] if r["name"] == reference_name]
        rows = rows_before + rows  # shown first, as measured in that run
        print(f"reference: {reference_name} of {file} ({reference:.2f} dB held-out train)", flush=True)
    for row in rows:
        row["seconds_to_reference"] = first_within(row["curve"], reference)
        row["seconds_to_own"] = first_within(row["curve"], row["heldout_psnr"])

    device_name = describe_device(args.device)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"command": command, "device": device_name, "torch": torch.__version__,
                                         "gan": gan_name, "rows": rows}, indent=1))
    if args.png:
        draw_png(args.png, rows)

    def seconds(value: float | None) -> str:
        return "never" if value is None else f"{value:.0f}"

    lines = [f"## Time to quality: {device_name}, {gan_name}", "",
             f"Written by `benchmarks/speed/time_to_quality.py` (torch {torch.__version__}):", "", f"    {command}", "",
             "PSNR of the CN's reconstructions at every validation of the fit (the scoring time left out of the "
             "fit's clock). *Held-out train* is Fashion-MNIST train[59000:] (never trained on), on which every "
             "choice is made; *Table 1* is the paper's protocol on the test split (1,000 images x 5 draws), reported "
             "only. The first row is the reference"
             + (f" (taken from the earlier run `{args.reference}`, timed there)" if args.reference else "")
             + "; *to ref.* is the first time the held-out train PSNR came within "
             "0.1 dB of the reference's final figure, *to own* within 0.1 dB of the row's own. The final figures are "
             "those of the weights the fit returns (its best validation step)."
             + (f" Curves: `{args.png.relative_to(ROOT) if args.png.is_relative_to(ROOT) else args.png}`."
                if args.png else ""), "",
             "| config | settings | CN parameters | updates run | ms / update | fit s | held-out train PSNR | "
             "Table 1 PSNR | s to ref. | s to own | stopped |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        settings = ", ".join(f"{k}={v}" for k, v in r["settings"].items()) or "(defaults)"
        stopped = "ceiling" if not r["stopped"] else f"plateau at {r['stopped']}"
        lines.append(f"| {r['name']} | {settings} | {r['cn_parameters']:,} | {r['steps_run']} | {r['ms_per_update']:.1f} "
                     f"| {r['fit_seconds']:.0f} | {r['heldout_psnr']:.2f} | {r['table1_psnr']:.2f} ± "
                     f"{r['table1_psnr_std']:.2f} | {seconds(r['seconds_to_reference'])} | "
                     f"{seconds(r['seconds_to_own'])} | {stopped} |")
    write_marked_section(args.out, args.section, "cpu" if args.device == "cpu" else "cuda", lines,
                         "# Fit speed\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
