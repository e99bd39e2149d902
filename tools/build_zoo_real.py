#!/usr/bin/env python
"""Add a real-image-stage inverter to a bundled zoo entry: ``discinvert/zoo/<name>/inverter-real-images/``.

    python -m tools.build_zoo_real --name dcgan-fashion-mnist --cn-hidden 256

Fits ``fit_inverter`` on the entry's bundled GAN (the fp16-stored weights, loaded as float32, so
the fingerprints match) with the library's defaults, a lighter connection network (``--cn-hidden``:
the file ships inside the package), and ``images=`` the Fashion-MNIST **train** split but its last
``--holdout`` images; then writes it in the Hub layout in float16 with a model card whose metrics
are its reconstruction score on the entry's 1,000 bundled test images, the same images and metric as
the entry's paper inverter's card. It also prints the encode PSNR on the held-out train images
(the last ``--holdout``, never trained on): compare candidate settings on that figure, never on the
test images of the card. With ``--iterations K`` the inverter also carries ``K`` step
networks (``encode`` runs them all). The demo shows it as its own row.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import command_line
from discinvert import Inverter, fit_inverter, zoo
from discinvert.metrics import reconstruction_score
from discinvert.zoo.datasets import load_fashion_mnist, to_model_range

ZOO = Path(__file__).resolve().parents[2] / "discinvert" / "zoo"


def save_zoo_inverter(inverter: Inverter, generator: torch.nn.Module, discriminator: torch.nn.Module,
                      images: torch.Tensor, out: Path, gan_line: str, metrics: dict[str, Any],
                      scores: dict[str, Any]) -> None:
    """Write ``inverter`` in the Hub layout in float16, reload it, and print its scores and file sizes."""
    inverter.save_pretrained(out, gan=gan_line, metrics=metrics, dtype=torch.float16)
    reloaded = Inverter.from_pretrained(out, generator=generator, discriminator=discriminator)
    score16 = reconstruction_score(reloaded, images, n=len(images), repeats=1)
    print(json.dumps({**scores, "fp16_reloaded": score16}, indent=1))
    sizes = {p.name: p.stat().st_size for p in out.iterdir() if p.is_file()}
    print(json.dumps(sizes, indent=1), f"total {sum(sizes.values()) / 1e6:.2f} MB")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", default="dcgan-fashion-mnist")
    parser.add_argument("--cn-hidden", type=int, nargs="*", default=[256], help="hidden widths of the CN")
    parser.add_argument("--steps", type=int, default=0, help="self-generated steps (0: the library's default)")
    parser.add_argument("--real-steps", type=int, default=0, help="real-image steps (0: the library's default)")
    parser.add_argument("--iterations", type=int, default=0, help="step networks of iterative refinement (issue 17)")
    parser.add_argument("--step-hidden", type=int, nargs="*", default=None,
                        help="hidden widths of each step network (default: the library's)")
    parser.add_argument("--holdout", type=int, default=1000, help="last N train images left out (as the benchmarks)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None, help="default: the entry's inverter-real-images/ folder")
    args = parser.parse_args(argv)
    command = command_line(__spec__, argv)
    print(command, flush=True)
    torch.set_num_threads(2)

    G, D, paper = zoo.load(args.name)
    config = zoo.load_gan_config(args.name)
    train, _ = load_fashion_mnist("train", root=args.data_root)
    images = to_model_range(train[: len(train) - args.holdout]).float()
    settings = {"seed": args.seed, "cn_hidden": tuple(args.cn_hidden)}
    settings.update({k: v for k, v in (("steps", args.steps), ("real_steps", args.real_steps),
                                       ("iterations", args.iterations)) if v})
    if args.step_hidden is not None:
        settings["step_hidden"] = tuple(args.step_hidden)
    start = time.perf_counter()
    inverter = fit_inverter(G, D, config.feature_layer, latent_shape=config.latent_shape, images=images, **settings)
    seconds = time.perf_counter() - start
    real = inverter.config.fit["real_images"]
    print(f"fit in {seconds:.1f} s; held-out pixel MSE {real['start_held_out_pixel_mse']:.4f} -> "
          f"{real['best_held_out_pixel_mse']:.4f}", flush=True)

    heldout = to_model_range(train[len(train) - args.holdout :]).float()
    heldout_score = reconstruction_score(inverter, heldout, n=len(heldout), repeats=1)
    print(f"held-out train[{len(train) - args.holdout}:] (the figure to choose on): encode PSNR "
          f"{heldout_score['psnr_mean']:.3f} dB, SSIM {heldout_score['ssim_mean']:.4f}", flush=True)
    test_u8, _ = zoo.load_test_images(args.name)
    x = to_model_range(test_u8)
    score = reconstruction_score(inverter, x, n=len(x), repeats=1)
    paper_score = reconstruction_score(paper, x, n=len(x), repeats=1)
    metrics = {
        "data": f"the {len(x)} bundled Fashion-MNIST test images (never trained on)",
        "encode PSNR (dB)": round(score["psnr_mean"], 3),
        "encode SSIM": round(score["ssim_mean"], 4),
        "the entry's paper inverter on the same images: encode PSNR (dB) / SSIM":
            f"{paper_score['psnr_mean']:.3f} / {paper_score['ssim_mean']:.4f}",
        "fit seconds (2 CPU threads)": round(seconds, 1),
        "command": f"`{command}`",
    }
    gan_line = (f"the reference {config.loss.upper()} trained on Fashion-MNIST by `benchmarks/paper/train_gan.py` "
                f"(bundled as discinvert.zoo entry `{args.name}`); fitted with the real-image stage on the "
                f"Fashion-MNIST train split but its last {args.holdout} images"
                + (f", then {args.iterations} step networks of iterative refinement" if args.iterations else ""))
    out = args.out if args.out is not None else ZOO / args.name / "inverter-real-images"
    save_zoo_inverter(inverter, G, D, x, out, gan_line, metrics,
                      {"fp32": score, "paper": paper_score, "heldout_train_fp32": heldout_score})


if __name__ == "__main__":
    main()
