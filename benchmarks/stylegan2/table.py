#!/usr/bin/env python
"""Issue 34's measurements on the reference StyleGAN2: the Table 1 protocol in Z, W and W+.

Usage::

    python -m benchmarks.stylegan2.table --gan runs/stylegan2 --out runs/sg2table [--rows ROW,ROW,...]
        [--opt-n 200] [--threads 2] [--page docs/lab/stylegan2.md] [--quick]

Every row is scored on real Fashion-MNIST **test** images padded to 32x32 with the background value -1 (the
padding G was trained with); PSNR/SSIM are taken on the central 28x28 pixels, the original image, so the figures
read against the DCGAN tables (``benchmarks/paper/protocol.py``: 1,000 images drawn 5 times, seed 0). Rows:

- ``cn-z``, ``cn-w``, ``cn-wplus``: the default fit (``fit_inverter(MappedGenerator.nvidia(G, space=...), D,
  layer)``, no other setting) in each space; ``cn-wplus-images``: with ``images=`` the padded train split (the
  real-image stage's defaults); ``cn-wplus-images-steps``: the same plus two step networks (``iterations=2``);
- ``opt-w``, ``opt-wplus``: per-image Adam on pixel MSE from ``w_avg`` (the projector's usual start), scored after
  100 and 200 steps; ``hybrid``: the best feed-forward W+ inverter's codes refined 50 and 100 steps. These run on
  the first ``--opt-n`` images of the first draw (optimisation is 200 passes of G per image on 2 CPU cores), and
  the CN rows are scored on the same images for the comparison;
- ``recovery``: latent recovery on 1,000 fresh samples of each space's own prior (style-mixed in W+).

The Adam step size in W/W+ is picked from ``--lr-grid`` on 64 *train* images (never the test split), by PSNR
after 100 steps. Each row is stored in ``OUT/rows/NAME.json`` (inverters in ``OUT/inverters/``) and skipped
when present, so the run can be done in pieces; the page is rewritten from all rows present.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path
from typing import Any, Callable, Final

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.common import command_line, describe_device, timed, write_json
from benchmarks.paper.protocol import Protocol
from benchmarks.stylegan2.architecture import load_stylegan2
from benchmarks.stylegan2.train import padded_train_images
from discinvert import Inverter, MappedGenerator, fit_inverter, suggest_feature_layers
from discinvert.metrics import image_quality, latent_recovery
from discinvert.optimize import optimize_latents

PAD: Final[int] = 2
CN_ROWS: Final[dict[str, dict[str, Any]]] = {
    "cn-z": {"space": "z"}, "cn-w": {"space": "w"}, "cn-wplus": {"space": "w+"},
    "cn-wplus-images": {"space": "w+", "images": True},
    "cn-wplus-images-steps": {"space": "w+", "images": True, "iterations": 2},
}
ALL_ROWS: Final[tuple[str, ...]] = (*CN_ROWS, "opt-w", "opt-wplus", "hybrid", "recovery")
CHECKPOINTS: Final[tuple[int, ...]] = (10, 20, 25, 30, 35, 40, 45, 50, 100, 150, 200)
"""Steps at which optimisation-only is scored (one run of 200 steps; 100 and 200 are the issue's rows, the
others find the step count at which it matches the feed-forward PSNR)."""


def pad(x: torch.Tensor) -> torch.Tensor:
    """``(N, 1, 28, 28)`` -> ``(N, 1, 32, 32)`` with the background value -1."""
    return F.pad(x, (PAD, PAD, PAD, PAD), value=-1.0)


def crop(x: torch.Tensor) -> torch.Tensor:
    """The central 28x28 of ``(N, C, 32, 32)`` images."""
    return x[..., PAD:-PAD, PAD:-PAD]


class Bench:
    """The GAN, the protocol's images and the rows done so far."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.G, self.D, self.config, self.extra = load_stylegan2(args.gan)
        n, repeats = (32, 2) if args.quick else (1000, 5)
        self.proto = Protocol(device="cpu", n=n, repeats=repeats, seed=0, data_root=args.data_root, nn_train=0,
                              batch=256)
        self.x_opt = self.proto.x_first[: args.opt_n]
        self.layer = suggest_feature_layers(self.D, pad(self.proto.x_first[:8]))
        self.rows_dir = args.out / "rows"
        self.inverters_dir = args.out / "inverters"

    def mapped(self, space: str) -> MappedGenerator:
        return MappedGenerator.nvidia(self.G, space=space)

    def decode(self, generator: torch.nn.Module, codes: torch.Tensor) -> torch.Tensor:
        """Cropped images of ``codes``, batched, without grad."""
        with torch.no_grad():
            return torch.cat([crop(generator(c)) for c in codes.split(256)])

    def done(self, name: str) -> dict[str, Any] | None:
        path = self.rows_dir / f"{name}.json"
        return json.loads(path.read_text()) if path.is_file() else None

    def store(self, name: str, row: dict[str, Any]) -> None:
        write_json(self.rows_dir / f"{name}.json", row)

    def psnr_on(self, images28: torch.Tensor, generator: torch.nn.Module, codes: torch.Tensor) -> tuple[float, float]:
        psnr, ssim = image_quality(images28, self.decode(generator, codes))
        return float(np.mean(psnr)), float(np.mean(ssim))


def fit_row(bench: Bench, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Fit one default inverter, score it on the protocol (and on the optimisation images), keep its file."""
    args = bench.args
    generator = bench.mapped(spec["space"])
    settings: dict[str, Any] = {"seed": args.seed, "progress": False}
    if spec.get("images"):
        settings["images"] = padded_train_images(data_root=args.data_root, limit=2048 if args.quick else None)
    if spec.get("iterations"):
        settings["iterations"] = spec["iterations"]
    if args.quick:
        settings.update(steps=30, real_steps=10 if spec.get("images") else None, iteration_steps=10
                        if spec.get("iterations") else None)
        settings = {k: v for k, v in settings.items() if v is not None}
    start = time.perf_counter()
    inverter = fit_inverter(generator, bench.D, bench.layer, **settings)
    fit_seconds = time.perf_counter() - start
    inverter.save(bench.inverters_dir / f"{name}.safetensors")
    encode = lambda x: inverter.encode(pad(x))  # noqa: E731
    decode = lambda codes: bench.decode(generator, codes)  # noqa: E731
    row = bench.proto.score_encoder(name, encode, decode, fit_seconds=round(fit_seconds, 1), space=spec["space"],
                                    feature_layer=bench.layer, settings={k: v for k, v in settings.items()
                                                                          if k != "images"},
                                    images=bool(spec.get("images")), iterations=spec.get("iterations", 0),
                                    cn_parameters=sum(p.numel() for p in inverter.cn.parameters()))
    row["opt_images_psnr"], row["opt_images_ssim"] = bench.psnr_on(bench.x_opt, generator, encode(bench.x_opt))
    return row


def pick_lr(bench: Bench, generator: MappedGenerator, start: torch.Tensor) -> tuple[float, dict[str, float]]:
    """The Adam step size of ``--lr-grid`` with the best PSNR after 100 steps on 64 train images (not test)."""
    train = padded_train_images(data_root=bench.args.data_root, limit=64)
    scores = {}
    for lr in bench.args.lr_grid:
        codes = optimize_latents(generator, train, start.expand(len(train), *start.shape[1:]).clone(),
                                 steps=20 if bench.args.quick else 100, lr=lr, progress=False)
        scores[str(lr)] = bench.psnr_on(crop(train), generator, codes)[0]
    best = max(bench.args.lr_grid, key=lambda lr: scores[str(lr)])
    return best, scores


def optimise(generator: MappedGenerator, images: torch.Tensor, init: torch.Tensor, steps: tuple[int, ...],
             lr: float) -> tuple[dict[int, torch.Tensor], float]:
    """Codes after each of ``steps`` (one run of ``max(steps)`` Adam steps) and its seconds."""
    snapshots: dict[int, list[torch.Tensor]] = {k: [] for k in steps}

    def keep(start: int, step: int, codes: torch.Tensor) -> None:
        if step in snapshots:
            snapshots[step].append(codes)

    _, seconds = timed("cpu", lambda: optimize_latents(generator, images, init, steps=max(steps), lr=lr,
                                                        callback=keep, progress=False))
    return {k: torch.cat(v) for k, v in snapshots.items()}, seconds


def opt_row(bench: Bench, space: str) -> dict[str, Any]:
    """Optimisation only, from ``w_avg``, in W or W+ (after 100 and 200 steps)."""
    generator = bench.mapped(space)
    w_avg = bench.G.mapping.w_avg.detach().clone()
    start = (w_avg if space == "w" else w_avg.expand(generator.num_ws, -1)).unsqueeze(0)
    lr, grid = pick_lr(bench, generator, start)
    steps = (10, 20) if bench.args.quick else CHECKPOINTS
    x = bench.x_opt
    codes, seconds = optimise(generator, pad(x), start.expand(len(x), *start.shape[1:]).clone(), steps, lr)
    per_1k = 1000.0 / len(x)
    row: dict[str, Any] = {"space": space, "lr": lr, "lr_grid_train_psnr": grid, "n": len(x), "steps": {}}
    for k in steps:
        psnr, ssim = bench.psnr_on(x, generator, codes[k])
        row["steps"][str(k)] = {"psnr": psnr, "ssim": ssim, "seconds_per_1k": seconds * per_1k * k / max(steps)}
        print(f"  opt {space} {k} steps: PSNR {psnr:.2f} SSIM {ssim:.4f}", flush=True)
    return row


def hybrid_row(bench: Bench) -> dict[str, Any]:
    """The best feed-forward W+ inverter (by PSNR on the optimisation images) refined 50 and 100 steps."""
    candidates = [n for n in CN_ROWS if CN_ROWS[n]["space"] == "w+" and bench.done(n)]
    if not candidates:
        raise SystemExit("hybrid: fit a W+ row first (cn-wplus, cn-wplus-images, ...)")
    best = max(candidates, key=lambda n: bench.done(n)["opt_images_psnr"])
    generator = bench.mapped("w+")
    inverter = Inverter.load(bench.inverters_dir / f"{best}.safetensors", generator=generator,
                             discriminator=bench.D)
    x = bench.x_opt
    opt = bench.done("opt-wplus")
    lr = opt["lr"] if opt else bench.args.lr_grid[0]
    steps = (10, 20) if bench.args.quick else (50, 100)
    codes, seconds = optimise(generator, pad(x), inverter.encode(pad(x)), steps, lr)
    row: dict[str, Any] = {"inverter": best, "lr": lr, "n": len(x), "steps": {}}
    for k in steps:
        psnr, ssim = bench.psnr_on(x, generator, codes[k])
        row["steps"][str(k)] = {"psnr": psnr, "ssim": ssim,
                                "seconds_per_1k": seconds * 1000.0 / len(x) * k / max(steps)}
        print(f"  hybrid ({best}) + {k}: PSNR {psnr:.2f} SSIM {ssim:.4f}", flush=True)
    return row


def recovery_row(bench: Bench) -> dict[str, Any]:
    """Latent recovery on fresh samples of each fitted space's own prior."""
    row: dict[str, Any] = {"inverters": {}}
    for name in CN_ROWS:
        if bench.done(name) is None:
            continue
        generator = bench.mapped(CN_ROWS[name]["space"])
        inverter = Inverter.load(bench.inverters_dir / f"{name}.safetensors", generator=generator,
                                 discriminator=bench.D)
        found = latent_recovery(inverter, n=100 if bench.args.quick else 1000, seed=1, latent_sampler=generator.sample)
        row["inverters"][name] = found
        print(f"  recovery {name}: {found}", flush=True)
    return row


EDIT_FROM, EDIT_TO = 0, 2
"""The picture's edit: the direction from T-shirts/tops (label 0) to pullovers (label 2), from train images."""


def write_picture(bench: Bench, path: Path) -> None:
    """Eight test T-shirts of the first draw: originals, encode, refine (+100), and the +sleeves edit of the codes."""
    from benchmarks.paper.train_gan import write_png_gray
    from discinvert.zoo.datasets import from_model_range, load_fashion_mnist, to_model_range

    candidates = [n for n in CN_ROWS if CN_ROWS[n]["space"] == "w+" and bench.done(n)]
    best = max(candidates, key=lambda n: bench.done(n)["opt_images_psnr"])
    generator = bench.mapped("w+")
    inverter = Inverter.load(bench.inverters_dir / f"{best}.safetensors", generator=generator, discriminator=bench.D)
    test_images, test_labels = load_fashion_mnist("test", root=bench.args.data_root)
    first = bench.proto.subsets[0]
    shirts = [int(i) for i in first if test_labels[i] == EDIT_FROM][:8]
    x = pad(to_model_range(test_images[shirts]))
    train_images, train_labels = load_fashion_mnist("train", root=bench.args.data_root)
    with_, without = (pad(to_model_range(train_images[train_labels == k][:500])) for k in (EDIT_TO, EDIT_FROM))
    direction = inverter.encode(with_).mean(0) - inverter.encode(without).mean(0)  # the attribute's direction
    codes = inverter.encode(x)
    refined = inverter.refine(x, 100, lr=(bench.done("opt-wplus") or {"lr": 0.03})["lr"], progress=False)
    rows = [x, generator(codes), generator(refined), generator(codes + direction)]
    with torch.no_grad():
        tiles = [from_model_range(torch.cat(list(r.detach()), dim=-1)) for r in rows]
    image = np.concatenate([t.reshape(t.shape[-2], t.shape[-1]) for t in tiles], axis=0)
    write_png_gray(path, image)
    print(f"wrote {path} (inverter {best}: originals, encode, refine +100, encode + T-shirt->pullover)", flush=True)


def run_rows(bench: Bench, rows: list[str]) -> None:
    makers: dict[str, Callable[[], dict[str, Any]]] = {
        **{name: (lambda name=name: fit_row(bench, name, CN_ROWS[name])) for name in CN_ROWS},
        "opt-w": lambda: opt_row(bench, "w"), "opt-wplus": lambda: opt_row(bench, "w+"),
        "hybrid": lambda: hybrid_row(bench), "recovery": lambda: recovery_row(bench),
    }
    for name in rows:
        if bench.done(name) is not None:
            print(f"{name}: done before ({bench.rows_dir / (name + '.json')})", flush=True)
            continue
        print(f"== {name} ==", flush=True)
        start = time.perf_counter()
        row = makers[name]()
        row["row_seconds"] = round(time.perf_counter() - start, 1)
        row["threads"] = torch.get_num_threads()
        row["command"] = bench.args.command
        bench.store(name, row)


def _fmt(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def matched_speed(cn: dict[str, Any], opt: dict[str, Any] | None) -> dict[str, Any] | None:
    """The first optimisation checkpoint whose PSNR reaches the CN's on the same images, and the speed ratio."""
    if opt is None:
        return None
    for k, point in sorted(opt["steps"].items(), key=lambda kv: int(kv[0])):
        if point["psnr"] >= cn["opt_images_psnr"]:
            return {"steps": int(k), "seconds_per_1k": point["seconds_per_1k"],
                    "speedup": point["seconds_per_1k"] / cn["seconds_per_1k"]}
    return {"steps": None, "speedup": None}


def page_lines(bench: Bench) -> list[str]:
    """The lab page: every row present, the targets read off them."""
    done = {name: bench.done(name) for name in ALL_ROWS}
    lines = ["# The reference StyleGAN2: inversion in Z, W and W+ (issue 34)", "",
             f"GAN: `{bench.args.gan}` ({bench.extra.get('iterations')} iterations, "
             f"{bench.extra.get('train_seconds')} s of training; its command: `{bench.extra.get('command')}`). "
             f"Feature layer (``suggest_feature_layers``): `{bench.layer}`. Test images padded to 32x32, scored on "
             "the central 28x28 (the original pixels); 1,000 images x 5 draws for the feed-forward rows, the first "
             f"{bench.args.opt_n} images of the first draw for optimisation and the hybrid. {describe_device('cpu')}.",
             "", "Samples of the EMA G (fixed z, constant noise, no truncation), as `benchmarks.stylegan2.train` wrote them "
             "at its last iteration:", "", "![samples of the reference StyleGAN2](images/stylegan2_samples.png)",
             "", "Timings are read with their row's torch threads (the machine's other core was often busy): compare "
             "seconds only between rows of the same thread count.",
             "", "| row | space | real images | step networks | PSNR (dB) | SSIM | PSNR on opt images | encode s/1k "
             "| fit s | threads |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name in CN_ROWS:
        r = done[name]
        if r:
            lines.append(f"| {name} | {r['space']} | {'yes' if r['images'] else 'no'} | {r['iterations']} | "
                         f"{r['psnr_mean']:.2f} ± {r['psnr_std']:.2f} | {r['ssim_mean']:.4f} | "
                         f"{r['opt_images_psnr']:.2f} | {r['seconds_per_1k']:.3f} | {r['fit_seconds']:.0f} | "
                         f"{row_threads(r)} |")
    lines += ["", "| optimisation | lr (picked on train) | steps | PSNR (dB) | SSIM | s/1k | threads |",
              "|---|---|---|---|---|---|---|"]
    for name in ("opt-w", "opt-wplus", "hybrid"):
        r = done[name]
        if r:
            label = name if name != "hybrid" else f"hybrid ({r['inverter']} + k)"
            for k, point in r["steps"].items():
                lines.append(f"| {label} | {r['lr']} | {k} | {point['psnr']:.2f} | {point['ssim']:.4f} | "
                             f"{point['seconds_per_1k']:.1f} | {row_threads(r)} |")
    if done["recovery"]:
        lines += ["", "Latent recovery on 1,000 fresh samples of each space's prior: "
                  + "; ".join(f"{n}: MSE {_fmt(v.get('mse'), 4)}, cosine {_fmt(v.get('cosine'), 3)}"
                              for n, v in done["recovery"]["inverters"].items())]
    if bench.args.picture is not None:
        shown = max((n for n in CN_ROWS if CN_ROWS[n]["space"] == "w+" and done[n]),
                    key=lambda n: done[n]["opt_images_psnr"], default=None)
        lines += ["", f"The picture (`{bench.args.picture.name}`): eight test T-shirts/tops of the first draw; rows: the "
                  f"originals (padded), the feed-forward W+ codes (of {shown}), those codes refined 100 steps, and the "
                  "codes plus the "
                  "T-shirt -> pullover direction (mean code of 500 train pullovers minus that of 500 train T-shirts):",
                  "", f"![originals, encode, refine, edit](images/{bench.args.picture.name})"]
    lines += ["", "## Targets", ""] + target_lines(done)
    commands = sorted({r["command"] for r in done.values() if r})
    lines += ["", "Commands:", "", *[f"    {c}" for c in commands], ""]
    return lines


def target_lines(done: dict[str, dict[str, Any] | None]) -> list[str]:
    ff = [n for n in ("cn-wplus-images", "cn-wplus-images-steps") if done[n]]
    opt = done["opt-wplus"]
    lines = []
    for name in ff if opt and "200" in opt["steps"] else []:  # every feed-forward W+ row with images
        row = done[name]
        gap = opt["steps"]["200"]["psnr"] - row["opt_images_psnr"]
        match = matched_speed(row, opt)
        lines.append(f"- Feed-forward W+ with images ({name}) against 200 optimisation steps in W+, same images: "
                     f"{row['opt_images_psnr']:.2f} vs {opt['steps']['200']['psnr']:.2f} dB, gap {gap:.2f} dB "
                     f"(target: within 2 dB): {'met' if gap <= 2 else 'MISSED'}.")
        if match and row_threads(opt) != row_threads(row):
            lines.append(f"- Speed at equal PSNR ({name}): not read (optimisation timed with {row_threads(opt)} "
                         f"threads, the encode with {row_threads(row)}).")
        elif match and match["speedup"] is not None:
            lines.append(f"- Speed at equal PSNR ({name}): optimisation needs {match['steps']} steps "
                         f"({match['seconds_per_1k']:.1f} s/1k), {match['speedup']:.0f}x the encode time "
                         f"(target >= 100x): {'met' if match['speedup'] >= 100 else 'MISSED'}.")
        elif match:
            lines.append(f"- Speed at equal PSNR ({name}): 200 optimisation steps never reach the feed-forward PSNR.")
    default = done["cn-wplus-images"]  # the default fit with images; the steps row adds a non-default setting
    if default:
        seconds, threads = default["fit_seconds"], row_threads(default)
        lines.append(f"- Default fit with images (cn-wplus-images): {seconds / 60:.1f} min on this machine with "
                     f"{threads} torch threads (target <= 15 min on 2 cores): {'met' if seconds <= 900 else 'MISSED'}.")
    return lines or ["- not measured yet."]


def row_threads(row: dict[str, Any]) -> int:
    """The torch threads a row ran with: recorded, else read from its command's ``--threads`` (default 2)."""
    if "threads" in row:
        return int(row["threads"])
    words = row["command"].split()
    return int(words[words.index("--threads") + 1]) if "--threads" in words else 2


def results_document(bench: Bench) -> dict[str, Any]:
    """Every row present, with the GAN's identity (its files' SHA-256) and training record."""
    digests = {name: hashlib.sha256((bench.args.gan / name).read_bytes()).hexdigest()
               for name in ("generator.safetensors", "discriminator.safetensors")}
    training = {k: bench.extra.get(k) for k in ("command", "iterations", "train_seconds", "seconds_per_iteration",
                                                "images_seen", "torch_threads")}
    rows = {name: row for name in ALL_ROWS if (row := bench.done(name)) is not None}
    return {"gan": {"files_sha256": digests, "training": training, "feature_layer": bench.layer},
            "protocol": {"n": len(bench.proto.subsets[0]), "repeats": len(bench.proto.subsets),
                         "opt_n": len(bench.x_opt), "scored": "central 28x28 of the padded 32x32"},
            "device": describe_device("cpu"), "rows": rows}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gan", type=Path, required=True, help="folder written by benchmarks.stylegan2.train")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--rows", default=",".join(ALL_ROWS), help=f"comma-separated, of {', '.join(ALL_ROWS)}")
    parser.add_argument("--opt-n", type=int, default=200, help="test images of the first draw that optimisation runs on")
    parser.add_argument("--lr-grid", type=float, nargs="+", default=[0.01, 0.03, 0.1, 0.3],
                        help="Adam step sizes picked from on 64 train images (default %(default)s: 0.3 was added "
                             "when 0.1, then the edge, won)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny fits, 32 images x 2 draws")
    parser.add_argument("--page", type=Path, default=None, help="write the lab page here (docs/lab/stylegan2.md)")
    parser.add_argument("--picture", type=Path, default=None, help="write the picture here (a PNG)")
    parser.add_argument("--json", type=Path, default=None, help="write every row present here (docs/results/stylegan2.json)")
    args = parser.parse_args(argv)
    rows = [r for r in args.rows.split(",") if r]
    unknown = sorted(set(rows) - set(ALL_ROWS))
    if unknown:
        parser.error(f"--rows: expected names of {', '.join(ALL_ROWS)}, got {', '.join(unknown)}")
    args.command = command_line(__spec__, argv)
    print(f"command: {args.command}", flush=True)
    torch.set_num_threads(args.threads)
    bench = Bench(args)
    print(f"GAN {args.gan}: feature layer {bench.layer}; {describe_device('cpu')}", flush=True)
    run_rows(bench, rows)
    if args.picture is not None:
        args.picture.parent.mkdir(parents=True, exist_ok=True)
        write_picture(bench, args.picture)
    if args.json is not None:
        write_json(args.json, results_document(bench))
        print(f"wrote {args.json}", flush=True)
    if args.page is not None:
        args.page.parent.mkdir(parents=True, exist_ok=True)
        args.page.write_text("\n".join(page_lines(bench)))
        print(f"wrote {args.page}", flush=True)


if __name__ == "__main__":
    main()
