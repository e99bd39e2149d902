#!/usr/bin/env python
"""Train the reference DCGAN-style GAN on the Fashion-MNIST *train* split.

Usage::

    python -m benchmarks.paper.train_gan --loss dcgan|lsgan|wgan-gp --epochs N \
        --batch-size 64 --device auto|cpu|cuda --seed 0 --out DIR \
        [--data-root PATH] [--limit N] [--half] [--max-seconds S]

Only the training split (``train-*-ubyte``) is read; the test split is never
touched, so it stays a clean held-out set for inversion experiments.

Losses and optimisers:

* ``dcgan``: BCE-with-logits (non-saturating generator loss), Adam lr 2e-4,
  betas (0.5, 0.999), one D step and one G step per batch.
* ``lsgan``: least squares (real target 1, fake target 0, G target 1, each
  halved), same optimiser and schedule.
* ``wgan-gp``: Wasserstein critic with gradient penalty 10, no BatchNorm in the
  critic, Adam lr 1e-4 betas (0.0, 0.9); every batch is a critic step and every
  5th batch (n_critic = 5) also a generator step, so an epoch is one pass of the
  real data through the critic.

The whole split is held in memory as one tensor (on the GPU when training on
CUDA) and batched by slicing a random permutation; the last incomplete batch of
each epoch is dropped. Output in ``--out``: ``generator.safetensors``,
``discriminator.safetensors``, ``config.json`` (see
``discinvert.zoo.architectures.save_gan``; ``extra`` holds the training record) and
``samples.png`` (8x8 grid of eval-mode samples from a fixed ``z``).
"""

from __future__ import annotations

import argparse
import struct
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.common import command_line, finite_or_none, out_of_time, pick_device, training_tensor
from discinvert.zoo.architectures import (
    DCGANDiscriminator,
    DCGANGenerator,
    GANConfig,
    build_gan,
    parameter_count,
    save_gan,
)
from discinvert.zoo.datasets import from_model_range

GP_WEIGHT = 10.0
N_CRITIC = 5
OPTIMISERS: dict[str, dict[str, Any]] = {
    "dcgan": {"lr": 2e-4, "betas": (0.5, 0.999)},
    "lsgan": {"lr": 2e-4, "betas": (0.5, 0.999)},
    "wgan-gp": {"lr": 1e-4, "betas": (0.0, 0.9)},
}
GRID = 8


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loss", choices=("dcgan", "lsgan", "wgan-gp"), required=True)
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--data-root", type=Path, default=None, help="folder with the Fashion-MNIST IDX files")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N training images")
    parser.add_argument("--half", action="store_true", help="store the weights as float16")
    parser.add_argument("--max-seconds", type=float, default=None,
                        help="stop after the epoch at which another epoch would pass this many seconds")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error(f"--epochs: expected >= 1, received {args.epochs}")
    if args.batch_size < 2:
        parser.error(f"--batch-size: expected >= 2 (BatchNorm), received {args.batch_size}")
    if args.limit is not None and args.limit < args.batch_size:
        parser.error(f"--limit: expected >= --batch-size ({args.batch_size}), received {args.limit}")
    return args


def gradient_penalty(critic: DCGANDiscriminator, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """WGAN-GP penalty E[(||grad_x critic(x_hat)||_2 - 1)^2] on random interpolates."""
    eps = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype)
    x_hat = (eps * real + (1.0 - eps) * fake).requires_grad_(True)
    scores = critic(x_hat)
    (grads,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)
    return ((grads.flatten(1).norm(2, dim=1) - 1.0) ** 2).mean()


def d_loss_fn(loss: str, d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    if loss == "dcgan":
        return F.binary_cross_entropy_with_logits(
            d_real, torch.ones_like(d_real)
        ) + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))
    if loss == "lsgan":
        return 0.5 * ((d_real - 1.0) ** 2).mean() + 0.5 * (d_fake**2).mean()
    return d_fake.mean() - d_real.mean()  # wgan-gp, penalty added by the caller


def g_loss_fn(loss: str, d_fake: torch.Tensor) -> torch.Tensor:
    if loss == "dcgan":
        return F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))
    if loss == "lsgan":
        return 0.5 * ((d_fake - 1.0) ** 2).mean()
    return -d_fake.mean()


def write_png_gray(path: Path, image: np.ndarray) -> None:
    """Write a 2-D uint8 array as an 8-bit grayscale PNG (imageio, else a minimal zlib writer)."""
    try:
        import imageio.v3 as iio

        iio.imwrite(path, image)
        return
    except ImportError:
        pass
    height, width = image.shape
    raw = b"".join(b"\x00" + image[row].tobytes() for row in range(height))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    )


def tile_grid(images: np.ndarray, *, pad: int = 2) -> np.ndarray:
    """``GRID*GRID`` uint8 images ``(n, h, w)`` tiled row by row into one uint8 image with ``pad`` pixels between."""
    n, h, w = images.shape
    grid = np.zeros((GRID * (h + pad) + pad, GRID * (w + pad) + pad), dtype=np.uint8)
    for i in range(n):
        r, c = divmod(i, GRID)
        top, left = pad + r * (h + pad), pad + c * (w + pad)
        grid[top : top + h, left : left + w] = images[i]
    return grid


def sample_grid(generator: DCGANGenerator, z: torch.Tensor, *, pad: int = 2) -> np.ndarray:
    """Eval-mode samples for ``z`` (GRID*GRID codes) tiled into one uint8 image."""
    was_training = generator.training
    generator.eval()
    with torch.no_grad():
        images = from_model_range(generator(z))  # (64, 28, 28) uint8
    generator.train(was_training)
    return tile_grid(images, pad=pad)


def train(args: argparse.Namespace, command: str) -> None:
    device = pick_device(args.device)
    data = training_tensor(seed=args.seed, device=device, data_root=args.data_root, limit=args.limit,
                           batch_size=args.batch_size)  # (N, 1, 28, 28) in [-1, 1]
    n_train = int(data.shape[0])

    config = GANConfig(loss=args.loss)
    generator, discriminator = build_gan(config)
    generator.to(device).train()
    discriminator.to(device).train()
    print(
        f"G params {parameter_count(generator):,}  D params {parameter_count(discriminator):,}  "
        f"feature layer {config.feature_layer}",
        flush=True,
    )
    opt_kw = OPTIMISERS[args.loss]
    opt_g = torch.optim.Adam(generator.parameters(), lr=opt_kw["lr"], betas=opt_kw["betas"])
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=opt_kw["lr"], betas=opt_kw["betas"])

    shuffle_rng = torch.Generator().manual_seed(args.seed)
    fixed_z = torch.randn(GRID * GRID, config.latent_dim, 1, 1, generator=torch.Generator().manual_seed(args.seed + 1))
    fixed_z = fixed_z.to(device)
    batches_per_epoch = n_train // args.batch_size
    history: list[dict[str, Any]] = []
    step = 0
    t_start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        t_epoch = time.perf_counter()
        perm = torch.randperm(n_train, generator=shuffle_rng).to(device)
        d_sum = torch.zeros((), device=device)
        g_sum = torch.zeros((), device=device)
        g_steps = 0
        for b in range(batches_per_epoch):
            real = data[perm[b * args.batch_size : (b + 1) * args.batch_size]]
            bsz = real.shape[0]

            # --- discriminator / critic step ---
            z = torch.randn(bsz, config.latent_dim, 1, 1, device=device)
            with torch.no_grad():
                fake = generator(z)
            d_loss = d_loss_fn(args.loss, discriminator(real), discriminator(fake))
            if args.loss == "wgan-gp":
                d_loss = d_loss + GP_WEIGHT * gradient_penalty(discriminator, real, fake)
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
            d_sum += d_loss.detach()
            step += 1

            # --- generator step ---
            if args.loss != "wgan-gp" or step % N_CRITIC == 0:
                z = torch.randn(bsz, config.latent_dim, 1, 1, device=device)
                g_loss = g_loss_fn(args.loss, discriminator(generator(z)))
                opt_g.zero_grad(set_to_none=True)
                g_loss.backward()
                opt_g.step()
                g_sum += g_loss.detach()
                g_steps += 1

        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - t_epoch
        record = {
            "epoch": epoch,
            "d_loss": finite_or_none(d_sum.item() / batches_per_epoch),
            "g_loss": finite_or_none(g_sum.item() / g_steps) if g_steps else None,
            "d_steps": batches_per_epoch,
            "g_steps": g_steps,
            "seconds": round(seconds, 3),
        }
        history.append(record)
        print(
            f"epoch {epoch}/{args.epochs}  d_loss {record['d_loss']}  g_loss {record['g_loss']}  "
            f"({batches_per_epoch} D / {g_steps} G steps)  {seconds:.1f}s",
            flush=True,
        )
        if out_of_time(args.max_seconds, elapsed=time.perf_counter() - t_start, last_epoch=seconds, epoch=epoch,
                       epochs=args.epochs):
            break
    train_seconds = time.perf_counter() - t_start

    extra = {
        "train_seconds": round(train_seconds, 3),
        "epochs": len(history),
        "epochs_requested": args.epochs,
        "stopped_early": len(history) < args.epochs,
        "max_seconds": args.max_seconds,
        "command": command,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch_version": torch.__version__,
        "losses_per_epoch": history,
        "seed": args.seed,
        "batch_size": args.batch_size,
        "dataset": "fashion-mnist train split",
        "n_train": n_train,
        "optimiser": {"name": "Adam", "lr": opt_kw["lr"], "betas": list(opt_kw["betas"])},
        "gp_weight": GP_WEIGHT if args.loss == "wgan-gp" else None,
        "n_critic": N_CRITIC if args.loss == "wgan-gp" else 1,
    }
    out = Path(args.out)
    save_gan(out, generator, discriminator, config, extra=extra, half=args.half)
    write_png_gray(out / "samples.png", sample_grid(generator, fixed_z))
    print(f"trained {len(history)} epoch(s) in {train_seconds:.1f}s; wrote {out}", flush=True)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    command = command_line(__spec__, argv)
    print(f"command: {command}", flush=True)
    train(args, command)
    print(f"command: {command}", flush=True)


if __name__ == "__main__":
    main()
