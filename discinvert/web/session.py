"""What the page can do with one inverter: reconstruct, refine live, edit along directions, learn one, interpolate.

A :class:`WebSession` owns no model: it calls the public API of the :class:`~discinvert.Inverter`
it is given (``encode`` with every step network the inverter was fit with, ``refine``, ``decode``,
:func:`~discinvert.edit.apply_direction`, :func:`~discinvert.edit.interpolate`), so G and D come
back bit-identical after every request, as everywhere in the library. The models run one request
at a time (a feature tap is not re-entrant); at most :attr:`Limits.queue` more wait for their turn,
and a request beyond that is refused at once (:class:`Busy`) rather than piling up in memory.

Pictures cross the API as values in [0, 1] (``(C, H, W)``, C 1 or 3); the session maps them to
and from G's value range (:attr:`Inverter.value_range`). Every answer says how long the models took.

The edit sliders come in groups, each a :class:`~discinvert.directions.DirectionSet` (amounts in
spreads of the prior along each direction, :meth:`DirectionSet.vector`) or, for files of bare named
tensors, plain vectors (amounts in units of each vector). Every edit is checked against the prior's
typical set of the session's first direction set, by the rule of :meth:`DirectionSet.edit`'s
:class:`~discinvert.directions.DirectionRangeWarning`, and the answer carries its warning.
"""

from __future__ import annotations

import contextlib
import math
import queue
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from discinvert.directions import TYPICAL_MASS, DirectionSet, learn_directions
from discinvert.edit import apply_direction, interpolate
from discinvert.inverter import Inverter
from discinvert.metrics import image_quality
from discinvert.pixels import model_to_unit, uint8_to_unit, unit_to_model
from discinvert.web.uploads import PreparedImage, UploadError, png_data_url

__all__ = ["Busy", "DirectionSource", "Examples", "Limits", "WebSession"]

DirectionSource = DirectionSet | Mapping[str, torch.Tensor]
"""One group of sliders: a direction set, or bare named vectors of the latent shape."""
_NAME_LENGTH = 40

_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _shown(value: Any, limit: int = 40) -> str:
    """``repr(value)`` cut to ``limit`` characters, for messages that say what came (a 400-digit number, a long list)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _json_kind(value: Any) -> str:
    """What a JSON value is, in JSON's words (for messages)."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        return "an array"
    return "an object" if isinstance(value, dict) else type(value).__name__


@dataclass(frozen=True)
class Limits:
    """What one request may ask for; documented in ``docs/web.md``.

    Attributes:
        max_upload_bytes: the largest upload (the whole request body is cut off past it).
        max_pixels: the largest upload in pixels, width x height, read before decoding.
        max_refine_steps: the most refinement steps one request may ask for.
        max_frames: the most images one interpolation may return.
        max_strength: the largest absolute amount of one direction in an edit (in spreads for a direction set).
        queue: requests that may wait while the models serve another; more get HTTP 503.
        min_labelled: the fewest pictures on each side (with the label, without it) to learn a slider from.
        max_labelled: the most pictures on each side one request to learn a slider may send (all of them
            together also within ``max_upload_bytes``, the whole request's limit).
        max_learned: the most sliders the page may learn while the server runs (each is kept in memory).
    """

    max_upload_bytes: int = 5 * 2**20
    max_pixels: int = 4096 * 4096
    max_refine_steps: int = 500
    max_frames: int = 32
    max_strength: float = 10.0
    queue: int = 16
    min_labelled: int = 10
    max_labelled: int = 200
    max_learned: int = 16


class Busy(RuntimeError):
    """Every place in the queue is taken: the API answers 503 with a ``Retry-After``."""


@dataclass(frozen=True)
class Examples:
    """Pictures the page offers to pick: ``images`` uint8 ``(N, C, H, W)``, optional names per picture."""

    images: np.ndarray
    labels: tuple[str, ...] | None = None


def _details(directions: DirectionSet) -> dict[str, dict[str, Any]]:
    """What the page shows of each direction of a set: for labels the held-out balanced accuracy and counts,
    for SeFa/PCA the image change they were ranked by (``info["per_direction"]``, JSON as saved)."""
    per = directions.info.get("per_direction", {})
    per = per if isinstance(per, dict) else {}
    return {name: {key: value for key, value in dict(per.get(name) or {}).items()
                   if isinstance(value, (int, float, str, bool)) or value is None}
            for name in directions.names}


class _Cancelled(Exception):
    """The page stopped listening to a refinement: end it early (G and D are restored on the way out)."""


class WebSession:
    """One inverter served to the page.

    Args:
        inverter: a fitted inverter of an unconditional GAN whose images are ``(C, H, W)``
            with C 1 or 3.
        description: one line naming the GAN and the inverter (shown on the page).
        examples: pictures to pick from (e.g. a zoo entry's test images), in G's image shape.
        directions: the edit sliders: a :class:`~discinvert.directions.DirectionSet` made for the inverter's
            G (one slider per direction, amounts in spreads: :meth:`DirectionSet.vector`), a mapping of
            names to bare ``latent_shape`` vectors (amounts in units of each vector), or a sequence of
            these (one group of sliders each, in order).
        limits: what one request may ask for.

    Raises:
        ValueError: a conditional GAN, images that are not ``(C, H, W)`` with C 1 or 3,
            examples of another shape, directions of another shape or not finite, a name in two groups,
            a direction set of another latent shape, space or G
            (:class:`~discinvert.inverter.FingerprintMismatchError`, a ``ValueError``).
    """

    def __init__(self, inverter: Inverter, *, description: str, examples: Examples | None = None,
                 directions: DirectionSource | Sequence[DirectionSource] | None = None,
                 limits: Limits = Limits()) -> None:
        shape = tuple(inverter.image_shape)
        if len(shape) != 3 or shape[0] not in (1, 3):
            raise ValueError(f"serve shows pictures: expected G's images of shape (C, H, W) with C 1 or 3, got {shape}.")
        if inverter.conditioning is not None:
            raise ValueError("serve: expected an unconditional GAN, got an inverter of a conditional one "
                             "(the page has no way to choose conditions yet).")
        if examples is not None and tuple(examples.images.shape[1:]) != shape:
            raise ValueError(f"examples: expected pictures of G's shape (N, {', '.join(map(str, shape))}), got "
                             f"{tuple(examples.images.shape)}.")
        if examples is not None and examples.labels is not None and len(examples.labels) != len(examples.images):
            raise ValueError(f"examples: expected one label per picture ({len(examples.images)}), got "
                             f"{len(examples.labels)}.")
        self.inverter = inverter
        self.description = description
        self.examples = examples
        self.limits = limits
        # Sliders are replaced, never changed in place, under _sliders (a learned one adds a group):
        # a request reads one consistent snapshot of them.
        self._sliders = threading.Lock()
        self.directions: dict[str, torch.Tensor] = {}
        """Each slider's vector (what amount 1 adds to a code), by name, in the groups' order."""
        self.direction_sets: tuple[DirectionSet, ...] = ()
        """The groups that are direction sets; the first one's prior and typical set check every edit."""
        self._groups: tuple[dict[str, Any], ...] = ()
        sources = [] if directions is None else \
            [directions] if isinstance(directions, (DirectionSet, Mapping)) else list(directions)
        for source in sources:
            self._add_group(source, learned=False)
        self.image_shape: tuple[int, int, int] = shape  # type: ignore[assignment]
        low, high = inverter.value_range
        self._range = (float(low), float(high))  # what the conversions to and from [0, 1] map onto
        self._low, self._span = float(low), float(high) - float(low)
        self._model = threading.Lock()
        self._places = threading.BoundedSemaphore(limits.queue + 1)

    # ------------------------------------------------------------------ turns
    @contextlib.contextmanager
    def turn(self) -> Iterator[None]:
        """Hold the models for one request; :class:`Busy` when the queue is full."""
        with self.place():
            with self._model:
                yield

    @contextlib.contextmanager
    def place(self) -> Iterator[None]:
        """A place in the queue (not yet the models); :class:`Busy` when none is free."""
        if not self._places.acquire(blocking=False):
            raise Busy(f"the server is busy: {self.limits.queue + 1} requests are running or waiting; retry shortly.")
        try:
            yield
        finally:
            self._places.release()

    # ------------------------------------------------------------------ sliders
    def _add_group(self, source: DirectionSource, *, learned: bool) -> dict[str, Any]:
        """Check one group of sliders and add it (replacing the snapshot); its description for :meth:`info`."""
        if isinstance(source, DirectionSet):
            if tuple(source.latent_shape) != tuple(self.inverter.latent_shape):
                raise ValueError(f"directions: expected a direction set of the inverter's latent shape "
                                 f"{tuple(self.inverter.latent_shape)}, got one of {tuple(source.latent_shape)}.")
            source.check_generator(self.inverter.generator, source="directions")
            vectors = source.as_dict()
            group: dict[str, Any] = {
                "method": source.method, "space": source.space, "names": list(source.names), "amounts": "spreads",
                "learned_here": learned, "details": _details(source)}
        elif isinstance(source, Mapping):
            vectors = {str(name): self._check_direction(str(name), d) for name, d in source.items()}
            group = {"method": "vectors", "space": None, "names": list(vectors), "amounts": "vector lengths",
                     "learned_here": learned, "details": {name: {} for name in vectors}}
        else:
            raise ValueError(f"directions: expected a DirectionSet or a mapping of names to latent vectors, got "
                             f"{type(source).__name__}.")
        with self._sliders:
            twice = sorted(set(vectors) & set(self.directions))
            if twice:
                raise ValueError(f"directions: expected each slider name once, got {_shown(twice, 80)} again "
                                 "(in two direction groups).")
            self.directions = {**self.directions, **vectors}
            if isinstance(source, DirectionSet):
                self.direction_sets = (*self.direction_sets, source)
            self._groups = (*self._groups, group)
        return group

    def _typical(self, code: torch.Tensor, edited: torch.Tensor) -> dict[str, Any]:
        """Where ``edited`` lies against the typical set of the first direction set, and the warning, if any.

        The rule of :meth:`DirectionSet.edit` (its :class:`~discinvert.directions.DirectionRangeWarning`,
        :meth:`DirectionSet.left_typical`), applied to the whole edit: a warning when the edited code lies beyond
        the typical set's outer edge and further out than the code was. Without a direction set (bare vectors
        only) nothing is checked.
        """
        if not self.direction_sets:
            return {"typical": None, "warning": None}
        reference = self.direction_sets[0]
        before, after = float(reference.mahalanobis(code)[0]), float(reference.mahalanobis(edited)[0])
        low, high = reference.typical
        warning = None
        if bool(reference.left_typical(code, edited)[0]):
            typical = f"typical: {low:.4g} to {high:.4g}, the central {TYPICAL_MASS:.1%} of the prior's codes"
            where = "far from the prior's mean, where G's pictures are often broken; use smaller amounts"
            if before > high:
                warning = (f"The code is outside the prior's typical set and this edit moved it further out: its "
                           f"squared Mahalanobis norm went from {before:.4g} to {after:.4g}, {where} ({typical}).")
            else:
                warning = (f"This edit left the prior's typical set: the code's squared Mahalanobis norm is "
                           f"{after:.4g}, {where} ({typical}).")
        return {"typical": {"norm": after, "before": before, "low": low, "high": high,
                            "inside": low <= after <= high}, "warning": warning}

    def learn(self, name: Any, with_label: Sequence[PreparedImage], without: Sequence[PreparedImage]) -> dict[str, Any]:
        """A new slider ``name`` learned from pictures with the label and pictures without it.

        :func:`discinvert.directions.learn_directions` on the inverter's codes of the pictures (the normal of a
        class-balanced logistic regression, its balanced accuracy measured on a held-out quarter of each side,
        seed 0); the new direction set is added as a group of one slider, amounts in spreads.

        Raises:
            UploadError: 422 for a name that is not 1 to 40 printable characters or is already a slider, fewer
                than :attr:`Limits.min_labelled` (or more than :attr:`Limits.max_labelled`) pictures on a side,
                or :attr:`Limits.max_learned` sliders learned already.
        """
        if not isinstance(name, str) or not 1 <= len(name.strip()) <= _NAME_LENGTH or not name.strip().isprintable():
            raise UploadError(422, f"name: expected the label's name, 1 to {_NAME_LENGTH} printable characters, got "
                                   f"{_shown(name)}.")
        name = name.strip()
        if name in self.directions:
            raise UploadError(422, f"name: expected a new slider's name, got {name!r}, which is a slider already.")
        low, high = self.limits.min_labelled, self.limits.max_labelled
        if not (low <= len(with_label) <= high and low <= len(without) <= high):
            raise UploadError(422, f"expected {low} to {high} pictures with the label {name!r} ('with') and {low} to "
                                   f"{high} without it ('without'), got {len(with_label)} and {len(without)}. "
                                   f"About 20 on each side make a usable slider.")
        learned = sum(1 for group in self._groups if group["learned_here"])
        if learned >= self.limits.max_learned:
            raise UploadError(422, f"expected at most {self.limits.max_learned} sliders learned on this page, got "
                                   "that many already (restart the server to start over).")
        images = torch.cat([self._to_model(p.pixels) for p in [*with_label, *without]])
        labels = torch.zeros(len(images), 1, dtype=torch.long)
        labels[: len(with_label)] = 1
        with self.turn():  # G's fingerprint is read while no other request runs G (a BatchNorm G in train mode)
            started = time.perf_counter()
            try:
                learned_set = learn_directions(self.inverter, images, labels, names=[name], seed=0)
            except ValueError as error:  # pictures that do not tell the label apart: the uploads' fault, say so
                raise UploadError(422, str(error)) from None
            seconds = time.perf_counter() - started
            try:
                group = self._add_group(learned_set, learned=True)
            except ValueError as error:  # the same name learned by two requests at once
                raise UploadError(422, f"name: {error}") from None
        return {"name": name, "group": group, **group["details"][name], "directions": list(self.directions),
                "seconds": seconds}

    # ------------------------------------------------------------------ conversions
    def _check_direction(self, name: str, direction: torch.Tensor) -> torch.Tensor:
        direction = torch.as_tensor(direction, dtype=torch.float32).detach().cpu()
        if tuple(direction.shape) != tuple(self.inverter.latent_shape) and direction.numel() != math.prod(
                self.inverter.latent_shape):
            raise ValueError(f"direction {name!r}: expected shape {tuple(self.inverter.latent_shape)}, got "
                             f"{tuple(direction.shape)}.")
        if not bool(torch.isfinite(direction).all()):
            raise ValueError(f"direction {name!r}: expected finite values, got NaN or Inf.")
        return direction.reshape(self.inverter.latent_shape)

    def _to_model(self, pixels: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(unit_to_model(pixels, self._range))[None]

    def _to_unit(self, images: torch.Tensor) -> np.ndarray:
        return model_to_unit(images, self._range)

    def code(self, values: Any, name: str = "code") -> torch.Tensor:
        """A code sent by the page (a JSON list of numbers) as a ``(1, *latent_shape)`` float32 tensor.

        Only JSON numbers are taken: strings (``"1"``), booleans and nested lists are refused
        rather than converted, and so is a number that is not finite in float32 (NaN, Inf,
        ``1e39``, a 400-digit integer).

        Raises:
            UploadError: 422 for anything but ``prod(latent_shape)`` numbers finite in float32.
        """
        size = math.prod(self.inverter.latent_shape)
        expected = f"{name}: expected a list of {size} finite numbers (latent shape {tuple(self.inverter.latent_shape)})"
        if not isinstance(values, list):
            raise UploadError(422, f"{expected}, got {'nothing' if values is None else _json_kind(values)}.")
        if len(values) != size:
            raise UploadError(422, f"{expected}, got {len(values)} values.")
        for i, value in enumerate(values):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise UploadError(422, f"{expected}, got {_json_kind(value)} at [{i}]: {_shown(value)}.")
            # Compared as Python numbers: a 400-digit integer is out of range, not an OverflowError.
            if not -_FLOAT32_MAX <= value <= _FLOAT32_MAX:
                raise UploadError(422, f"{expected}, got {_shown(value)} at [{i}] (not finite in float32, whose "
                                       f"largest value is {_FLOAT32_MAX:.4g}).")
        return torch.tensor(values, dtype=torch.float32).reshape(1, *self.inverter.latent_shape)

    def example(self, index: int) -> PreparedImage:
        """Example ``index`` as the page receives it."""
        if self.examples is None or not 0 <= index < len(self.examples.images):
            count = 0 if self.examples is None else len(self.examples.images)
            raise UploadError(404, f"example {_shown(index)}: expected an index from 0 to {count - 1}." if count else
                              "no example pictures are served (start with --examples or a zoo GAN).")
        return PreparedImage(uint8_to_unit(self.examples.images[index]))

    def _pictures(self, images: torch.Tensor, what: str) -> np.ndarray:
        """Decoded ``images`` in [0, 1]; 422 when G gave NaN or Inf (codes far outside its prior)."""
        if not bool(torch.isfinite(images).all()):
            raise UploadError(422, f"{what}: expected codes G can decode, got codes for which G's pictures hold "
                                   "NaN or Inf (codes far outside G's latent prior).")
        return self._to_unit(images)

    def _scores(self, target: torch.Tensor, images: torch.Tensor) -> dict[str, float | None]:
        psnr, ssim = image_quality(target, images, value_range=(self._low, self._low + self._span))
        return {"psnr": float(psnr[0]) if math.isfinite(psnr[0]) else None, "ssim": float(ssim[0])}

    # ------------------------------------------------------------------ what the page asks for
    def info(self) -> dict[str, Any]:
        """What the page needs to lay itself out."""
        inv = self.inverter
        return {
            "description": self.description, "image_shape": list(self.image_shape),
            "latent_shape": list(inv.latent_shape), "value_range": [self._low, self._low + self._span],
            "iterations": inv.iterations, "feature_layer": inv.feature_layer, "feature_source": inv.feature_source,
            "examples": 0 if self.examples is None else len(self.examples.images),
            "example_labels": None if self.examples is None or self.examples.labels is None else list(self.examples.labels),
            "directions": list(self.directions), "direction_groups": [dict(g) for g in self._groups],
            "typical_set": None if not self.direction_sets else {
                "low": self.direction_sets[0].typical[0], "high": self.direction_sets[0].typical[1],
                "mass": TYPICAL_MASS, "space": self.direction_sets[0].space},
            "limits": asdict(self.limits),
        }

    def reconstruct(self, image: PreparedImage) -> dict[str, Any]:
        """The feed-forward answer: the code (all step networks), its reconstruction, PSNR/SSIM against the input."""
        x = self._to_model(image.pixels)
        with self.turn():
            started = time.perf_counter()
            codes = self.inverter.encode(x, range_check="ignore")
            reconstruction = self.inverter.decode(codes)
            seconds = time.perf_counter() - started
        return {"code": codes.reshape(-1).tolist(), "reconstruction": png_data_url(self._to_unit(reconstruction)[0]),
                "original": png_data_url(image.pixels), "notes": image.notes, "iterations": self.inverter.iterations,
                "seconds": seconds, **self._scores(x, reconstruction)}

    def refine(self, image: PreparedImage, steps: int, every: int,
               stop: threading.Event | None = None) -> Iterator[dict[str, Any]]:
        """Hybrid inversion shown live: an event every ``every`` steps, then the final codes.

        The request is checked here, before anything is streamed; the refinement starts when
        the first event is read. The caller holds a place in the queue (:meth:`place`) for as
        long as it reads; the models are held by a worker thread while it runs. Closing the
        iterator early, or setting ``stop`` (from any thread: the page disconnected), stops the
        refinement at its next step and ends the iterator.

        Raises:
            UploadError: 422 for ``steps`` outside 1..``max_refine_steps`` or ``every`` outside 1..``steps``.
        """
        if not 1 <= steps <= self.limits.max_refine_steps:
            raise UploadError(422, f"steps: expected 1 to {self.limits.max_refine_steps}, got {_shown(steps)}.")
        if not 1 <= every <= steps:
            raise UploadError(422, f"every: expected 1 to steps ({steps}), got {_shown(every)}.")
        return self._refine_events(image, steps, every, threading.Event() if stop is None else stop)

    def _refine_events(self, image: PreparedImage, steps: int, every: int,
                       stop: threading.Event) -> Iterator[dict[str, Any]]:
        x = self._to_model(image.pixels)
        events: queue.Queue[dict[str, Any] | BaseException | None] = queue.Queue()
        started = time.perf_counter()

        def report(_start: int, step: int, codes: torch.Tensor) -> None:
            if stop.is_set():
                raise _Cancelled
            if step % every == 0 or step == steps:
                images = self.inverter.decode(codes)
                events.put({"step": step, "steps": steps, "reconstruction": png_data_url(self._to_unit(images)[0]),
                            "seconds": time.perf_counter() - started, **self._scores(x, images)})

        def work() -> None:
            try:
                with self._model:
                    codes = self.inverter.refine(x, steps, range_check="ignore", callback=report)
                    images = self.inverter.decode(codes)
                events.put({"done": True, "step": steps, "steps": steps, "code": codes.reshape(-1).tolist(),
                            "reconstruction": png_data_url(self._to_unit(images)[0]),
                            "seconds": time.perf_counter() - started, **self._scores(x, images)})
            except _Cancelled:
                pass
            except BaseException as error:  # shown to the page as an error event
                events.put(error)
            finally:
                events.put(None)

        worker = threading.Thread(target=work, name="discinvert-refine", daemon=True)
        worker.start()
        try:
            while (event := events.get()) is not None:
                if isinstance(event, BaseException):
                    yield {"error": f"refinement failed: {type(event).__name__}: {event}"}
                    continue
                yield event
        finally:
            stop.set()
            # The stream may be dropped (and closed) by whichever thread held its last reference,
            # the worker itself included: it then ends at its next step without being waited for.
            if threading.current_thread() is not worker:
                worker.join()

    def edit(self, code: torch.Tensor, amounts: dict[str, float]) -> dict[str, Any]:
        """``G(code + Σ amount · vector)``: the page's sliders (a direction set's vector is its scale times its
        direction, so amounts are in spreads), with where the edit lies against the prior's typical set and a
        warning when it left it (:meth:`_typical`)."""
        directions = self.directions  # one snapshot: a slider learned meanwhile does not change this edit
        unknown = sorted(set(amounts) - set(directions))
        if unknown:
            raise UploadError(422, f"amounts: unknown direction(s) {_shown(unknown, 80)}; expected some of "
                                   f"{list(directions)}.")
        strength = self.limits.max_strength
        for name, amount in amounts.items():
            # Compared as Python numbers (no float() first): NaN fails both bounds, a 400-digit
            # integer is simply out of range.
            if isinstance(amount, bool) or not isinstance(amount, (int, float)):
                raise UploadError(422, f"amounts[{_shown(name)}]: expected a number from {-strength:g} to "
                                       f"{strength:g}, got {_json_kind(amount)}: {_shown(amount)}.")
            if not -strength <= amount <= strength:
                raise UploadError(422, f"amounts[{_shown(name)}]: expected a number from {-strength:g} to "
                                       f"{strength:g}, got {_shown(amount)}.")
        edited = code
        for name, amount in amounts.items():
            edited = apply_direction(edited, directions[name], float(amount))
        if not bool(torch.isfinite(edited).all()):
            raise UploadError(422, f"code + amounts: expected an edited code finite in float32, got NaN or Inf (the "
                                   f"code's largest entry is {float(code.abs().max()):.3g}).")
        typical = self._typical(code, edited)
        with self.turn():
            started = time.perf_counter()
            images = self.inverter.decode(edited)
            seconds = time.perf_counter() - started
        return {"code": edited.reshape(-1).tolist(), "image": png_data_url(self._pictures(images, "code")[0]),
                "seconds": seconds, **typical}

    def interpolate(self, code_a: torch.Tensor, code_b: torch.Tensor, frames: int, method: str) -> dict[str, Any]:
        """Decoded codes on the path from ``code_a`` to ``code_b`` (both included)."""
        if not 2 <= frames <= self.limits.max_frames:
            raise UploadError(422, f"frames: expected 2 to {self.limits.max_frames}, got {_shown(frames)}.")
        if method not in ("linear", "slerp"):
            raise UploadError(422, f"method: expected 'linear' or 'slerp', got {_shown(method)}.")
        try:
            path = interpolate(code_a[0], code_b[0], frames, method=method)  # type: ignore[arg-type]
        except ValueError as error:  # e.g. a path that leaves float32's range
            raise UploadError(422, f"code_a, code_b: {str(error).removeprefix('z0, z1: ')}") from None
        with self.turn():
            started = time.perf_counter()
            images = self.inverter.decode(path)
            seconds = time.perf_counter() - started
        return {"images": [png_data_url(p) for p in self._pictures(images, "code_a, code_b")], "seconds": seconds}
