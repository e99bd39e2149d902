"""Run by tests/test_distributed.py under torchrun: a real-image stage whose ranks hold different images.

    python -m torch.distributed.run --standalone --nproc-per-node 2 tests/ddp_real_images_run.py MODE

``MODE`` is ``share`` (each rank holds its own half of the images, as a DistributedSampler gives),
``bad-item`` (rank 1's data set gives items of another shape from the stage's 10th batch on) or ``range``
(rank 1's images are 0..255, refused at the split). Every rank must stop with a ValueError,
none may hang; each prints ``rank R: ValueError: ...`` and exits 0.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from discinvert import fit_inverter  # noqa: E402
from tests.conftest import BreaksAfter, _build  # noqa: E402


def main() -> None:
    mode = sys.argv[1]
    rank = int(os.environ.get("RANK", "0"))
    gan = _build("dcgan")
    z = torch.randn(64, 8, 1, 1, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        x = gan.generator.eval()(z)
    gan.generator.train()
    images: object = x
    if mode == "share":
        images = x[rank::2]
    elif mode == "range" and rank == 1:
        images = (x + 1) * 127.5
    elif mode == "bad-item" and rank == 1:
        images = BreaksAfter(x, 64 + 8 * 9)  # the split reads all 64 images; broken from the stage's 10th batch on
    try:
        run(gan, images, rank)
    finally:
        if torch.distributed.is_initialized():
            # Tear down together: a rank that destroys its group and exits while the other still
            # talks to it can abort the other in Gloo's teardown ("terminate called ...").
            torch.distributed.barrier()
            torch.distributed.destroy_process_group()
        # What is tested is that every rank stops with a ValueError and none hangs. After a fit
        # stopped mid-stage, torch's C++ teardown at interpreter exit sometimes aborts ("terminate
        # called without an active exception", about 1 run in 15 here): skip it.
        sys.stdout.flush()
        os._exit(0)


def run(gan: object, images: object, rank: int) -> None:
    try:
        fit_inverter(gan.generator, gan.discriminator, gan.feature_layer, latent_shape=gan.latent_shape, images=images,
                     steps=4, batch_size=8, cn_hidden=(16,), progress=False, validation_size=16, seed=7,
                     real_steps=20, real_batch_size=8)
    except ValueError as error:
        print(f"rank {rank}: ValueError: {error}", flush=True)
        return
    print(f"rank {rank}: no error", flush=True)


if __name__ == "__main__":
    main()
