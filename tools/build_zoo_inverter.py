#!/usr/bin/env python
"""Refit a bundled zoo entry's own inverter (the paper's method: self-generated pairs only).

    python -m tools.build_zoo_inverter --name dcgan-fashion-mnist --steps 20000

Fits ``fit_inverter`` on the entry's bundled GAN (its fp16-stored weights loaded as float32, so the
fingerprints match) with the library's defaults (``--settings`` changes some) and ``--steps`` as the
ceiling on updates (the convergence rule, ``patience``, may stop it sooner), then writes it over the
entry's ``inverter/`` folder (or ``--out``) in the Hub layout in float16. The model card's metrics are
its reconstruction score on the entry's 1,000 bundled test images, beside the inverter it replaces on
the same images; ``discinvert demo`` shows that score as its CN row. ``tools/build_zoo.py``
builds a whole entry from a trained GAN; this script only replaces the inverter.

The decision is made on **held-out train**, Fashion-MNIST train[59000:] (the last 1,000 train images,
which no zoo inverter was fit on): the new inverter is written only if its encode PSNR there is at most
``--tolerance`` dB (0.1) below the inverter it replaces; otherwise the script exits with status 1 and
leaves the entry as it was. The bundled test images are reported only. ``--json`` writes both scores
of both inverters, the fit's record and the written file's sha256.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import command_line, write_json
from tools.store_zoo_inverter import WEIGHTS_NAME, score
from benchmarks.speed.time_to_quality import parse_config
from discinvert import Inverter, fit_inverter, zoo
from discinvert.zoo.datasets import load_fashion_mnist, to_model_range

ZOO = Path(__file__).resolve().parents[2] / "discinvert" / "zoo"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", default="dcgan-fashion-mnist")
    parser.add_argument("--steps", type=int, default=20000, help="ceiling on CN updates")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the fit time is stated for these)")
    parser.add_argument("--settings", default="", help="fit_inverter settings over the defaults, as "
                        "time_to_quality's --configs take them (e.g. cn_standardize=0,autocast=none)")
    parser.add_argument("--tolerance", type=float, default=0.1, help="largest held-out train PSNR loss in dB")
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None, help="default: the entry's inverter/ folder")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    command = command_line(__spec__, argv)
    print(command, flush=True)
    torch.set_num_threads(args.threads)

    _, settings = parse_config(f"rebuild:{args.settings}")
    G, D, previous = zoo.load(args.name)
    config = zoo.load_gan_config(args.name)
    start = time.perf_counter()
    inverter = fit_inverter(G, D, config.feature_layer, latent_shape=config.latent_shape, steps=args.steps,
                            seed=args.seed, **settings)
    seconds = time.perf_counter() - start
    fit: dict[str, Any] = inverter.config.fit
    stopped = "" if not fit["stopped"] else f", stopped at update {fit['stopped']} (plateau)"
    print(f"fit in {seconds:.1f} s: best validation MSE {fit['best_validation_mse']:.4f} at update {fit['best_step']}"
          f"{stopped}", flush=True)

    train, _ = load_fashion_mnist("train", root=args.data_root)
    heldout = to_model_range(train[59000:]).float()
    test = to_model_range(zoo.load_test_images(args.name)[0]).float()
    out = args.out if args.out is not None else ZOO / args.name / "inverter"
    gan_line = (f"the reference {config.loss.upper()} trained on Fashion-MNIST by `benchmarks/paper/train_gan.py` "
                f"(bundled as discinvert.zoo entry `{args.name}`)")
    with tempfile.TemporaryDirectory() as tmp:  # scored as it will be stored: float16
        staged = Inverter.from_pretrained(inverter.save_pretrained(Path(tmp) / "staged", dtype=torch.float16),
                                          generator=G, discriminator=D)
        result: dict[str, Any] = {
            "command": command,
            "fit_seconds": round(seconds, 1),
            "threads": args.threads,
            "settings": {k: str(v) for k, v in settings.items()},
            "fit": {k: v for k, v in fit.items() if k != "history"},
            "history": fit["history"],
            "heldout_train": {"new": score(staged, heldout), "replaced": score(previous, heldout)},
            "test_images": {"new": score(staged, test), "replaced": score(previous, test)},
        }
    loss = result["heldout_train"]["replaced"]["psnr"] - result["heldout_train"]["new"]["psnr"]
    result["heldout_psnr_loss"] = loss
    print(json.dumps({k: v for k, v in result.items() if k != "history"}, indent=1, default=str), flush=True)
    if args.json:
        write_json(args.json, result)
    if loss > args.tolerance:
        print(f"not written: the new inverter loses {loss:.3f} dB on held-out train (tolerance {args.tolerance})")
        raise SystemExit(1)

    new, before = result["test_images"]["new"], result["test_images"]["replaced"]
    metrics = {
        "data": f"the {len(test)} bundled Fashion-MNIST test images (never trained on)",
        "encode PSNR (dB)": f"{new['psnr']:.3f}",
        "encode SSIM": f"{new['ssim']:.4f}",
        "the inverter this one replaced, on the same images: encode PSNR (dB) / SSIM":
            f"{before['psnr']:.3f} / {before['ssim']:.4f}",
        "fit seconds": f"{seconds:.1f} ({args.threads} CPU threads)",
        "command": f"`{command}`",
    }
    inverter.save_pretrained(out, gan=gan_line, metrics=metrics, dtype=torch.float16)
    reloaded = Inverter.from_pretrained(out, generator=G, discriminator=D)
    assert score(reloaded, heldout) == result["heldout_train"]["new"], "the written file differs from the staged one"
    result["sha256"] = hashlib.sha256((out / WEIGHTS_NAME).read_bytes()).hexdigest()
    print(f"wrote {out}: {WEIGHTS_NAME} {(out / WEIGHTS_NAME).stat().st_size / 1e6:.2f} MB, sha256 {result['sha256']}")
    if args.json:
        write_json(args.json, result)

if __name__ == "__main__":
    main()
