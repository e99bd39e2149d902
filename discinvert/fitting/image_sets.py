"""The user's real images for the real-image stage: checked, split into training and held-out images.

``fit_inverter(..., images=X)`` takes ``X`` as a tensor or NumPy array ``(N, *image_shape)``,
a :class:`torch.utils.data.Dataset` whose items are images ``(*image_shape)`` (or tuples
starting with one, as labelled data sets give), or a :class:`torch.utils.data.DataLoader`
yielding batches ``(B, *image_shape)`` (or tuples starting with one). Tensors, arrays and
data sets are read by index as the stage needs them; a DataLoader is read once, into memory.
Images are floats in G's range; black-and-white images (dtype ``bool``, e.g. thresholded
or 1-bit pictures) are the one exception: black (``False``) becomes the low end of G's
range and white (``True``) its high end (-1 and 1 for a tanh G), as 0 and 255 would.
A seeded random slice is held out to choose the best weights, so images sorted by class
still give a fair held-out slice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Union

import numpy as np
import torch
import warnings

from torch.utils.data import DataLoader, Dataset, IterableDataset

from discinvert.argument_checks import holds_data, numpy_tensor
from discinvert.distributed import together
from discinvert.value_range import nominal_range, range_problem

__all__ = ["ImageBatches", "ImageSet", "ImageSource", "ImageSplit", "MIN_IMAGES", "RANGE_SAMPLE", "UnitRangeWarning", "split_images"]

ImageSource = Union[torch.Tensor, np.ndarray, Dataset, DataLoader]
"""What ``fit_inverter(images=...)`` accepts."""

MIN_IMAGES = 8
"""The fewest real images the stage trains on (one of every five is held out, at least one)."""

RANGE_SAMPLE = 256
"""The most training images (the first ones) whose values are checked against G's range, beside the held-out ones."""


def _first_tensor(item: Any, where: str, value_range: tuple[float, float]) -> torch.Tensor:
    """The images in ``item`` (or in its first entry), float, in G's range ``value_range`` for bool images."""
    if isinstance(item, (tuple, list)) and item:
        item = item[0]
    if isinstance(item, np.ndarray):
        if item.dtype.kind not in "fb":
            raise ValueError(
                f"images: expected floating-point images in the generator's range (or bool black-and-white "
                f"images), got a NumPy array of dtype {item.dtype} at {where}; convert and scale them first (e.g. "
                "uint8 x → x / 127.5 - 1 for a tanh G)."
            )
        item = numpy_tensor(item, "images")
    if not isinstance(item, torch.Tensor):
        raise ValueError(f"images: expected a tensor (or a tuple starting with one) at {where}, got {type(item).__name__}.")
    if item.dtype == torch.bool:  # black and white: the two ends of G's range, not the values 0.0 and 1.0
        low, high = value_range
        return torch.where(item.detach(), high, low).float()
    if not item.is_floating_point():
        raise ValueError(
            f"images: expected floating-point images in the generator's range (or bool black-and-white images), "
            f"got dtype {item.dtype} at {where}; convert and scale them first (e.g. uint8 x → x / 127.5 - 1 for a "
            "tanh generator)."
        )
    return holds_data(item, "images").detach()


def _check_batch(batch: torch.Tensor, image_shape: tuple[int, ...], where: str) -> torch.Tensor:
    if batch.dim() != len(image_shape) + 1 or tuple(batch.shape[1:]) != image_shape:
        raise ValueError(
            f"images: expected shape (N, {', '.join(map(str, image_shape))}) as G makes them, got "
            f"{tuple(batch.shape)} at {where}."
        )
    if batch.numel() and not bool(torch.isfinite(batch).all()):
        raise ValueError(f"images: expected finite values, got NaN or Inf at {where}.")
    return batch


class UnitRangeWarning(UserWarning):
    """The real images lie in [0, 1] while G's images span [-1, 1]: probably not yet mapped (x → 2x − 1)."""


@dataclass
class ImageSet:
    """Random access to the user's images: :meth:`get` a batch by index, on the CPU, float32.

    Attributes:
        size: how many images.
        source: what they came from, for messages and the recorded config.
    """

    size: int
    source: str
    _images: torch.Tensor | None = None
    _dataset: Dataset | None = None
    _image_shape: tuple[int, ...] = ()
    _value_range: tuple[float, float] = (-1.0, 1.0)

    def get(self, indices: torch.Tensor) -> torch.Tensor:
        """Images ``(len(indices), *image_shape)`` float32 on the CPU.

        Raises:
            ValueError: a data set item of another shape, dtype or with NaN/Inf.
        """
        if self._images is not None:
            return self._images[indices].float()
        dataset: Any = self._dataset
        items = [_first_tensor(dataset[int(i)], f"dataset[{int(i)}]", self._value_range) for i in indices]
        shapes = {tuple(item.shape) for item in items}
        if len(shapes) > 1 or (items and shapes != {self._image_shape}):
            raise ValueError(
                f"images: expected data set items of shape {self._image_shape} as G makes them, got shapes "
                f"{sorted(shapes)[:3]} among dataset items {indices[:3].tolist()}..."
            )
        batch = torch.stack(items) if items else torch.empty(0, *self._image_shape)
        return _check_batch(batch.float(), self._image_shape, f"dataset items {indices[:3].tolist()}...")


def _image_set(images: ImageSource, image_shape: tuple[int, ...], value_range: tuple[float, float]) -> ImageSet:
    if isinstance(images, DataLoader):
        # Iterating a DataLoader draws its base seed from the global RNG: read it on a fork,
        # so the fit's own random stream (the CN's initialisation) does not depend on it.
        with torch.random.fork_rng(devices=[]):
            batches = [_check_batch(_first_tensor(b, f"batch {i} of the DataLoader", value_range), image_shape,
                                    f"batch {i} of the DataLoader") for i, b in enumerate(images)]
        if not batches:
            raise ValueError("images: expected a DataLoader yielding image batches, got one that yields nothing.")
        tensor = torch.cat([b.cpu().float() for b in batches])
        return ImageSet(len(tensor), f"DataLoader ({len(tensor)} images)", _images=tensor, _image_shape=image_shape)
    if isinstance(images, (torch.Tensor, np.ndarray)):
        tensor = _check_batch(_first_tensor(images, "the array", value_range), image_shape, "the array").cpu()
        kind = "tensor" if isinstance(images, torch.Tensor) else "NumPy array"
        return ImageSet(len(tensor), f"{kind} of {len(tensor)} images", _images=tensor, _image_shape=image_shape)
    if (isinstance(images, Dataset) and not isinstance(images, IterableDataset) and hasattr(images, "__len__")
            and hasattr(images, "__getitem__")):
        return ImageSet(len(images), f"{type(images).__name__} of {len(images)} images",  # type: ignore[arg-type]
                        _dataset=images, _image_shape=image_shape, _value_range=value_range)
    raise ValueError(
        f"images: expected a tensor or NumPy array (N, {', '.join(map(str, image_shape))}), a map-style torch "
        f"Dataset (with __len__ and __getitem__) or a DataLoader of such images, got {type(images).__name__}."
    )


@dataclass(frozen=True)
class ImageSplit:
    """The images the stage trains on (by index into ``images``) and the held-out ones (loaded)."""

    images: ImageSet
    train_indices: torch.Tensor
    held_out: torch.Tensor


@dataclass(frozen=True)
class ImageBatches:
    """Training batches of the user's images: random draws from ``split``'s training images.

    Attributes:
        split: the images.
        rng: draws the batches' indices (a CPU generator).
    """

    split: ImageSplit
    rng: torch.Generator

    def draw(self, batch_size: int, device: torch.device, distributed: bool) -> torch.Tensor:
        """``batch_size`` training images ``(B, *image_shape)`` float32 on the CPU; under torchrun
        (``distributed``, collectives on ``device``) a rank that cannot load its batch stops every rank.

        Raises:
            ValueError: a data set item of another shape, dtype or with NaN/Inf (on every rank).
        """
        indices = self.split.train_indices
        picked = indices[torch.randint(0, len(indices), (batch_size,), generator=self.rng)]
        if not distributed:
            return self.split.images.get(picked)
        return together(lambda: self.split.images.get(picked), device, "images")


def split_images(images: ImageSource, image_shape: Sequence[int], *, held_out: int, seed: int,
                 image_range: tuple[float, float] | None) -> ImageSplit:
    """Check the user's images against G and hold out ``min(held_out, N // 5)`` of them (at least 1).

    Args:
        images: see :data:`ImageSource`; values in G's range, shape ``(N, *image_shape)``.
        image_shape: the shape of one of G's images.
        held_out: the most images held out (chosen by a permutation seeded with ``seed``).
        image_range: ``(min, max)`` of G's images; the held-out images (and the first
            training images) must lie in G's range (see :mod:`discinvert.value_range`).
            Bool images become the two ends of its nominal range (``(-1, 1)`` when ``None``).

    Raises:
        ValueError: another type, shape or dtype, NaN/Inf, fewer than :data:`MIN_IMAGES`
            images, or values far outside G's range.
    """
    shape = tuple(int(d) for d in image_shape)
    image_set = _image_set(images, shape, nominal_range(image_range))
    if image_set.size < MIN_IMAGES:
        raise ValueError(f"images: expected at least {MIN_IMAGES} real images, got {image_set.size}.")
    n_held = max(1, min(held_out, image_set.size // 5))
    order = torch.randperm(image_set.size, generator=torch.Generator().manual_seed(seed))
    held = image_set.get(order[:n_held])
    train_indices = order[n_held:]
    if image_range is not None:
        sample = torch.cat([held, image_set.get(train_indices[: max(1, min(RANGE_SAMPLE, len(train_indices)))])])
        found = (float(sample.min()), float(sample.max()))
        problem = range_problem(found, image_range)
        if problem is not None:
            raise ValueError(problem)
        if nominal_range(image_range) == (-1.0, 1.0) and found[0] >= 0.0:
            warnings.warn(
                f"images: G's images span [{image_range[0]:.3g}, {image_range[1]:.3g}] (a [-1, 1] generator), but "
                f"these images lie in [{found[0]:.3g}, {found[1]:.3g}], with no negative value: they look like "
                "[0, 1] images (e.g. torchvision's ToTensor without Normalize). Map them with x * 2 - 1, or G "
                "cannot reproduce them.", UnitRangeWarning, stacklevel=3)
    return ImageSplit(image_set, train_indices, held)
