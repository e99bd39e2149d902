"""The regression loop shared by the connection network and the naive-encoder baseline.

Fresh ``(inputs, targets)`` batches every step, MSE, Adam (β₁ = 0.5), linear warm-up
then cosine decay, validation on a fixed held-out set every ``eval_every`` steps, and
the weights with the lowest validation error kept. The loss is read from the device
only at validation points, so steps queue without host synchronisation. Optionally the
loop runs under DistributedDataParallel and writes resumable checkpoints
(:class:`~discinvert.checkpoint.Checkpointing` says where and how, and does the file work).
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from discinvert.acceleration import autocast_context
from discinvert.checkpoint import Best, Checkpointing
from discinvert.distributed import DistContext, broadcast_module, broadcast_scalar
from discinvert.pool import BatchSource

__all__ = ["TrainResult", "lr_factor", "make_adam", "train_regressor"]

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

    best: Best = (math.inf, 0, copy.deepcopy(model.state_dict()))
    last_error = math.inf
    history: list[list[float]] = []
    running: torch.Tensor | None = None
    start_step = 0
    restored = None if checkpointing is None else checkpointing.restore(
        model=model, optimizer=optimizer, scheduler=scheduler, source=next_batch)
    if restored is not None:
        start_step, running, best = restored.step, restored.running, restored.best
        last_error, history = restored.last_error, restored.history
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
            if checkpointing is not None and checkpointing.due(step + 1, steps):
                checkpointing.save(step + 1, model=model, optimizer=optimizer, scheduler=scheduler, source=next_batch,
                                   running=running, best=best, last_error=last_error, history=history)
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
