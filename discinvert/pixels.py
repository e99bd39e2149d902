"""Images in and out as pixels: image files, folders and arrays read as a batch, and pixel values converted.

Reading (:func:`read_images`, then :func:`prepare_images`): a folder of PNG/JPEG files (sorted by
name, not recursive), a single PNG/JPEG file, an ``.npy`` array, or an IDX image file
(MNIST/Fashion-MNIST's ``train-images-idx3-ubyte``, plain or ``.gz``: :func:`read_idx`). A zoo
entry's bundled test images, ``zoo:NAME``, are read by :func:`discinvert.zoo.read_image_source`,
which hands every other source to :func:`read_images`. Files are read with scikit-image
(``skimage.io``, backed by imageio and Pillow); nothing is resized or converted between grayscale
and colour.

Value ranges are explicit:

- integer pixels (8-bit ``uint8`` 0..255, 16-bit ``uint16`` 0..65535: image files, or
  an integer ``.npy``) map linearly onto G's range ``value_range`` (``(-1, 1)`` for
  a tanh generator), so 0 → low and the maximum → high;
- black-and-white pixels (a 1-bit PNG, a ``bool`` ``.npy``) are 0 and 255: black → low,
  white → high;
- floating-point ``.npy`` arrays are taken as already in G's range, unless
  ``input_range`` gives their range, which is then mapped linearly onto G's.
  ``input_range`` is refused for integer and black-and-white pixels: their scale is known.

Layouts: ``.npy`` arrays are ``(N, C, H, W)``, ``(N, H, W, C)`` or, for one-channel
images, ``(N, H, W)``; image files are ``(H, W)`` (grayscale) or ``(H, W, C)``
(RGB, RGBA, ...). The channels and size must match the inverter's ``image_shape``.
Every mismatch raises ``ValueError`` with a one-line message naming the source.

Conversions between pixel scales, each written once here. They do not all round the same way, on
purpose: each keeps the arithmetic its callers have always had, so no picture or score changes.

- :func:`model_to_uint8`: G's range → 0..255 (float32, rounded half to even, clipped): the command
  line's PNG grids, the page's example pictures, :func:`discinvert.zoo.datasets.from_model_range`.
- :func:`model_to_unit` / :func:`unit_to_model`: G's range ↔ [0, 1], float32 (the page's pictures,
  PSNR/SSIM in :mod:`discinvert.metrics`).
- :func:`uint8_to_unit` / :func:`unit_to_uint8`: 0..255 ↔ [0, 1] (the page's uploads and PNGs); to
  uint8 in float64, so every value :func:`uint8_to_unit` gives comes back exactly.
- integer pixels of files → G's range, in float64, inside :func:`prepare_images`.
  (:func:`discinvert.zoo.datasets.to_model_range`, the zoo's ``x / 127.5 - 1`` in float32 on any
  device, differs from it in the last bit for half of the 256 values: it is kept as it is.)
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import torch

__all__ = [
    "IMAGE_SUFFIXES",
    "RawImages",
    "model_to_uint8",
    "model_to_unit",
    "prepare_images",
    "read_idx",
    "read_images",
    "uint8_to_unit",
    "unit_to_model",
    "unit_to_uint8",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
"""File suffixes read from an image folder (case-insensitive)."""

_INTEGER_MAX = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}
_CHANNEL_WORDS = {1: "grayscale", 2: "grayscale+alpha", 3: "RGB", 4: "RGBA"}

# IDX type codes -> big-endian NumPy dtypes (http://yann.lecun.com/exdb/mnist/).
_IDX_DTYPES: Final[dict[int, np.dtype]] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_GZIP_MAGIC: Final[bytes] = b"\x1f\x8b"


# ----------------------------------------------------------------------------- pixel scales
def _float32(images: torch.Tensor | np.ndarray) -> np.ndarray:
    """``images`` as a float32 NumPy array on the CPU (a tensor detached first)."""
    if isinstance(images, torch.Tensor):
        return images.detach().float().cpu().numpy()
    return np.asarray(images, dtype=np.float32)


def model_to_uint8(images: torch.Tensor | np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    """Images in G's range ``value_range`` → uint8 pixels 0..255, any layout (kept).

    ``low`` maps to 0 and ``high`` to 255: ``round((x - low) / (high - low) * 255)`` in float32,
    rounded half to even and clipped to 0..255.
    """
    low, high = value_range
    return np.clip(np.rint((_float32(images) - low) / (high - low) * 255.0), 0, 255).astype(np.uint8)


def model_to_unit(images: torch.Tensor | np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    """Images in G's range ``value_range`` → float32 values in [0, 1] (clipped), any layout (kept)."""
    low, high = value_range
    return np.clip((_float32(images) - low) / (high - low), 0.0, 1.0)


def unit_to_model(unit: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    """Values in [0, 1] → float32 images in G's range ``value_range``: ``low + (high - low) * unit``."""
    low, high = value_range
    return low + (high - low) * np.asarray(unit, dtype=np.float32)


def uint8_to_unit(pixels: np.ndarray) -> np.ndarray:
    """uint8 pixels 0..255 (or what ``np.asarray`` makes them of, such as a Pillow image) → float32 ``pixels / 255``."""
    return np.asarray(pixels, dtype=np.float32) / 255.0


def unit_to_uint8(unit: np.ndarray) -> np.ndarray:
    """Values in [0, 1] → uint8 pixels: ``round(unit * 255)`` in float64, rounded half to even, clipped.

    In float64 the product is exact for float32 values, so :func:`uint8_to_unit`'s values come back as
    the same pixels.
    """
    return np.clip(np.rint(np.asarray(unit, dtype=np.float64) * 255.0), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- reading
@dataclass
class RawImages:
    """Images as read, before any conversion.

    Attributes:
        arrays: one ``(N, ...)`` array (``.npy``, IDX, zoo) or a list of per-file arrays.
        names: one name per image (file names, or ``source[i]``).
        source: what was read, for messages.
        layout: ``"batch"`` (``.npy``/IDX/zoo: ``(N, C, H, W)``, ``(N, H, W, C)``, ``(N, H, W)``)
            or ``"files"`` (each ``(H, W)`` or ``(H, W, C)``).
    """

    arrays: np.ndarray | list[np.ndarray]
    names: list[str]
    source: str
    layout: str

    def __len__(self) -> int:
        return len(self.names)


def _read_bytes(path: Path) -> bytes:
    """Return the (decompressed) contents of ``path``; gzip is detected by magic bytes."""
    raw = path.read_bytes()
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"{path}: corrupt or truncated gzip stream ({exc})") from exc


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read one IDX file (gzip-compressed or plain) into a NumPy array.

    Args:
        path: The IDX file. Compression is detected from the gzip magic bytes,
            not from the file name.

    Returns:
        An array with the shape stored in the header and the dtype given by the
        IDX type code, converted to native byte order (``uint8`` for image and
        label files; ``int8``, ``int16``, ``int32``, ``float32``, ``float64``
        are also understood). The array is writable and C-contiguous.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: naming the file, if the gzip stream is corrupt, the magic
            number is wrong (the first two bytes must be zero), the type code is
            unknown, there are no dimensions, the header is truncated, or the
            payload length differs from the product of the dimensions times the
            item size.
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise ValueError(
            f"{path}: truncated IDX file: expected at least a 4-byte magic number, "
            f"received {len(data)} bytes"
        )
    if data[0] != 0 or data[1] != 0:
        raise ValueError(
            f"{path}: bad IDX magic number: expected the first two bytes to be 0x00 0x00, "
            f"received 0x{data[0]:02x} 0x{data[1]:02x}"
        )
    type_code, ndim = data[2], data[3]
    if type_code not in _IDX_DTYPES:
        known = ", ".join(f"0x{code:02x}" for code in _IDX_DTYPES)
        raise ValueError(
            f"{path}: unknown IDX type code: expected one of {known}, received 0x{type_code:02x}"
        )
    if ndim == 0:
        raise ValueError(f"{path}: IDX header declares 0 dimensions: expected at least 1")
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise ValueError(
            f"{path}: truncated IDX header: expected {header_len} bytes for {ndim} dimensions, "
            f"received {len(data)} bytes"
        )
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[type_code]
    expected_payload = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    payload = len(data) - header_len
    if payload != expected_payload:
        kind = "truncated" if payload < expected_payload else "oversized"
        raise ValueError(
            f"{path}: {kind} IDX payload for shape {shape} and dtype {dtype.name}: "
            f"expected {expected_payload} bytes, received {payload} bytes"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header_len).reshape(shape)
    # astype copies: the result is writable, native-endian and owns its memory.
    return array.astype(dtype.newbyteorder("="), copy=True)


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
    """Read a folder of PNG/JPEG files, one such file, an ``.npy`` array or an IDX file.

    (``zoo:NAME``, a zoo entry's bundled test images, is read by :func:`discinvert.zoo.read_image_source`.)

    Raises:
        FileNotFoundError: no such path.
        ValueError: an empty folder, an unreadable file, an animated PNG, an unsupported
            suffix, or an ``.npy`` that holds no numeric (or bool) array.
    """
    text = str(source)
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
        array = read_idx(path)
        if array.ndim != 3:
            raise ValueError(f"{text}: expected an IDX file of images (N, H, W), got shape {array.shape}.")
        return RawImages(array, [f"{path.name}[{i}]" for i in range(len(array))], text, "batch")
    raise ValueError(f"{text}: expected a folder of images, an image file ({', '.join(IMAGE_SUFFIXES)}), an .npy "
                     "array or an IDX file (…-idx3-ubyte[.gz]).")


def _is_idx(path: Path) -> bool:
    name = path.name.lower().removesuffix(".gz")
    return name.endswith("-ubyte") or name.endswith(".idx") or ".idx3" in name


# ----------------------------------------------------------------------------- into G's shape and range
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
    # in the command line's words: only its --input-range gives an integer source an input range
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
        raw: images from :func:`read_images` (or :func:`discinvert.zoo.read_image_source`).
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
