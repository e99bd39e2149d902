"""Fitting under ``torchrun``: one process per device, one connection network.

When ``WORLD_SIZE > 1`` (set by ``torchrun``) or a process group is already initialised,
:func:`discinvert.fit_inverter` joins the default process group (initialising it when
needed: NCCL on CUDA, Gloo on CPU), wraps the CN in ``DistributedDataParallel``, draws
different latents on each rank, and at the end broadcasts rank 0's weights and
BatchNorm statistics, so every rank returns the same inverter. Files are written by
rank 0 only (:func:`is_writer`), without a collective.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist
from torch import nn

T = TypeVar("T")

__all__ = ["DistContext", "all_ok", "average_gradients", "broadcast_module", "broadcast_scalar", "context", "is_writer", "together"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: ``enabled`` only with more than one process."""

    enabled: bool
    rank: int = 0
    world_size: int = 1


def context(device: torch.device) -> DistContext:
    """Join (or initialise) the default process group when launched with several processes.

    Raises:
        ValueError: a CUDA fit under torchrun whose models are not on this process's
            ``LOCAL_RANK`` device (each process must own one GPU).
    """
    if not dist.is_available():
        return DistContext(False)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if not dist.is_initialized():
        if world <= 1:
            return DistContext(False)
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            local = int(os.environ.get("LOCAL_RANK", "0"))
            if device.index is not None and device.index != local:
                raise ValueError(
                    f"device: under torchrun each process must use its own GPU; LOCAL_RANK is {local} but the "
                    f"models live on {device}. Move them with G.to(f'cuda:{{LOCAL_RANK}}') first."
                )
            torch.cuda.set_device(local)
        logger.info("initialising the default process group (%s, world size %d)", backend, world)
        dist.init_process_group(backend=backend)
    if dist.get_world_size() <= 1:
        return DistContext(False)
    return DistContext(True, dist.get_rank(), dist.get_world_size())


def _collective_device(module_device: torch.device) -> torch.device:
    return module_device if dist.get_backend() == "nccl" else torch.device("cpu")


def broadcast_scalar(value: float, device: torch.device) -> float:
    """Rank 0's ``value`` on every rank."""
    tensor = torch.tensor([value], dtype=torch.float64, device=_collective_device(device))
    dist.broadcast(tensor, src=0)
    return float(tensor.item())


def all_ok(ok: bool, device: torch.device) -> bool:
    """``True`` when ``ok`` holds on every rank: a failure on one rank is known to all, so no rank
    waits forever in a collective that the failed one never reaches."""
    flag = torch.tensor([0.0 if ok else 1.0], device=_collective_device(device))
    dist.all_reduce(flag)
    return float(flag.item()) == 0.0


def together(action: Callable[[], T], device: torch.device, what: str) -> T:
    """``action()`` on this rank, where every rank calls it: a ``ValueError`` on any rank stops every rank.

    The failed rank re-raises its own error, the others a ``ValueError`` naming ``what``, so no rank
    goes on into a collective that the failed one never reaches.
    """
    try:
        result, error = action(), None
    except ValueError as caught:
        result, error = None, caught
    if not all_ok(error is None, device):
        raise error if error is not None else ValueError(
            f"{what}: another rank failed (its error says why); stopping every rank.")
    return result  # type: ignore[return-value]


def broadcast_module(module: nn.Module) -> None:
    """Copy rank 0's parameters and buffers (BatchNorm statistics included) to every rank, in place."""
    for tensor in list(module.parameters()) + list(module.buffers()):
        staged = tensor.data.to(_collective_device(tensor.device))
        dist.broadcast(staged, src=0)
        tensor.data.copy_(staged)


def average_gradients(module: nn.Module, world_size: int) -> None:
    """Replace each parameter's gradient by its mean over the ranks (a hand-made DDP step), in place."""
    for parameter in module.parameters():
        if parameter.grad is not None:
            dist.all_reduce(parameter.grad)
            parameter.grad /= world_size


def is_writer() -> bool:
    """True unless this is a rank other than 0 of an initialised process group."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0
