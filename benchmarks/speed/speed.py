#!/usr/bin/env python
"""Speed and memory of encoding and fitting, measured in one run so ratios compare like with like.

    python -m benchmarks.speed.speed --device cpu            # writes its section of docs/lab/speed.md
    python -m benchmarks.speed.speed --device cuda

On the bundled DCGAN (``discinvert.zoo``, or ``--gan DIR``) and the bundled real test images:

1. **encode vs optimisation**: seconds per 1,000 images for ``Inverter.encode`` and for
   optimisation-only inversion (Adam on z from a random start) at increasing step counts
   until optimisation first matches encode's PSNR; the ratio at that point.
2. **encode vs D's full forward pass**: encode's throughput (a partial pass of D + the CN)
   against D's whole forward pass on the same images.
3. **fit vs bare generation**: the throughput of ``fit_inverter`` against the bare cost of
   making its samples (G forward + D up to the feature layer, no grad), same batch size.
4. **peak memory** of fit and encode (CUDA: ``max_memory_allocated``; CPU: the process's
   peak resident size, which only grows, so read it as an upper bound).

Each timing is the median of ``--repeats`` runs after a warm-up. Each device writes its own
section of ``docs/lab/speed.md`` (between markers), so CPU and GPU runs can be made separately.

Levers: ``--autocast bf16`` runs encode and D's full pass under ``torch.autocast`` (like for
like) and bare generation and the fit with ``autocast_dtype``; ``--channels-last`` runs bare
generation on channels-last copies of G and D and the fit with ``channels_last=True``. A run
with levers writes its own section (``cpu-bf16-cl``, say); ``--no-optimisation`` skips part 1's
optimisation curve, which does not depend on them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from pathlib import Path

import numpy as np
import torch

from benchmarks.baselines import optimization_only
from benchmarks.common import (
    LayerFeatures,
    autocast,
    channels_last_copy,
    command_line,
    describe_device,
    median_seconds,
    peak_memory_mb,
    reset_peak,
    timed,
    write_marked_section,
)
from discinvert import Inverter, fit_inverter, zoo
from discinvert.metrics import image_quality
from discinvert.zoo.architectures import load_gan
from discinvert.zoo.datasets import to_model_range


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--gan", type=Path, default=None, help="a save_gan directory (default: the bundled DCGAN)")
    parser.add_argument("--inverter", type=Path, default=None, help="with --gan: an inverter file or folder")
    parser.add_argument("--images", type=int, default=1000, help="test images for encode timings (max 1000)")
    parser.add_argument("--opt-images", type=int, default=1000, help="images for optimisation timings (scaled to 1k)")
    parser.add_argument("--steps", type=int, nargs="+", default=[10, 20, 30, 50, 75, 100, 150, 200, 300, 500])
    parser.add_argument("--fit-steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--autocast", choices=["none", "bf16", "fp16"], default="none")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--no-optimisation", action="store_true", help="skip the optimisation-only curve")
    parser.add_argument("--out", type=Path, default=Path("docs/lab/speed.md"))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    command = command_line(__spec__, argv)
    print(command, flush=True)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device
    autocast_dtype = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[args.autocast]

    def precision() -> contextlib.AbstractContextManager[None]:
        return autocast(device, autocast_dtype)

    if args.gan is None:
        G, D, inverter = zoo.load("dcgan-fashion-mnist", device=device)
        config = zoo.load_gan_config("dcgan-fashion-mnist")
    else:
        G, D, config, _ = load_gan(args.gan, device=device)
        inverter = (Inverter.load(args.inverter, generator=G, discriminator=D) if args.inverter and args.inverter.is_file()
                    else Inverter.from_pretrained(args.inverter, generator=G, discriminator=D))
    images, _ = zoo.load_test_images("dcgan-fashion-mnist")
    x = to_model_range(images[: args.images]).to(device)
    scale = 1000 / len(x)
    results: dict[str, object] = {}

    # 1 and 2: encode, D's full pass.
    reset_peak(device)
    with precision():
        t_encode = median_seconds(device, lambda: inverter.encode(x, 1000), args.repeats) * scale
        results["encode_peak_mb"] = peak_memory_mb(device)
        with torch.no_grad():
            t_d_full = median_seconds(device, lambda: D(x), args.repeats) * scale
        codes = inverter.encode(x, 1000)
    encode_psnr = float(image_quality(x, inverter.decode(codes))[0].mean())  # G in full precision
    results.update(encode_s_per_1k=t_encode, d_full_s_per_1k=t_d_full, encode_psnr=encode_psnr,
                   encode_vs_d_full=t_d_full / t_encode)
    print(f"encode {t_encode:.4f} s/1k (PSNR {encode_psnr:.2f}); D full pass {t_d_full:.4f} s/1k", flush=True)

    x_opt = x[: args.opt_images]
    opt_scale = 1000 / len(x_opt)
    curve = []
    for k in [] if args.no_optimisation else args.steps:
        def run(k: int = k) -> torch.Tensor:
            return optimization_only(G, x_opt, latent_shape=config.latent_shape, steps=k, seed=0, batch_size=1000, progress=False)

        run()  # warm-up
        codes, seconds = timed(device, run)
        seconds *= opt_scale
        with torch.no_grad():
            psnr = float(image_quality(x_opt, G(codes))[0].mean())
        curve.append({"steps": k, "psnr": psnr, "s_per_1k": seconds})
        print(f"optimisation {k:4d} steps: PSNR {psnr:.2f} dB, {seconds:.3f} s/1k", flush=True)
        if psnr >= encode_psnr:
            break
    match = next((c for c in curve if c["psnr"] >= encode_psnr), None)
    results["optimisation_curve"] = curve
    results["match"] = None if match is None else {**match, "ratio": match["s_per_1k"] / t_encode}

    # 3: fit vs bare generation, same number of samples.
    G_bare, D_bare = G, D
    if args.channels_last:
        G_bare, D_bare = channels_last_copy(G), channels_last_copy(D)
    tap = LayerFeatures(D_bare, config.feature_layer)
    rng = torch.Generator(device=device).manual_seed(0)

    def bare() -> None:
        with torch.no_grad():
            for _ in range(args.fit_steps):
                z = torch.randn((args.batch_size, *config.latent_shape), generator=rng, device=device)
                with precision():
                    tap(G_bare(z)).float()

    t_bare = median_seconds(device, bare, max(1, args.repeats // 2))
    reset_peak(device)

    def fit() -> None:
        fit_inverter(G, D, config.feature_layer, latent_shape=config.latent_shape, steps=args.fit_steps,
                     batch_size=args.batch_size, seed=0, progress=False, eval_every=args.fit_steps, validation_size=256,
                     autocast_dtype=autocast_dtype, channels_last=args.channels_last)

    t_fit = median_seconds(device, fit, max(1, args.repeats // 2))
    results["fit_peak_mb"] = peak_memory_mb(device)
    samples = args.fit_steps * args.batch_size
    results.update(bare_samples_per_s=samples / t_bare, fit_samples_per_s=samples / t_fit, fit_over_bare=t_fit / t_bare)
    print(f"bare generation {samples / t_bare:.0f} samples/s; fit {samples / t_fit:.0f} samples/s "
          f"({t_fit / t_bare:.2f}x the bare time)", flush=True)

    device_name = describe_device(device)
    levers = [f"{args.autocast} autocast"] if autocast_dtype is not None else []
    levers += ["channels_last copies"] if args.channels_last else []
    meta = {"command": command, "device": device_name, "levers": levers, "torch": torch.__version__, "images": len(x),
            "opt_images": len(x_opt), "fit_steps": args.fit_steps, "batch_size": args.batch_size, "repeats": args.repeats}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    key = "cuda" if device.startswith("cuda") else "cpu"
    key += "".join(f"-{part}" for part in (args.autocast if autocast_dtype is not None else None,
                                           "cl" if args.channels_last else None) if part)
    write_section(args.out, key, meta, results)
    print(f"wrote {args.out}")


def write_section(out: Path, key: str, meta: dict, r: dict) -> None:
    verdict = lambda ok: "**met**" if ok else "**missed**"  # noqa: E731
    m = r["match"]
    lines = [
        f"<!-- speed:{key}:start -->",
        f"## {meta['device']}" + (f"; levers: {', '.join(meta['levers'])}" if meta["levers"] else ""),
        "",
        f"Written by `benchmarks/speed/speed.py` (torch {meta['torch']}; medians of {meta['repeats']} runs after a warm-up):",
        "",
        f"    {meta['command']}",
        "",
        "| measurement | value |",
        "|---|---|",
        f"| encode ({meta['images']} bundled test images, batch 1000) | {r['encode_s_per_1k']:.4f} s per 1k images, PSNR {r['encode_psnr']:.2f} dB |",
        f"| D's full forward pass, same images | {r['d_full_s_per_1k']:.4f} s per 1k images |",
        f"| encode throughput / D full-pass throughput (target ≥ 1.0) | {r['encode_vs_d_full']:.2f}: {verdict(r['encode_vs_d_full'] >= 1.0)} |",
    ]
    if not r["optimisation_curve"]:
        lines.append("| optimisation-only | not run (`--no-optimisation`) |")
    elif m is None:
        last = r["optimisation_curve"][-1]
        lines.append(f"| optimisation-only reaching encode's PSNR | not within {last['steps']} steps ({last['psnr']:.2f} dB, "
                     f"{last['s_per_1k']:.2f} s per 1k: {last['s_per_1k'] / r['encode_s_per_1k']:.0f}x encode) |")
    else:
        lines.append(f"| optimisation-only first matching encode's PSNR | {m['steps']} steps, {m['psnr']:.2f} dB, "
                     f"{m['s_per_1k']:.3f} s per 1k ({meta['opt_images']} images timed) |")
        lines.append(f"| encode speed-up at that point (target ≥ 100x) | {m['ratio']:.0f}x: {verdict(m['ratio'] >= 100)} |")
    lines += [
        f"| bare generation (G + D up to the feature layer, no grad, batch {meta['batch_size']}) | {r['bare_samples_per_s']:.0f} samples/s |",
        f"| fit_inverter, {meta['fit_steps']} steps of {meta['batch_size']} | {r['fit_samples_per_s']:.0f} samples/s |",
        f"| fit time / bare generation time (target ≤ 1.1) | {r['fit_over_bare']:.2f}: {verdict(r['fit_over_bare'] <= 1.1)} |",
        f"| peak memory, encode / fit | {r['encode_peak_mb']:.0f} MB / {r['fit_peak_mb']:.0f} MB |",
    ]
    if r["optimisation_curve"]:
        lines += ["", "Optimisation-only: " + "; ".join(f"{c['steps']} steps {c['psnr']:.2f} dB in {c['s_per_1k']:.2f} s"
                                                      for c in r["optimisation_curve"]) + " (per 1k images)."]
    lines.append(f"<!-- speed:{key}:end -->")
    write_marked_section(out, "speed", key, lines[1:-1], "# Speed and memory\n\nEach section is written by its own run of `benchmarks/speed/speed.py`.\n")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
