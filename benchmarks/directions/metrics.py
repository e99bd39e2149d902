"""How well an edit direction works, judged by an independent classifier (issue 36's measures).

Pure functions over tensors; they do not care how a direction was found (labels, SeFa, PCA, ...):

- :func:`edit_success`: of the images not already in the target class, the fraction that the edit moves into it;
- :func:`class_kept`: the fraction whose predicted class the edit leaves as it was;
- :func:`preservation`: PSNR/SSIM of the edited images against the unedited decodes, and how far the
  probabilities of the classes the edit is not about move;
- :func:`best_matching`: among unsupervised directions and signed amounts, the one that reaches a target class
  most often.

Conventions shared by all: ``codes`` is ``(N, *latent_shape)``; ``direction`` has ``latent_shape`` and is already
scaled, so the edited codes are ``codes + amount * direction``; ``decode`` maps codes ``(n, *latent_shape)`` to
images ``(n, 1, H, W)`` in [-1, 1] (``H = W = 28``, or 32 for the reference StyleGAN2, which the classifier
crops); ``classifier`` maps such images to logits ``(n, C)`` (``benchmarks.directions.classifier``). A class is
the classifier's most probable one. Codes are decoded in batches of ``batch_size`` under ``no_grad``; nothing is
random, so equal inputs give equal results. ``decode`` is the caller's: wrap the code that runs G in
``discinvert.guard.frozen`` where G must come back untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from benchmarks.directions.classifier import predict_proba
from discinvert.metrics import image_quality

__all__ = ["Decode", "Match", "best_matching", "class_kept", "edit_success", "preservation"]

Decode = Callable[[torch.Tensor], torch.Tensor]


class Match(NamedTuple):
    """The best direction for a target class: its name, the signed amount, and its edit success there."""

    name: str
    amount: float
    success: float


def _check(codes: torch.Tensor, direction: torch.Tensor, *, what: str = "direction") -> torch.Tensor:
    """``direction`` on the codes' device and dtype, after checking that it has the codes' latent shape."""
    if codes.ndim < 2 or codes.shape[0] == 0:
        raise ValueError(f"codes: expected (N, *latent_shape) with N >= 1, got shape {tuple(codes.shape)}")
    if tuple(direction.shape) != tuple(codes.shape[1:]):
        raise ValueError(f"{what}: expected shape {tuple(codes.shape[1:])} (the codes' latent shape), "
                         f"got {tuple(direction.shape)}")
    return direction.to(device=codes.device, dtype=codes.dtype)


def _decoded(decode: Decode, codes: torch.Tensor, batch_size: int) -> torch.Tensor:
    """``decode`` over ``codes`` in batches, without gradients; checks the images' shape."""
    if batch_size < 1:
        raise ValueError(f"batch_size: expected >= 1, got {batch_size}")
    with torch.no_grad():
        images = torch.cat([decode(batch) for batch in codes.split(batch_size)])
    if images.ndim != 4 or images.shape[0] != codes.shape[0] or images.shape[1] != 1:
        raise ValueError(f"decode: expected images ({codes.shape[0]}, 1, H, W) in [-1, 1], "
                         f"got {tuple(images.shape)}")
    return images


def _probabilities(classifier: nn.Module, decode: Decode, codes: torch.Tensor, batch_size: int) -> torch.Tensor:
    """The classifier's probabilities ``(N, C)`` for ``decode(codes)``."""
    return predict_proba(classifier, _decoded(decode, codes, batch_size), batch_size=batch_size)


def _check_class(target_class: int, classes: int) -> None:
    if not 0 <= int(target_class) < classes:
        raise ValueError(f"target_class: expected a class in [0, {classes - 1}], got {target_class}")


@torch.no_grad()
def edit_success(classifier: nn.Module, decode: Decode, codes: torch.Tensor, direction: torch.Tensor, *,
                 target_class: int, amount: float, batch_size: int = 256) -> float:
    """Fraction of the images not already in ``target_class`` that ``codes + amount * direction`` moves into it.

    Only the codes whose ``decode(codes)`` is not predicted as ``target_class`` count (the denominator); an image
    succeeds when ``decode(codes + amount * direction)`` is predicted as ``target_class``. In [0, 1].

    Raises:
        ValueError: ``direction`` is not ``codes.shape[1:]`` (expected and got named); ``target_class`` is not one
            of the classifier's classes; every image is already in ``target_class`` (nothing to measure); a bad
            ``decode`` output or ``batch_size``.
    """
    direction = _check(codes, direction)
    before = _probabilities(classifier, decode, codes, batch_size)
    _check_class(target_class, before.shape[1])
    return _success(classifier, decode, codes, before.argmax(1), direction, target_class, float(amount), batch_size)


def _success(classifier: nn.Module, decode: Decode, codes: torch.Tensor, before: torch.Tensor, direction: torch.Tensor,
             target_class: int, amount: float, batch_size: int) -> float:
    """:func:`edit_success` given the classes ``before`` the edit."""
    eligible = before != target_class
    if not bool(eligible.any()):
        raise ValueError(f"edit_success: every one of the {len(codes)} images is already predicted as class "
                         f"{target_class}; expected some of another class to edit")
    # Every image is decoded, then the eligible ones are counted: the same edited batches for every target class,
    # so a caller's cache of decodes (benchmarks/directions/edits.py) serves all of them.
    after = _probabilities(classifier, decode, codes + amount * direction, batch_size).argmax(1)[eligible]
    return float((after == target_class).double().mean())


@torch.no_grad()
def class_kept(classifier: nn.Module, decode: Decode, codes: torch.Tensor, direction: torch.Tensor, *,
               amount: float, batch_size: int = 256) -> float:
    """Fraction of images whose predicted class is the same for ``codes + amount * direction`` as for ``codes``.

    In [0, 1]; with :func:`preservation`, the measure of "changes a visible attribute without changing the class".

    Raises:
        ValueError: ``direction`` is not ``codes.shape[1:]`` (expected and got named); a bad ``decode`` output or
            ``batch_size``.
    """
    direction = _check(codes, direction)
    before = _probabilities(classifier, decode, codes, batch_size).argmax(1)
    after = _probabilities(classifier, decode, codes + float(amount) * direction, batch_size).argmax(1)
    return float((after == before).double().mean())


@torch.no_grad()
def preservation(classifier: nn.Module, decode: Decode, codes: torch.Tensor, direction: torch.Tensor, *,
                 amount: float, target_class: int | None = None, batch_size: int = 256) -> dict[str, float]:
    """How much of each image an edit keeps, and how little it touches the classes it is not about.

    Returns:
        ``{"psnr", "ssim", "other_classes_change", "images"}``: the mean over images of the PSNR (dB) and SSIM of
        ``decode(codes + amount * direction)`` against ``decode(codes)`` (``discinvert.metrics.image_quality``,
        images in [-1, 1]; identical images give PSNR ``inf``, so ``amount = 0`` does); and the mean over images
        of the mean absolute change of the probabilities of every class but the image's source class (its
        predicted class before the edit) and ``target_class`` (``None``: only the source is left out), in
        [0, 1]; and how many images were scored.

    Raises:
        ValueError: ``direction`` is not ``codes.shape[1:]`` (expected and got named); ``target_class`` is not one
            of the classifier's classes; a bad ``decode`` output or ``batch_size``.
    """
    direction = _check(codes, direction)
    originals = _decoded(decode, codes, batch_size)
    edited = _decoded(decode, codes + float(amount) * direction, batch_size)
    before = predict_proba(classifier, originals, batch_size=batch_size)
    after = predict_proba(classifier, edited, batch_size=batch_size)
    others = torch.ones_like(before, dtype=torch.bool)
    others[torch.arange(len(before)), before.argmax(1)] = False
    if target_class is not None:
        _check_class(target_class, before.shape[1])
        others[:, int(target_class)] = False
    change = ((after - before).abs() * others).sum(1) / others.sum(1)
    psnr, ssim = image_quality(originals, edited)
    return {"psnr": float(np.mean(psnr)), "ssim": float(np.mean(ssim)),
            "other_classes_change": float(change.double().mean()), "images": len(codes)}


@torch.no_grad()
def best_matching(classifier: nn.Module, decode: Decode, codes: torch.Tensor, directions: Mapping[str, torch.Tensor],
                  *, amounts: Sequence[float], target_class: int, batch_size: int = 256) -> Match:
    """The direction and signed amount that move the most images into ``target_class``.

    Every direction is tried at ``+a`` and ``-a`` for each ``a`` in ``amounts`` (a repeated amount is tried
    once), scored by :func:`edit_success`. Ties go to the first in order: directions as ``directions`` lists
    them, then amounts as given, the positive sign before the negative.

    Returns:
        :class:`Match` ``(name, amount, success)``, ``amount`` signed.

    Raises:
        ValueError: no directions or no amounts; a direction not of ``codes.shape[1:]`` (its name, expected and
            got named); ``target_class`` not one of the classifier's classes; every image already in it.
    """
    if not directions:
        raise ValueError("directions: expected at least one named direction, got none")
    if not amounts:
        raise ValueError("amounts: expected at least one amount, got none")
    checked = {name: _check(codes, direction, what=f"direction {name!r}") for name, direction in directions.items()}
    before = _probabilities(classifier, decode, codes, batch_size)
    _check_class(target_class, before.shape[1])
    classes = before.argmax(1)
    signed: list[float] = []
    for amount in amounts:
        for value in (abs(float(amount)), -abs(float(amount))):
            if value not in signed:
                signed.append(value)
    tried = [Match(name, value, _success(classifier, decode, codes, classes, direction, target_class, value,
                                         batch_size))
             for name, direction in checked.items() for value in signed]
    return max(tried, key=lambda match: match.success)  # the first of equals
