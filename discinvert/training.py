"""The regression loop shared by the connection network and the naive-encoder baseline.

Fresh ``(inputs, targets)`` batches every step, MSE, Adam (β₁ = 0.5), linear warm-up
then cosine decay, validation on a fixed held-out set every ``eval_every`` steps, and
the weights with the lowest validation error kept. The loss is read from the device
only at validation points, so steps queue without host synchronisation. Optionally the
loop runs under DistributedDataParallel and writes resumable checkpoints.
"""

from __future__ import annotations

import copy
import glob
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from discinvert.acceleration import autocast_context
from discinvert.checkpoint import read_checkpoint, write_checkpoint
from discinvert.distributed import DistContext, broadcast_module, broadcast_scalar

__all__ = ["BatchSource", "Checkpointing", "TrainResult", "lr_factor", "make_adam", "train_regressor"]

logger = logging.getLogger(__name__)

BETAS = (0.5, 0.999)  # the paper authors' released code used beta1 = 0.5


def make_adam(model: nn.Module, lr: float) -> torch.optim.Adam:
    """Adam with :data:`BETAS`, fused into one kernel per step where torch supports it.

    The fused kernel cut the CN's optimiser step from about 13 ms to 2 ms on 2 CPU cores
    (``docs/fit_speed.md``); older torch builds without it get the default implementation.
    """
    try:
        return torch.optim.Adam(model.parameters(), lr=lr, betas=BETAS, fused=True)
    except (RuntimeError, ValueError, TypeError) as error:  # no fused kernel for this device or build
        logger.debug("fused Adam unavailable (%s); using the default implementation", error)
        return torch.optim.Adam(model.parameters(), lr=lr, betas=BETAS)


def lr_factor(step: int, steps: int, warmup: int) -> float:
    """Linear warm-up, then cosine decay to 1% of the peak learning rate."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return 0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


class BatchSource(Protocol):
    """Makes a fresh ``(inputs, targets)`` batch per call; its state can be saved for resuming."""

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


@dataclass
class Checkpointing:
    """Where and how often to checkpoint, and what must match to resume.

    Attributes:
        path: the checkpoint file (``.safetensors``).
        every: steps between checkpoints.
        resume: continue from ``path`` when it exists.
        identity: JSON-able description of the fit; a checkpoint with another identity
            is refused.
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
    committed_step: int | None = None
    """The step ``path`` names (set on resume and after each distributed save)."""


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


@dataclass
class TrainResult:
    """What :func:`train_regressor` found: the best weights and the record of the run."""

    best_state: dict[str, torch.Tensor]
    best_error: float
    best_step: int
    last_error: float
    seconds: float
    history: list[list[float]] = field(default_factory=list)
    resumed_from: int = 0


def _save(
    checkpointing: Checkpointing,
    step: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    source: BatchSource,
    running: torch.Tensor | None,
    best: tuple[float, int, dict[str, torch.Tensor]],
    last_error: float,
    history: list[list[float]],
) -> None:
    tensors: dict[str, torch.Tensor] = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors.update({f"best.{k}": v for k, v in best[2].items()})
    opt_state = optimizer.state_dict()["state"]
    for index, state in opt_state.items():
        for key, value in state.items():
            tensors[f"opt.{index}.{key}"] = value if isinstance(value, torch.Tensor) else torch.tensor(value)
    for name, generator in checkpointing.generators.items():
        tensors[f"rng.{name}"] = generator.get_state()
    tensors["rng.global_cpu"] = torch.get_rng_state()
    if checkpointing.cuda_device is not None:
        tensors["rng.global_cuda"] = torch.cuda.get_rng_state(checkpointing.cuda_device)
    tensors.update({f"pool.{k}": v for k, v in source.state_tensors().items()})
    if running is not None:
        tensors["running"] = running
    meta = {
        "identity": checkpointing.identity,
        "step": step,
        "scheduler": scheduler.state_dict(),
        "lrs": [group["lr"] for group in optimizer.param_groups],
        "best_error": best[0] if math.isfinite(best[0]) else None,
        "best_step": best[1],
        "last_error": last_error if math.isfinite(last_error) else None,
        "history": history,
    }
    if checkpointing.world_size == 1:
        write_checkpoint(checkpointing.path, tensors, meta)
    else:
        _save_distributed(checkpointing, step, tensors, meta)
    logger.debug("checkpoint at step %d written to %s", step, checkpointing.path)


def _all_agree(problem: str, world_size: int) -> None:
    """A collective that also carries failures: every rank raises if any rank failed."""
    problems: list[Any] = [None] * world_size
    torch.distributed.all_gather_object(problems, problem)
    failed = [text for text in problems if text]
    if failed:
        raise ValueError(failed[0])


def _save_distributed(checkpointing: Checkpointing, step: int, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    problem = ""
    if checkpointing.rank > 0:
        try:
            write_checkpoint(rank_path(checkpointing.path, checkpointing.rank, step), tensors, meta)
            # Keep this step's file and the one rank 0's file names until it moves on; anything
            # else is stale (an earlier fit in the same place).
            for old_step, old in _rank_files(checkpointing.path, checkpointing.rank):
                if old_step not in (step, checkpointing.committed_step):
                    old.unlink(missing_ok=True)
        except Exception as error:  # noqa: BLE001 - reported to every rank below instead of hanging them
            problem = f"rank {checkpointing.rank} could not write its checkpoint for step {step}: {error}"
    # Doubles as the barrier: only once every rank's step-N state is on disk may rank 0's file name step N.
    _all_agree(problem, checkpointing.world_size)
    if checkpointing.rank == 0:
        write_checkpoint(checkpointing.path, tensors, meta)
    checkpointing.committed_step = step


def _restore(
    checkpointing: Checkpointing,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    source: BatchSource,
) -> tuple[int, torch.Tensor | None, tuple[float, int, dict[str, torch.Tensor]], float, list[list[float]]]:
    tensors, meta = read_checkpoint(checkpointing.path)
    _check_identity(checkpointing, meta)
    return _load_state(checkpointing, tensors, meta, model, optimizer, scheduler, source)


def _check_identity(checkpointing: Checkpointing, meta: dict[str, Any]) -> None:
    if meta.get("identity") != checkpointing.identity:
        saved = meta.get("identity") or {}
        differing = sorted(k for k in set(saved) | set(checkpointing.identity) if saved.get(k) != checkpointing.identity.get(k))
        raise ValueError(
            f"{checkpointing.path}: this checkpoint belongs to another fit (differs in {', '.join(differing)}); "
            "resume with the same GAN and settings, or delete it / pass resume=False to start over."
        )


def _load_state(
    checkpointing: Checkpointing,
    tensors: dict[str, torch.Tensor],
    meta: dict[str, Any],
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    source: BatchSource,
) -> tuple[int, torch.Tensor | None, tuple[float, int, dict[str, torch.Tensor]], float, list[list[float]]]:
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
    for name, generator in checkpointing.generators.items():
        generator.set_state(tensors[f"rng.{name}"])
    torch.set_rng_state(tensors["rng.global_cpu"])
    if checkpointing.cuda_device is not None and "rng.global_cuda" in tensors:
        torch.cuda.set_rng_state(tensors["rng.global_cuda"], checkpointing.cuda_device)
    source.load_state_tensors({k[5:]: v.to(device) for k, v in tensors.items() if k.startswith("pool.")})
    running = tensors["running"].to(device) if "running" in tensors else None
    best_state = {k[5:]: v.to(device) for k, v in tensors.items() if k.startswith("best.")}
    best_error = meta["best_error"] if meta["best_error"] is not None else math.inf
    last_error = meta["last_error"] if meta["last_error"] is not None else math.inf
    logger.info("resuming from %s at step %d", checkpointing.path, meta["step"])
    return meta["step"], running, (best_error, meta["best_step"], best_state), last_error, meta["history"]


def _restore_distributed(
    checkpointing: Checkpointing,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    source: BatchSource,
) -> tuple[int, torch.Tensor | None, tuple[float, int, dict[str, torch.Tensor]], float, list[list[float]]] | None:
    """Every rank resumes from the step rank 0's file names, or all start fresh, or all raise."""
    verdict: list[Any] = [None]
    if checkpointing.rank == 0:
        try:
            if checkpointing.path.is_file():
                tensors, meta = read_checkpoint(checkpointing.path)
                _check_identity(checkpointing, meta)
                verdict = [("resume", int(meta["step"]))]
            else:
                verdict = [("fresh", 0)]
        except Exception as error:  # noqa: BLE001 - every rank must hear of it, or the others hang
            verdict = [("error", f"{checkpointing.path}: cannot resume ({type(error).__name__}: {error})"
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
        if checkpointing.rank > 0:
            own = rank_path(checkpointing.path, checkpointing.rank, value)
            if not own.is_file():
                raise ValueError(
                    f"{own}: missing; rank {checkpointing.rank} cannot resume step {value} of {checkpointing.path}. "
                    "Resume with the same number of processes and the checkpoint folder intact, or pass resume=False."
                )
            tensors, meta = read_checkpoint(own)
            _check_identity(checkpointing, meta)
        restored = _load_state(checkpointing, tensors, meta, model, optimizer, scheduler, source)
    except Exception as error:  # noqa: BLE001 - every rank must hear of it, or the others hang
        problem = str(error) if isinstance(error, ValueError) else (
            f"rank {checkpointing.rank} cannot resume step {value} ({type(error).__name__}: {error})")
    _all_agree(problem, checkpointing.world_size)
    checkpointing.committed_step = value
    return restored


def train_regressor(
    model: nn.Module,
    next_batch: BatchSource,
    val_inputs: torch.Tensor,
    val_targets: torch.Tensor,
    *,
    steps: int,
    lr: float,
    batch_size: int,
    eval_every: int,
    progress: bool | None,
    desc: str,
    dist_ctx: DistContext | None = None,
    checkpointing: Checkpointing | None = None,
    autocast_dtype: torch.dtype | None = None,
) -> TrainResult:
    """Train ``model`` to map inputs to flat targets; return its best validation state.

    Args:
        model: maps ``(B, ...)`` inputs to ``(B, D)`` predictions; trained in place.
        next_batch: a :class:`BatchSource` returning fresh ``(inputs, targets)``, built without grad.
        val_inputs, val_targets: the fixed held-out set; ``val_targets`` is ``(V, D)``.
        steps, lr, batch_size, eval_every: the schedule; ``batch_size`` also sets the
            validation chunk size.
        progress: tqdm bar (``None``: on a terminal only; always off on ranks other than 0).
        desc: the bar's label.
        dist_ctx: under torchrun, the process group context: the model is wrapped in
            DistributedDataParallel, validation decisions follow rank 0, and rank 0's
            best weights are broadcast at the end.
        checkpointing: write resumable checkpoints (under torchrun: one file per rank).
        autocast_dtype: run the model's training forward pass under ``torch.autocast`` in
            this dtype (the loss, the weights and Adam stay float32; validation runs in full
            precision).

    Raises:
        ValueError: the validation error was never finite (divergence); a checkpoint of
            another fit.
    """
    distributed = dist_ctx is not None and dist_ctx.enabled
    device = next(model.parameters()).device
    forward_model: nn.Module = model
    if distributed:
        forward_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    optimizer = make_adam(model, lr)
    warmup = max(1, min(100, steps // 20))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, steps, warmup))
    n_val = val_targets.shape[0]

    def validate() -> float:
        model.eval()
        with torch.no_grad():
            error = sum(
                F.mse_loss(model(val_inputs[i : i + batch_size]), val_targets[i : i + batch_size], reduction="sum")
                for i in range(0, n_val, batch_size)
            )
        model.train()
        value = float(error) / val_targets.numel()
        # Every rank follows rank 0's verdict, so all ranks keep the same best step.
        return broadcast_scalar(value, device) if distributed else value

    best: tuple[float, int, dict[str, torch.Tensor]] = (math.inf, 0, copy.deepcopy(model.state_dict()))
    last_error = math.inf
    history: list[list[float]] = []
    running: torch.Tensor | None = None
    start_step = 0
    if checkpointing is not None and checkpointing.resume and checkpointing.world_size > 1:
        restored = _restore_distributed(checkpointing, model, optimizer, scheduler, next_batch)
        if restored is not None:
            start_step, running, best, last_error, history = restored
    elif checkpointing is not None and checkpointing.resume and checkpointing.path.is_file():
        start_step, running, best, last_error, history = _restore(checkpointing, model, optimizer, scheduler, next_batch)
    started = time.perf_counter()
    elapsed_before = history[-1][3] if history else 0.0
    quiet = distributed and dist_ctx.rank != 0  # type: ignore[union-attr]
    bar = tqdm(total=steps, initial=start_step, desc=desc, unit="step", dynamic_ncols=True,
               disable=True if quiet else (None if progress is None else not progress))
    try:
        model.train()
        for step in range(start_step, steps):
            inputs, targets = next_batch()
            with autocast_context(device, autocast_dtype):
                prediction = forward_model(inputs)
            loss = F.mse_loss(prediction.float(), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            running = loss.detach() if running is None else running + loss.detach()
            bar.update(1)
            if (step + 1) % eval_every == 0 or step + 1 == steps:
                last_error = validate()
                train_loss = float(running) / ((step % eval_every) + 1)  # type: ignore[arg-type]
                running = None
                seconds = elapsed_before + time.perf_counter() - started
                history.append([step + 1, round(train_loss, 6), round(last_error, 6), round(seconds, 3)])
                if last_error < best[0]:
                    best = (last_error, step + 1, copy.deepcopy(model.state_dict()))
                bar.set_postfix(loss=f"{train_loss:.4f}", val=f"{last_error:.4f}", best=f"{best[0]:.4f}")
                logger.debug("%s step %d: train %.5f, validation %.5f", desc, step + 1, train_loss, last_error)
            if checkpointing is not None and (step + 1) % checkpointing.every == 0 and step + 1 < steps:
                _save(checkpointing, step + 1, model, optimizer, scheduler, next_batch, running, best, last_error, history)
    finally:
        bar.close()
    if not math.isfinite(best[0]):
        raise ValueError(
            f"fit diverged: the validation error was never finite (last {last_error}); "
            "lower lr or check that G's outputs and D's features are finite."
        )
    model.load_state_dict(best[2])
    if distributed:
        broadcast_module(model)  # rank 0's weights and BatchNorm statistics everywhere
    model.eval()
    return TrainResult(copy.deepcopy(model.state_dict()), best[0], best[1], last_error,
                       elapsed_before + time.perf_counter() - started, history, start_step)
