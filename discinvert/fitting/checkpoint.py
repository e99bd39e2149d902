"""Resumable fits: the CN, the optimiser and every RNG, written atomically, never pickled.

A checkpoint is one ``.safetensors`` file: tensors (weights, Adam moments, RNG states,
the batch pool) as tensors, everything else (step, best error, history, and the fit's
identity: sizes, seed, learning rate, fingerprints) as JSON in the metadata. Resuming
checks that identity, so a checkpoint is never continued with other settings or
another GAN.

Under torchrun, rank 0 writes the checkpoint file and every other rank its own RNG states and
batch pool beside it (:func:`rank_path`); resuming is decided on rank 0 and followed, or
refused, by every rank together. The training loop (:func:`discinvert.fitting.loop.train_loop`, for the
self-generated stage) calls :meth:`Checkpointing.restore` once before its first step and
:meth:`Checkpointing.save` whenever :meth:`Checkpointing.due` says so.
"""

from __future__ import annotations

import glob
import json
import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import safetensors
import safetensors.torch
import torch
from torch import nn

from discinvert.files import atomic_write, parse_json
from discinvert.fitting.pool import BatchSource

__all__ = [
    "CHECKPOINT_FORMAT", "Best", "Checkpointing", "Resumed", "rank_path", "read_checkpoint",
    "write_checkpoint",
]

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "discinvert.checkpoint"  # written into every checkpoint: a file format, not the module's name
_VERSION = 1


def write_checkpoint(path: str | os.PathLike[str], tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """Write ``tensors`` and JSON-able ``meta`` to ``path`` atomically (temp file, fsync, rename)."""
    cpu = {name: t.detach().to("cpu").contiguous().clone() for name, t in tensors.items()}
    metadata = {"format": CHECKPOINT_FORMAT, "format_version": str(_VERSION), "state": json.dumps(meta)}
    return atomic_write(path, lambda tmp: safetensors.torch.save_file(cpu, tmp, metadata=metadata))


def read_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint written by :func:`write_checkpoint`.

    Raises:
        ValueError: a damaged file, not a discinvert checkpoint, or a newer version.
    """
    source = str(path)
    try:
        with safetensors.safe_open(source, framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    except (safetensors.SafetensorError, OSError, RuntimeError) as error:
        raise ValueError(f"{source}: not a readable checkpoint ({error}).") from None
    if metadata.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{source}: not a discinvert checkpoint (format {metadata.get('format')!r}).")
    if int(metadata.get("format_version", "0")) > _VERSION:
        raise ValueError(f"{source}: written by a newer discinvert; upgrade to resume it.")
    if "state" not in metadata:
        raise ValueError(f"{source}: the checkpoint's state is missing from its metadata.")
    meta = parse_json(metadata["state"], source=f"{source} (state)")
    if not isinstance(meta, dict):
        raise ValueError(f"{source}: expected the checkpoint's state to be a JSON object, got {type(meta).__name__}.")
    return tensors, meta


Best = tuple[float, int, dict[str, torch.Tensor]]
"""The lowest validation error so far, the step it was reached at, and the weights then."""


@dataclass
class Resumed:
    """Where a restored fit stands: the loop goes on after step ``step`` with these values."""

    step: int
    running: torch.Tensor | None
    best: Best
    last_error: float
    history: list[list[float]]


def _rank_prefix(path: Path, rank: int) -> str:
    name = path.name[: -len(".safetensors")] if path.name.endswith(".safetensors") else path.name
    return f"{name}.rank{rank}.step"


def rank_path(path: Path, rank: int, step: int) -> Path:
    """Where rank ``rank`` (> 0) of a distributed fit keeps its state for step ``step``."""
    return path.with_name(f"{_rank_prefix(path, rank)}{step}.safetensors")


def _rank_files(path: Path, rank: int) -> list[tuple[int, Path]]:
    prefix = _rank_prefix(path, rank)
    found = []
    for candidate in path.parent.glob(f"{glob.escape(prefix)}*.safetensors"):
        step = candidate.name[len(prefix): -len(".safetensors")]
        if step.isdigit():
            found.append((int(step), candidate))
    return sorted(found)


def _all_agree(problem: str, world_size: int) -> None:
    """A collective that also carries failures: every rank raises if any rank failed."""
    problems: list[Any] = [None] * world_size
    torch.distributed.all_gather_object(problems, problem)
    failed = [text for text in problems if text]
    if failed:
        raise ValueError(failed[0])


@dataclass
class Checkpointing:
    """Where and how often to checkpoint, and what must match to resume.

    Attributes:
        path: the checkpoint file (``.safetensors``).
        every: steps between checkpoints.
        resume: continue from ``path`` when it exists.
        identity: JSON-able description of the fit; a checkpoint with another identity
            is refused.
        also_accept: other values an identity key may hold in a checkpoint written by an
            older discinvert for the same fit (e.g. D's fingerprint before format version 2).
        generators: named ``torch.Generator`` objects whose states are saved.
        cuda_device: the CUDA device whose global RNG state is saved, if any.
        rank, world_size: under torchrun, this process's place. Rank 0 writes ``path``;
            every other rank writes its own RNG states and batch pool beside it, as
            ``<stem>.rank<r>.step<N>.safetensors`` (see :func:`rank_path`), before rank 0
            moves ``path`` on to step ``N``, so ``path`` always names a complete set.
    """

    path: Path
    every: int
    resume: bool
    identity: dict[str, Any]
    generators: dict[str, torch.Generator] = field(default_factory=dict)
    cuda_device: torch.device | None = None
    rank: int = 0
    world_size: int = 1
    also_accept: dict[str, Any] = field(default_factory=dict)
    behaviour: dict[str, Any] | None = None
    """The behavioural fingerprint of this fit's G and D (JSON form), written with each checkpoint."""
    check_behaviour: Callable[[Any], list[str]] | None = None
    """Given a checkpoint's stored behaviour, the ways this fit's G and D differ from it (compared with
    a tolerance, so not part of ``identity``); checkpoints written before it was recorded skip it."""
    committed_step: int | None = None
    """The step ``path`` names (set on resume and after each distributed save)."""

    def due(self, step: int, steps: int) -> bool:
        """Whether to checkpoint once ``step`` of ``steps`` steps are done (never after the last)."""
        return step % self.every == 0 and step < steps

    def save(
        self,
        step: int,
        *,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        source: BatchSource,
        running: torch.Tensor | None,
        best: Best,
        last_error: float,
        history: list[list[float]],
    ) -> None:
        """Write the fit's state after ``step`` steps: weights, Adam, RNGs, the batch pool, the record.

        Under torchrun every rank must call it at the same step (it is a collective).

        Raises:
            OSError: this process could not write ``path`` (a single process, or rank 0).
            ValueError: under torchrun, a rank other than 0 could not write its file (raised
                on every rank, before rank 0 writes).
        """
        tensors: dict[str, torch.Tensor] = {f"model.{k}": v for k, v in model.state_dict().items()}
        tensors.update({f"best.{k}": v for k, v in best[2].items()})
        opt_state = optimizer.state_dict()["state"]
        for index, state in opt_state.items():
            for key, value in state.items():
                tensors[f"opt.{index}.{key}"] = value if isinstance(value, torch.Tensor) else torch.tensor(value)
        for name, generator in self.generators.items():
            tensors[f"rng.{name}"] = generator.get_state()
        tensors["rng.global_cpu"] = torch.get_rng_state()
        if self.cuda_device is not None:
            tensors["rng.global_cuda"] = torch.cuda.get_rng_state(self.cuda_device)
        tensors.update({f"pool.{k}": v for k, v in source.state_tensors().items()})
        if running is not None:
            tensors["running"] = running
        meta = {
            "identity": self.identity,
            "step": step,
            "scheduler": scheduler.state_dict(),
            "lrs": [group["lr"] for group in optimizer.param_groups],
            "best_error": best[0] if math.isfinite(best[0]) else None,
            "best_step": best[1],
            "last_error": last_error if math.isfinite(last_error) else None,
            "history": history,
            **({} if self.behaviour is None else {"behaviour": self.behaviour}),
        }
        if self.world_size == 1:
            write_checkpoint(self.path, tensors, meta)
        else:
            self._save_distributed(step, tensors, meta)
        logger.debug("checkpoint at step %d written to %s", step, self.path)

    def restore(
        self,
        *,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        source: BatchSource,
    ) -> Resumed | None:
        """Load the saved state into ``model``, ``optimizer``, ``scheduler``, ``source`` and the RNGs.

        Returns:
            Where the fit stands, or ``None`` to start fresh: ``resume`` is off, or there
            is no checkpoint yet (under torchrun: rank 0 has none; every rank follows).

        Raises:
            ValueError: a damaged or newer checkpoint, or one of another fit; under torchrun
                also a rank whose own file is missing (raised on every rank).
        """
        if not self.resume:
            return None
        if self.world_size > 1:
            return self._restore_distributed(model, optimizer, scheduler, source)
        if not self.path.is_file():
            return None
        tensors, meta = read_checkpoint(self.path)
        self._check_identity(meta)
        return self._load_state(tensors, meta, model, optimizer, scheduler, source)

    def _save_distributed(self, step: int, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        problem = ""
        if self.rank > 0:
            try:
                write_checkpoint(rank_path(self.path, self.rank, step), tensors, meta)
                # Keep this step's file and the one rank 0's file names until it moves on; anything
                # else is stale (an earlier fit in the same place).
                for old_step, old in _rank_files(self.path, self.rank):
                    if old_step not in (step, self.committed_step):
                        old.unlink(missing_ok=True)
            except Exception as error:  # noqa: BLE001 - reported to every rank below instead of hanging them
                problem = f"rank {self.rank} could not write its checkpoint for step {step}: {error}"
        # Doubles as the barrier: only once every rank's step-N state is on disk may rank 0's file name step N.
        _all_agree(problem, self.world_size)
        if self.rank == 0:
            write_checkpoint(self.path, tensors, meta)
        self.committed_step = step

    def _check_identity(self, meta: dict[str, Any]) -> None:
        saved = meta.get("identity") or {}
        differing = sorted(
            k for k in set(saved) | set(self.identity)
            if saved.get(k) != self.identity.get(k) and not (k in self.also_accept and saved.get(k) == self.also_accept[k])
        )
        if differing:
            raise ValueError(
                f"{self.path}: this checkpoint belongs to another fit (differs in {', '.join(differing)}); "
                "resume with the same GAN and settings, or delete it / pass resume=False to start over."
            )
        if self.check_behaviour is not None and "behaviour" in meta:
            problems = self.check_behaviour(meta["behaviour"])
            if problems:
                raise ValueError(
                    f"{self.path}: this checkpoint belongs to a fit of another GAN ({'; '.join(problems)}); "
                    "resume with the same G and D, or delete it / pass resume=False to start over."
                )

    def _load_state(
        self,
        tensors: dict[str, torch.Tensor],
        meta: dict[str, Any],
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        source: BatchSource,
    ) -> Resumed:
        device = next(model.parameters()).device
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, strict=True)
        state: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in tensors.items():
            if key.startswith("opt."):
                _, index, name = key.split(".", 2)
                state.setdefault(int(index), {})[name] = value if name == "step" else value.to(device)
        optimizer.load_state_dict({"state": state, "param_groups": optimizer.state_dict()["param_groups"]})
        scheduler.load_state_dict(meta["scheduler"])
        for group, value in zip(optimizer.param_groups, meta["lrs"]):
            group["lr"] = value  # the scheduler's state does not carry the optimiser's current rate
        for name, generator in self.generators.items():
            generator.set_state(tensors[f"rng.{name}"])
        torch.set_rng_state(tensors["rng.global_cpu"])
        if self.cuda_device is not None and "rng.global_cuda" in tensors:
            torch.cuda.set_rng_state(tensors["rng.global_cuda"], self.cuda_device)
        source.load_state_tensors({k[5:]: v.to(device) for k, v in tensors.items() if k.startswith("pool.")})
        running = tensors["running"].to(device) if "running" in tensors else None
        best_state = {k[5:]: v.to(device) for k, v in tensors.items() if k.startswith("best.")}
        best_error = meta["best_error"] if meta["best_error"] is not None else math.inf
        last_error = meta["last_error"] if meta["last_error"] is not None else math.inf
        logger.info("resuming from %s at step %d", self.path, meta["step"])
        return Resumed(meta["step"], running, (best_error, meta["best_step"], best_state), last_error, meta["history"])

    def _restore_distributed(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        source: BatchSource,
    ) -> Resumed | None:
        """Every rank resumes from the step rank 0's file names, or all start fresh, or all raise."""
        verdict: list[Any] = [None]
        if self.rank == 0:
            try:
                if self.path.is_file():
                    tensors, meta = read_checkpoint(self.path)
                    self._check_identity(meta)
                    verdict = [("resume", int(meta["step"]))]
                else:
                    verdict = [("fresh", 0)]
            except Exception as error:  # noqa: BLE001 - every rank must hear of it, or the others hang
                verdict = [("error", f"{self.path}: cannot resume ({type(error).__name__}: {error})"
                            if not isinstance(error, ValueError) else str(error))]
        torch.distributed.broadcast_object_list(verdict, src=0)
        kind, value = verdict[0]
        if kind == "error":
            raise ValueError(value)
        if kind == "fresh":
            return None
        problem = ""
        restored = None
        try:
            if self.rank > 0:
                own = rank_path(self.path, self.rank, value)
                if not own.is_file():
                    raise ValueError(
                        f"{own}: missing; rank {self.rank} cannot resume step {value} of {self.path}. "
                        "Resume with the same number of processes and the checkpoint folder intact, or pass resume=False."
                    )
                tensors, meta = read_checkpoint(own)
                self._check_identity(meta)
            restored = self._load_state(tensors, meta, model, optimizer, scheduler, source)
        except Exception as error:  # noqa: BLE001 - every rank must hear of it, or the others hang
            problem = str(error) if isinstance(error, ValueError) else (
                f"rank {self.rank} cannot resume step {value} ({type(error).__name__}: {error})")
        _all_agree(problem, self.world_size)
        self.committed_step = value
        return restored
