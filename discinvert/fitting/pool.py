"""Where training batches come from: made fresh for every step, or a refreshed pool that reuses them.

:class:`FreshBatches` calls a function for every batch. :class:`BatchPool` keeps a
refreshed pool of generated batches, so each costly ``G(z)`` sample serves several CN
updates.

Generation dominates the cost of a fit (G's forward pass is far heavier than the CN's
update). With ``reuse=k`` the pool holds :data:`POOL_BATCHES` generated batches; each step
trains on a random batch-sized draw from the whole pool, and every ``k`` steps the oldest
generated batch is replaced by a fresh one, so each sample is used about ``k`` times.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch

__all__ = ["POOL_BATCHES", "BatchPool", "BatchSource", "FreshBatches"]

POOL_BATCHES = 8


class BatchSource(Protocol):
    """Makes a fresh ``(inputs, targets)`` batch per call; its state can be saved for resuming
    (what :class:`~discinvert.fitting.checkpoint.Checkpointing` writes and restores)."""

    def __call__(self) -> tuple[torch.Tensor, torch.Tensor]: ...

    def state_tensors(self) -> dict[str, torch.Tensor]: ...

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None: ...


class FreshBatches:
    """A :class:`BatchSource` around a plain function; it keeps no state of its own."""

    def __init__(self, make: Callable[[], tuple[torch.Tensor, torch.Tensor]]) -> None:
        self.make = make

    def __call__(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.make()

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        return None


class BatchPool:
    """A :class:`BatchSource` reusing generated pairs ``reuse`` times on average.

    Args:
        make: returns a fresh ``(inputs (B, F), targets (B, D))`` batch.
        reuse: steps between refreshes of one pool slot (>= 1).
        rng: the generator for the random draws (the fit's training generator, so a
            seeded fit stays reproducible).
    """

    def __init__(self, make: Callable[[], tuple[torch.Tensor, torch.Tensor]], *, reuse: int, rng: torch.Generator) -> None:
        self.make = make
        self.reuse = reuse
        self.rng = rng
        self.inputs: torch.Tensor | None = None
        self.targets: torch.Tensor | None = None
        self.calls = 0

    def _fill(self) -> None:
        batches = [self.make() for _ in range(POOL_BATCHES)]
        self.inputs = torch.cat([b[0] for b in batches])
        self.targets = torch.cat([b[1] for b in batches])

    def __call__(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.inputs is None:
            self._fill()
        assert self.inputs is not None and self.targets is not None
        size = self.inputs.shape[0] // POOL_BATCHES
        if self.calls and self.calls % self.reuse == 0:
            slot = (self.calls // self.reuse - 1) % POOL_BATCHES  # oldest first, round robin
            fresh_inputs, fresh_targets = self.make()
            self.inputs[slot * size : (slot + 1) * size] = fresh_inputs
            self.targets[slot * size : (slot + 1) * size] = fresh_targets
        self.calls += 1
        index = torch.randint(0, self.inputs.shape[0], (size,), generator=self.rng, device=self.rng.device)
        return self.inputs[index], self.targets[index]

    def state_tensors(self) -> dict[str, torch.Tensor]:
        if self.inputs is None or self.targets is None:
            return {"calls": torch.tensor(self.calls)}
        return {"inputs": self.inputs, "targets": self.targets, "calls": torch.tensor(self.calls)}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        self.calls = int(tensors["calls"]) if "calls" in tensors else 0
        if "inputs" in tensors:
            self.inputs = tensors["inputs"].clone()
            self.targets = tensors["targets"].clone()
