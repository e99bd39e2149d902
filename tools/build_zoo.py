#!/usr/bin/env python
"""Build a bundled zoo entry: the GAN in fp16, its fitted inverter (Hub layout), 1,000 real test images.

    python -m tools.build_zoo --gan runs/dcgan --name dcgan-fashion-mnist --steps 20000 --device cuda

The GAN is stored in float16 and re-loaded (as float32) *before* the inverter is fit, so
the inverter's fingerprints match the bundled weights exactly. The test images are the
first 100 of each class in the Fashion-MNIST **test** split (no model saw them); the
model card's metrics are the CN's reconstruction score on exactly those 1,000 images.
The StyleGAN2 entry shares them (its ``test_images.json`` holds this file's sha256): a rebuild that changes
``dcgan-fashion-mnist/test_images.safetensors`` makes reading that entry's test images a loud ``ValueError``
until its pointer is written again (``discinvert.zoo.test_images.pointer_record``) or it stores its own.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import safetensors.torch
import torch

from benchmarks.common import command_line
from discinvert import Inverter, fit_inverter
from discinvert.metrics import reconstruction_score
from discinvert.zoo.architectures import load_gan, save_gan
from discinvert.zoo.datasets import (
    FASHION_MNIST_CLASSES,
    load_fashion_mnist,
    to_model_range,
)

ZOO = Path(__file__).resolve().parents[2] / "discinvert" / "zoo"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gan", type=Path, required=True, help="directory written by benchmarks/paper/train_gan.py")
    parser.add_argument("--name", default="dcgan-fashion-mnist")
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--per-class", type=int, default=100)
    args = parser.parse_args(argv)
    command = command_line(__spec__, argv)
    print(command, flush=True)

    out = ZOO / args.name
    G, D, config, extra = load_gan(args.gan)
    save_gan(out / "gan", G, D, config, extra={**extra, "zoo_command": command}, half=True)
    G, D, config, _ = load_gan(out / "gan", device=args.device)

    images, labels = load_fashion_mnist("test", root=args.data_root)
    chosen = np.sort(np.concatenate([np.flatnonzero(labels == k)[: args.per_class] for k in range(len(FASHION_MNIST_CLASSES))]))
    safetensors.torch.save_file(
        {"images": torch.from_numpy(images[chosen].copy()), "labels": torch.from_numpy(labels[chosen].astype(np.int64)),
         "indices": torch.from_numpy(chosen.astype(np.int64))},
        str(out / "test_images.safetensors"),
        metadata={"source": "Fashion-MNIST test split (t10k), first images of each class", "command": command},
    )

    start = time.perf_counter()
    inverter = fit_inverter(G, D, config.feature_layer, latent_shape=config.latent_shape, steps=args.steps,
                            seed=args.seed, device=args.device)
    print(f"fit {args.steps} steps in {time.perf_counter() - start:.1f} s; best val MSE {inverter.config.fit['best_validation_mse']:.4f}")
    x = to_model_range(images[chosen]).to(args.device)
    score = reconstruction_score(inverter, x, n=len(chosen), repeats=1)
    metrics = {
        "data": f"the {len(chosen)} bundled Fashion-MNIST test images",
        "encode PSNR (dB)": round(score["psnr_mean"], 3),
        "encode SSIM": round(score["ssim_mean"], 4),
        "command": f"`{command}`",
    }
    gan_line = (f"the reference {config.loss.upper()} trained on Fashion-MNIST by `benchmarks/paper/train_gan.py` "
                f"(bundled as discinvert.zoo entry `{args.name}`)")
    inverter.save_pretrained(out / "inverter", gan=gan_line, metrics=metrics, dtype=torch.float16)

    G_cpu, D_cpu, _, _ = load_gan(out / "gan")
    reloaded = Inverter.from_pretrained(out / "inverter", generator=G_cpu, discriminator=D_cpu)
    score16 = reconstruction_score(reloaded, x.cpu(), n=len(chosen), repeats=1)
    print(json.dumps({"fp32": score, "fp16_reloaded_cpu": score16}, indent=1))
    sizes = {p.relative_to(out).as_posix(): p.stat().st_size for p in out.rglob("*") if p.is_file()}
    print(json.dumps(sizes, indent=1), f"total {sum(sizes.values()) / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
