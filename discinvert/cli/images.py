"""The command line's side of images: ``LO,HI`` ranges, range warnings in its words, and PNG grids.

Reading image sources and converting pixels is :mod:`discinvert.pixels`'s (and
:func:`discinvert.zoo.read_image_source`'s for ``zoo:NAME``); this module adds what only the
command line needs: :func:`parse_range` for ``--range``/``--input-range``, :func:`range_warning`
naming the flags that fix images outside G's range, and pictures of ``original | reconstruction``
pairs (:func:`to_uint8`, :func:`pair_grid`) written as PNG atomically
(:func:`discinvert.files.atomic_write`).
"""

from __future__ import annotations

import io
import math
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from discinvert.files import atomic_write_bytes
from discinvert.pixels import RawImages, model_to_uint8

__all__ = [
    "MAX_GRID_PIXELS",
    "pair_grid",
    "pair_grid_shape",
    "parse_range",
    "range_warning",
    "row_grid",
    "row_grid_shape",
    "to_uint8",
    "write_png",
]

MAX_GRID_PIXELS = 89_478_485
"""Largest picture :func:`pair_grid` makes: Pillow's ``MAX_IMAGE_PIXELS``, above which image
readers warn of a decompression bomb (and refuse pictures twice as large)."""


def parse_range(text: str) -> tuple[float, float]:
    """``"LOW,HIGH"`` → ``(low, high)`` with finite ``low < high``.

    Raises:
        ValueError: anything else.
    """
    parts = [p.strip() for p in str(text).split(",")]
    try:
        low, high = (float(p) for p in parts)
    except ValueError:
        raise ValueError(f"expected LOW,HIGH such as -1,1 or 0,1, got {text!r}") from None
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(f"expected finite LOW < HIGH, got {text!r}")
    return low, high


def _is_float(raw: RawImages) -> bool:
    return raw.layout == "batch" and np.asarray(raw.arrays).dtype.kind == "f"


def range_warning(
    images: torch.Tensor,
    raw: RawImages,
    value_range: tuple[float, float],
    recorded: tuple[float, float] | None,
    *,
    input_range: tuple[float, float] | None,
    strict: bool,
) -> None:
    """Warn (or, with ``strict``, refuse) when prepared images do not look like G's, in the command line's words.

    Two cases, each naming the flag that fixes it:

    - the values lie far outside G's range (:func:`discinvert.value_range.range_problem`
      against ``recorded``; e.g. a float ``.npy`` of 0..255 values: ``--input-range 0,255``);
    - a float array whose values all lie in [0, 1] while G's range is [-1, 1], without
      ``--input-range``: probably [0, 1] images (``--input-range 0,1``). A warning only.

    Args:
        images: the images from :func:`discinvert.pixels.prepare_images` (in G's range if all went well).
        raw: what they were read from.
        value_range: the range integer pixels were mapped onto (``--range`` or the inverter's).
        recorded: the range G's images spanned (at fit time, or measured); ``None`` skips
            the first check, as the library does.
        input_range: ``--input-range`` as given.
        strict: ``--strict-range``: raise instead of warning for the first case.

    Raises:
        ValueError: values far outside G's range with ``strict``.

    Warns:
        ImageRangeWarning: values far outside G's range.
        UnitRangeWarning: [0, 1] values for a [-1, 1] G.
    """
    from discinvert.fitting.image_sets import UnitRangeWarning
    from discinvert.inverter import ImageRangeWarning
    from discinvert.value_range import RANGE_MARGIN, nominal_range, range_problem

    if images.numel() == 0:
        return
    found = (float(images.min()), float(images.max()))
    is_float = _is_float(raw)
    if recorded is not None and range_problem(found, recorded) is not None:
        low, high = nominal_range(recorded)
        if is_float and input_range is None:
            read = (f"a float array is taken as already in G's range: give its range with --input-range LO,HI"
                    f"{' (--input-range 0,255 for 0..255 pixel values)' if found[1] > 2.0 else ''}")
        elif is_float:
            read = (f"--input-range {input_range[0]:g},{input_range[1]:g} was mapped onto [{value_range[0]:g}, "
                    f"{value_range[1]:g}]: check --input-range and --range")
        else:
            read = (f"integer pixels were mapped onto --range [{value_range[0]:g}, {value_range[1]:g}]: give G's "
                    "own range with --range LO,HI, or leave --range out")
        message = (f"images: expected values in the generator's range [{low:.4g}, {high:.4g}] (its images spanned "
                   f"[{recorded[0]:.4g}, {recorded[1]:.4g}]; up to {RANGE_MARGIN:.0%} of the range outside is "
                   f"accepted), got values in [{found[0]:.4g}, {found[1]:.4g}] from {raw.source}; {read}.")
        if strict:
            raise ValueError(message)
        warnings.warn(f"{message} Codes of such images are meaningless; --strict-range makes this an error.",
                      ImageRangeWarning, stacklevel=2)
        return
    if is_float and input_range is None and tuple(value_range) == (-1.0, 1.0) and found[0] >= 0.0 and found[1] <= 1.0:
        warnings.warn(
            f"images: {raw.source} holds float values in [{found[0]:.3g}, {found[1]:.3g}], with no negative value, "
            "for a generator of range [-1, 1]: they look like [0, 1] images, read here as [-1, 1] values. "
            "Give --input-range 0,1 to map them onto G's range (or --input-range=-1,1 if they are G's values).",
            UnitRangeWarning, stacklevel=2)


def to_uint8(images: torch.Tensor | np.ndarray, value_range: tuple[float, float] = (-1.0, 1.0)) -> np.ndarray:
    """``(N, C, H, W)`` images in G's range → uint8 ``(N, H, W)`` (one channel) or ``(N, H, W, C)``, for pictures.

    The pixels are :func:`discinvert.pixels.model_to_uint8`'s.
    """
    pixels = model_to_uint8(images, value_range)
    return pixels[:, 0] if pixels.shape[1] == 1 else np.moveaxis(pixels, 1, -1)


def pair_grid_shape(n: int, height: int, width: int, *, columns: int = 8, scale: int = 1) -> tuple[int, int]:
    """Height and width in pixels of :func:`pair_grid`'s picture for ``n`` pairs of ``height x width`` images.

    Raises:
        ValueError: a picture of more than :data:`MAX_GRID_PIXELS` pixels (the message
            says how large and what to lower).
    """
    inner, pad = 1, 4
    columns = max(1, min(columns, n))
    rows = math.ceil(n / columns)
    picture_h = (pad + rows * (height + pad)) * scale
    picture_w = (pad + columns * (2 * width + inner + pad)) * scale
    if picture_h * picture_w > MAX_GRID_PIXELS:
        raise ValueError(
            f"scale {scale}: expected a picture of at most {MAX_GRID_PIXELS} pixels, got {picture_h}x{picture_w} "
            f"({n} pairs, {columns} per row); lower the scale (--scale) or the pairs per picture (--per-grid)."
        )
    return picture_h, picture_w


def pair_grid(originals: np.ndarray, reconstructions: np.ndarray, *, columns: int = 8, scale: int = 1,
              background: int = 40) -> np.ndarray:
    """A uint8 picture of ``original | reconstruction`` pairs, ``columns`` pairs per row.

    Args:
        originals, reconstructions: uint8 ``(N, H, W)`` or ``(N, H, W, C)`` from :func:`to_uint8`.
        columns: pairs per row.
        scale: integer upscaling (nearest neighbour) of the whole picture.
        background: grey level between the tiles.

    Raises:
        ValueError: the picture would exceed :data:`MAX_GRID_PIXELS` pixels (checked
            before any memory is allocated).
    """
    n, h, w = originals.shape[:3]
    extra = originals.shape[3:]
    pair_grid_shape(n, h, w, columns=columns, scale=scale)
    inner, pad = 1, 4
    columns = max(1, min(columns, n))
    rows = math.ceil(n / columns)
    cell_w = 2 * w + inner
    canvas = np.full((pad + rows * (h + pad), pad + columns * (cell_w + pad), *extra), background, dtype=np.uint8)
    if extra and extra[0] == 4:
        canvas[..., 3] = 255
    for i in range(n):
        r, c = divmod(i, columns)
        y, x = pad + r * (h + pad), pad + c * (cell_w + pad)
        canvas[y : y + h, x : x + w] = originals[i]
        canvas[y : y + h, x + w + inner : x + cell_w] = reconstructions[i]
    if scale > 1:
        canvas = canvas.repeat(scale, axis=0).repeat(scale, axis=1)
    return canvas


def row_grid_shape(n: int, height: int, width: int, *, columns: int, scale: int = 1) -> tuple[int, int]:
    """Height and width in pixels of :func:`row_grid`'s picture: ``n`` rows of ``columns`` tiles.

    Raises:
        ValueError: a picture of more than :data:`MAX_GRID_PIXELS` pixels (the message says what to lower).
    """
    pad = 4
    picture_h = (pad + n * (height + pad)) * scale
    picture_w = (pad + columns * (width + pad)) * scale
    if picture_h * picture_w > MAX_GRID_PIXELS:
        raise ValueError(
            f"scale {scale}: expected a picture of at most {MAX_GRID_PIXELS} pixels, got {picture_h}x{picture_w} "
            f"({n} rows of {columns}); lower the scale (--scale) or the pictures per grid (--per-grid).")
    return picture_h, picture_w


def row_grid(columns: list[np.ndarray], *, scale: int = 1, background: int = 40) -> np.ndarray:
    """A uint8 picture with one row per image and one tile per column: ``original | reconstruction | edits``.

    Args:
        columns: uint8 ``(N, H, W)`` or ``(N, H, W, C)`` arrays from :func:`to_uint8`, all of one shape.
        scale: integer upscaling (nearest neighbour) of the whole picture.
        background: grey level between the tiles.

    Raises:
        ValueError: columns of different shapes; a picture over :data:`MAX_GRID_PIXELS` pixels.
    """
    if not columns or any(c.shape != columns[0].shape for c in columns):
        raise ValueError(f"columns: expected arrays of one shape, got {[c.shape for c in columns]}.")
    n, h, w = columns[0].shape[:3]
    extra = columns[0].shape[3:]
    row_grid_shape(n, h, w, columns=len(columns), scale=scale)
    pad = 4
    canvas = np.full((pad + n * (h + pad), pad + len(columns) * (w + pad), *extra), background, dtype=np.uint8)
    if extra and extra[0] == 4:
        canvas[..., 3] = 255
    for i in range(n):
        for j, column in enumerate(columns):
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            canvas[y : y + h, x : x + w] = column[i]
    if scale > 1:
        canvas = canvas.repeat(scale, axis=0).repeat(scale, axis=1)
    return canvas


def write_png(path: str | os.PathLike[str], picture: np.ndarray) -> Path:
    """Write a uint8 ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)`` picture as PNG, atomically.

    The PNG is encoded in memory first, then written with
    :func:`discinvert.files.atomic_write`: a failed write leaves any older
    file at ``path`` as it was.

    Raises:
        ValueError: not uint8, or a channel count PNG cannot hold.
        OSError: the file cannot be written (full disk, permissions); the message names it.
    """
    from PIL import Image

    picture = np.asarray(picture)
    if picture.dtype != np.uint8:
        raise ValueError(f"{path}: expected uint8 pixels, got dtype {picture.dtype}.")
    if picture.ndim == 3 and picture.shape[2] not in (3, 4):
        if picture.shape[2] != 1:
            raise ValueError(f"{path}: PNG holds 1, 3 or 4 channels; these images have {picture.shape[2]}.")
        picture = picture[..., 0]
    if picture.ndim not in (2, 3):
        raise ValueError(f"{path}: expected a picture of shape (H, W) or (H, W, C), got {picture.shape}.")
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(picture)).save(buffer, format="PNG")
    return atomic_write_bytes(path, buffer.getvalue())
