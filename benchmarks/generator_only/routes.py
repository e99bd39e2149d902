#!/usr/bin/env python
"""Issue 35's measurements: the generator-only route (``fit_inverter(G, None, ...)``) against D's route.

Usage (one row a call; a row already stored is skipped; ``--page`` rewrites the page from every stored row)::

    python -m benchmarks.generator_only.routes --out runs/gonly --name d-images --route d --images
    python -m benchmarks.generator_only.routes --out runs/gonly --name g-images --route g --images
    python -m benchmarks.generator_only.routes --out runs/gonly --name g-w64 --route g --setting pixel_width=64
    python -m benchmarks.generator_only.routes --out runs/gonly --name naive --route naive
    python -m benchmarks.generator_only.routes --out runs/gonly --page docs/lab/generator_only.md \\
        --json docs/results/generator_only.json --picture docs/lab/images/generator_only.png

A row is one fit with the library's defaults but the settings named, seed 0, on one GAN (``--gan``: a zoo entry
``zoo:NAME`` or a ``save_gan`` folder; default the bundled DCGAN):

- ``--route d``: ``fit_inverter(G, D, feature_layer)``, D's route (the library's default when D is there);
- ``--route g``: ``fit_inverter(G, None, latent_shape=...)``, the generator-only route (a pixel network of its own);
- ``--route naive``: the paper's "naive encoder" (``benchmarks/baselines.py``: a re-initialised copy of D's trunk
  plus a CN trained end to end on fresh ``(G(z), z)`` pairs), with the fit's default budget (2,000 batches of 256),
  the reference the issue's target names for the G-only route without images;
- ``--images``: the real-image stage on the Fashion-MNIST train split but its last ``--holdout`` images;
- ``--iterations K``: ``K`` step networks after it (``fit_inverter(iterations=K)``); scored at ``k = K``, and the
  held-out PSNR at every ``k``.

Each row is scored on the held-out **train** slice (the last ``--holdout`` train images, never trained on: where
any choice is made), on the paper's Table 1 protocol (1,000 test images x 5 draws, seed 0; reported, never used to
choose), on latent recovery (512 fresh ``G(z)``), and timed: the fit's seconds (each stage's, on ``--threads``
torch threads) and encode's seconds per 1,000 images. Images are scored at 28x28: a GAN of 32x32 images (the
reference StyleGAN2) gets them padded with the background (-1) and its reconstructions cropped back.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.baselines import fit_naive_encoder
from benchmarks.common import command_line, describe_device, parse_settings, write_json
from benchmarks.paper.protocol import Protocol
from discinvert import fit_inverter
from discinvert.metrics import image_quality
from discinvert.zoo import load_entry_gan
from discinvert.zoo.datasets import load_fashion_mnist, to_model_range
from discinvert.zoo.gans import ZooGAN, load_zoo_gan

ROUTES: Final[tuple[str, ...]] = ("d", "g", "naive")
FRESH: Final[int] = 512
PICTURE_ROWS: Final[tuple[str, ...]] = ("naive", "d", "g", "d-images", "g-images", "g-images-pe", "g-images-pr",
                                        "d-images-steps", "g-images-steps", "sg2-naive", "sg2-d", "sg2-g", "sg2-d-images",
                                        "sg2-g-images", "sg2-d-images-steps", "sg2-g-images-steps")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gan", default="zoo:dcgan-fashion-mnist", help="zoo:NAME or a save_gan folder")
    parser.add_argument("--out", type=Path, default=Path("runs/gonly"))
    parser.add_argument("--name", default=None, help="the row's name (its file); none: only --page")
    parser.add_argument("--route", choices=ROUTES, default="g")
    parser.add_argument("--images", action="store_true", help="with the real-image stage")
    parser.add_argument("--iterations", type=int, default=0, help="step networks after the real-image stage")
    parser.add_argument("--setting", action="append", default=[], metavar="KEY=JSON",
                        help="a fit_inverter setting, its value as JSON (e.g. pixel_width=64); repeatable")
    parser.add_argument("--holdout", type=int, default=1000, help="last N train images: the selection set")
    parser.add_argument("--n", type=int, default=1000, help="Table 1: test images a draw")
    parser.add_argument("--repeats", type=int, default=5, help="Table 1: draws")
    parser.add_argument("--train-limit", type=int, default=None, help="first N train images only (smoke runs)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--page", type=Path, default=None, help="rewrite this Markdown page from the rows")
    parser.add_argument("--json", type=Path, default=None, help="with --page: every row, as JSON")
    parser.add_argument("--picture", type=Path, default=None,
                        help="with --page: originals and each route's reconstructions of the same test images (PNG)")
    parser.add_argument("--picture-rows", default=",".join(PICTURE_ROWS),
                        help="the rows in the picture, in order (those stored; all of one GAN)")
    return parser.parse_args(argv)


def load_gan(spec: str) -> ZooGAN:
    """The GAN of ``--gan`` (eval mode, CPU)."""
    return load_entry_gan(spec[4:]) if spec.startswith("zoo:") else load_zoo_gan(spec)


def image_side(gan: ZooGAN) -> int:
    """The side of G's images (28 for the DCGANs, 32 for the reference StyleGAN2)."""
    with torch.no_grad():
        probe = gan.generator(torch.zeros(1, *gan.latent_shape))
    return int(probe.shape[-1])


def padder(side: int) -> tuple[Callable[[torch.Tensor], torch.Tensor], Callable[[torch.Tensor], torch.Tensor]]:
    """``(pad, crop)`` between Fashion-MNIST's 28x28 and G's ``side`` (identities at 28)."""
    margin = (side - 28) // 2
    if margin == 0:
        return (lambda x: x), (lambda x: x)
    return (lambda x: F.pad(x, (margin,) * 4, value=-1.0)), (lambda x: x[..., margin:-margin, margin:-margin])


def settings_from(args: argparse.Namespace) -> dict[str, Any]:
    settings: dict[str, Any] = {"seed": args.seed, **parse_settings(args.setting)}
    if args.iterations:
        settings["iterations"] = args.iterations
    return settings


def fit_row(args: argparse.Namespace, gan: ZooGAN, train: torch.Tensor) -> tuple[Any, float, dict[str, Any]]:
    """The fitted encoder (an Inverter, or the naive encoder), its fit seconds and what its record says."""
    settings = settings_from(args)
    images = train if args.images else None
    start = time.perf_counter()
    if args.route == "naive":
        if images is not None or args.iterations:
            raise SystemExit("--route naive takes neither --images nor --iterations")
        encoder = fit_naive_encoder(gan.generator, gan.discriminator, gan.feature_layer, latent_shape=gan.latent_shape,
                                    steps=settings.pop("steps", 2000), seed=settings.pop("seed"), **settings)
        return encoder, time.perf_counter() - start, {}
    if args.route == "d":
        inverter = fit_inverter(gan.generator, gan.discriminator, gan.feature_layer, latent_shape=gan.latent_shape,
                                images=images, progress=False, **settings)
    else:
        inverter = fit_inverter(gan.generator, None, latent_shape=gan.latent_shape, images=images, progress=False,
                                **settings)
    seconds = time.perf_counter() - start
    fit = inverter.config.fit
    record: dict[str, Any] = {"self_generated_seconds": round(fit["seconds"], 1),
                              "best_validation_mse": fit["best_validation_mse"], "best_step": fit["best_step"],
                              "stopped": fit["stopped"]}
    if fit.get("real_images"):
        real = fit["real_images"]
        record.update(real_stage_seconds=round(real["seconds"], 1), real_best_step=real["best_step"])
    if fit.get("iterative"):
        record["step_network_seconds"] = round(sum(s["seconds"] for s in fit["iterative"]["steps"]), 1)
    record["parameters"] = sum(p.numel() for name, p in inverter.named_parameters()
                               if name.startswith(("cn.", "pixels.", "steps.")))
    return inverter, seconds, record


def encoder_of(encoder: Any, args: argparse.Namespace) -> Callable[..., torch.Tensor]:
    if args.route == "naive":
        return lambda x, k=None: encoder.encode(x)
    return lambda x, k=None: encoder.encode(x, range_check="ignore", iterations=k)


def run_row(args: argparse.Namespace, command: str) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    gan = load_gan(args.gan)
    pad, crop = padder(image_side(gan))
    images, _ = load_fashion_mnist("train", root=args.data_root)
    x_all = to_model_range(images).float()
    train, holdout = x_all[: len(x_all) - args.holdout], x_all[len(x_all) - args.holdout:]
    if args.train_limit:
        train = train[: args.train_limit]
    encoder, seconds, record = fit_row(args, gan, pad(train))
    encode = encoder_of(encoder, args)
    G = gan.generator

    def decode(z: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return torch.cat([crop(G(b)) for b in z.split(500)])

    row: dict[str, Any] = {"name": args.name, "gan": args.gan, "route": args.route, "images": args.images,
                           "iterations": args.iterations, "settings": settings_from(args), "fit_seconds": round(seconds, 1),
                           **record, "threads": torch.get_num_threads(), "device": describe_device("cpu"),
                           "fit_images": len(train) if args.images else 0, "gan_record": gan_record(gan),
                           "protocol": f"{args.n} test images x {args.repeats} draws (seed 0)", "command": command}
    ks = list(range(args.iterations + 1)) if args.iterations else [None]
    row["heldout_by_k"] = {}
    for k in ks:
        psnr, ssim = image_quality(holdout, decode(encode(pad(holdout), k)))
        row["heldout_by_k"][str(k or 0)] = {"psnr": float(np.mean(psnr)), "ssim": float(np.mean(ssim))}
    row["heldout_psnr"] = row["heldout_by_k"][str(args.iterations)]["psnr"]
    row["heldout_ssim"] = row["heldout_by_k"][str(args.iterations)]["ssim"]
    protocol = Protocol(device="cpu", n=args.n, repeats=args.repeats, seed=0, data_root=args.data_root,
                        nn_train=0, batch=1000)
    last = args.iterations or None
    table = protocol.score_encoder(args.name, lambda x: encode(pad(x), last), decode)
    row.update({key: table[key] for key in ("psnr_mean", "psnr_std", "ssim_mean", "ssim_std", "seconds_per_1k")})
    fresh_z = gan.generator.sample(FRESH, torch.Generator().manual_seed(12345), torch.device("cpu")) \
        if hasattr(gan.generator, "sample") else torch.randn(FRESH, *gan.latent_shape,
                                                              generator=torch.Generator().manual_seed(12345))
    with torch.no_grad():
        fresh_x = torch.cat([G(b) for b in fresh_z.split(256)])
    recovered = encode(fresh_x, last).reshape(FRESH, -1)
    truth = fresh_z.reshape(FRESH, -1)
    row["recovery_mse"] = float(F.mse_loss(recovered, truth))
    row["recovery_cosine"] = float(F.cosine_similarity(recovered, truth, dim=1).mean())
    first = protocol.x_first[:8]
    row["picture_codes"] = encode(pad(first), last).reshape(8, -1).tolist()
    print(json.dumps({k: v for k, v in row.items() if k != "picture_codes"}, indent=1), flush=True)
    write_json(args.out / "rows" / f"{args.name}.json", row)
    return row


def gan_record(gan: ZooGAN) -> dict[str, Any]:
    """What the page says of the row's GAN, kept in the row (its folder under ``runs/`` may be gone later): its
    summary, and from its training record the epochs or iterations trained and the command that trained it."""
    extra = gan.extra or {}
    return {"summary": gan.summary, "trained": extra.get("epochs", extra.get("iterations")),
            "unit": "epochs" if "epochs" in extra else "iterations", "command": extra.get("command")}


def _gan_lines(rows: list[dict[str, Any]]) -> list[str]:
    """A line per GAN: what it is (from the rows' ``gan_record``), then the issue's two comparisons where the
    rows are there, each pair matched by what the rows record (route, images, no step networks, no settings but
    the seed), not by their names, and of seed 0 (other seeds have :func:`_seed_lines`): G only against D with
    images and without (Table 1 PSNR and held-out PSNR), G only without images against the naive encoder."""
    lines = []
    for gan in sorted({r["gan"] for r in rows}):
        plain = {(r["route"], r["images"]): r for r in rows
                 if r["gan"] == gan and not r.get("iterations") and set(r.get("settings", {})) <= {"seed"}
                 and r.get("settings", {}).get("seed", 0) == 0}
        record = next((r["gan_record"] for r in rows if r["gan"] == gan and "gan_record" in r), None)
        text = f"- `{gan}`" + (f" ({record['summary']}; {record['trained']} {record['unit']}, trained by "
                               f"`{record['command']}`)" if record and record["command"] else "") + ":"
        found = []
        for mine, other, label in ((("g", True), ("d", True), "with images, G only against D"),
                                   (("g", False), ("d", False), "without images, G only against D"),
                                   (("g", False), ("naive", False), "without images, G only against the naive encoder")):
            if mine in plain and other in plain:
                a, b = plain[mine], plain[other]
                found.append(f"{label}: Table 1 {a['psnr_mean']:.2f} vs {b['psnr_mean']:.2f} dB "
                             f"({a['psnr_mean'] - b['psnr_mean']:+.2f}), held-out {a['heldout_psnr']:.2f} vs "
                             f"{b['heldout_psnr']:.2f} ({a['heldout_psnr'] - b['heldout_psnr']:+.2f})")
        lines.append(text + (" " + "; ".join(found) + "." if found else " no pair of rows to compare yet."))
    return lines


def _seed_lines(rows: list[dict[str, Any]]) -> list[str]:
    """A line per fit measured with more than one seed (rows alike but for the fit's ``seed``): the held-out PSNR
    of each seed, then the means of it and of Table 1's PSNR; none when every fit has one seed."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        unseeded = {**r, "settings": {k: v for k, v in r["settings"].items() if k != "seed"}}
        groups.setdefault((r["gan"], _describe(unseeded)), []).append(r)
    lines = []
    for (gan, description), group in sorted(groups.items()):
        if len({r["settings"].get("seed", 0) for r in group}) < 2:
            continue
        group = sorted(group, key=lambda r: r["settings"].get("seed", 0))
        each = ", ".join(f"{r['heldout_psnr']:.2f} (seed {r['settings'].get('seed', 0)}, {r['name']})" for r in group)
        lines.append(f"- `{gan}`, {description}: held-out {each}; mean {np.mean([r['heldout_psnr'] for r in group]):.2f}"
                     f", Table 1 mean {np.mean([r['psnr_mean'] for r in group]):.2f} dB.")
    return lines


def _describe(r: dict[str, Any]) -> str:
    route = {"d": "D", "g": "G only", "naive": "naive encoder"}[r["route"]]
    extra = [f"{k}={v}" for k, v in r["settings"].items() if k not in ("seed", "iterations")]
    seed = r["settings"].get("seed", 0)
    steps = [f"{r['iterations']} step network{'s' if r['iterations'] > 1 else ''}"] if r["iterations"] else []
    return ", ".join([route, "images" if r["images"] else "no images"] + steps + extra
                     + ([f"seed {seed}"] if seed else []))


def stored_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every row: those in ``--json`` (the committed record, so that rows measured by an earlier session whose
    ``runs/`` is gone still count) overlaid by those in ``OUT/rows`` (a row measured again replaces its record)."""
    by_name: dict[str, dict[str, Any]] = {}
    if args.json is not None and args.json.is_file():
        by_name.update(json.loads(args.json.read_text())["rows"])
    for path in sorted((args.out / "rows").glob("*.json")):
        row = json.loads(path.read_text())
        by_name[row["name"]] = row
    return list(by_name.values())


def write_page(args: argparse.Namespace, command: str) -> None:
    rows = stored_rows(args)
    rows.sort(key=lambda r: (r["gan"], r["images"], r["iterations"], ROUTES.index(r["route"]), r["name"]))
    lines = [
        "# Inverting a generator alone: the generator-only route against D's (issue 35)",
        "",
        f"Written by `{command}` from the rows of `benchmarks/generator_only/routes.py` (each row's command below). "
        "Every fit: the library's defaults but the settings named, seed 0 unless the row names another. "
        "*Held-out train*: the last 1,000 Fashion-MNIST train images, never trained on, where any choice is made; "
        "*Table 1*: "
        f"{' / '.join(sorted({r['protocol'] for r in rows}))}, reported, never used to choose. *Recovery*: MSE / cosine between 512 fresh codes and the "
        "codes of their images. A GAN of 32x32 images (the reference StyleGAN2) gets every image padded with the "
        "background (-1) and its reconstructions cropped back to the central 28x28. Seconds are wall-clock on the row's torch threads, on a 2-core machine shared with "
        "other work: compare them within a page, as upper bounds; one fit at a time on both cores: "
        "[generator_only_timing.md](generator_only_timing.md) (`benchmarks/generator_only/timing.py`).",
        "",
        "| row | GAN | route, settings | held-out PSNR / SSIM | Table 1 PSNR | Table 1 SSIM | encode s / 1k | "
        "recovery MSE / cosine | fit s (stages) | threads |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        stages = " + ".join(f"{r[key]:.0f}" for key in ("self_generated_seconds", "real_stage_seconds",
                                                        "step_network_seconds") if key in r)
        lines.append(
            f"| {r['name']} | {r['gan']} | {_describe(r)} | {r['heldout_psnr']:.2f} / {r['heldout_ssim']:.4f} | "
            f"{r['psnr_mean']:.2f} ± {r['psnr_std']:.2f} | {r['ssim_mean']:.4f} | {r['seconds_per_1k']:.3f} | "
            f"{r['recovery_mse']:.3f} / {r['recovery_cosine']:.3f} | {r['fit_seconds']:.0f}"
            + (f" ({stages})" if stages and "+" in stages else "") + f" | {r['threads']} |")
    lines += ["", "GANs and the issue's comparisons (targets on the reference DCGAN: G only with images within 1 dB of D; "
              "without images at least the naive encoder):", ""] + _gan_lines(rows)
    seeds = _seed_lines(rows)
    if seeds:
        lines += ["", "Fits measured with more than one seed (the fit's seed; Table 1's draws keep seed 0):", ""] + seeds
    steps = [r for r in rows if r["iterations"]]
    if steps:
        lines += ["", "Step networks, held-out PSNR at each k: " + "; ".join(
            f"{r['name']} " + " → ".join(f"{v['psnr']:.2f}" for _, v in sorted(r["heldout_by_k"].items()))
            for r in steps) + "."]
    lines += ["", "Commands:", ""] + [f"- {r['name']}: `{r['command']}` ({r['device']})" for r in rows] + [""]
    if args.picture is not None:
        for path, chosen in write_pictures(args, rows):
            lines += [f"![originals and reconstructions, {chosen[0]['gan']}]({Path('images') / path.name})", "",
                      f"The picture ({chosen[0]['gan']}): the first 8 test images of the first draw (top), then each "
                      "row's reconstructions: " + ", ".join(r["name"] for r in chosen) + ".", ""]
        undrawn = _undrawn(args, rows)
        if undrawn:
            lines += [undrawn.strip(), ""]
    args.page.parent.mkdir(parents=True, exist_ok=True)
    args.page.write_text("\n".join(lines))
    print(f"wrote {args.page}", flush=True)
    if args.json is not None:
        write_json(args.json, {"command": command, "rows": {r["name"]: _compact(r) for r in rows}})
        print(f"wrote {args.json}", flush=True)


def _compact(row: dict[str, Any]) -> dict[str, Any]:
    """The row as the JSON keeps it: its picture's codes rounded to 4 decimals (enough to redraw the picture)."""
    if "picture_codes" not in row:
        return row
    return {**row, "picture_codes": [[round(v, 4) for v in code] for code in row["picture_codes"]]}


def _undrawn(args: argparse.Namespace, rows: list[dict[str, Any]]) -> str:
    """The sentence naming the ``--picture-rows`` rows that are stored without picture codes (measured before the
    JSON kept them), so the picture cannot show them; empty when there are none."""
    missing = [r["name"] for r in rows if r["name"] in args.picture_rows.split(",") and "picture_codes" not in r]
    return (f" Not drawn: {', '.join(missing)} (measured before the records kept their picture codes; a re-run "
            "draws them)." if missing else "")


def picture_rows(args: argparse.Namespace, rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The stored rows ``--picture-rows`` names, in its order, grouped by GAN (a picture each, in the order of
    each GAN's first row)."""
    by_name = {r["name"]: r for r in rows if "picture_codes" in r}  # rows recorded before the JSON kept codes: none
    groups: dict[str, list[dict[str, Any]]] = {}
    for name in args.picture_rows.split(","):
        if name in by_name:
            groups.setdefault(by_name[name]["gan"], []).append(by_name[name])
    return list(groups.values())


def picture_path(args: argparse.Namespace, index: int, gan: str) -> Path:
    """Where the picture of the ``index``-th GAN goes: ``--picture`` for the first, ``STEM-GAN.png`` beside it for
    the others (``GAN``: the zoo entry's or the folder's name)."""
    if index == 0:
        return args.picture
    slug = Path(gan.removeprefix("zoo:")).name
    return args.picture.with_name(f"{args.picture.stem}-{slug}{args.picture.suffix}")


def write_pictures(args: argparse.Namespace, rows: list[dict[str, Any]]) -> list[tuple[Path, list[dict[str, Any]]]]:
    """A picture per GAN of ``--picture-rows``: the first 8 test images of the first draw, then each row's
    reconstructions (a GAN of 32x32 images cropped to the central 28x28); the paths written and their rows."""
    from benchmarks.paper.train_gan import write_png_gray
    from discinvert.zoo.datasets import from_model_range

    protocol = Protocol(device="cpu", n=args.n, repeats=args.repeats, seed=0, data_root=args.data_root,
                        nn_train=0, batch=1000)
    written = []
    for index, chosen in enumerate(picture_rows(args, rows)):
        gan = load_gan(chosen[0]["gan"])
        _, crop = padder(image_side(gan))
        tiles = [protocol.x_first[:8]]
        with torch.no_grad():
            for r in chosen:
                codes = torch.tensor(r["picture_codes"]).reshape(8, *gan.latent_shape)
                tiles.append(crop(gan.generator(codes)))
        strips = [from_model_range(torch.cat(list(t), dim=-1)) for t in tiles]
        image = np.concatenate([s.reshape(s.shape[-2], s.shape[-1]) for s in strips], axis=0)
        path = picture_path(args, index, chosen[0]["gan"])
        path.parent.mkdir(parents=True, exist_ok=True)
        write_png_gray(path, image)
        print(f"wrote {path}", flush=True)
        written.append((path, chosen))
    return written


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    command = command_line(__spec__, argv)
    print(command, flush=True)
    if args.name is not None:
        if (args.out / "rows" / f"{args.name}.json").is_file():
            print(f"{args.name}: done already ({args.out / 'rows'})", flush=True)
        else:
            run_row(args, command)
    if args.page is not None:
        write_page(args, command)


if __name__ == "__main__":
    main()
