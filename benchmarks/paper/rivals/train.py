#!/usr/bin/env python
"""Train one rival (VAE, BiGAN/ALI, GAAN/Dist-GAN, AAAE) on the Fashion-MNIST *train* split.

Usage::

    python -m benchmarks.paper.rivals.train --model vae|bigan|gaan|aaae --epochs N \
        --batch-size 64 --device auto|cpu|cuda --seed 0 --out DIR \
        [--data-root PATH] [--limit N] [--max-seconds S] [--half] [--width 64]

The models and their losses are in ``benchmarks/paper/rivals/``. Only the training
split is read (the test split stays held out for ``benchmarks/paper/table1.py``). The whole split is one
tensor in memory (on the GPU when training on CUDA), batched by slicing a random
permutation each epoch; the last incomplete batch is dropped.

``--max-seconds``: stop after the epoch past which another epoch (timed like the last one)
would exceed this budget; the record says how many epochs ran and whether it stopped early.

Output in ``--out``: ``model.safetensors`` (all weights), ``config.json`` (architecture,
parameter counts, training record: seconds, epochs, losses per epoch, command, device,
torch version), ``samples.png`` (8x8 grid of ``decode(z)``, z from the model's prior, fixed
seed) and ``reconstructions.png`` (rows alternate 8 train images and their
``decode(encode(x))``). Load with ``benchmarks.paper.rivals.models.load(DIR)``.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.common import command_line, finite_or_none, out_of_time, pick_device, training_tensor
from benchmarks.paper.rivals import models
from discinvert.zoo.datasets import from_model_range

GRID = 8


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=models.MODELS, required=True)
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--data-root", type=Path, default=None, help="folder with the Fashion-MNIST IDX files")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N training images")
    parser.add_argument("--max-seconds", type=float, default=None,
                        help="stop early when another epoch would take training past this many seconds")
    parser.add_argument("--half", action="store_true", help="store the weights as float16")
    parser.add_argument("--width", type=int, default=64,
                        help="base width of G, D and E (64 = the reference DCGAN; small values for tests only)")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error(f"--epochs: expected >= 1, received {args.epochs}")
    if args.batch_size < 2:
        parser.error(f"--batch-size: expected >= 2 (BatchNorm), received {args.batch_size}")
    if args.width < 1:
        parser.error(f"--width: expected >= 1, received {args.width}")
    if args.limit is not None and args.limit < args.batch_size:
        parser.error(f"--limit: expected >= --batch-size ({args.batch_size}), received {args.limit}")
    return args




def tile(images: torch.Tensor, columns: int = GRID, pad: int = 2) -> np.ndarray:
    """Tile ``(N, 1, 28, 28)`` model-range images into one uint8 grid (``columns`` per row)."""
    pixels = from_model_range(images)  # (N, 28, 28) uint8
    n, h, w = pixels.shape
    rows = math.ceil(n / columns)
    grid = np.zeros((rows * (h + pad) + pad, columns * (w + pad) + pad), dtype=np.uint8)
    for i in range(n):
        r, c = divmod(i, columns)
        top, left = pad + r * (h + pad), pad + c * (w + pad)
        grid[top : top + h, left : left + w] = pixels[i]
    return grid


def reconstruction_grid(model: Any, originals: torch.Tensor) -> np.ndarray:
    """Rows alternate ``GRID`` originals and their reconstructions ``decode(encode(x))``."""
    recon = model.reconstruct(originals)
    blank = torch.full_like(originals[:1], -1.0)
    rows = []
    for start in range(0, originals.shape[0], GRID):
        for part in (originals[start : start + GRID], recon[start : start + GRID]):
            rows.append(torch.cat([part, blank.expand(GRID - part.shape[0], *part.shape[1:])]))
    return tile(torch.cat(rows))


def write_png(path: Path, image: np.ndarray) -> None:
    """Write a 2-D uint8 array as a grayscale PNG with imageio (scikit-image as a fallback)."""
    try:
        import imageio.v3 as iio

        iio.imwrite(path, image)
    except ImportError:
        from skimage import io

        io.imsave(str(path), image, check_contrast=False)



def train(args: argparse.Namespace, command: str) -> Path:
    device = pick_device(args.device)
    data = training_tensor(seed=args.seed, device=device, data_root=args.data_root, limit=args.limit,
                           batch_size=args.batch_size)  # (N, 1, 28, 28) in [-1, 1]
    n_train = int(data.shape[0])

    config = models.RivalConfig(model=args.model, g_width=args.width, d_width=args.width, e_width=args.width)
    model = models.build_model(config).to(device).train()
    counts = model.parameter_counts()
    print(f"{args.model}: parameters " + ", ".join(f"{k} {v:,}" for k, v in counts.items()), flush=True)
    optimizers = model.make_optimizers()

    shuffle_rng = torch.Generator().manual_seed(args.seed)
    fixed_rng = torch.Generator().manual_seed(args.seed + 1)
    batches = n_train // args.batch_size
    history: list[dict[str, Any]] = []
    stopped_early = False
    t_start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        t_epoch = time.perf_counter()
        perm = torch.randperm(n_train, generator=shuffle_rng).to(device)
        sums: dict[str, torch.Tensor] = {}
        for b in range(batches):
            x = data[perm[b * args.batch_size : (b + 1) * args.batch_size]]
            for name, value in model.train_step(x, optimizers).items():
                sums[name] = sums[name] + value if name in sums else value.clone()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - t_epoch
        record: dict[str, Any] = {"epoch": epoch, "steps": batches, "seconds": round(seconds, 3)}
        record.update({name: finite_or_none(float(total.item()) / batches) for name, total in sums.items()})
        history.append(record)
        print(f"epoch {epoch}/{args.epochs}  " + "  ".join(
            f"{k} {v:.4g}" for k, v in record.items() if k not in ("epoch", "steps", "seconds") and v is not None)
            + f"  ({batches} steps)  {seconds:.1f}s", flush=True)
        if any(v is None for v in record.values()):
            print("warning: a loss is not finite", flush=True)
        if out_of_time(args.max_seconds, elapsed=time.perf_counter() - t_start, last_epoch=seconds, epoch=epoch,
                       epochs=args.epochs):
            stopped_early = True
            break
    train_seconds = time.perf_counter() - t_start

    training = {
        "train_seconds": round(train_seconds, 3),
        "epochs": len(history),
        "epochs_requested": args.epochs,
        "stopped_early": stopped_early,
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
    }
    out = Path(args.out)
    models.save(out, model, training=training, half=args.half)
    model.eval()
    fixed_z = model.sample_latents(GRID * GRID, generator=fixed_rng)
    write_png(out / "samples.png", tile(model.decode(fixed_z)))
    write_png(out / "reconstructions.png", reconstruction_grid(model, data[: GRID * GRID // 2]))
    print(f"trained {len(history)} epoch(s) in {train_seconds:.1f}s; wrote {out}", flush=True)
    return out


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    command = command_line(__spec__, argv)
    print(f"command: {command}", flush=True)
    train(args, command)
    print(f"command: {command}", flush=True)


if __name__ == "__main__":
    main()
