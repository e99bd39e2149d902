"""The global random number generators, put back as the user left them around calls into user code.

A user's sampler (``Conditioning.sampler``, a latent sampler) may ignore the ``torch.Generator`` it is
handed and draw from torch's, NumPy's or Python's global generator. Library calls that are not a fit
(loading, encoding, the behavioural probes) must not move those, and the probes must draw the same
values every time: :func:`kept` restores all three, and seeds them first when given a seed.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator

import numpy as np
import torch

__all__ = ["kept"]


@contextlib.contextmanager
def kept(device: torch.device, seed: int | None = None) -> Iterator[None]:
    """Run the block with torch's global RNG (on the CPU, and ``device``'s when it is a CUDA device),
    NumPy's and Python's put back afterwards; with ``seed``, seeded with it first."""
    numpy_state, python_state = np.random.get_state(), random.getstate()
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        if seed is not None:
            torch.default_generator.manual_seed(seed)
            if device.type == "cuda":
                with torch.cuda.device(device):
                    torch.cuda.manual_seed(seed)
            np.random.seed(seed % 2**32)
            random.seed(seed)
        try:
            yield
        finally:
            np.random.set_state(numpy_state)
            random.setstate(python_state)
