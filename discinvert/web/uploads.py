"""Uploaded pictures in, PNG pictures out: what ``discinvert serve`` accepts and how it shapes it for G.

An upload is a PNG or JPEG file. It is refused with an :class:`UploadError` (which carries
the HTTP status the API answers with) when it is empty or larger than the byte limit, not a
PNG/JPEG, animated, truncated, larger than the pixel limit (checked from the header, before
any pixel is decoded: the guard against decompression bombs), a PNG whose compressed metadata
(a zTXt/iTXt text or an iCCP colour profile) inflates past Pillow's limit (a decompression bomb in
the metadata), or in a pixel mode other than
8-bit grayscale, palette or RGB (with or without alpha): e.g. a 4-channel CMYK JPEG or a
16-bit PNG. An accepted picture is brought to G's image shape and every change is named in
the returned notes: alpha dropped, RGB averaged to gray (or gray repeated to RGB), the
centre cropped to G's aspect ratio, resized.
"""

from __future__ import annotations

import base64
import io
import warnings
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, PngImagePlugin, UnidentifiedImageError

from discinvert.pixels import uint8_to_unit, unit_to_uint8

__all__ = ["ACCEPTED_MODES", "PreparedImage", "UploadError", "png_bytes", "png_data_url", "read_upload"]

ACCEPTED_MODES: tuple[str, ...] = ("1", "L", "LA", "P", "PA", "RGB", "RGBA")
"""Pillow modes an upload may have: 8-bit grayscale, palette or RGB, with or without alpha (and 1-bit)."""

_FORMATS = ("PNG", "JPEG")
_PNG, _JPEG = b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff"

_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"GIF87a", "a GIF image"), (b"GIF89a", "a GIF image"), (b"BM", "a BMP image"), (b"II*\0", "a TIFF image"),
    (b"MM\0*", "a TIFF image"), (b"%PDF", "a PDF document"), (b"PK\3\4", "a ZIP archive"),
    (b"\x1f\x8b", "a gzip file"), (b"<svg", "an SVG image"), (b"\0\0\0\x0cjP", "a JPEG 2000 image"),
)


def _kind_of(data: bytes) -> str:
    """What an upload that is not a PNG/JPEG looks like, from its first bytes (for the refusal)."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "a WebP image"
    if data[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypavif"):
        return "a HEIF/AVIF image"
    for signature, kind in _SIGNATURES:
        if data.startswith(signature):
            return kind
    head = data[:32]
    try:
        text = head.decode("utf-8").strip()
    except UnicodeDecodeError:
        text = ""
    if text and all(c.isprintable() or c.isspace() for c in text):
        words = " ".join(text.split())
        return f"text beginning {words[:24] + ('…' if len(words) > 24 or len(data) > 32 else '')!r}"
    return f"a file of another kind (its first bytes are {head[:8].hex(' ')})"


def _metadata_bomb(error: BaseException) -> UploadError | None:
    """The refusal of a PNG whose zTXt/iTXt/iCCP chunk inflates past Pillow's ``MAX_TEXT_CHUNK`` (or
    whose text chunks together pass ``MAX_TEXT_MEMORY``), from Pillow's ``ValueError``; None for other errors."""
    message = str(error)
    if "Decompressed data too large" in message:
        what, limit = "compressed metadata (a zTXt/iTXt text or an iCCP colour profile chunk) inflates", \
            PngImagePlugin.MAX_TEXT_CHUNK
    elif "Too much memory used in text chunks" in message:
        what, limit = "text chunks together inflate", PngImagePlugin.MAX_TEXT_MEMORY
    else:
        return None
    return UploadError(413, f"a PNG whose {what} past Pillow's limit of {limit:,} bytes, a decompression bomb: "
                            "expected a PNG or JPEG with small metadata.")


class UploadError(ValueError):
    """An upload the server refuses; ``status`` is the HTTP status of the API's JSON error."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class PreparedImage:
    """An upload as G's images look.

    Attributes:
        pixels: ``(C, H, W)`` float32 in [0, 1] (C is G's channel count).
        notes: what was done to the upload, one short sentence each (empty: taken as it was).
    """

    pixels: np.ndarray
    notes: list[str] = field(default_factory=list)


def read_upload(data: bytes, image_shape: tuple[int, int, int], *, max_bytes: int, max_pixels: int) -> PreparedImage:
    """Decode a PNG/JPEG upload and bring it to ``image_shape``.

    Args:
        data: the file's bytes.
        image_shape: G's ``(C, H, W)``, ``C`` 1 or 3.
        max_bytes: the largest file accepted.
        max_pixels: the largest width x height accepted (read from the header before decoding).

    Raises:
        UploadError: 400 (empty, truncated, animated), 413 (too many bytes or pixels, a
            decompression bomb in a PNG's metadata), 415 (not a PNG/JPEG), 422 (a pixel mode other than :data:`ACCEPTED_MODES`).
    """
    channels, height, width = image_shape
    if not data:
        raise UploadError(400, "empty upload: expected a PNG or JPEG file.")
    if len(data) > max_bytes:
        raise UploadError(413, f"upload of {len(data):,} bytes: expected at most {max_bytes:,} bytes (a PNG or JPEG file).")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            picture = Image.open(io.BytesIO(data), formats=_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:  # Pillow's own guard
        raise UploadError(413, f"image too large to decode ({error}): expected at most {max_pixels:,} pixels.") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        if (bomb := _metadata_bomb(error)) is not None:
            raise bomb from None
        if data.startswith(_PNG) or data.startswith(_JPEG):
            raise UploadError(400, f"unreadable {'PNG' if data.startswith(_PNG) else 'JPEG'} ({error}): expected a "
                                   "complete PNG or JPEG file.") from None
        raise UploadError(415, f"expected a PNG or JPEG file, got {_kind_of(data)}.") from None
    w, h = picture.size
    if w * h > max_pixels:  # read from the header: nothing is decoded yet
        raise UploadError(413, f"image of {w}x{h} pixels: expected at most {max_pixels:,} pixels in all.")
    if getattr(picture, "n_frames", 1) > 1:
        raise UploadError(400, f"animated {picture.format} with {picture.n_frames} frames: expected a single picture.")
    if picture.mode not in ACCEPTED_MODES:
        raise UploadError(422, f"image in pixel mode {picture.mode!r} ({len(picture.getbands())} channel(s) "
                               f"{''.join(picture.getbands())}): expected 8-bit grayscale or RGB, with or without alpha.")
    try:
        picture.load()
    except (OSError, SyntaxError, ValueError) as error:
        if (bomb := _metadata_bomb(error)) is not None:  # a text chunk after the pixels is only read now
            raise bomb from None
        raise UploadError(400, f"unreadable {picture.format} ({error}): expected a complete PNG or JPEG file.") from None
    notes: list[str] = []
    picture, notes = _to_channels(picture, channels, notes)
    picture = _to_size(picture, width, height, notes)
    pixels = uint8_to_unit(picture)
    pixels = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
    return PreparedImage(np.ascontiguousarray(pixels), notes)


def _to_channels(picture: Image.Image, channels: int, notes: list[str]) -> tuple[Image.Image, list[str]]:
    if picture.mode in ("P", "PA"):
        picture = picture.convert("RGBA" if "transparency" in picture.info or picture.mode == "PA" else "RGB")
    if picture.mode == "1":
        picture = picture.convert("L")
    if picture.mode in ("LA", "RGBA"):
        notes.append("dropped the alpha channel")
        picture = picture.convert(picture.mode[:-1])
    if channels == 1 and picture.mode == "RGB":
        notes.append("averaged RGB to grayscale")
        picture = picture.convert("L")
    elif channels == 3 and picture.mode == "L":
        notes.append("repeated grayscale to RGB")
        picture = picture.convert("RGB")
    return picture, notes


def _to_size(picture: Image.Image, width: int, height: int, notes: list[str]) -> Image.Image:
    w, h = picture.size
    if (w, h) == (width, height):
        return picture
    # The centre crop of G's aspect ratio, then a resize: nothing is stretched.
    crop_w, crop_h = (w, round(w * height / width)) if w * height <= h * width else (round(h * width / height), h)
    if (crop_w, crop_h) != (w, h):
        left, top = (w - crop_w) // 2, (h - crop_h) // 2
        picture = picture.crop((left, top, left + crop_w, top + crop_h))
        notes.append(f"cropped the centre {crop_w}x{crop_h} of {w}x{h}")
    notes.append(f"resized {crop_w}x{crop_h} to {width}x{height}")
    return picture.resize((width, height), Image.Resampling.LANCZOS, reducing_gap=3.0)


def png_bytes(pixels: np.ndarray) -> bytes:
    """``(C, H, W)`` values in [0, 1] (C 1 or 3; clipped) as PNG bytes."""
    array = unit_to_uint8(pixels)
    picture = Image.fromarray(array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def png_data_url(pixels: np.ndarray) -> str:
    """``(C, H, W)`` values in [0, 1] as a ``data:image/png;base64,...`` URL (what the page shows)."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(pixels)).decode("ascii")
