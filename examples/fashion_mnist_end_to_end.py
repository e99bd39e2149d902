"""End to end on Fashion-MNIST: train a DCGAN, fit its inverter, score it, reconstruct and edit.

Run:  python examples/fashion_mnist_end_to_end.py --epochs 25 --device cuda --out out/e2e
      (needs Debian's dataset-fashion-mnist; on 2 CPU cores one epoch takes several minutes)

1. trains the reference DCGAN on the train split with ``python -m benchmarks.paper.train_gan`` (run from
   a checkout: the benchmarks are not part of the installed package);
2. fits the inverter on D's last hidden layer (fit_inverter's defaults);
3. scores it with the paper's metric on the test split (1,000 images x 5 draws), CN only and hybrid;
4. writes a picture of originals, reconstructions, refined reconstructions and a sneaker -> ankle boot edit.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from skimage.io import imsave

from discinvert import fit_inverter
from discinvert.zoo.architectures import load_gan
from discinvert.zoo.datasets import FASHION_MNIST_CLASSES, from_model_range, load_fashion_mnist, to_model_range
from discinvert.edit import attribute_direction, edit
from discinvert.metrics import reconstruction_score

ROOT = Path(__file__).resolve().parents[1]


def train_gan(argv: list[str]) -> None:
    """``python -m benchmarks.paper.train_gan ARGV`` from this checkout, in the current folder (relative paths stay as given)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")]))}
    subprocess.run([sys.executable, "-m", "benchmarks.paper.train_gan", *argv], env=env, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path("out/e2e"))
    parser.add_argument("--fit-steps", type=int, default=None, help="default: the library's")
    parser.add_argument("--limit", type=int, default=None, help="train on the first N images only (a quick try)")
    parser.add_argument("--n", type=int, default=1000, help="test images per draw (paper: 1000)")
    parser.add_argument("--repeats", type=int, default=5, help="draws (paper: 5)")
    args = parser.parse_args()
    gan_dir = args.out / "gan"
    data = [] if args.data_root is None else ["--data-root", str(args.data_root)]
    limit = [] if args.limit is None else ["--limit", str(args.limit)]
    train_gan(["--loss", "dcgan", "--epochs", str(args.epochs), "--device", args.device, "--out", str(gan_dir), *data, *limit])

    G, D, config, _ = load_gan(gan_dir, device=args.device)
    fit_kwargs = {} if args.fit_steps is None else {"steps": args.fit_steps}
    inverter = fit_inverter(G, D, config.feature_layer, latent_shape=config.latent_shape, seed=0, **fit_kwargs)
    inverter.save(args.out / "inverter.safetensors")

    images, labels = load_fashion_mnist("test", root=args.data_root)
    x = to_model_range(images).to(args.device)
    for name, steps in (("CN only", 0), ("hybrid, 50 steps", 50)):
        s = reconstruction_score(inverter, x, n=args.n, repeats=args.repeats, refine_steps=steps)
        print(f"{name:18s} PSNR {s['psnr_mean']:.2f} ± {s['psnr_std']:.2f} dB, SSIM {s['ssim_mean']:.4f} ± {s['ssim_std']:.4f}")

    columns = [int(np.flatnonzero(labels == k)[0]) for k in range(10)]
    sample = x[columns]
    sneaker, boot = FASHION_MNIST_CLASSES.index("Sneaker"), FASHION_MNIST_CLASSES.index("Ankle boot")
    direction = attribute_direction(inverter, x[torch.as_tensor(labels == boot)][:500], x[torch.as_tensor(labels == sneaker)][:500])
    sneakers = x[torch.as_tensor(labels == sneaker)][:10]
    rows = [sample, inverter.reconstruct(sample), inverter.decode(inverter.refine(sample, 50, progress=False)),
            sneakers, edit(inverter, sneakers, direction, 1.5)]
    grid = np.concatenate([np.concatenate(list(from_model_range(r)), axis=1) for r in rows], axis=0)
    imsave(args.out / "end_to_end.png", grid, check_contrast=False)
    print(f"wrote {args.out / 'end_to_end.png'}: originals, encode, refine, sneakers, sneakers + boot direction")


if __name__ == "__main__":
    main()
