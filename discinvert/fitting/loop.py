"""The training loop every stage of a fit runs: updates, validations, the best weights, the record.

:func:`train_loop` takes a model, the stage's loss per update and its validation, and does the
rest the same way for every stage: the tqdm bar; a validation every ``eval_every`` updates and
after the last (``[update, train loss, validation error, seconds]`` into the history); the weights
of lowest validation error kept; resumable checkpoints where the stage has them; under torchrun
rank 0's validation verdicts followed and its best weights broadcast at the end; a ``ValueError``
when the validation error was never finite. The train loss is read from the device only at
validations, so updates queue without host synchronisation.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from discinvert.distributed import DistContext, broadcast_module, broadcast_scalar
from discinvert.fitting.checkpoint import Best, Checkpointing
from discinvert.fitting.updates import Updater
from discinvert.fitting.pool import BatchSource

__all__ = ["VALIDATION_CHUNK", "Checkpoints", "Clock", "Labels", "LoopResult", "Plan", "Runtime", "Validated",
           "train_loop"]

VALIDATION_CHUNK = 256
"""Held-out images per validation pass of the real-image stage and the step networks."""


@dataclass(frozen=True)
class Plan:
    """A stage's schedule.

    Attributes:
        steps: updates.
        lr: the (peak) Adam learning rate.
        batch_size: training examples per update.
        eval_every: updates between validations (there is one after the last update too).
    """

    steps: int
    lr: float
    batch_size: int
    eval_every: int


@dataclass(frozen=True)
class Runtime:
    """Where and how a stage runs.

    Attributes:
        device: where G, D and the networks run.
        dist_ctx: under torchrun, the process group context (``None``: one process).
        autocast_dtype: run the stage's training forward passes under ``torch.autocast`` in this
            dtype (``None``: full precision); the losses, the weights and Adam stay float32, and
            validations run in full precision.
        progress: tqdm bar (``None``: on a terminal only; always off on ranks other than 0).
    """

    device: torch.device
    dist_ctx: DistContext | None = None
    autocast_dtype: torch.dtype | None = None
    progress: bool | None = None

    @property
    def distributed(self) -> bool:
        """Whether several processes train together."""
        return self.dist_ctx is not None and self.dist_ctx.enabled

    @property
    def quiet(self) -> bool:
        """Whether this process shows no progress bar (a rank other than 0)."""
        return self.distributed and self.dist_ctx.rank != 0  # type: ignore[union-attr]


@dataclass(frozen=True)
class Labels:
    """How a stage shows itself.

    Attributes:
        desc: the progress bar's label.
        diverged: the divergence message, given the last validation error.
        error: the validation error's name on the bar.
        loss: whether the bar shows the train loss too.
    """

    desc: str
    diverged: Callable[[float], str]
    error: str = "val"
    loss: bool = False

    def postfix(self, train_loss: float, error: float, best_error: float) -> dict[str, str]:
        """The bar's figures after a validation."""
        shown = {"loss": f"{train_loss:.4f}"} if self.loss else {}
        return {**shown, self.error: f"{error:.4f}", "best": f"{best_error:.4f}"}


class Clock:
    """A stage's wall time in seconds, from ``before`` (a resumed fit's) on, less the time spent :meth:`paused`."""

    def __init__(self, before: float = 0.0) -> None:
        self.before = before
        self.started = time.perf_counter()

    def seconds(self) -> float:
        return self.before + time.perf_counter() - self.started

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Leave the time spent inside out of :meth:`seconds` (e.g. a user's callback)."""
        paused = time.perf_counter()
        try:
            yield
        finally:
            self.started += time.perf_counter() - paused


@dataclass(frozen=True)
class Validated:
    """One validation, as handed to a stage's ``after_validation``.

    Attributes:
        step: updates done (1-based count); ``steps`` the stage's updates.
        train_loss: the mean train loss since the last validation.
        error, best_error: the validation error of the current weights, and the lowest so far.
        seconds: the stage's wall time so far; ``clock`` pauses it.
    """

    step: int
    steps: int
    train_loss: float
    error: float
    best_error: float
    seconds: float
    clock: Clock


@dataclass(frozen=True)
class Checkpoints:
    """A loop's resumable checkpoints: where and how, and the batch source whose state they carry."""

    checkpointing: Checkpointing
    source: BatchSource


@dataclass
class LoopResult:
    """What :func:`train_loop` did.

    Attributes:
        best: the lowest validation error, the update it was reached at (0: before the first) and
            the weights then (the model holds them now).
        last_error: the last validation error.
        history: ``[update, train loss, validation error, seconds]`` at each validation; with
            ``validate_first`` it starts with ``[0, None, error, 0.0]``.
        seconds: the stage's wall time.
        start_error: the validation error before the first update (``validate_first``), else ``None``.
        resumed_from: the update a checkpoint resumed from (0: a fresh start).
        stopped: the update ``after_validation`` stopped at, else ``None``.
    """

    best: Best
    last_error: float
    history: list[list[float | None]]
    seconds: float
    start_error: float | None
    resumed_from: int
    stopped: int | None


def train_loop(model: nn.Module, update: Callable[[int], torch.Tensor], validate: Callable[[], float],
               updater: Updater, plan: Plan, runtime: Runtime, labels: Labels, *, validate_first: bool = False,
               checkpoints: Checkpoints | None = None,
               after_validation: Callable[[Validated], bool] | None = None) -> LoopResult:
    """Train ``model`` for ``plan.steps`` updates; leave it holding its best weights, in eval mode.

    Args:
        model: the network trained, in place.
        update: ``update(step) -> loss`` for update ``step`` (0-based): the stage's batch and loss, a
            scalar with a graph to ``model``'s weights; ``updater`` then steps on it.
        validate: the validation error of ``model``'s current weights (a float; run in eval mode without
            gradients here; under torchrun rank 0's value is followed by every rank).
        updater: turns each loss into an update of ``model``.
        plan: ``plan.steps`` and ``plan.eval_every`` are read here.
        runtime: its ``device``, ``dist_ctx`` and ``progress`` are read here.
        labels: the bar's label and figures, and the divergence message.
        validate_first: validate before the first update too (update 0 of the history).
        checkpoints: restore the loop from a checkpoint before the first update, and write one whenever
            :meth:`Checkpointing.due` says so (never at an early stop).
        after_validation: called after each validation; ``True`` stops the loop there.

    Raises:
        ValueError: the validation error was never finite (``labels.diverged``); a checkpoint of another fit.
    """
    distributed = runtime.distributed

    def check() -> float:
        model.eval()
        with torch.no_grad():
            value = validate()
        model.train()
        # Every rank follows rank 0's verdict, so all ranks keep the same best step.
        return broadcast_scalar(value, runtime.device) if distributed else value

    best: Best = (math.inf, 0, copy.deepcopy(model.state_dict()))
    last_error = math.inf
    history: list[list[float | None]] = []
    running: torch.Tensor | None = None  # summed on the device, read at validations only
    start_step = 0
    restored = None if checkpoints is None else checkpoints.checkpointing.restore(
        model=model, optimizer=updater.optimizer, scheduler=updater.scheduler,  # type: ignore[arg-type]
        source=checkpoints.source)
    if restored is not None:
        start_step, running, best = restored.step, restored.running, restored.best
        last_error, history = restored.last_error, restored.history  # type: ignore[assignment]
    clock = Clock(history[-1][3] if history else 0.0)  # type: ignore[arg-type]
    start_error = None
    if validate_first:
        start_error = check()
        best = (start_error, 0, copy.deepcopy(model.state_dict()))
        history.append([0, None, round(start_error, 6), 0.0])
    stopped: int | None = None
    bar = tqdm(total=plan.steps, initial=start_step, desc=labels.desc, unit="step", dynamic_ncols=True,
               disable=True if runtime.quiet else (None if runtime.progress is None else not runtime.progress))
    try:
        model.train()
        for step in range(start_step, plan.steps):
            loss = update(step)
            updater.step(loss)
            running = loss.detach() if running is None else running + loss.detach()
            bar.update(1)
            if (step + 1) % plan.eval_every == 0 or step + 1 == plan.steps:
                last_error = check()
                train_loss = float(running) / ((step % plan.eval_every) + 1)  # type: ignore[arg-type]
                running = None
                seconds = clock.seconds()
                history.append([step + 1, round(train_loss, 6), round(last_error, 6), round(seconds, 3)])
                if last_error < best[0] or math.isnan(best[0]):  # a NaN start error is no best
                    best = (last_error, step + 1, copy.deepcopy(model.state_dict()))
                bar.set_postfix(**labels.postfix(train_loss, last_error, best[0]))
                if after_validation is not None and after_validation(
                        Validated(step + 1, plan.steps, train_loss, last_error, best[0], seconds, clock)):
                    stopped = step + 1
            if stopped is None and checkpoints is not None and checkpoints.checkpointing.due(step + 1, plan.steps):
                checkpoints.checkpointing.save(
                    step + 1, model=model, optimizer=updater.optimizer, scheduler=updater.scheduler,  # type: ignore[arg-type]
                    source=checkpoints.source, running=running, best=best, last_error=last_error,
                    history=history)  # type: ignore[arg-type]
            if stopped is not None:  # no checkpoint at the stop: resuming from it would train on past it
                bar.total = bar.n
                break
    finally:
        bar.close()
    if not math.isfinite(best[0]):
        raise ValueError(labels.diverged(last_error))
    model.load_state_dict(best[2])
    if distributed:
        broadcast_module(model)  # rank 0's weights and BatchNorm statistics everywhere
    model.eval()
    return LoopResult(best, last_error, history, clock.seconds(), start_error, start_step, stopped)
