"""Reading image batches from files and writing comparison grids, for the command line.

Sources: a folder of PNG/JPEG files (sorted by name, not recursive), a single PNG/JPEG
file, an ``.npy`` array, an IDX image file (MNIST/Fashion-MNIST's
``train-images-idx3-ubyte``, plain or ``.gz``), or ``zoo:NAME`` (a zoo entry's bundled
real test images).
Files are read and written with scikit-image (``skimage.io``, backed by imageio and
Pillow); nothing is resized or converted between grayscale and colour.

Value ranges are explicit:

- integer pixels (8-bit ``uint8`` 0..255, 16-bit ``uint16`` 0..65535: image files, or
  an integer ``.npy``) map linearly onto G's range ``value_range`` (``(-1, 1)`` for
  a tanh generator), so 0 → low and the maximum → high;
- black-and-white pixels (a 1-bit PNG, a ``bool`` ``.npy``) are 0 and 255: black → low,
  white → high;
- floating-point ``.npy`` arrays are taken as already in G's range, unless
  ``input_range`` gives their range, which is then mapped linearly onto G's.
  ``input_range`` is refused for integer and black-and-white pixels: their scale is known.
  :func:`range_warning` says when a float array's values look like another range than G's.

Layouts: ``.npy`` arrays are ``(N, C, H, W)``, ``(N, H, W, C)`` or, for one-channel
images, ``(N, H, W)``; image files are ``(H, W)`` (grayscale) or ``(H, W, C)``
(RGB, RGBA, ...). The channels and size must match the inverter's ``image_shape``.
Every mismatch raises ``ValueError`` with a one-line message naming the source.
Pictures are written atomically (:func:`discinvert.files.atomic_write`).
"""

from __future__ import annotations

import io
import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from discinvert.files import atomic_write_bytes

__all__ = [
    "IMAGE_SUFFIXES",
    "MAX_GRID_PIXELS",
    "RawImages",
    "pair_grid",
    "pair_grid_shape",
    "parse_range",
    "prepare_images",
    "range_warning",
    "read_images",
    "to_uint8",
    "write_png",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
"""File suffixes read from an image folder (case-insensitive)."""

MAX_GRID_PIXELS = 89_478_485
"""Largest picture :func:`pair_grid` makes: Pillow's ``MAX_IMAGE_PIXELS``, above which image
readers warn of a decompression bomb (and refuse pictures twice as large)."""

_INTEGER_MAX = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}
_CHANNEL_WORDS = {1: "grayscale", 2: "grayscale+alpha", 3: "RGB", 4: "RGBA"}


@dataclass
class RawImages:
    """Images as read, before any conversion.

    Attributes:
        arrays: one ``(N, ...)`` array (``.npy``, zoo) or a list of per-file arrays.
        names: one name per image (file names, or ``source[i]``).
        source: what was read, for messages.
        layout: ``"batch"`` (``.npy``/zoo: ``(N, C, H, W)``, ``(N, H, W, C)``, ``(N, H, W)``)
            or ``"files"`` (each ``(H, W)`` or ``(H, W, C)``).
    """

    arrays: np.ndarray | list[np.ndarray]
    names: list[str]
    source: str
    layout: str

    def __len__(self) -> int:
        return len(self.names)


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


def _frames(path: Path) -> tuple[str, int]:
    """The file's format and its number of frames, from its header (1 when Pillow cannot tell)."""
    from PIL import Image

    try:
        with Image.open(path) as picture:
            return str(picture.format), int(getattr(picture, "n_frames", 1))
    except Exception:  # not for Pillow: scikit-image's reader says what is wrong
        return path.suffix.lstrip(".").upper(), 1


def _imread(path: Path) -> np.ndarray:
    """One picture file as ``(H, W)`` or ``(H, W, C)`` pixels: uint8, uint16, or bool for a 1-bit PNG."""
    from skimage.io import imread

    kind, frames = _frames(path)
    # imageio would stack an APNG's frames as (frames, H, W), to be taken for channels; a camera's
    # MPO JPEG (a picture with its previews) is left to scikit-image's reader
    if frames > 1 and kind != "MPO":
        raise ValueError(f"{path}: animated {kind} with {frames} frames: expected a single picture.")
    try:
        array = np.asarray(imread(path))
    except Exception as error:  # imageio/Pillow: unreadable, truncated or not an image
        raise ValueError(f"{path}: not a readable image ({type(error).__name__}: {error}).") from None
    if array.ndim not in (2, 3):
        raise ValueError(f"{path}: expected a single 2-D image (animated or multi-page files are not supported), got shape {array.shape}.")
    return array


def _from_bool(array: np.ndarray) -> np.ndarray:
    """Black-and-white pixels (a 1-bit PNG, a bool array) on the 8-bit scale they mean: 0 and 255."""
    return array.astype(np.uint8) * np.uint8(255) if array.dtype == np.bool_ else array


def read_images(source: str | os.PathLike[str]) -> RawImages:
    """Read a folder of PNG/JPEG files, one such file, an ``.npy`` array, an IDX file, or ``zoo:NAME``.

    Raises:
        FileNotFoundError: no such path.
        ValueError: an empty folder, an unreadable file, an animated PNG, an unsupported
            suffix, an unknown zoo entry, or an ``.npy`` that holds no numeric (or bool) array.
    """
    text = str(source)
    if text.startswith("zoo:"):
        from discinvert import zoo

        name = text[len("zoo:"):]
        if name not in zoo.available():
            raise ValueError(f"{text!r}: unknown zoo entry; available: {', '.join(zoo.available())}.")
        images, _ = zoo.load_test_images(name)
        return RawImages(images, [f"{text}[{i}]" for i in range(len(images))], f"{text} (bundled test images)", "batch")
    path = Path(text)
    if not path.exists():
        raise FileNotFoundError(f"{text}: no such image folder or file.")
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ValueError(f"{text}: no image files ({', '.join(IMAGE_SUFFIXES)}) in this folder.")
        return RawImages([_imread(p) for p in files], [p.name for p in files], text, "files")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except Exception as error:  # numpy: truncated, corrupt, pickled object arrays
            raise ValueError(f"{text}: not a readable .npy array ({type(error).__name__}: {error}).") from None
        if not isinstance(array, np.ndarray) or array.dtype.kind not in "buif":
            raise ValueError(f"{text}: expected a numeric array, got dtype {getattr(array, 'dtype', type(array).__name__)}.")
        return RawImages(array, [f"{path.name}[{i}]" for i in range(len(array) if array.ndim else 0)], text, "batch")
    if suffix in IMAGE_SUFFIXES:
        return RawImages([_imread(path)], [path.name], text, "files")
    if _is_idx(path):
        from discinvert.zoo.datasets import read_idx

        array = read_idx(path)
        if array.ndim != 3:
            raise ValueError(f"{text}: expected an IDX file of images (N, H, W), got shape {array.shape}.")
        return RawImages(array, [f"{path.name}[{i}]" for i in range(len(array))], text, "batch")
    raise ValueError(f"{text}: expected a folder of images, an image file ({', '.join(IMAGE_SUFFIXES)}), an .npy "
                     "array or an IDX file (…-idx3-ubyte[.gz]).")


def _is_idx(path: Path) -> bool:
    name = path.name.lower().removesuffix(".gz")
    return name.endswith("-ubyte") or name.endswith(".idx") or ".idx3" in name


def _describe_channels(c: int) -> str:
    return f"{c} channel{'s' if c != 1 else ''} ({_CHANNEL_WORDS.get(c, 'other')})"


def _as_chw(image: np.ndarray, expected: tuple[int, ...], name: str) -> np.ndarray:
    """One file's ``(H, W)`` / ``(H, W, C)`` array as ``(C, H, W)``, checked against ``expected``."""
    chw = image[None] if image.ndim == 2 else np.moveaxis(image, -1, 0)
    c, h, w = chw.shape
    if c != expected[0]:
        raise ValueError(
            f"{name}: {_describe_channels(c)}, but the inverter expects {_describe_channels(expected[0])} "
            f"images of shape {expected}; convert the images first."
        )
    if (h, w) != tuple(expected[1:]):
        raise ValueError(f"{name}: size {h}x{w}, but the inverter expects {expected[1]}x{expected[2]} images (shape {expected}).")
    return chw


def _batch_as_nchw(array: np.ndarray, expected: tuple[int, ...], source: str) -> np.ndarray:
    shape = tuple(array.shape)
    if array.ndim == 4 and shape[1:] == expected:
        return array
    if array.ndim == 4 and shape[1:] == (expected[1], expected[2], expected[0]):
        return np.moveaxis(array, -1, 1)
    if array.ndim == 3 and expected[0] == 1 and shape[1:] == tuple(expected[1:]):
        return array[:, None]
    layouts = f"(N, {', '.join(map(str, expected))}) or (N, {expected[1]}, {expected[2]}, {expected[0]})"
    if expected[0] == 1:
        layouts += f" or (N, {expected[1]}, {expected[2]})"
    channels = ""
    if array.ndim == 4 and {shape[1], shape[3]} != {expected[0]}:
        got = shape[1] if shape[2:] == tuple(expected[1:]) else shape[3]
        channels = f" ({_describe_channels(got)} where {_describe_channels(expected[0])} are expected)"
    raise ValueError(f"{source}: expected images of shape {layouts} for this inverter, got {shape}{channels}.")


def _scale(array: np.ndarray, value_range: tuple[float, float], input_range: tuple[float, float] | None, source: str) -> np.ndarray:
    low, high = value_range
    if array.dtype.kind in "uib":
        kind = "bool (black-and-white)" if array.dtype == np.bool_ else str(array.dtype)
        array = _from_bool(array)
        maximum = _INTEGER_MAX.get(array.dtype)
        if maximum is None:
            raise ValueError(
                f"{source}: integer images must be uint8 (0..255) or uint16 (0..65535), got {array.dtype}; "
                "save float images in the generator's range instead."
            )
        if input_range is not None:
            raise ValueError(_integer_input_range(source, kind, maximum, input_range))
        unit = array.astype(np.float64) / maximum
        return (low + unit * (high - low)).astype(np.float32)
    values = array.astype(np.float32)
    if not np.isfinite(values).all():
        raise ValueError(f"{source}: expected finite values, got NaN or infinity.")
    if input_range is None:
        return values
    in_low, in_high = input_range
    return (low + (values.astype(np.float64) - in_low) / (in_high - in_low) * (high - low)).astype(np.float32)


def _integer_input_range(source: str, kind: str, maximum: float, input_range: tuple[float, float]) -> str:
    return (f"--input-range {input_range[0]:g},{input_range[1]:g}: {source} holds {kind} pixels, whose scale is "
            f"known (0..{maximum:.0f}, mapped onto G's range --range LO,HI); --input-range gives the value range "
            "of a float .npy array only. Leave it out, or save the images as a float .npy array.")


def prepare_images(
    raw: RawImages,
    image_shape: Sequence[int],
    value_range: tuple[float, float] = (-1.0, 1.0),
    input_range: tuple[float, float] | None = None,
) -> torch.Tensor:
    """Images as the inverter wants them: float32 ``(N, *image_shape)`` in G's range.

    Args:
        raw: images from :func:`read_images`.
        image_shape: the inverter's ``(C, H, W)``.
        value_range: G's range: integer pixels map ``0 .. max`` onto it.
        input_range: the range of a float array's values, mapped onto ``value_range``
            (``None``: taken as already in G's range).

    Raises:
        ValueError: wrong channels, size or layout, unsupported dtypes, NaN/Inf values;
            ``input_range`` given for integer or black-and-white pixels (image files,
            an integer or bool ``.npy``, an IDX file), whose scale is known.
    """
    expected = tuple(int(d) for d in image_shape)
    if len(expected) != 3:
        raise ValueError(f"image files need (C, H, W) images, but this inverter's images have shape {expected}; "
                         "for a generator of flat vectors give --image-shape C,H,W (e.g. 1,28,28 for 784 values).")
    if raw.layout == "files":
        images = [_scale(_as_chw(a, expected, n), value_range, input_range, n) for a, n in zip(raw.arrays, raw.names)]
        batch = np.stack(images)
    else:
        array = np.asarray(raw.arrays)
        batch = _scale(_batch_as_nchw(array, expected, raw.source), value_range, input_range, raw.source)
    if len(batch) == 0:
        raise ValueError(f"{raw.source}: no images.")
    return torch.from_numpy(np.ascontiguousarray(batch))


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
        images: the images from :func:`prepare_images` (in G's range if all went well).
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
    """``(N, C, H, W)`` images in G's range → uint8 ``(N, H, W)`` (one channel) or ``(N, H, W, C)``."""
    low, high = value_range
    array = images.detach().float().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images, dtype=np.float32)
    pixels = np.clip(np.round((array - low) / (high - low) * 255.0), 0, 255).astype(np.uint8)
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
