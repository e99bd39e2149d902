"""The self-generated stage: a regression on an unlimited stream of fresh pairs, for the connection network
and the naive-encoder baseline.

Fresh ``(inputs, targets)`` batches every update, MSE, Adam with
:data:`~discinvert.fitting.fit_config.ADAM_BETAS`, a linear warm-up then the :class:`Schedule`, and the
weights of lowest validation error on a fixed held-out set kept (:func:`~discinvert.fitting.loop.train_loop`
runs the updates and validations). Optionally the stage runs under DistributedDataParallel and writes
resumable checkpoints (:class:`~discinvert.fitting.checkpoint.Checkpointing` says where and how, and does
the file work).
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from discinvert.fitting.acceleration import autocast_context
from discinvert.fitting.checkpoint import Checkpointing
from discinvert.fitting.loop import Checkpoints, Labels, Plan, Runtime, Validated, train_loop
from discinvert.fitting.updates import Updater, lr_factor, make_adam
from discinvert.fitting.pool import BatchSource

__all__ = ["SCHEDULES", "Schedule", "TrainResult", "ValidationPoint", "train_regressor"]

logger = logging.getLogger(__name__)

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
decays (as a young WGAN-GP's fit did, ``docs/speed.md``), so a stall there is not convergence."""

COSINE_SPAN = 0.05
"""``schedule="cosine"``: a plateau spans at least this fraction of ``steps`` (and at least ``patience``
validations). The cosine's own decay sets the time scale of its progress: on a long fit of the bundled
DCGAN the best validation error stalled mid-decay and still fell markedly by the end of the decay
(``docs/speed.md``), so a window of fixed length stopped long fits far from done. Fits of up to
``patience * eval_every / COSINE_SPAN`` updates (10,000 with the defaults) are unaffected."""


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
    validation: tuple[torch.Tensor, torch.Tensor],
    plan: Plan,
    runtime: Runtime,
    *,
    desc: str,
    checkpointing: Checkpointing | None = None,
    on_validation: OnValidation | None = None,
    schedule: str = "cosine",
    patience: int | None = None,
) -> TrainResult:
    """Train ``model`` to map inputs to flat targets; return its best validation state.

    Args:
        model: maps ``(B, ...)`` inputs to ``(B, D)`` predictions, on ``runtime.device``; trained in place.
        next_batch: a :class:`BatchSource` returning fresh ``(inputs, targets)``, built without grad.
        validation: the fixed held-out set ``(inputs, targets)``; ``targets`` is ``(V, D)``.
        plan: updates, peak learning rate, batch size (also the validation chunk size), validations.
        runtime: the device; under torchrun (``dist_ctx``) the model is wrapped in
            DistributedDataParallel, validation decisions follow rank 0, and rank 0's best weights
            are broadcast at the end; ``autocast_dtype`` runs the model's training forward pass under
            ``torch.autocast`` (the loss, the weights and Adam stay float32; validation runs in full
            precision); the progress bar.
        desc: the bar's label.
        checkpointing: write resumable checkpoints (under torchrun: one file per rank).
        on_validation: called after each validation with a :class:`ValidationPoint`; the time
            it takes is left out of the recorded seconds (e.g. a benchmark scoring images).
        schedule, patience: the learning rate and when to stop. After a linear warm-up
            (5% of ``plan.steps``, at most 100), ``"cosine"`` decays to 1% of ``plan.lr`` at the last update;
            ``"plateau"`` holds ``plan.lr`` and multiplies it by :data:`PLATEAU_DROP` at each plateau.
            A plateau is ``patience`` validations in which the best validation error improved by
            less than :data:`PLATEAU_TOLERANCE` (relative); under ``"cosine"`` it counts only once
            the rate has decayed to :data:`COSINE_STOP_FACTOR` of its peak and spans at least
            :data:`COSINE_SPAN` of the updates. It stops the fit, except that under
            ``"plateau"`` the first :data:`PLATEAU_DROPS` plateaus drop the rate instead.
            ``plan.steps`` is the ceiling; ``patience=None`` never stops early.

    Raises:
        ValueError: the validation error was never finite (divergence); a checkpoint of
            another fit.
    """
    device = next(model.parameters()).device  # with its index (``runtime.device`` may be a bare "cuda")
    forward_model: nn.Module = model
    if runtime.distributed:
        forward_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    optimizer = make_adam(model, plan.lr)
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule: expected one of {SCHEDULES}, got {schedule!r}.")
    rule = Schedule(schedule, plan.steps, max(1, min(100, plan.steps // 20)), patience, plan.eval_every)
    val_inputs, val_targets = validation
    size = plan.batch_size

    def update(step: int) -> torch.Tensor:
        inputs, targets = next_batch()
        with autocast_context(device, runtime.autocast_dtype):
            prediction = forward_model(inputs)
        return F.mse_loss(prediction.float(), targets)

    def validate() -> float:
        error = sum(F.mse_loss(model(val_inputs[i : i + size]), val_targets[i : i + size], reduction="sum")
                    for i in range(0, val_targets.shape[0], size))
        return float(error) / val_targets.numel()

    def after_validation(point: Validated) -> bool:
        logger.debug("%s step %d: train %.5f, validation %.5f", desc, point.step, point.train_loss, point.error)
        if on_validation is not None:
            with point.clock.paused():
                model.eval()
                with torch.no_grad(), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                    on_validation(ValidationPoint(point.step, point.steps, point.error, point.best_error,
                                                  point.seconds, model))
                model.train()
        drops = len(rule.drops)
        if rule.after_validation(point.step, point.best_error) and point.step < point.steps:
            _log_stop(desc, point.step, point.steps, point.best_error, rule.window)
            return True
        if len(rule.drops) > drops:
            logger.info("%s: plateau at update %d (best %.5f); learning rate x%g", desc, point.step,
                        point.best_error, PLATEAU_DROP)
        return False

    labels = Labels(desc, lambda last: f"fit diverged: the validation error was never finite (last {last}); "
                    "lower lr or check that G's outputs and D's features are finite.", loss=True)
    done = train_loop(model, update, validate, Updater(model, optimizer, schedule=rule), plan, runtime, labels,
                      checkpoints=None if checkpointing is None else Checkpoints(checkpointing, next_batch),
                      after_validation=after_validation)
    best_error, best_step, _ = done.best
    return TrainResult(copy.deepcopy(model.state_dict()), best_error, best_step, done.last_error, done.seconds,
                       done.history, done.resumed_from, done.stopped, list(rule.drops))  # type: ignore[arg-type]
