"""Run by tests/test_generator_only.py under torchrun: a fit without D, real images and a step network included.

    python -m torch.distributed.run --standalone --nproc-per-node 2 tests/ddp_generator_only_run.py OUT

Every rank fits the tiny DCGAN's G alone (the same images on every rank) and writes its inverter's weights to
``OUT/inverter.rank<r>.safetensors``; ``Inverter.save`` writes ``OUT/inverter.safetensors`` once, from rank 0.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import safetensors.torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from discinvert import fit_inverter  # noqa: E402
from tests.conftest import _build  # noqa: E402


def main() -> None:
    out = Path(sys.argv[1])
    rank = int(os.environ.get("RANK", "0"))
    gan = _build("dcgan")
    _, images, _ = gan.sample(64, seed=11)
    inverter = fit_inverter(gan.generator, latent_shape=gan.latent_shape, images=images, steps=20, batch_size=16,
                            validation_size=32, cn_hidden=(32,), pixel_width=8, seed=2, eval_every=10, progress=False,
                            real_steps=6, real_batch_size=8, iterations=1, iteration_steps=4, iteration_batch_size=8,
                            step_hidden=(16,))
    state = {k: v.contiguous() for k, v in inverter.state_dict().items()}
    safetensors.torch.save_file(state, str(out / f"inverter.rank{rank}.safetensors"))
    inverter.save(out / "inverter.safetensors")
    print(f"rank {rank}: world size {inverter.config.fit['world_size']}", flush=True)


if __name__ == "__main__":
    main()
