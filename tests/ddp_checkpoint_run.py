"""Run by tests/test_distributed.py under torchrun: a checkpointed fit that may be interrupted.

    python -m torch.distributed.run --standalone --nproc-per-node 2 tests/ddp_checkpoint_run.py OUT [--stop-at K] [--resume] [--reuse K]

Every rank fits the tiny spectral-norm GAN from conftest with checkpoints every 20 steps;
with ``--stop-at K`` every rank's latent sampler raises KeyboardInterrupt on its K-th call
(the same step on all ranks, as when a job is pre-empted), and the process exits with 3.
Otherwise each rank writes its CN's state to ``OUT/cn.rank<r>.safetensors``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import safetensors.torch
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from discinvert import fit_inverter  # noqa: E402
from tests.conftest import LATENT, _build  # noqa: E402

SETTINGS = dict(steps=60, batch_size=16, cn_hidden=(64, 64), progress=False, validation_size=64, seed=3,
                eval_every=10, checkpoint_every=20)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--stop-at", type=int, default=None)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--no-checkpoint", action="store_true")
    parser.add_argument("--reuse", type=int, default=1)
    args = parser.parse_args()
    rank = int(os.environ.get("RANK", "0"))
    calls = {"n": 0}

    def sampler(n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
        calls["n"] += 1
        if args.stop_at is not None and calls["n"] == args.stop_at:
            raise KeyboardInterrupt
        return torch.randn((n, LATENT, 1, 1), generator=generator, device=device)

    gan = _build("spectral_dropout")
    checkpoint = None if args.no_checkpoint else args.out / "fit.safetensors"
    try:
        inverter = fit_inverter(gan.generator, gan.discriminator, gan.feature_layer, latent_sampler=sampler,
                                checkpoint_path=checkpoint, resume=args.resume, reuse=args.reuse, **SETTINGS)
    except KeyboardInterrupt:
        print(f"rank {rank}: interrupted", flush=True)
        sys.exit(3)
    state = {k: v.contiguous() for k, v in inverter.cn.state_dict().items()}
    safetensors.torch.save_file(state, str(args.out / f"cn.rank{rank}.safetensors"))
    print(f"rank {rank}: resumed from {inverter.config.fit['resumed_from_step']}", flush=True)


if __name__ == "__main__":
    main()
