"""The regression loop shared by the connection network and the naive-encoder baseline.

Fresh ``(inputs, targets)`` batches every step, MSE, Adam (β₁ = 0.5), linear warm-up
then cosine decay, validation on a fixed held-out set every ``eval_every`` steps, and
the weights with the lowest validation error kept. The loss is read from the device
only at validation points, so steps queue without host synchronisation. Optionally the
loop runs under DistributedDataParallel and writes resumable checkpoints
(:class:`~discinvert.fitting.checkpoint.Checkpointing` says where and how, and does the file work).
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

from discinvert.fitting.acceleration import autocast_context
from discinvert.fitting.checkpoint import Best, Checkpointing
from discinvert.distributed import DistContext, broadcast_module, broadcast_scalar
from discinvert.fitting.pool import BatchSource
from discinvert.fitting.fit_config import ADAM_BETAS as BETAS  # one definition, beside the fit's other defaults

__all__ = ["SCHEDULES", "Schedule", "TrainResult", "ValidationPoint", "lr_factor", "make_adam", "train_regressor"]

logger = logging.getLogger(__name__)


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


SCHEDULES = ("cosine", "plateau")
"""The learning-rate schedules of :func:`train_regressor`."""

PLATEAU_TOLERANCE = 1e-3
"""A plateau: the best validation error improved by less than this fraction over ``patience`` validations."""

PLATEAU_DROP = 0.1
"""``schedule="plateau"``: the learning rate's factor at each plateau."""

PLATEAU_DROPS = 2
"""``schedule="plateau"``: drops before the next plateau stops the fit."""

COSINE_STOP_FACTOR = 0.5
"""``schedule="cosine"``: the rule counts only validations made once the rate has decayed to this fraction
of its peak (the second half of the cosine), so a plateau must last ``patience`` validations there to stop
the fit. At the peak rate a noisy fit can stall for hundreds of updates and then improve as the rate
decays (a 4-epoch WGAN-GP: best validation MSE 0.95 from update 700 to 1,200, 0.71 at 2,000,
``docs/fit_speed.md``), so a stall there is not convergence."""

COSINE_SPAN = 0.05
"""``schedule="cosine"``: a plateau spans at least this fraction of ``steps`` (and at least ``patience``
validations). The cosine's own decay sets the time scale of its progress: on a 20,000-update fit of the
bundled DCGAN the best validation error improved by under 0.1% over 500 updates at update 11,500, and
the same fit's best was 2.8% lower at the end of the decay (``docs/fit_speed.md``), so a window of
fixed length stopped long fits far from done. Fits of up to ``patience * eval_every / COSINE_SPAN``
updates (10,000 with the defaults) are unaffected."""


class Schedule:
    """The learning-rate factor per update and the convergence rule (see :func:`train_regressor`).

    A callable object (not a closure) so that ``LambdaLR.state_dict()`` saves its attributes
    and a resumed fit continues with the same drops and plateau window.
    """

    def __init__(self, kind: str, steps: int, warmup: int, patience: int | None, eval_every: int) -> None:
        self.kind = kind
        self.steps = steps
        self.warmup = warmup
        self.patience = patience
        self.window = patience  # validations a plateau spans
        if patience is not None and kind == "cosine":
            self.window = max(patience, math.ceil(COSINE_SPAN * steps / eval_every))
        self.drops: list[int] = []  # updates at which the rate dropped
        self.window_start = 0  # validations before this index do not count toward the next plateau
        self.bests: list[float] = []  # the best validation error after each validation

    def __call__(self, step: int) -> float:
        if self.kind == "cosine":
            return lr_factor(step, self.steps, self.warmup)
        base = (step + 1) / self.warmup if step < self.warmup else 1.0
        return base * PLATEAU_DROP ** len(self.drops)

    def plateaued(self, best_error: float) -> bool:
        """Record the best error after a validation; whether the last ``window`` validations plateaued."""
        self.bests.append(best_error)
        if self.window is None or len(self.bests) - self.window_start <= self.window:
            return False
        before = self.bests[-1 - self.window]
        return not best_error < before * (1.0 - PLATEAU_TOLERANCE)

    def after_validation(self, step: int, best_error: float) -> bool:
        """Apply the rule after a validation at ``step`` updates; ``True`` when the fit should stop.

        Under the cosine schedule only validations made once the rate has decayed to
        :data:`COSINE_STOP_FACTOR` of its peak count toward a plateau, and a plateau spans at least
        :data:`COSINE_SPAN` of ``steps``.
        """
        plateaued = self.plateaued(best_error)
        if self.kind == "cosine" and self(step) > COSINE_STOP_FACTOR:
            self.window_start = len(self.bests) - 1  # the next window starts here, as after a drop
            return False
        if not plateaued:
            return False
        if self.kind == "plateau" and len(self.drops) < PLATEAU_DROPS:
            self.drops.append(step)
            self.window_start = len(self.bests) - 1
            return False
        return True


def _log_stop(desc: str, stopped: int, steps: int, best_error: float, window: int | None) -> None:
    logger.info("%s: stopped at update %d of %d: the best validation error (%.5f) improved by less than %.2g%% over "
                "the last %d validations", desc, stopped, steps, best_error, 100 * PLATEAU_TOLERANCE, window)


@dataclass(frozen=True)
class ValidationPoint:
    """One validation of a fit, as handed to an ``on_validation`` callback.

    Attributes:
        step: updates done so far (1-based count).
        steps: the fit's ceiling on updates.
        error: the held-out validation MSE of the current weights.
        best_error: the lowest validation MSE so far (``error`` included).
        seconds: the fit's wall time so far, without the time spent in callbacks.
        network: the network being fit, in eval mode with its current weights; the callback
            must not change it (read it, or copy its ``state_dict``). Under ``fit_inverter``'s
            default ``cn_standardize=True`` it standardises its inputs through a forward pre-hook, so
            calling it on raw features is right, but a copied ``state_dict`` holds weights for
            standardised features (the statistics are folded into them when the stage ends).
    """

    step: int
    steps: int
    error: float
    best_error: float
    seconds: float
    network: nn.Module


OnValidation = Callable[[ValidationPoint], None]


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
    stopped: int | None = None
    lr_drops: list[int] = field(default_factory=list)


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
    on_validation: OnValidation | None = None,
    schedule: str = "cosine",
    patience: int | None = None,
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
        schedule, patience: the learning rate and when to stop. After a linear warm-up
            (5% of ``steps``, at most 100), ``"cosine"`` decays to 1% of ``lr`` at ``steps``;
            ``"plateau"`` holds ``lr`` and multiplies it by :data:`PLATEAU_DROP` at each plateau.
            A plateau is ``patience`` validations in which the best validation error improved by
            less than :data:`PLATEAU_TOLERANCE` (relative); under ``"cosine"`` it counts only once
            the rate has decayed to :data:`COSINE_STOP_FACTOR` of its peak and spans at least
            :data:`COSINE_SPAN` of ``steps``. It stops the fit, except that under
            ``"plateau"`` the first :data:`PLATEAU_DROPS` plateaus drop the rate instead.
            ``steps`` is the ceiling; ``patience=None`` never stops early.
        on_validation: called after each validation with a :class:`ValidationPoint`; the time
            it takes is left out of the recorded seconds (e.g. a benchmark scoring images).

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
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule: expected one of {SCHEDULES}, got {schedule!r}.")
    rule = Schedule(schedule, steps, warmup, patience, eval_every)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, rule)
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
        last_error, history = restored.last_error, restored.history  # `rule` restored in place by the scheduler
    started = time.perf_counter()
    elapsed_before = history[-1][3] if history else 0.0
    quiet = distributed and dist_ctx.rank != 0  # type: ignore[union-attr]
    stopped: int | None = None
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
                if on_validation is not None:
                    paused = time.perf_counter()
                    model.eval()
                    with torch.no_grad(), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                        on_validation(ValidationPoint(step + 1, steps, last_error, best[0], seconds, model))
                    model.train()
                    started += time.perf_counter() - paused
                drops = len(rule.drops)
                if rule.after_validation(step + 1, best[0]) and step + 1 < steps:
                    stopped = step + 1
                elif len(rule.drops) > drops:
                    logger.info("%s: plateau at update %d (best %.5f); learning rate x%g", desc, step + 1, best[0], PLATEAU_DROP)
            if stopped is None and checkpointing is not None and checkpointing.due(step + 1, steps):
                checkpointing.save(step + 1, model=model, optimizer=optimizer, scheduler=scheduler, source=next_batch,
                                   running=running, best=best, last_error=last_error, history=history)
            if stopped is not None:  # no checkpoint at the stop: resuming from it would train on past it
                _log_stop(desc, stopped, steps, best[0], rule.window)
                bar.total = bar.n
                break
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
                       elapsed_before + time.perf_counter() - started, history, start_step, stopped, list(rule.drops))
