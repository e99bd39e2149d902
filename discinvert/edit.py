"""Latent vector arithmetic on inverted codes: attribute directions, edits, interpolation.

Once images can be mapped to codes, the editing recipe of Radford et al. (DCGAN)
applies to real images: the mean code of images *with* an attribute minus the
mean code of images *without* it is a direction in latent space; adding it to an
image's code and decoding with G adds the attribute. Interpolating between two
images' codes and decoding the path shows how G morphs one into the other.

>>> direction = attribute_direction(inv, shirts, tshirts)        # doctest: +SKIP
>>> edited = edit(inv, tshirts[:8], direction, strength=1.0)     # doctest: +SKIP
>>> path = interpolate_images(inv, images[0], images[1], 9)      # doctest: +SKIP

Codes in W or W+ of a :class:`~discinvert.MappedGenerator` edit the same way (directions are
differences of mean codes, in any space); interpolation between images then defaults to the
straight line, since those codes are not Gaussian around the origin.

All functions work without grad on the inverter's GAN and leave G and D as they
found them (through :meth:`Inverter.encode` / :meth:`Inverter.decode`).
"""

from __future__ import annotations

import logging
import math
from typing import Literal

import numpy as np
import torch

from discinvert.inverter import Inverter

__all__ = [
    "InterpolationMethod",
    "apply_direction",
    "attribute_direction",
    "class_directions",
    "edit",
    "interpolate",
    "interpolate_images",
]

logger = logging.getLogger(__name__)

InterpolationMethod = Literal["linear", "slerp"]
_METHODS: tuple[str, ...] = ("linear", "slerp")

ImageBatch = torch.Tensor | np.ndarray


# ----------------------------------------------------------------------------- checks
def _shape_text(shape: tuple[int, ...], *, batch: bool) -> str:
    dims = (["N"] if batch else []) + [str(d) for d in shape]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


def _check_inverter(inverter: object) -> Inverter:
    if not isinstance(inverter, Inverter):
        raise ValueError(
            f"inverter: expected a discinvert.Inverter (from fit_inverter or Inverter.load), "
            f"got {type(inverter).__name__}."
        )
    return inverter


def _check_vector(name: str, value: object, shape: tuple[int, ...] | None) -> torch.Tensor:
    """A floating, finite tensor of ``shape`` (any non-scalar shape when ``shape`` is None)."""
    expected = "a floating-point tensor" + ("" if shape is None else f" of shape {_shape_text(shape, batch=False)}")
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"{name}: expected {expected}, got {type(value).__name__}.")
    if not value.is_floating_point():
        raise ValueError(f"{name}: expected {expected}, got dtype {value.dtype}.")
    if shape is None and value.dim() == 0:
        raise ValueError(f"{name}: expected {expected} with at least one dimension, got a 0-d tensor.")
    if shape is not None and tuple(value.shape) != shape:
        hint = ""
        if value.dim() == len(shape) + 1 and tuple(value.shape[1:]) == shape:
            hint = " (one code, not a batch: take a row, e.g. codes[0])"
        raise ValueError(f"{name}: expected shape {_shape_text(shape, batch=False)}, got {tuple(value.shape)}{hint}.")
    if not bool(torch.isfinite(value).all()):
        raise ValueError(f"{name}: expected finite values, got NaN or Inf.")
    return value


def _batch_size_of(images: object) -> int | None:
    """``N`` of an image batch when it can be read without validating anything else."""
    if isinstance(images, (torch.Tensor, np.ndarray)) and images.ndim >= 1:
        return int(images.shape[0])
    return None


def _check_strength(strength: float | torch.Tensor | np.ndarray, n: int | None) -> float | torch.Tensor:
    """A finite Python float, or a tensor of shape () or (n,)."""
    if isinstance(strength, (int, float)) and not isinstance(strength, bool):
        if not math.isfinite(strength):
            raise ValueError(f"strength: expected a finite number, got {strength!r}.")
        return float(strength)
    if isinstance(strength, np.ndarray):
        strength = torch.from_numpy(np.ascontiguousarray(strength))
    if not isinstance(strength, torch.Tensor) or strength.dtype == torch.bool or strength.is_complex():
        got = f"dtype {strength.dtype}" if isinstance(strength, torch.Tensor) else type(strength).__name__
        raise ValueError(f"strength: expected a float or a real tensor of shape (N,), got {got}.")
    if strength.dim() > 1 or (strength.dim() == 1 and n is not None and strength.shape[0] != n):
        want = "(N,)" if n is None else f"({n},), one per code"
        raise ValueError(f"strength: expected a float or a tensor of shape {want}, got shape {tuple(strength.shape)}.")
    if not bool(torch.isfinite(strength).all()):
        raise ValueError("strength: expected finite values, got NaN or Inf.")
    return strength


def _check_steps(steps: object) -> int:
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 2:
        raise ValueError(f"steps: expected an int >= 2 (the path includes both endpoints), got {steps!r}.")
    return steps


def _check_method(method: object) -> str:
    if method not in _METHODS:
        raise ValueError(f"method: expected one of {_METHODS}, got {method!r}.")
    return str(method)


def _encode(
    inverter: Inverter,
    name: str,
    images: ImageBatch,
    batch_size: int | None,
    conditions: torch.Tensor | np.ndarray | None,
) -> torch.Tensor:
    # encode's messages say "images:"; prefix the caller's argument name so the user knows which set.
    try:
        return inverter.encode(images, batch_size, conditions=conditions)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from exc


# ----------------------------------------------------------------------------- directions
def attribute_direction(
    inverter: Inverter,
    with_attribute: ImageBatch,
    without_attribute: ImageBatch,
    *,
    batch_size: int | None = None,
    conditions_with: torch.Tensor | np.ndarray | None = None,
    conditions_without: torch.Tensor | np.ndarray | None = None,
    normalize: bool = False,
) -> torch.Tensor:
    """The latent direction of an attribute: ``mean(encode(with)) - mean(encode(without))``.

    Args:
        inverter: the fitted :class:`~discinvert.Inverter`.
        with_attribute: ``(N_with, *image_shape)`` images showing the attribute,
            floating point in G's value range (as G produces them, e.g. [-1, 1]);
            tensor or numpy array.
        without_attribute: ``(N_without, *image_shape)`` images lacking it, same format.
        batch_size: images per forward pass when encoding (see :meth:`Inverter.encode`).
        conditions_with, conditions_without: for a conditional GAN, each set's
            conditions, one row per image.
        normalize: scale the direction to unit L2 norm (over all of ``latent_shape``),
            so that ``strength`` in :func:`apply_direction` is a distance in latent space.

    Returns:
        A ``latent_shape`` tensor, float32, on the device of ``with_attribute``
        (CPU for numpy), without grad.

    Raises:
        ValueError: ``inverter`` is not an Inverter; either set is empty; images of
            the wrong type, dtype or shape, or with NaN/Inf (the message names the
            set); bad conditions or ``batch_size``; ``normalize=True`` when the two
            sets have the same mean code (a zero direction has no unit version).
    """
    inverter = _check_inverter(inverter)
    if not isinstance(normalize, bool):
        raise ValueError(f"normalize: expected True or False, got {normalize!r}.")
    for name, images in (("with_attribute", with_attribute), ("without_attribute", without_attribute)):
        if _batch_size_of(images) == 0:
            raise ValueError(f"{name}: expected at least one image, got an empty batch of shape {tuple(images.shape)}.")
    codes_with = _encode(inverter, "with_attribute", with_attribute, batch_size, conditions_with)
    codes_without = _encode(inverter, "without_attribute", without_attribute, batch_size, conditions_without)
    direction = codes_with.mean(dim=0) - codes_without.mean(dim=0).to(codes_with.device)
    norm = float(torch.linalg.vector_norm(direction))
    logger.debug(
        "attribute direction from %d vs %d images: norm %.4g",
        codes_with.shape[0], codes_without.shape[0], norm,
    )
    if normalize:
        if norm == 0.0:
            raise ValueError(
                "normalize: the two sets have the same mean code, so the direction is zero and "
                "has no unit-norm version; use normalize=False or more distinct sets."
            )
        direction = direction / norm
    return direction


def class_directions(
    inverter: Inverter,
    images: ImageBatch,
    labels: torch.Tensor | np.ndarray,
    names: dict[int, str] | list[str] | tuple[str, ...] | None = None,
    *,
    batch_size: int | None = None,
) -> dict[str, torch.Tensor]:
    """One direction per class of labelled images: the class's mean code minus the other images' mean code.

    The same vector :func:`attribute_direction` gives with the class as ``with_attribute``
    and every other image as ``without_attribute``, but each image is encoded once.
    Adding a class's direction to a code moves its image toward that class.

    Args:
        inverter: the fitted :class:`~discinvert.Inverter`.
        images: ``(N, *image_shape)`` images in G's value range (tensor or numpy array).
        labels: ``(N,)`` integer labels; at least two distinct ones.
        names: the name of each label (a sequence indexed by label, or a mapping); default
            the label's number as text.
        batch_size: images per forward pass when encoding.

    Returns:
        ``{name: direction}``, one ``latent_shape`` float32 tensor per label, in label
        order, on the images' device (CPU for numpy), without grad.

    Raises:
        ValueError: ``labels`` not one integer per image, a single class, a label
            without a name, two labels of one name; images rejected by :meth:`Inverter.encode`.
    """
    inverter = _check_inverter(inverter)
    label_array = np.asarray(labels.detach().cpu() if isinstance(labels, torch.Tensor) else labels)
    n = _batch_size_of(images)
    if label_array.ndim != 1 or label_array.shape[0] != n or not np.issubdtype(label_array.dtype, np.integer):
        raise ValueError(f"labels: expected ({n},) integers, one per image, got {label_array.dtype} of shape "
                         f"{label_array.shape}.")
    classes = [int(c) for c in np.unique(label_array)]
    if len(classes) < 2:
        raise ValueError(f"labels: expected at least two classes (a direction is one class against the others), "
                         f"got {classes}.")
    if names is None:
        named = {c: str(c) for c in classes}
    else:
        lookup = dict(enumerate(names)) if isinstance(names, (list, tuple)) else dict(names)
        missing = [c for c in classes if c not in lookup]
        if missing:
            raise ValueError(f"names: expected a name for every label, got none for {missing}.")
        named = {c: str(lookup[c]) for c in classes}
    if len(set(named.values())) != len(named):
        raise ValueError(f"names: expected one name per label, got repeated names in {named}.")
    codes = _encode(inverter, "images", images, batch_size, None)
    members = torch.as_tensor(label_array, device=codes.device)
    return {named[c]: (codes[members == c].mean(dim=0) - codes[members != c].mean(dim=0)) for c in classes}


def apply_direction(
    codes: torch.Tensor,
    direction: torch.Tensor,
    strength: float | torch.Tensor | np.ndarray = 1.0,
) -> torch.Tensor:
    """``codes + strength * direction``, one strength for all codes or one per code.

    Args:
        codes: ``(N, *latent_shape)`` floating-point codes (e.g. from :meth:`Inverter.encode`).
        direction: a ``latent_shape`` floating-point tensor (e.g. from
            :func:`attribute_direction`); cast to the codes' dtype and device.
        strength: a finite number, or a real tensor / array of shape ``(N,)`` (or
            ``()``) with one strength per code. Negative strengths remove the attribute.

    Returns:
        ``(N, *latent_shape)`` edited codes in the codes' dtype, on the codes' device.
        Gradients flow through ``codes`` and ``direction`` if they require grad.

    Raises:
        ValueError: non-tensor or non-floating inputs; ``direction`` not of shape
            ``codes.shape[1:]``; a single code without its batch dimension;
            ``strength`` not finite or of the wrong shape; NaN/Inf in ``direction``.
    """
    direction = _check_vector("direction", direction, None)
    latent_shape = tuple(direction.shape)
    if not isinstance(codes, torch.Tensor) or not codes.is_floating_point():
        got = f"dtype {codes.dtype}" if isinstance(codes, torch.Tensor) else type(codes).__name__
        raise ValueError(
            f"codes: expected a floating-point tensor of shape {_shape_text(latent_shape, batch=True)}, got {got}."
        )
    if codes.dim() != len(latent_shape) + 1 or tuple(codes.shape[1:]) != latent_shape:
        hint = " (a single code: add a batch dimension, codes[None])" if tuple(codes.shape) == latent_shape else ""
        raise ValueError(
            f"codes: expected shape {_shape_text(latent_shape, batch=True)} to match direction of shape "
            f"{latent_shape}, got {tuple(codes.shape)}{hint}."
        )
    checked = _check_strength(strength, codes.shape[0])
    step = direction.to(device=codes.device, dtype=codes.dtype)
    if isinstance(checked, float):
        return codes + checked * step
    scale = checked.to(device=codes.device, dtype=codes.dtype)
    if scale.dim() == 1:
        scale = scale.reshape(-1, *([1] * len(latent_shape)))
    return codes + scale * step


def edit(
    inverter: Inverter,
    images: ImageBatch,
    direction: torch.Tensor,
    strength: float | torch.Tensor | np.ndarray = 1.0,
    *,
    batch_size: int | None = None,
    conditions: torch.Tensor | np.ndarray | None = None,
) -> torch.Tensor:
    """Edit images along a latent direction: ``G(encode(images) + strength * direction)``.

    With ``strength=0`` this is :meth:`Inverter.reconstruct`; the edit therefore
    changes the reconstruction, not the original pixels (compare edits with the
    ``strength=0`` row, not with the input, to see what the direction does).

    Args:
        inverter: the fitted :class:`~discinvert.Inverter`.
        images: ``(N, *image_shape)`` floating-point images in G's value range; tensor
            or numpy array.
        direction: a ``latent_shape`` tensor, e.g. from :func:`attribute_direction`.
        strength: a number, or ``(N,)`` strengths, one per image.
        batch_size: codes per forward pass through D and G (G alone: the pixel network and G).
        conditions: for a conditional GAN, ``(N, ...)`` conditions used to both
            encode and decode (an edit keeps each image's condition).

    Returns:
        ``(N, *image_shape)`` edited images in G's value range, on the images' device
        (CPU for numpy), without grad.

    Raises:
        ValueError: ``inverter`` is not an Inverter; ``direction`` not of shape
            ``inverter.latent_shape`` or not finite; ``strength`` not finite or not one
            per image; images or conditions rejected by :meth:`Inverter.encode`.
    """
    inverter = _check_inverter(inverter)
    direction = _check_vector("direction", direction, inverter.latent_shape)
    _check_strength(strength, _batch_size_of(images))  # fail before the encoding pass, not after
    codes = inverter.encode(images, batch_size, conditions=conditions)
    edited = apply_direction(codes, direction, strength)
    return inverter.decode(edited, batch_size, conditions=conditions)


# ----------------------------------------------------------------------------- interpolation
def _work_dtype(device: torch.device) -> torch.dtype:
    # float64 keeps slerp's trigonometry accurate near parallel codes; MPS has no float64.
    return torch.float32 if device.type == "mps" else torch.float64


def _slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical path between flat vectors ``a`` and ``b`` at times ``t`` (``(steps, D)``).

    The direction moves along the great circle from ``a/|a|`` to ``b/|b|`` at constant
    angular speed and the norm goes linearly from ``|a|`` to ``|b|``. For equal norms
    this is Shoemake's ``sin((1-t)Ω)/sin Ω · a + sin(tΩ)/sin Ω · b``; unlike that
    formula it stays finite for (anti)parallel codes and unequal norms.
    """
    r0, r1 = torch.linalg.vector_norm(a), torch.linalg.vector_norm(b)
    if float(r0) == 0.0 or float(r1) == 0.0:
        # A zero code has no direction; the straight line is the limit of the spherical path.
        return (1 - t)[:, None] * a + t[:, None] * b
    u, bh = a / r0, b / r1
    # Kahan's angle formula: accurate at both ends, where acos(u·bh) loses half the digits.
    omega = 2 * torch.atan2(torch.linalg.vector_norm(u - bh), torch.linalg.vector_norm(u + bh))
    w = bh - (bh @ u) * u
    sin_omega = torch.linalg.vector_norm(w)
    tiny = math.sqrt(torch.finfo(a.dtype).eps)
    if float(sin_omega) > tiny:
        v = w / sin_omega
    elif float(omega) < math.pi / 2:
        # Parallel: sin(tΩ) is ~0 so the second axis does not matter.
        v = torch.zeros_like(u)
    else:
        # Antiparallel: every great circle through ±u joins the endpoints. Pick the one
        # through the coordinate axis least aligned with u, deterministically.
        if u.numel() == 1:
            raise ValueError(
                "method: 'slerp' between opposite one-dimensional codes has no path on the "
                "sphere (the two points are its only points); use method='linear'."
            )
        k = int(torch.argmin(u.abs()))
        v = -u[k] * u
        v[k] += 1
        logger.warning(
            "slerp: the codes are antiparallel, so the great circle is not unique; "
            "taking the one through latent coordinate %d", k,
        )
    # Re-orthogonalise: rounding in w leaves a component along u that would bend the norm.
    v = v - (v @ u) * u
    v_norm = torch.linalg.vector_norm(v)
    if float(v_norm) > 0:
        v = v / v_norm
    angle = t * omega
    radius = (1 - t) * r0 + t * r1
    return radius[:, None] * (torch.cos(angle)[:, None] * u + torch.sin(angle)[:, None] * v)


def interpolate(
    z0: torch.Tensor,
    z1: torch.Tensor,
    steps: int,
    *,
    method: InterpolationMethod = "linear",
) -> torch.Tensor:
    """Evenly spaced codes from ``z0`` to ``z1``, both endpoints included.

    ``"linear"`` walks the straight line ``(1 - t) z0 + t z1``, the path for codes in W or W+
    of a :class:`~discinvert.MappedGenerator` (not centred at zero). ``"slerp"`` walks the
    great circle between the codes' directions while their norm changes linearly; for
    Gaussian latents it keeps intermediate codes at the norm the prior puts its mass
    on (the straight line's midpoint is too short, ~``|z|/√2`` for independent codes)
    and equals Shoemake's slerp when ``|z0| = |z1|``. Edge cases of slerp: a zero code
    or parallel codes give the straight line; antiparallel codes take a deterministic
    great circle (logged as a warning).

    Args:
        z0, z1: one code each, of the same shape (``latent_shape``, e.g. ``(100, 1, 1)``),
            floating point and finite. The angle is measured over all their elements.
        steps: number of codes on the path, at least 2; ``t = linspace(0, 1, steps)``.
        method: ``"linear"`` or ``"slerp"``.

    Returns:
        ``(steps, *z0.shape)`` codes in the promoted dtype of ``z0`` and ``z1``, on
        ``z0``'s device, without grad; the first row equals ``z0`` and the last equals
        ``z1`` exactly.

    Raises:
        ValueError: non-floating, 0-d, non-finite or differently shaped codes; ``steps``
            not an int >= 2; an unknown ``method``; slerp between opposite codes
            with a single element; a path that is not finite in the output dtype (codes
            near the dtype's largest value, e.g. ±3e38 in float32).
    """
    z0 = _check_vector("z0", z0, None)
    z1 = _check_vector("z1", z1, None)
    if z0.shape != z1.shape:
        raise ValueError(
            f"z1: expected the shape of z0 {tuple(z0.shape)}, got {tuple(z1.shape)}; interpolate "
            "between two single codes (for a batch, take rows: codes[0], codes[1])."
        )
    steps = _check_steps(steps)
    method = _check_method(method)
    device = z0.device
    out_dtype = torch.promote_types(z0.dtype, z1.dtype)
    work = _work_dtype(device)
    a = z0.detach().reshape(-1).to(work)
    b = z1.detach().to(device).reshape(-1).to(work)
    t = torch.linspace(0.0, 1.0, steps, dtype=work, device=device)
    if method == "linear":
        path = (1 - t)[:, None] * a + t[:, None] * b
    else:
        path = _slerp(a, b, t)
    path = path.to(out_dtype).reshape(steps, *z0.shape)
    # Exact endpoints by construction, not by trusting cos(0) and sin(Ω)/sin(Ω) to round to 1.
    path[0] = z0.detach().to(out_dtype)
    path[-1] = z1.detach().to(device=device, dtype=out_dtype)
    if not bool(torch.isfinite(path).all()):
        # Finite ends can still leave the dtype's range on the way (slerp's arc bulges past both
        # ends; huge codes overflow when cast back): refuse rather than hand G NaN/Inf codes.
        largest = max(float(z0.detach().abs().max()), float(z1.detach().abs().max()))
        raise ValueError(
            f"z0, z1: expected codes whose {method} path stays finite in {out_dtype}, got a path with "
            f"NaN or Inf (the largest entry of the two codes is {largest:.3g}, the largest finite "
            f"{out_dtype} is {torch.finfo(out_dtype).max:.3g}); codes that size are far outside "
            "any latent prior."
        )
    return path


def _single_image(name: str, image: object, image_shape: tuple[int, ...]) -> torch.Tensor:
    if isinstance(image, np.ndarray):
        image = torch.from_numpy(np.ascontiguousarray(image))
    if not isinstance(image, torch.Tensor):
        raise ValueError(
            f"{name}: expected one image as a tensor or numpy array of shape "
            f"{_shape_text(image_shape, batch=False)}, got {type(image).__name__}."
        )
    if tuple(image.shape) != image_shape:
        hint = ""
        if image.dim() == len(image_shape) + 1 and tuple(image.shape[1:]) == image_shape:
            hint = " (a batch: take one image, e.g. images[0])"
        raise ValueError(
            f"{name}: expected one image of shape {_shape_text(image_shape, batch=False)}, "
            f"got {tuple(image.shape)}{hint}."
        )
    return image


def interpolate_images(
    inverter: Inverter,
    image0: torch.Tensor | np.ndarray,
    image1: torch.Tensor | np.ndarray,
    steps: int,
    *,
    method: InterpolationMethod | None = None,
    batch_size: int | None = None,
    conditions: torch.Tensor | np.ndarray | None = None,
    path_conditions: torch.Tensor | np.ndarray | None = None,
) -> torch.Tensor:
    """Images along the latent path between two images: ``G(interpolate(encode(x0), encode(x1)))``.

    The first and last images are the reconstructions of ``image0`` and ``image1``
    (not the originals).

    Args:
        inverter: the fitted :class:`~discinvert.Inverter`.
        image0, image1: one image each, ``image_shape`` (no batch dimension), floating
            point in G's value range; tensors or numpy arrays.
        steps: images on the path, at least 2, endpoints included.
        method: ``"slerp"`` or ``"linear"`` (see :func:`interpolate`). Default (``None``): ``"slerp"`` for
            Gaussian codes (a plain G's ``z``, or Z of a :class:`~discinvert.MappedGenerator`), ``"linear"``
            for codes in W or W+: those are not Gaussian around the origin (their mean is far from zero), so
            the norm slerp keeps carries no meaning there and the straight line between two codes is the
            usual path in W.
        batch_size: codes per forward pass through D and G (G alone: the pixel network and G).
        conditions: for a conditional GAN, ``(2, ...)``: the conditions of ``image0``
            and ``image1``, used to encode them.
        path_conditions: for a conditional GAN, ``(steps, ...)`` conditions to decode
            the path with. Default: the shared condition when both images have the same
            one; required when they differ.

    Returns:
        ``(steps, *image_shape)`` images in G's value range, on ``image0``'s device
        (CPU for numpy), without grad.

    Raises:
        ValueError: ``inverter`` is not an Inverter; an image that is not a single
            ``image_shape`` image or is rejected by :meth:`Inverter.encode`; bad
            ``steps`` or ``method``; conditions for an unconditional inverter, or
            differing conditions without ``path_conditions``.
    """
    inverter = _check_inverter(inverter)
    x0 = _single_image("image0", image0, inverter.image_shape)
    x1 = _single_image("image1", image1, inverter.image_shape)
    steps = _check_steps(steps)
    if method is None:
        space = inverter.latent_space
        method = "slerp" if space is None or space["space"] == "z" else "linear"
    method = _check_method(method)
    if inverter.conditioning is None and path_conditions is not None:
        raise ValueError("path_conditions: this inverter is unconditional; expected None.")
    if x0.dtype != x1.dtype and x0.is_floating_point() and x1.is_floating_point():
        x1 = x1.to(x0.dtype)
    pair = torch.stack([x0, x1.to(x0.device)])
    codes = inverter.encode(pair, batch_size, conditions=conditions)
    if inverter.conditioning is not None and path_conditions is None:
        # encode accepted `conditions`, so it has two rows here.
        pair_conditions = torch.as_tensor(conditions)
        if not torch.equal(pair_conditions[0], pair_conditions[1]):
            raise ValueError(
                "path_conditions: image0 and image1 have different conditions, so the condition "
                f"along the path is ambiguous; pass path_conditions with {steps} rows."
            )
        path_conditions = pair_conditions[:1].expand(steps, *pair_conditions.shape[1:])
    path = interpolate(codes[0], codes[1], steps, method=method)
    return inverter.decode(path, batch_size, conditions=path_conditions)
