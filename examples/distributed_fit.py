"""Fit one inverter with several processes: run it under torchrun.

    torchrun --nproc_per_node 8 examples/distributed_fit.py --steps 2000 --out inverter.safetensors   # 8 GPUs
    torchrun --standalone --nproc-per-node 2 examples/distributed_fit.py --steps 50 --batch-size 64   # 2 CPU processes
    torchrun --nproc_per_node 8 examples/distributed_fit.py --checkpoint ckpt/fit.safetensors --resume   # pre-emptible
    torchrun --nproc_per_node 8 examples/distributed_fit.py --images train   # + the real-image stage on Fashion-MNIST train
    torchrun --nproc_per_node 8 examples/distributed_fit.py --images train --iterations 2   # + two step networks

Each process puts the GAN on its own device (cuda:LOCAL_RANK, or the CPU), and
fit_inverter joins the process group torchrun describes (NCCL on CUDA, Gloo on CPU):
one CN trained with DistributedDataParallel on `--batch-size` fresh pairs per process,
different latents on each rank, the same inverter returned on every rank. `save` writes
on rank 0 only. With `--checkpoint`, rank 0 writes that file and every other rank its own RNG
states beside it; after an interruption, the same command with `--resume` continues where the
last checkpoint left off (same number of processes). With `--images`, the real-image stage
follows: every rank draws its own batches of real images, gradients are averaged across ranks
and rank 0's weights are kept, so every rank still returns the same inverter; the step networks of
`--iterations` are trained the same way. The GAN is the bundled Fashion-MNIST
DCGAN; use your own G and D the same way.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import safetensors.torch
import torch

from discinvert import fit_inverter, zoo
from discinvert.zoo.datasets import load_fashion_mnist, to_model_range


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=256, help="pairs per process and step")
    parser.add_argument("--validation-size", type=int, default=1024)
    parser.add_argument("--out", type=Path, default=Path("out/distributed/inverter.safetensors"))
    parser.add_argument("--codes", type=Path, default=None, help="also write each rank's codes of 16 test images here")
    parser.add_argument("--checkpoint", type=Path, default=None, help="write a resumable checkpoint here")
    parser.add_argument("--checkpoint-every", type=int, default=500)
    parser.add_argument("--resume", action="store_true", help="continue from --checkpoint if it exists")
    parser.add_argument("--images", default=None, help="real images for the real-image stage: 'train' (Fashion-MNIST's "
                        "train split from Debian's dataset-fashion-mnist) or an .npy of float images in [-1, 1]")
    parser.add_argument("--real-steps", type=int, default=1500)
    parser.add_argument("--iterations", type=int, default=0, help="step networks of iterative refinement")
    parser.add_argument("--iteration-steps", type=int, default=1000, help="updates of each step network")
    parser.add_argument("--patience", type=int, default=None, help="the convergence rule (default: the library's)")
    parser.add_argument("--schedule", choices=("cosine", "plateau"), default=None, help="(default: the library's)")
    parser.add_argument("--eval-every", type=int, default=None, help="updates between validations")
    args = parser.parse_args()
    rule = {k: v for k, v in (("patience", args.patience), ("schedule", args.schedule),
                              ("eval_every", args.eval_every)) if v is not None}

    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    G, D, _ = zoo.load("dcgan-fashion-mnist", device=device)
    config = zoo.load_gan_config("dcgan-fashion-mnist")

    images = None
    if args.images == "train":
        images = to_model_range(load_fashion_mnist("train")[0][:59000])  # the last 1,000 stay unseen
    elif args.images is not None:
        images = torch.from_numpy(np.load(args.images, allow_pickle=False))
    inverter = fit_inverter(G, D, config.feature_layer, latent_shape=config.latent_shape, steps=args.steps,
                            images=images, real_steps=args.real_steps,
                            batch_size=args.batch_size, validation_size=args.validation_size, seed=0,
                            checkpoint_path=args.checkpoint, checkpoint_every=args.checkpoint_every,
                            resume=args.resume and args.checkpoint is not None, iterations=args.iterations,
                            **({"iteration_steps": args.iteration_steps} if args.iterations else {}), **rule)
    inverter.save(args.out)  # rank 0 writes, every rank waits

    images, _ = zoo.load_test_images("dcgan-fashion-mnist")
    codes = inverter.encode(to_model_range(images[:16]).to(device)).cpu()
    if args.codes is not None:
        args.codes.mkdir(parents=True, exist_ok=True)
        safetensors.torch.save_file({"codes": codes.contiguous()}, str(args.codes / f"rank{rank}.safetensors"))
    print(f"rank {rank}: world size {inverter.config.fit['world_size']}, best validation MSE "
          f"{inverter.config.fit['best_validation_mse']:.4f}, stopped {inverter.config.fit['stopped']}, "
          f"code checksum {float(codes.double().sum()):.6f}")


if __name__ == "__main__":
    main()
