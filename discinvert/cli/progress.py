"""Progress of the command line's long work: a bar on a terminal, a plain line every few seconds elsewhere.

tqdm's ``disable=None`` hides the bar when stderr is not a terminal, which left a piped or logged
``discinvert evaluate --refine-steps 100`` silent for minutes. :class:`Progress` writes to stderr:

- :meth:`Progress.stage`: one line now, on a terminal or not (``discinvert demo: encoding 1000 images ...``);
- :meth:`Progress.counter`: a tqdm bar on a terminal; elsewhere one line every :data:`LINE_SECONDS`
  seconds (``discinvert evaluate: refine: 3,200/50,000 image-steps (6%), 10 s, about 146 s left``) and
  one when the work is done, so a log shows that it moves and when it ends.

The command line prints; the library stays on ``logging`` and tqdm (``docs/architecture.md``).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, TextIO

from tqdm import tqdm

__all__ = ["LINE_SECONDS", "Counter", "Progress", "fit_lines", "refine_callback"]

LINE_SECONDS = 5.0
"""Seconds between two progress lines when stderr is not a terminal (a log, a pipe)."""


class Progress:
    """Where and how one command reports its progress (stderr, prefixed ``discinvert COMMAND:``).

    Args:
        command: the command's name, for the prefix.
        counters: ``False`` (``--no-progress``): no bars and no counter lines; stage lines still print.
        bar: a tqdm bar (``True``) or plain lines (``False``); ``None``: a bar when the stream is a
            terminal.
        interval: seconds between two counter lines off a terminal.
        stream: where to write; ``None``: ``sys.stderr`` at the time of writing.
    """

    def __init__(self, command: str, *, counters: bool = True, bar: bool | None = None,
                 interval: float = LINE_SECONDS, stream: TextIO | None = None) -> None:
        self.prefix = f"discinvert {command}"
        self.counters = counters
        self.interval = interval
        self._bar = bar
        self._stream = stream

    @property
    def stream(self) -> TextIO:
        """The stream written to."""
        return self._stream if self._stream is not None else sys.stderr

    @property
    def on_terminal(self) -> bool:
        """Whether counters show as a tqdm bar (else as lines)."""
        if self._bar is not None:
            return self._bar
        try:
            return bool(self.stream.isatty())
        except (AttributeError, ValueError):  # no isatty, or a closed stream
            return False

    def stage(self, message: str) -> None:
        """Write ``discinvert COMMAND: message`` as one line, now."""
        print(f"{self.prefix}: {message}", file=self.stream, flush=True)

    def counter(self, description: str, total: int, unit: str = "step") -> Counter:
        """A counter of ``total`` units of work (a context manager; see :class:`Counter`)."""
        return Counter(self, description, total, unit)


class Counter:
    """Work counted up to a total: a tqdm bar on a terminal, a line every few seconds elsewhere.

    Use it as a context manager; leaving it without an exception closes the bar, or writes the
    ``done`` line. Call :meth:`update_to` with the units done so far.
    """

    def __init__(self, progress: Progress, description: str, total: int, unit: str) -> None:
        self.progress = progress
        self.description = description
        self.total = max(int(total), 0)
        self.unit = unit
        self.done = 0
        self._written = 0  # the count the last line showed
        self._started = self._last = time.monotonic()
        self._bar: Any = None
        if progress.counters and progress.on_terminal:
            self._bar = tqdm(total=self.total, desc=description, unit=unit, dynamic_ncols=True,
                             file=progress.stream)

    def __enter__(self) -> Counter:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close(finished=kind is None)

    def update_to(self, done: int, total: int | None = None) -> None:
        """``done`` units of ``total`` (default: the counter's) are done; counts never go back."""
        if total is not None and int(total) != self.total:
            self.total = max(int(total), 0)
            if self._bar is not None:
                self._bar.total = self.total
        done = min(max(int(done), self.done), self.total)
        if self._bar is not None:
            self._bar.update(done - self.done)
        self.done = done
        if self._bar is None and self.progress.counters:
            now = time.monotonic()
            if now - self._last >= self.progress.interval and self._written < done < self.total:
                self._last, self._written = now, done
                self.progress.stage(self._line(now))

    def _line(self, now: float) -> str:
        elapsed = now - self._started
        share = self.done / self.total if self.total else 1.0
        text = f"{self.description}: {self.done:,}/{self.total:,} {self.unit}s ({100 * share:.0f}%), {elapsed:.0f} s"
        if 0 < share < 1:
            text += f", about {elapsed * (1 - share) / share:.0f} s left"
        return text

    def close(self, finished: bool = True) -> None:
        """End the bar; off a terminal, write the ``done`` line when the work ``finished``."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.progress.counters and finished:
            self.progress.stage(f"{self.description}: done in {time.monotonic() - self._started:.1f} s")


def refine_callback(counter: Counter, images: int, steps: int) -> Callable[[int, int, Any], None]:
    """A ``callback(start, step, codes)`` for :meth:`~discinvert.Inverter.refine` that counts image-steps.

    ``images`` are refined ``steps`` steps each, in batches; the batch starting at image
    ``start`` with ``len(codes)`` images has done ``step`` steps, so ``start * steps + len(codes) * step``
    image-steps are done (the counter's total is ``images * steps``).
    """
    counter.update_to(counter.done, images * steps)

    def callback(start: int, step: int, codes: Any) -> None:
        counter.update_to(start * steps + len(codes) * step)

    return callback


_VALIDATION_LOGGERS = ("discinvert.fitting.self_generated_stage", "discinvert.fitting.real_image_stage")
"""The library loggers whose DEBUG records are a fit's per-validation lines."""


class _FitLines(logging.Handler):
    """The library's fit log as progress lines: stage messages (INFO) as they come, per-validation lines
    (DEBUG) at most one every ``interval`` seconds; warnings and errors go to the root logger's handlers,
    as they would without this handler."""

    def __init__(self, progress: Progress) -> None:
        super().__init__(logging.DEBUG)
        self.progress = progress
        self._last = -float("inf")

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING:  # as the logging setup prints them (the logger does not propagate)
            for handler in logging.getLogger().handlers:
                if record.levelno >= handler.level:
                    handler.handle(record)
            return
        if record.levelno < logging.INFO:
            now = time.monotonic()
            if record.name not in _VALIDATION_LOGGERS or now - self._last < self.progress.interval:
                return
            self._last = now
        try:
            self.progress.stage(record.getMessage())
        except Exception:  # noqa: BLE001 - a progress line must never end a fit
            self.handleError(record)


@contextlib.contextmanager
def fit_lines(progress: Progress, *, enabled: bool) -> Iterator[None]:
    """While a fit runs off a terminal (where the library's tqdm bar hides itself), write its stages and a
    validation line every :data:`LINE_SECONDS` seconds (``discinvert fit: CN step 300: train 0.81,
    validation 0.80``), so a log shows that it moves. Does nothing on a terminal or when not ``enabled``."""
    if not enabled or progress.on_terminal:
        yield
        return
    logger = logging.getLogger("discinvert")
    handler = _FitLines(progress)
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    # DEBUG records must reach this handler only: the fit swaps the root's handlers for tqdm's
    # (logging_redirect_tqdm), which filter by nothing, so they are not propagated meanwhile.
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate
