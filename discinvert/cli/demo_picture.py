"""The demo's picture (``reconstructions.png``): labelled reconstructions and a labelled latent edit.

Two panels on one white RGB canvas, each with its own header, so that no tile sits under a
column it does not belong to:

1. **Reconstructions**: a title, a header row with the class names, then one row per method
   (originals, encode, ...), labelled on the left with its name and a detail line (which inverter,
   the mean PSNR).
2. **Edit**: a title saying what the edit is; per start image a header row (``start``, then
   ``s = 0``, ``s = 0.5``, ...) and one row per inverter: the start image (framed in orange, as its
   header), then the edit at each strength ``s`` (``s = 0`` is the start's own reconstruction).

Text is drawn with Pillow's scalable default font (Pillow >= 10.1), else DejaVu Sans when the
system has it, else Pillow's small bitmap font.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["EditBlock", "EditPanel", "Row", "draw_picture"]

SCALE = 3
"""Tiles are drawn at this integer upscaling (28 px images become 84 px)."""
GAP = 6
"""Pixels between two tiles."""
START_COLOUR = (225, 110, 0)
"""The frame and header of an edit's start image."""
TEXT, DETAIL, BACKGROUND = (20, 20, 20), (95, 95, 95), (255, 255, 255)
TITLE_SIZE, LABEL_SIZE, DETAIL_SIZE = 18, 15, 14


@dataclass(frozen=True)
class Row:
    """One labelled row of tiles.

    Attributes:
        label: the row's name, drawn on the left (``"encode"``).
        detail: a second, smaller line under it (the inverter and its PSNR: ``f"paper CN, {psnr:.2f} dB"``);
            may be empty.
        tiles: ``(n, H, W)`` uint8 grayscale images.
    """

    label: str
    detail: str
    tiles: np.ndarray


@dataclass(frozen=True)
class EditBlock:
    """The edits of one start image: a header row, then one row per inverter.

    Attributes:
        name: the start image's name, drawn left of the header (``"sneaker A"``).
        start: ``(H, W)`` uint8, the real image the edits start from.
        rows: per inverter, its ``(len(strengths), H, W)`` edits, in the order of the strengths.
    """

    name: str
    start: np.ndarray
    rows: tuple[Row, ...]


@dataclass(frozen=True)
class EditPanel:
    """The edit panel: a title and a smaller subtitle, the strengths, and one block per start image."""

    title: str
    subtitle: str
    strengths: tuple[float, ...]
    blocks: tuple[EditBlock, ...]


def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1: a scalable font
    except TypeError:
        pass
    try:
        return ImageFont.truetype("DejaVuSans.ttf", size)
    except OSError:
        return ImageFont.load_default()


def _strength(value: float) -> str:
    return f"{value:g}"


class _Canvas:
    """Measures and draws text and tiles on a white RGB picture."""

    def __init__(self, width: int, height: int) -> None:
        from PIL import Image, ImageDraw

        self.image = Image.new("RGB", (width, height), BACKGROUND)
        self.draw = ImageDraw.Draw(self.image)

    @staticmethod
    def width_of(text: str, font: Any) -> int:
        from PIL import Image, ImageDraw

        left, _, right, _ = ImageDraw.Draw(Image.new("RGB", (1, 1))).textbbox((0, 0), text, font=font)
        return int(right - left)

    def text(self, xy: tuple[float, float], text: str, font: Any, fill: tuple[int, int, int], anchor: str = "la") -> None:
        self.draw.text(xy, text, font=font, fill=fill, anchor=anchor)

    def tile(self, x: int, y: int, tile: np.ndarray, frame: tuple[int, int, int] | None = None) -> None:
        from PIL import Image

        big = np.asarray(tile, dtype=np.uint8).repeat(SCALE, axis=0).repeat(SCALE, axis=1)
        self.image.paste(Image.fromarray(big).convert("RGB"), (x, y))
        if frame is not None:
            h, w = big.shape
            self.draw.rectangle((x - 2, y - 2, x + w + 1, y + h + 1), outline=frame, width=2)


def draw_picture(title: str, subtitle: str, columns: Sequence[str], rows: Sequence[Row],
                 edit: EditPanel | None = None) -> np.ndarray:
    """The demo's picture as a uint8 ``(H, W, 3)`` array.

    Args:
        title, subtitle: the reconstruction panel's title, and a smaller line under it.
        columns: the header of each column of ``rows`` (the class names).
        rows: reconstruction rows, each with ``len(columns)`` tiles of the same size.
        edit: the edit panel, or ``None``.

    Raises:
        ValueError: no rows, or a row whose tile count differs from the columns'.
    """
    if not rows:
        raise ValueError("rows: expected at least one row of tiles, got none.")
    for row in rows:
        if len(row.tiles) != len(columns):
            raise ValueError(f"row {row.label!r}: expected {len(columns)} tiles (one per column), got {len(row.tiles)}.")
    size = rows[0].tiles.shape[-1] * SCALE
    cell = size + GAP
    title_font, label_font, detail_font = _font(TITLE_SIZE), _font(LABEL_SIZE), _font(DETAIL_SIZE)
    margin, title_h, header_h = 14, TITLE_SIZE + DETAIL_SIZE + 18, 2 * LABEL_SIZE + 8

    every_row = [*rows, *(r for block in (edit.blocks if edit else ()) for r in block.rows)]
    names = [block.name for block in (edit.blocks if edit else ())]
    label_w = 16 + max([_Canvas.width_of(r.label, label_font) for r in every_row]
                       + [_Canvas.width_of(r.detail, detail_font) for r in every_row]
                       + [_Canvas.width_of(n, label_font) for n in names])
    edit_columns = 1 + len(edit.strengths) if edit else 0
    width = margin + label_w + max(len(columns), edit_columns) * cell + margin
    texts = [(title, title_font), (subtitle, detail_font)]
    texts += [(edit.title, title_font), (edit.subtitle, detail_font)] if edit else []
    width = max(width, *(2 * margin + _Canvas.width_of(text, font) for text, font in texts))
    height = margin + title_h + header_h + len(rows) * cell
    if edit:
        height += 2 * margin + title_h + sum(header_h + len(block.rows) * cell for block in edit.blocks)
    height += margin
    canvas = _Canvas(width, height)
    left = margin + label_w  # x of the first tile column

    def label(y: int, row: Row) -> None:
        middle = y + size / 2
        if row.detail:
            canvas.text((margin, middle - 2), row.label, label_font, TEXT, "ls")
            canvas.text((margin, middle + 4), row.detail, detail_font, DETAIL, "lt")
        else:
            canvas.text((margin, middle), row.label, label_font, TEXT, "lm")

    def header(y: int, texts: Sequence[str], colours: Sequence[tuple[int, int, int]]) -> None:
        for c, (text, colour) in enumerate(zip(texts, colours)):
            centre = left + c * cell + size / 2
            lines = [text]
            if _Canvas.width_of(text, label_font) > cell and ("/" in text or " " in text):
                cut = text.index("/") + 1 if "/" in text else text.index(" ")
                lines = [text[:cut].strip(), text[cut:].strip()]
            for k, line in enumerate(reversed(lines)):
                canvas.text((centre, y + header_h - 6 - k * (LABEL_SIZE + 2)), line, label_font, colour, "ms")

    def heading(y: int, title: str, subtitle: str) -> None:
        canvas.text((margin, y), title, title_font, TEXT)
        canvas.text((margin, y + TITLE_SIZE + 6), subtitle, detail_font, DETAIL)

    y = margin
    heading(y, title, subtitle)
    y += title_h
    header(y, columns, [TEXT] * len(columns))
    y += header_h
    for row in rows:
        label(y, row)
        for c, tile in enumerate(row.tiles):
            canvas.tile(left + c * cell, y, tile)
        y += cell
    if edit:
        y += margin
        canvas.draw.line((margin, y, width - margin, y), fill=(200, 200, 200), width=1)
        y += margin
        heading(y, edit.title, edit.subtitle)
        y += title_h
        for block in edit.blocks:
            canvas.text((margin, y + header_h - 6), block.name, label_font, START_COLOUR, "ls")
            header(y, ["start", *(f"s = {_strength(s)}" for s in edit.strengths)],
                   [START_COLOUR] + [TEXT] * len(edit.strengths))
            y += header_h
            for row in block.rows:
                if len(row.tiles) != len(edit.strengths):
                    raise ValueError(f"edit row {row.label!r}: expected {len(edit.strengths)} tiles (one per "
                                     f"strength), got {len(row.tiles)}.")
                label(y, row)
                canvas.tile(left, y, block.start, frame=START_COLOUR)
                for c, tile in enumerate(row.tiles, 1):
                    canvas.tile(left + c * cell, y, tile)
                y += cell
    return np.asarray(canvas.image)
