#!/usr/bin/env python
"""The paper's Table 1 protocol on Fashion-MNIST, for each reference GAN and each inversion method.

    python benchmarks/table1.py --gans runs/dcgan runs/lsgan runs/wgan-gp --device cuda

For each GAN (trained by ``benchmarks/train_gan.py`` on the train split only):

- **CN (ours)**: ``fit_inverter`` on D's last hidden layer, ``--fit-steps`` batches of 256;
- **naive encoder**: the same architecture (a re-initialised copy of D up to the feature
  layer + the same CN) trained from scratch on ``(G(z), z)`` with the same budget;
- **optimisation only**: Adam on z from a random N(0, I) start, ``--k`` steps;
- **iGAN**: naive encoder + ``--k`` steps;
- **hybrid**: CN + ``--k`` steps (``Inverter.refine``).

Scoring: 1,000 unseen **test** images drawn 5 times (seed 0); PSNR and SSIM from
scikit-image on images mapped to [0, 1]; mean ± std over the draws. Seconds per 1,000
images are measured on the first draw (fitting excluded). Nothing here is tuned on the
test split: the fit budget and step sizes come from ``docs/defaults.md`` (training
images) and the refinement step size from ``--refine-lr``.

It also runs optimisation-only for a range of step counts on the first draw, to find
where optimisation first matches the CN's PSNR and how much slower it is there.
Writes ``--out`` (Markdown) and ``--json`` itself.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from discinvert import fit_inverter
from discinvert.architectures import load_gan
from discinvert.baselines import fit_naive_encoder, optimization_only
from discinvert.datasets import load_fashion_mnist, to_model_range
from discinvert.metrics import draw_subsets, image_quality, summarize_draws
from discinvert.optimize import DEFAULT_REFINE_LR, optimize_latents

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/common.py
from common import command_line  # noqa: E402

# The paper's Table 1, Fashion-MNIST row (PSNR dB / SSIM), from shared/docs/anchors.md.
PAPER_FASHION_MNIST = {
    "VAE": (11.83, 0.3921), "ALI/BiGAN": (13.02, 0.3623), "DCGAN": (15.10, 0.5332), "LSGAN": (15.25, 0.5665),
    "DFM": (15.74, 0.5434), "RFGAN": (15.94, 0.5848), "WGAN-GP": (15.80, 0.5233),
}
PAPER_BEST_PSNR = max(p for p, _ in PAPER_FASHION_MNIST.values())


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(device: str, fn: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, float]:
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return out, time.perf_counter() - start


def decode(G: torch.nn.Module, codes: torch.Tensor, batch: int = 1000) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([G(codes[i : i + batch]) for i in range(0, len(codes), batch)])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gans", type=Path, nargs="+", default=[])
    parser.add_argument("--merge", type=Path, nargs="+", default=None,
                        help="write --out/--json from JSONs of earlier runs (e.g. one per GAN, run in parallel)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--fit-steps", type=int, default=10000)
    parser.add_argument("--k", type=int, default=100, help="optimisation steps for optimisation-only, iGAN and hybrid")
    parser.add_argument("--refine-lr", type=float, default=DEFAULT_REFINE_LR)
    parser.add_argument("--curve", type=int, nargs="+", default=[10, 20, 50, 100, 200, 500, 1000])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=1000, help="images optimised together")
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"))
    parser.add_argument("--json", type=Path, default=Path("docs/results/table1.json"))
    parser.add_argument("--ran-in-parallel", action="store_true",
                        help="with --merge: the merged runs shared one device at the same time (said in the doc)")
    parser.add_argument("--readme", type=Path, default=Path("README.md"),
                        help="README whose block between the table1 markers is re-written (skipped if absent)")
    args = parser.parse_args(argv)
    command = command_line(argv)
    print(command, flush=True)
    if args.merge:
        runs = [json.loads(p.read_text()) for p in args.merge]
        meta = {**runs[0]["meta"], "command": "\n    ".join(r["meta"]["command"] for r in runs) + "\n    " + command,
                "parallel_runs": len(runs) if args.ran_in_parallel else 0}
        results = {name: res for r in runs for name, res in r["results"].items()}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"meta": meta, "results": results}, indent=1))
        write_markdown(args.out, meta, results)
        write_readme_block(args.readme, results)
        print(f"wrote {args.out} and {args.json}")
        return
    if not args.gans:
        parser.error("--gans: expected at least one GAN directory (or --merge)")
    device = args.device

    test_images, _ = load_fashion_mnist("test", root=args.data_root)
    subsets = draw_subsets(len(test_images), args.n, args.repeats, args.seed)
    used = np.unique(np.concatenate(subsets))
    position = {int(i): j for j, i in enumerate(used)}
    first = torch.as_tensor([position[int(i)] for i in subsets[0]])
    x_used = to_model_range(test_images[used]).to(device)
    x_first = x_used[first]

    results: dict[str, dict] = {}
    for gan_dir in args.gans:
        G, D, config, extra = load_gan(gan_dir, device=device)
        name = config.loss
        print(f"== {name} ({gan_dir}) ==", flush=True)
        rows: dict[str, dict] = {}

        def score(method: str, codes: torch.Tensor, seconds_1k: float, **info) -> None:
            psnr_used, ssim_used = image_quality(x_used, decode(G, codes))
            psnr = np.full(len(test_images), np.nan)
            ssim = np.full(len(test_images), np.nan)
            psnr[used], ssim[used] = psnr_used, ssim_used
            rows[method] = {**summarize_draws(psnr, ssim, subsets), "seconds_per_1k": seconds_1k, **info}
            r = rows[method]
            print(f"{method:24s} PSNR {r['psnr_mean']:.2f} ± {r['psnr_std']:.2f}  SSIM {r['ssim_mean']:.4f} ± "
                  f"{r['ssim_std']:.4f}  {seconds_1k:.3f} s/1k", flush=True)

        start = time.perf_counter()
        inverter = fit_inverter(G, D, config.feature_layer, latent_shape=config.latent_shape, steps=args.fit_steps,
                                seed=args.seed, progress=False)
        cn_fit = time.perf_counter() - start
        inverter.encode(x_first[:8])  # warm-up
        _, t_cn = timed(device, lambda: inverter.encode(x_first, 1000))
        cn_codes = inverter.encode(x_used, 1000)
        score("CN (ours)", cn_codes, t_cn, fit_seconds=cn_fit, fit_steps=args.fit_steps)

        start = time.perf_counter()
        naive = fit_naive_encoder(G, D, config.feature_layer, latent_shape=config.latent_shape, steps=args.fit_steps,
                                  seed=args.seed, progress=False)
        naive_fit = time.perf_counter() - start
        naive.encode(x_first[:8])
        _, t_naive = timed(device, lambda: naive.encode(x_first, 1000))
        naive_codes = naive.encode(x_used, 1000)
        score("naive encoder", naive_codes, t_naive, fit_seconds=naive_fit, fit_steps=args.fit_steps)

        def opt_only(x: torch.Tensor, k: int) -> torch.Tensor:
            return optimization_only(G, x, latent_shape=config.latent_shape, steps=k, lr=args.refine_lr,
                                     seed=args.seed, batch_size=args.batch, progress=False)

        _, t_opt = timed(device, lambda: opt_only(x_first, args.k))
        score(f"optimisation only ({args.k})", opt_only(x_used, args.k), t_opt)

        def igan(x: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
            return optimize_latents(G, x, codes, steps=args.k, lr=args.refine_lr, batch_size=args.batch, progress=False)

        _, t_igan = timed(device, lambda: igan(x_first, naive.encode(x_first, 1000)))
        score(f"iGAN (naive + {args.k})", igan(x_used, naive_codes), t_igan)

        _, t_hybrid = timed(device, lambda: inverter.refine(x_first, args.k, lr=args.refine_lr, batch_size=args.batch, progress=False))
        hybrid_codes = inverter.refine(x_used, args.k, lr=args.refine_lr, batch_size=args.batch, progress=False)
        score(f"hybrid (CN + {args.k})", hybrid_codes, t_hybrid)

        # Optimisation-only against its step count, on the first draw.
        curve = []
        for k in args.curve:
            codes, seconds = timed(device, lambda: opt_only(x_first, k))
            psnr, ssim = image_quality(x_first, decode(G, codes))
            curve.append({"steps": k, "psnr": float(psnr.mean()), "ssim": float(ssim.mean()), "seconds_per_1k": seconds})
            print(f"  optimisation-only {k:5d} steps: PSNR {psnr.mean():.2f}, {seconds:.2f} s/1k", flush=True)
        cn_first_psnr = float(image_quality(x_first, decode(G, inverter.encode(x_first, 1000)))[0].mean())
        match = next((c for c in curve if c["psnr"] >= cn_first_psnr), None)
        results[name] = {
            "gan": str(gan_dir), "feature_layer": config.feature_layer, "train_seconds": extra.get("train_seconds"),
            "epochs": extra.get("epochs"), "methods": rows, "optimisation_curve": curve,
            "cn_psnr_first_draw": cn_first_psnr,
            "match": None if match is None else {**match, "speedup": match["seconds_per_1k"] / t_cn},
        }

    device_name = torch.cuda.get_device_name(device) if device.startswith("cuda") else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    meta = {"command": command, "device": device_name, "torch": torch.__version__, "fit_steps": args.fit_steps,
            "k": args.k, "refine_lr": args.refine_lr, "n": args.n, "repeats": args.repeats, "seed": args.seed}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    write_markdown(args.out, meta, results)
    write_readme_block(args.readme, results)
    print(f"wrote {args.out} and {args.json}")


START, END = "<!-- table1:start -->", "<!-- table1:end -->"


def write_readme_block(readme: Path, results: dict) -> None:
    """Re-write the README's summary table between the markers from these results."""
    if not readme.is_file() or START not in readme.read_text():
        return
    names = {"dcgan": ("DCGAN", "DCGAN"), "lsgan": ("LSGAN", "LSGAN"), "wgan-gp": ("WGAN-GP", "WGAN-GP")}
    lines = [START, "", "| GAN | CN only (ours) | naive encoder | optimisation only | hybrid: CN + optimisation | paper, CN only |",
             "|---|---|---|---|---|---|"]
    for name, res in results.items():
        label, paper_key = names.get(name, (name, None))
        m = res["methods"]
        pick = lambda prefix: next(v for k, v in m.items() if k.startswith(prefix))  # noqa: E731
        cells = [f"{r['psnr_mean']:.2f} / {r['ssim_mean']:.3f}" for r in
                 (m["CN (ours)"], m["naive encoder"], pick("optimisation only"), pick("hybrid"))]
        paper = PAPER_FASHION_MNIST.get(paper_key) if paper_key else None
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {paper[0]:.2f} / {paper[1]:.3f} |" if paper else " | – |")
    lines += ["", END]
    text = readme.read_text()
    head, rest = text.split(START, 1)
    tail = rest.split(END, 1)[1]
    readme.write_text(head + "\n".join(lines) + tail)


def write_markdown(out: Path, meta: dict, results: dict) -> None:
    k = meta["k"]
    lines = [
        "# Benchmarks",
        "",
        "## Table 1 protocol: Fashion-MNIST reconstruction of unseen test images",
        "",
        f"Written by `benchmarks/table1.py` on {meta['device']} (torch {meta['torch']}):",
        "",
        f"    {meta['command']}",
        "",
        f"{meta['n']:,} Fashion-MNIST **test** images drawn {meta['repeats']} times (seed {meta['seed']}); PSNR (dB) and",
        "SSIM from scikit-image on images mapped to [0, 1]; mean ± std over the draws. CN and naive",
        f"encoder: {meta['fit_steps']:,} batches of 256 fresh pairs each (same budget). Optimisation methods: {k} Adam",
        f"steps on z, step size {meta['refine_lr']}. *s / 1k*: seconds to invert 1,000 images (fitting excluded).",
        "The GANs were trained on the train split by `benchmarks/train_gan.py`.",
        "",
    ]
    if meta.get("parallel_runs", 0) > 1:
        lines += [
            f"The {meta['parallel_runs']} runs above ran at the same time on one device, so their *s / 1k* include time-sharing",
            "with each other: compare seconds within a row's run only, and see the speed section for clean timings.",
            "",
        ]
    lines += [
        "| GAN | method | PSNR | SSIM | s / 1k |",
        "|---|---|---|---|---|",
    ]
    for name, res in results.items():
        for method, r in res["methods"].items():
            lines.append(f"| {name} | {method} | {r['psnr_mean']:.2f} ± {r['psnr_std']:.2f} | "
                         f"{r['ssim_mean']:.4f} ± {r['ssim_std']:.4f} | {r['seconds_per_1k']:.3f} |")
    lines += [
        "",
        "The paper's Fashion-MNIST row (Table 1, CN only, PSNR / SSIM), for comparison:",
        "",
        "| " + " | ".join(PAPER_FASHION_MNIST) + " |",
        "|" + "---|" * len(PAPER_FASHION_MNIST),
        "| " + " | ".join(f"{p:.2f} / {s:.4f}" for p, s in PAPER_FASHION_MNIST.values()) + " |",
        "",
        "### Targets",
        "",
    ]
    dc = results.get("dcgan")
    if dc:
        cn = dc["methods"]["CN (ours)"]
        hy = dc["methods"][f"hybrid (CN + {k})"]
        paper_p, paper_s = PAPER_FASHION_MNIST["DCGAN"]
        best_p, best_s = PAPER_FASHION_MNIST["RFGAN"]
        verdict = lambda ok: "**met**" if ok else "**missed**"  # noqa: E731
        lines.append(f"- CN only, our DCGAN: PSNR {cn['psnr_mean']:.2f} dB, SSIM {cn['ssim_mean']:.4f} against the paper's "
                     f"DCGAN {paper_p} / {paper_s}: {verdict(cn['psnr_mean'] >= paper_p and cn['ssim_mean'] >= paper_s)}; "
                     f"against the paper's best row (RFGAN {best_p} / {best_s}): "
                     f"{verdict(cn['psnr_mean'] >= best_p and cn['ssim_mean'] >= best_s)}.")
        lines.append(f"- Hybrid with {k} steps: {hy['psnr_mean']:.2f} dB against the target {PAPER_BEST_PSNR + 2:.2f} dB "
                     f"(paper's best Fashion-MNIST PSNR + 2 dB): {verdict(k <= 100 and hy['psnr_mean'] >= PAPER_BEST_PSNR + 2)}.")
        m = dc["match"]
        if meta.get("parallel_runs", 0) > 1:
            lines.append("- Speed (timed here while the runs shared the device, so only indicative; the clean "
                         "measurement and its verdict are in `docs/speed.md`):")
        if m is None:
            lines.append(f"- Speed: optimisation-only never reached the CN's PSNR ({dc['cn_psnr_first_draw']:.2f} dB on the "
                         f"first draw) within {dc['optimisation_curve'][-1]['steps']} steps; at that budget it is "
                         f"{dc['optimisation_curve'][-1]['seconds_per_1k'] / cn['seconds_per_1k']:.0f}x slower than encode: "
                         f"{verdict(dc['optimisation_curve'][-1]['seconds_per_1k'] / cn['seconds_per_1k'] >= 100)} (lower bound).")
        else:
            lines.append(f"- Speed: optimisation-only first matches the CN's PSNR ({dc['cn_psnr_first_draw']:.2f} dB on the "
                         f"first draw) at {m['steps']} steps ({m['psnr']:.2f} dB), taking {m['seconds_per_1k']:.2f} s per 1k "
                         f"images against encode's {cn['seconds_per_1k']:.4f} s: {m['speedup']:.0f}x, target 100x: "
                         f"{verdict(m['speedup'] >= 100)}.")
    lines += ["", "### Optimisation-only against its step count (first draw)", "",
              "| GAN | " + " | ".join(str(c["steps"]) for c in next(iter(results.values()))["optimisation_curve"]) + " | CN |",
              "|---|" + "---|" * (len(next(iter(results.values()))["optimisation_curve"]) + 1)]
    for name, res in results.items():
        cells = [f"{c['psnr']:.2f} dB, {c['seconds_per_1k']:.2f} s" for c in res["optimisation_curve"]]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {res['cn_psnr_first_draw']:.2f} dB, "
                     f"{res['methods']['CN (ours)']['seconds_per_1k']:.3f} s |")
    lines += ["", "Models that learn inference jointly with generation (VAE, BiGAN/ALI, GAAN, AAAE), with our CN on their "
              "generators and 1-NN accuracy in code space: `docs/rivals.md` (written by `benchmarks/rivals/evaluate.py`). "
              "Clean speed and memory figures: `docs/speed.md`; what each fit lever (fused Adam, autocast, channels-last copies, "
              "batch reuse) saves and costs: `docs/fit_speed.md`."]
    lines += ["", "Reference GANs (training): " + "; ".join(
        f"{n}: {r['epochs']} epochs, {r['train_seconds']:.0f} s" for n, r in results.items() if r.get("train_seconds")) + ".", ""]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))


if __name__ == "__main__":
    main()
