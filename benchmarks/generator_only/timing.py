"""Issue 35's timings with the cores free: each route's fit seconds per update, stage by stage, and encode's seconds
per 1,000 images, on ``--threads`` torch threads, one fit at a time.

The rows of ``routes.py`` run the library's whole default fit, one thread each, two at a time on a 2-core machine:
their seconds compare routes measured side by side, but are not what one fit takes with both cores. This script
times the same fits on both cores, one after the other, with a shortened budget (``--steps`` updates of the
self-generated stage, ``--real-steps`` of the real-image stage: the seconds per update do not depend on the budget),
and projects the default budget's seconds (2,000 + 1,500 updates) from them. Its fits are not scored: the quality
of each route is ``routes.py``'s.

Usage::

    python -m benchmarks.generator_only.timing --out runs/gonly-timing --threads 2 --variants d,g,g-pe,g-pr
    python -m benchmarks.generator_only.timing --out runs/gonly-timing --threads 2 --gan zoo:stylegan2-fashion-mnist \\
        --variants d,g
    python -m benchmarks.generator_only.timing --out runs/gonly-timing --page docs/lab/generator_only_timing.md \\
        --json docs/results/generator_only_timing.json

Variants: ``d`` (D's route), ``g`` (the generator-only route), ``g-pe`` / ``g-pr`` (G alone with
``perceptual="encoder"`` / ``"random"`` in the real-image stage). Each (GAN, variant) is a file in ``OUT/rows``;
one already there is skipped; ``--page`` writes the page from every stored one.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, Final

import torch

from benchmarks.common import command_line, describe_device, median_seconds, parse_settings, write_json
from benchmarks.generator_only.routes import image_side, load_gan, padder
from discinvert import fit_inverter
from discinvert.zoo.datasets import load_fashion_mnist, to_model_range

VARIANTS: Final[dict[str, dict[str, Any]]] = {
    "d": {}, "g": {}, "g-pe": {"perceptual": "encoder"}, "g-pr": {"perceptual": "random"}}
DEFAULT_STEPS: Final[int] = 2000
DEFAULT_REAL_STEPS: Final[int] = 1500


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gan", default="zoo:dcgan-fashion-mnist", help="zoo:NAME or a save_gan folder")
    parser.add_argument("--out", type=Path, default=Path("runs/gonly-timing"))
    parser.add_argument("--variants", default="", help=f"comma-separated, of {', '.join(VARIANTS)}")
    parser.add_argument("--steps", type=int, default=300, help="updates of the self-generated stage")
    parser.add_argument("--real-steps", type=int, default=200, help="updates of the real-image stage")
    parser.add_argument("--setting", action="append", default=[], metavar="KEY=JSON",
                        help="another fit_inverter setting, its value as JSON (smoke runs); repeatable")
    parser.add_argument("--holdout", type=int, default=1000,
                        help="last N train images: not fitted on, the images encode is timed on")
    parser.add_argument("--encode-repeats", type=int, default=5, help="timed encodes of 1,000 images (median)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--page", type=Path, default=None, help="write this Markdown page from the stored rows")
    parser.add_argument("--json", type=Path, default=None, help="with --page: every row, as JSON")
    return parser.parse_args(argv)


def time_variant(args: argparse.Namespace, variant: str, command: str) -> dict[str, Any]:
    """One shortened fit of ``variant`` on ``args.gan`` with the train split's images but the last ``--holdout``,
    and encode timed on those."""
    torch.set_num_threads(args.threads)
    gan = load_gan(args.gan)
    pad, _ = padder(image_side(gan))
    images, _ = load_fashion_mnist("train", root=args.data_root)
    x_all = pad(to_model_range(images).float())
    train, probe = x_all[: len(x_all) - args.holdout], x_all[len(x_all) - args.holdout:]
    extra = parse_settings(args.setting)
    discriminator = None if variant.startswith("g") else gan.discriminator
    layer = None if discriminator is None else gan.feature_layer
    start = time.perf_counter()
    inverter = fit_inverter(gan.generator, discriminator, layer, latent_shape=gan.latent_shape, images=train,
                            steps=args.steps, real_steps=args.real_steps, seed=args.seed, progress=False,
                            patience=args.steps, **VARIANTS[variant], **extra)
    wall = time.perf_counter() - start
    fit = inverter.config.fit
    steps_run = fit["stopped"] or args.steps
    real = fit["real_images"]
    real_run = int(real["history"][-1][0])
    with torch.no_grad():
        encode_seconds = median_seconds("cpu", lambda: inverter.encode(probe, range_check="ignore"),
                                        args.encode_repeats, warmups=1)
    self_step = fit["seconds"] / steps_run
    real_step = real["seconds"] / real_run
    setup = wall - fit["seconds"] - real["seconds"]  # checks, probes, validation pairs, held-out images
    row = {"gan": args.gan, "variant": variant, "settings": {**VARIANTS[variant], **extra}, "threads": torch.get_num_threads(),
           "device": describe_device("cpu"), "steps": steps_run, "real_steps": real_run,
           "self_generated_seconds": round(fit["seconds"], 2), "real_stage_seconds": round(real["seconds"], 2),
           "fit_wall_seconds": round(wall, 2), "self_generated_seconds_per_update": self_step,
           "real_stage_seconds_per_update": real_step,
           "setup_seconds": round(setup, 2),
           "projected_default_seconds": round(setup + self_step * DEFAULT_STEPS + real_step * DEFAULT_REAL_STEPS, 1),
           "encode_seconds_per_1k": encode_seconds * 1000 / len(probe), "encode_repeats": args.encode_repeats,
           "parameters": sum(p.numel() for name, p in inverter.named_parameters()
                             if name.startswith(("cn.", "pixels."))),
           "command": command}
    print(json.dumps(row, indent=1), flush=True)
    return row


def row_path(args: argparse.Namespace, variant: str) -> Path:
    """Where the row of ``variant`` on ``--gan`` with ``--threads`` is stored."""
    slug = args.gan.replace("zoo:", "").replace("/", "_")
    return args.out / "rows" / f"{slug}--{variant}--threads{args.threads}.json"


def stored_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every row: those in ``--json`` (the committed record, so that rows timed by an earlier session whose ``runs/``
    is gone still count) overlaid by those in ``OUT/rows`` (a row timed again replaces its record)."""
    def key(row: dict[str, Any]) -> tuple[str, str, int]:
        return row["gan"], row["variant"], row["threads"]

    by_key: dict[tuple[str, str, int], dict[str, Any]] = {}
    if args.json is not None and args.json.is_file():
        by_key.update((key(r), r) for r in json.loads(args.json.read_text())["rows"])
    for path in sorted((args.out / "rows").glob("*.json")):
        row = json.loads(path.read_text())
        by_key[key(row)] = row
    return list(by_key.values())


def write_page(args: argparse.Namespace, command: str) -> None:
    rows = stored_rows(args)
    if not rows:
        raise SystemExit(f"--page: expected rows in {args.out / 'rows'} or {args.json}, found none")
    order = list(VARIANTS)
    rows.sort(key=lambda r: (r["gan"], r["threads"], order.index(r["variant"])))
    lines = [
        "# Inverting a generator alone: timings with the cores free (issue 35)",
        "",
        f"Written by `{command}` from the rows of `benchmarks/generator_only/timing.py` (each row's command below). "
        "Each row: one fit at a time, nothing else running, on the row's torch threads, with a shortened budget "
        "(the updates named), the Fashion-MNIST train split but its last 1,000 images as the real images, seed 0; "
        f"*default fit*: the set-up (checks, probes, validation pairs, held-out images: the fit's wall time less its "
        f"stages') plus the seconds per update times the default budget ({DEFAULT_STEPS:,} + {DEFAULT_REAL_STEPS:,} "
        "updates), a projection; *encode*: the median "
        "of the row's repeats, 1,000 images, after a warm-up. The fits are not scored: each route's quality is "
        "[generator_only.md](generator_only.md)'s, whose full fits ran one thread each, two at a time. On this shared "
        "machine the seconds of one fit vary by up to a few times between hours and sessions (compare g-images and "
        "g-images-s1 there): read the ratios below, each between rows timed one after the other.",
        "",
        "| GAN | route | set-up s | self-generated s / update | real-image s / update | default fit s (projected) | "
        "encode s / 1k | CN + pixel network parameters | threads |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['gan']} | {_describe(r)} | {r['setup_seconds']:.1f} | {r['self_generated_seconds_per_update']:.4f} | "
                     f"{r['real_stage_seconds_per_update']:.4f} | {r['projected_default_seconds']:.0f} | "
                     f"{r['encode_seconds_per_1k']:.3f} | {r['parameters']:,} | {r['threads']} |")
    lines += ["", "Ratios, G alone against D's route on the same GAN and threads (below 1: G alone is faster):", ""]
    for gan, threads in sorted({(r["gan"], r["threads"]) for r in rows}):
        by = {r["variant"]: r for r in rows if r["gan"] == gan and r["threads"] == threads}
        where = f"`{gan}`, {threads} thread{'s' if threads > 1 else ''}"
        if "d" in by and "g" in by:
            d, g = by["d"], by["g"]
            lines.append(f"- {where}: default fit {g['projected_default_seconds'] / d['projected_default_seconds']:.2f}"
                         f" (self-generated stage {g['self_generated_seconds_per_update'] / d['self_generated_seconds_per_update']:.2f}, "
                         f"real-image stage {g['real_stage_seconds_per_update'] / d['real_stage_seconds_per_update']:.2f}); "
                         f"encode {g['encode_seconds_per_1k'] / d['encode_seconds_per_1k']:.2f}.")
        for variant in ("g-pe", "g-pr"):
            if variant in by and "g" in by:
                p, g = by[variant], by["g"]
                lines.append(f"- {where}, {_describe(p)} against none: real-image stage "
                             f"{p['real_stage_seconds_per_update'] / g['real_stage_seconds_per_update']:.2f} "
                             f"the seconds per update.")
    pairs = [(one, two) for one in rows for two in rows if (one["gan"], one["variant"], one["settings"]) ==
             (two["gan"], two["variant"], two["settings"]) and one["threads"] == 1 and two["threads"] == 2]
    if pairs:
        lines += ["", "Two threads against one, the same fit (below 1: two threads are faster):", ""]
        lines += [f"- `{two['gan']}`, {_describe(two)}: default fit "
                  f"{two['projected_default_seconds'] / one['projected_default_seconds']:.2f}, encode "
                  f"{two['encode_seconds_per_1k'] / one['encode_seconds_per_1k']:.2f}." for one, two in pairs]
    lines += ["", "Commands:", ""] + [f"- {r['gan']}, {r['variant']}, {r['threads']} thread{'s' if r['threads'] > 1 else ''}: `{r['command']}` "
                                        f"({r['device']})" for r in rows]
    args.page.parent.mkdir(parents=True, exist_ok=True)
    args.page.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.page}", flush=True)
    if args.json is not None:
        write_json(args.json, {"command": command, "rows": rows})
        print(f"wrote {args.json}", flush=True)


def _describe(r: dict[str, Any]) -> str:
    route = "D" if r["variant"] == "d" else "G only"
    return ", ".join([route] + [f"{k}={v}" for k, v in r["settings"].items()])


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    command = command_line(__spec__, argv)
    print(command, flush=True)
    for variant in filter(None, args.variants.split(",")):
        if variant not in VARIANTS:
            raise SystemExit(f"--variants: expected some of {', '.join(VARIANTS)}, got {variant!r}")
        path = row_path(args, variant)
        if path.is_file():
            print(f"{variant}: done already ({path})", flush=True)
            continue
        write_json(path, time_variant(args, variant, command))
    if args.page is not None:
        write_page(args, command)


if __name__ == "__main__":
    main()
