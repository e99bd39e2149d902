"""Conditional GANs: how to call a G and a D that take more than latents and images.

A class-conditional GAN calls ``G(z, y)`` and ``D(x, y)``. :class:`Conditioning` tells
:func:`discinvert.fit_inverter` how to draw ``y`` while fitting and how to call both
models; :meth:`discinvert.Inverter.encode` then takes the images' conditions as
``conditions=``. The connection network itself still sees only D's features (which
depend on ``y``), as in the paper.

Conditions are checked before G or D sees them (:func:`check_conditions`): they must be
like those the sampler draws (integer, floating or bool; the same shape after the batch
dimension) and, when the number of classes is known (:func:`label_count`), class labels in
``[0, num_classes)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from discinvert.argument_checks import holds_data, numpy_tensor, positive_int

__all__ = ["ClassLabels", "Conditioning", "call_with_condition", "check_conditioning", "check_conditions", "label_count"]

ConditionSampler = Callable[[int, torch.Generator, torch.device], torch.Tensor]

_PARTS = {
    "sampler": "sampler(n, generator, device) -> Tensor of n conditions",
    "call_generator": "call_generator(G, z, y) -> images",
    "call_discriminator": "call_discriminator(D, x, y)",
}


def call_with_condition(model: nn.Module, inputs: torch.Tensor, condition: torch.Tensor) -> Any:
    """The default call: ``model(inputs, condition)``."""
    return model(inputs, condition)


@dataclass(frozen=True)
class Conditioning:
    """How a conditional GAN is driven.

    Attributes:
        sampler: ``sampler(n, generator, device) -> Tensor`` draws ``n`` conditions
            (e.g. class labels of shape ``(n,)``, dtype long) for fitting, using the
            given ``torch.Generator`` so a seeded fit is reproducible.
        call_generator: ``call_generator(G, z, y) -> images``; default ``G(z, y)``.
        call_discriminator: ``call_discriminator(D, x, y)``; default ``D(x, y)``.
            Only the feature layer's output is used: D stops right after it.
        num_classes: for class labels, how many classes there are: the sampler's draws and
            the conditions given to ``encode``/``decode``/``refine`` must then be integer
            labels in ``[0, num_classes)``. ``None`` (default): taken from the ``nn.Embedding``
            tables of the models called the default way (see :func:`label_count`).

    Raises:
        ValueError: a part that is not callable, or ``num_classes`` not an int >= 1.
    """

    sampler: ConditionSampler
    call_generator: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor] = call_with_condition
    call_discriminator: Callable[[nn.Module, torch.Tensor, torch.Tensor], Any] = call_with_condition
    num_classes: int | None = None

    def __post_init__(self) -> None:
        for name, expected in _PARTS.items():
            value = getattr(self, name)
            if not callable(value):
                raise ValueError(f"Conditioning.{name}: expected a callable {expected}, got {value!r}.")
        if self.num_classes is not None:
            object.__setattr__(self, "num_classes", positive_int(self.num_classes, "Conditioning.num_classes"))


def check_conditioning(conditioning: object) -> Conditioning | None:
    """``conditioning`` if it is a :class:`Conditioning` or ``None``, else ``ValueError``."""
    if conditioning is None or isinstance(conditioning, Conditioning):
        return conditioning
    name = getattr(conditioning, "__qualname__", None)
    shown = name if name and name.replace(".", "_").isidentifier() else "..."
    hint = (f"; wrap a condition sampler as Conditioning(sampler={shown})" if callable(conditioning)
            and not isinstance(conditioning, nn.Module) else "")
    raise ValueError(
        f"conditioning: expected a discinvert.Conditioning or None, got {type(conditioning).__name__} "
        f"{name or repr(conditioning)[:80]}{hint}."
    )


@dataclass(frozen=True)
class ClassLabels:
    """What is known of the class labels a conditional GAN takes.

    Attributes:
        count: labels are integers in ``[0, count)``.
        source: where ``count`` comes from, for messages.
        declared: ``True`` when the user declared it (``Conditioning.num_classes``): every
            condition must then be such a label. An inferred count (from ``nn.Embedding``
            tables) bounds integer conditions, and makes floating-point ones an error only
            when they have the shape of labels, ``(N,)``.
    """

    count: int
    source: str
    declared: bool


def label_count(conditioning: Conditioning, generator: nn.Module, discriminator: nn.Module) -> ClassLabels | None:
    """What is known of the class labels: ``conditioning.num_classes``, else inferred, else ``None``.

    Inferred from the models called the default way (``G(z, y)``, ``D(x, y)``, which get the
    labels as they are) only when all their ``nn.Embedding`` tables have the same number of
    rows: then those are the labels they can look up. Tables of different sizes (a class table
    beside a positional one) say nothing about which one takes the labels, so nothing is
    inferred and labels are not range-checked (set ``Conditioning.num_classes`` to check them).
    A custom call may map the conditions first, so its model tells nothing.
    """
    if conditioning.num_classes is not None:
        return ClassLabels(conditioning.num_classes, "Conditioning.num_classes", declared=True)
    models = [model for model, call in ((generator, conditioning.call_generator),
                                        (discriminator, conditioning.call_discriminator))
              if call is call_with_condition]
    rows = [module.num_embeddings for model in models for module in model.modules() if isinstance(module, nn.Embedding)]
    if not rows or len(set(rows)) > 1:
        return None
    return ClassLabels(rows[0], "the rows of the nn.Embedding tables G and D look them up in; set "
                       "Conditioning.num_classes if that is not the number of classes", declared=False)


def _kind(tensor: torch.Tensor) -> str:
    if tensor.dtype == torch.bool:
        return "bool"
    if tensor.is_floating_point():
        return "floating-point"
    return "complex" if tensor.is_complex() else "integer"


def check_conditions(
    conditions: object,
    n: int,
    *,
    name: str,
    per: str,
    classes: ClassLabels | None,
    reference: torch.Tensor | None = None,
) -> torch.Tensor:
    """``conditions`` as a tensor of ``n`` rows, checked before G or D sees them.

    Args:
        conditions: a tensor or NumPy array ``(n, ...)``.
        n: the rows expected (one per image or latent).
        name: what the message calls them (``"conditions"``, ``"conditioning.sampler"``).
        per: what each row belongs to (``"image"``, ``"latent"``), for messages.
        classes: what :func:`label_count` knows: integer conditions must then lie in
            ``[0, count)`` (see :class:`ClassLabels` for floating-point ones).
        reference: conditions the sampler drew: the kind of dtype (integer, floating, bool)
            and the shape after the batch dimension must be theirs.

    Raises:
        ValueError: not a tensor of ``n`` rows; a meta tensor; a NumPy dtype torch cannot
            take; another kind of dtype or row shape than ``reference``; labels outside
            ``[0, count)`` or not integers when the number of classes is known.
    """
    if isinstance(conditions, np.ndarray):
        conditions = numpy_tensor(conditions, name)
    if not isinstance(conditions, torch.Tensor) or conditions.dim() == 0 or conditions.shape[0] != n:
        got = tuple(conditions.shape) if isinstance(conditions, torch.Tensor) else type(conditions).__name__
        raise ValueError(f"{name}: expected a tensor of conditions with {n} rows (one per {per}), got {got}.")
    holds_data(conditions, name)
    if reference is not None and reference.dim() > 0:
        if _kind(conditions) != _kind(reference):
            raise ValueError(
                f"{name}: expected {_kind(reference)} conditions ({reference.dtype}) like those conditioning.sampler "
                f"draws, got dtype {conditions.dtype}."
            )
        if tuple(conditions.shape[1:]) != tuple(reference.shape[1:]):
            raise ValueError(
                f"{name}: expected conditions of shape {(n, *reference.shape[1:])} like those conditioning.sampler "
                f"draws, got {tuple(conditions.shape)}."
            )
    if classes is None:
        return conditions
    if _kind(conditions) != "integer":
        if classes.declared or conditions.dim() == 1:
            raise ValueError(f"{name}: expected integer class labels in [0, {classes.count}) ({classes.source}), "
                             f"got dtype {conditions.dtype}.")
        return conditions
    if conditions.numel():
        low, high = int(conditions.min()), int(conditions.max())
        if low < 0 or high >= classes.count:
            raise ValueError(f"{name}: expected class labels in [0, {classes.count}) ({classes.source}), got values "
                             f"from {low} to {high}.")
    return conditions
