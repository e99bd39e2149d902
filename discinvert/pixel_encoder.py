"""The pixel feature network: images → features for the connection network when no discriminator is at hand.

An inverter fit for G alone (``fit_inverter(G, None, latent_shape=...)``) cannot read D's features, so it
learns its own: a small convolutional network whose layout is derived from the image shape, trained from
scratch together with the CN on the self-generated pairs ``(z, G(z))``. Each block is a 3x3 convolution of
stride 2 and padding 1, which maps a side of ``s`` pixels to ``ceil(s / 2)`` (28 → 14 → 7 → 4,
32 → 16 → 8 → 4, a side of 1 stays 1), followed by a LeakyReLU; blocks are added until the longer side is at
most :data:`TARGET_SIDE` (4) pixels, and there is always at least one. The channels double from
``base_width`` at each block up to ``max_width``. The flattened output of the last block is what the CN reads.

There is no BatchNorm inside it: an image's features, hence its code, must not depend on the other images
of its batch (the CN behind it keeps its own BatchNorm, whose running statistics ``encode`` uses).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from discinvert.network import MAX_FEATURES

__all__ = ["DEFAULT_PIXEL_WIDTH", "MAX_CONV_WIDTH", "MAX_PIXEL_VALUES", "TARGET_SIDE", "PixelEncoder",
           "PixelEncoderConfig"]

DEFAULT_PIXEL_WIDTH = 32
"""Channels of the first block unless told otherwise (``fit_inverter(pixel_width=...)``); chosen against a wider
network on held-out train images (``docs/results.md``, "How the defaults were chosen")."""

WIDTH_CAP_FACTOR = 8
"""A fit caps the channels at this many times ``base_width`` (three doublings)."""

TARGET_SIDE = 4
"""Blocks halve the image until its longer side is at most this many pixels."""

MAX_CONV_WIDTH = 4096
"""Most channels of one block (a stored config must not make the loader build huge convolutions)."""

MAX_PIXEL_VALUES = 2**28
"""Most values of one image the pixel network reads (as ``InverterConfig`` bounds ``image_shape``)."""

_KERNEL, _STRIDE, _PADDING = 3, 2, 1


def _halved(side: int) -> int:
    return (side + 2 * _PADDING - _KERNEL) // _STRIDE + 1  # = ceil(side / 2)


def _positive_int(value: Any, name: str, most: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"PixelEncoderConfig.{name}: expected a positive int, got {value!r}.")
    if value > most:
        raise ValueError(f"PixelEncoderConfig.{name}: expected at most {most}, got {value}.")
    return value


@dataclass(frozen=True)
class PixelEncoderConfig:
    """Architecture of a pixel feature network; the layout follows from ``image_shape``.

    Attributes:
        image_shape: ``(channels, height, width)`` of one image as G produces it.
        base_width: channels of the first block; each later block doubles them.
        max_width: the most channels of any block (``>= base_width``).
        negative_slope: slope of the LeakyReLU after each convolution.

    Raises:
        ValueError: an image shape that is not three positive ints (a flat G's vectors have no pixel
            layout), more than :data:`MAX_PIXEL_VALUES` values; widths that are not positive ints, beyond
            :data:`MAX_CONV_WIDTH`, or ``max_width < base_width``; a slope outside ``[0, 1)``; more than
            :data:`~discinvert.network.MAX_FEATURES` output features.
    """

    image_shape: tuple[int, int, int]
    base_width: int = DEFAULT_PIXEL_WIDTH
    max_width: int = DEFAULT_PIXEL_WIDTH * WIDTH_CAP_FACTOR
    negative_slope: float = 0.2

    def __post_init__(self) -> None:
        shape = self.image_shape
        if (not isinstance(shape, (tuple, list)) or len(shape) != 3
                or any(not isinstance(d, int) or isinstance(d, bool) or d < 1 for d in shape)):
            raise ValueError(
                "image_shape: the pixel feature network reads images of shape (channels, height, width); expected "
                f"three positive ints, got {shape!r}. A generator of flat vectors needs a discriminator's features.")
        object.__setattr__(self, "image_shape", tuple(int(d) for d in shape))
        if math.prod(self.image_shape) > MAX_PIXEL_VALUES:
            raise ValueError(f"PixelEncoderConfig.image_shape: expected at most {MAX_PIXEL_VALUES} values, "
                             f"got {list(self.image_shape)}.")
        _positive_int(self.base_width, "base_width", MAX_CONV_WIDTH)
        _positive_int(self.max_width, "max_width", MAX_CONV_WIDTH)
        if self.max_width < self.base_width:
            raise ValueError(f"PixelEncoderConfig.max_width: expected at least base_width ({self.base_width}), "
                             f"got {self.max_width}.")
        slope = self.negative_slope
        if not isinstance(slope, (int, float)) or isinstance(slope, bool) or not 0.0 <= slope < 1.0:
            raise ValueError(f"PixelEncoderConfig.negative_slope: expected a float in [0, 1), got {slope!r}.")
        object.__setattr__(self, "negative_slope", float(slope))
        if self.out_features > MAX_FEATURES:
            raise ValueError(f"PixelEncoderConfig: expected at most {MAX_FEATURES} output features, got "
                             f"{self.out_features} for images of shape {list(self.image_shape)}.")

    @property
    def layout(self) -> tuple[tuple[int, int, int], ...]:
        """``(channels, height, width)`` after each block, e.g. ``((32, 14, 14), (64, 7, 7), (128, 4, 4))`` for
        28x28 images and the default widths."""
        _, height, width = self.image_shape
        blocks: list[tuple[int, int, int]] = []
        while not blocks or max(height, width) > TARGET_SIDE:
            height, width = _halved(height), _halved(width)
            blocks.append((min(self.base_width * 2 ** len(blocks), self.max_width), height, width))
        return tuple(blocks)

    @property
    def out_features(self) -> int:
        """Flattened size of the last block's output: what the CN reads."""
        return math.prod(self.layout[-1])

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (lists for tuples)."""
        data = asdict(self)
        data["image_shape"] = list(self.image_shape)
        return data

    @classmethod
    def from_dict(cls, data: Any) -> "PixelEncoderConfig":
        """Inverse of :meth:`to_dict`; unknown or missing keys, and what ``__init__`` refuses, raise ``ValueError``."""
        if not isinstance(data, dict):
            raise ValueError(f"pixel encoder config: expected a JSON object, got {type(data).__name__}.")
        expected = {"image_shape", "base_width", "max_width", "negative_slope"}
        if set(data) != expected:
            raise ValueError(f"pixel encoder config: expected keys {sorted(expected)}, got {sorted(data)}.")
        if not isinstance(data["image_shape"], list):
            raise ValueError(f"pixel encoder config: expected 'image_shape' to be a list, got {data['image_shape']!r}.")
        return cls(image_shape=tuple(data["image_shape"]), base_width=data["base_width"],  # type: ignore[arg-type]
                   max_width=data["max_width"], negative_slope=data["negative_slope"])


class PixelEncoder(nn.Module):
    """Images ``(N, C, H, W)`` → features ``(N, out_features)``: strided convolutions and LeakyReLUs.

    The convolutions are ``layers.0``, ``layers.2``, ... (each followed by its LeakyReLU), the state-dict keys of
    a saved inverter's ``pixels.*`` tensors. Each image's features depend on that image alone.
    """

    def __init__(self, config: PixelEncoderConfig) -> None:
        super().__init__()
        self.config = config
        modules: list[nn.Module] = []
        channels = config.image_shape[0]
        for width, _, _ in config.layout:
            modules += [nn.Conv2d(channels, width, _KERNEL, _STRIDE, _PADDING), nn.LeakyReLU(config.negative_slope)]
            channels = width
        self.layers = nn.Sequential(*modules)

    @property
    def last_layer(self) -> str:
        """Dotted name of the last module, whose output are the features (a tap on this network reads it)."""
        return f"layers.{len(self.layers) - 1}"

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Map ``(N, *image_shape)`` images (or ``(N, prod(image_shape))`` flattened ones) to ``(N, out_features)``.

        Raises:
            ValueError: images of another shape (e.g. channels last, or another channel count).
        """
        shape = self.config.image_shape
        if images.dim() < 2 or tuple(images.shape[1:]) not in (shape, (math.prod(shape),)):
            raise ValueError(
                f"images: the pixel network expected a batch of shape (N, {', '.join(map(str, shape))}) "
                f"(or (N, {math.prod(shape)}) flattened), got {tuple(images.shape)}."
            )
        return self.layers(images.reshape(-1, *shape)).flatten(1)
