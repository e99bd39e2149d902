"""The regression loop shared by the connection network and the naive-encoder baseline.

Fresh ``(inputs, targets)`` batches every step, MSE, Adam (β₁ = 0.5), linear warm-up
then cosine decay, validation on a fixed held-out set every ``eval_every`` steps, and
the weights with the lowest validation error kept. The loss is read from the device
only at validation points, so steps queue without host synchronisation.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

__all__ = ["TrainResult", "lr_factor", "train_regressor"]

logger = logging.getLogger(__name__)

BETAS = (0.5, 0.999)  # the paper authors' released code used beta1 = 0.5


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


def train_regressor(
    model: nn.Module,
    next_batch: Callable[[], tuple[torch.Tensor, torch.Tensor]],
    val_inputs: torch.Tensor,
    val_targets: torch.Tensor,
    *,
    steps: int,
    lr: float,
    batch_size: int,
    eval_every: int,
    progress: bool | None,
    desc: str,
) -> TrainResult:
    """Train ``model`` to map inputs to flat targets; return its best validation state.

    Args:
        model: maps ``(B, ...)`` inputs to ``(B, D)`` predictions; trained in place.
        next_batch: returns a fresh ``(inputs, targets)`` batch, built without grad.
        val_inputs, val_targets: the fixed held-out set; ``val_targets`` is ``(V, D)``.
        steps, lr, batch_size, eval_every: the schedule; ``batch_size`` also sets the
            validation chunk size.
        progress: tqdm bar (``None``: on a terminal only).
        desc: the bar's label.

    Raises:
        ValueError: the validation error was never finite (divergence).
    """
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, betas=BETAS)
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
        return float(error) / val_targets.numel()

    best_error, best_step, best_state = math.inf, 0, copy.deepcopy(model.state_dict())
    last_error = math.inf
    history: list[list[float]] = []
    started = time.perf_counter()
    bar = tqdm(total=steps, desc=desc, unit="step", disable=(None if progress is None else not progress), dynamic_ncols=True)
    try:
        model.train()
        running = None
        for step in range(steps):
            inputs, targets = next_batch()
            loss = F.mse_loss(model(inputs), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            running = loss.detach() if running is None else running + loss.detach()
            bar.update(1)
            if (step + 1) % eval_every == 0 or step + 1 == steps:
                last_error = validate()
                train_loss = float(running) / ((step % eval_every) + 1)
                running = None
                history.append([step + 1, round(train_loss, 6), round(last_error, 6), round(time.perf_counter() - started, 3)])
                if last_error < best_error:
                    best_error, best_step = last_error, step + 1
                    best_state = copy.deepcopy(model.state_dict())
                bar.set_postfix(loss=f"{train_loss:.4f}", val=f"{last_error:.4f}", best=f"{best_error:.4f}")
                logger.debug("%s step %d: train %.5f, validation %.5f", desc, step + 1, train_loss, last_error)
    finally:
        bar.close()
    if not math.isfinite(best_error):
        raise ValueError(
            f"fit diverged: the validation error was never finite (last {last_error}); "
            "lower lr or check that G's outputs and D's features are finite."
        )
    model.eval()
    return TrainResult(best_state, best_error, best_step, last_error, time.perf_counter() - started, history)
