"""Where the page's example pictures and edit directions come from.

- **examples**: any image source the command line reads (a folder of PNG/JPEG files, an
  ``.npy`` array, an IDX file, or ``zoo:NAME``'s bundled test images), as uint8 pictures;
- **directions** from labelled pictures: a folder with one sub-folder of images per label,
  or a zoo entry's labelled test images: one direction per label, learned with
  :func:`discinvert.directions.learn_directions` (a :class:`~discinvert.directions.DirectionSet`,
  method ``"labels"``, with each label's held-out balanced accuracy);
- **directions** from G alone, for a GAN without labels: :func:`unsupervised_directions`
  (:func:`discinvert.directions.find_directions`, SeFa, 8 directions, seed 0);
- **directions** from a file: a direction set file (:meth:`DirectionSet.save`, refused for
  another G), or a ``.safetensors`` file of bare named tensors, each of the inverter's latent
  shape (``safetensors.torch.save_file({"smile": d, ...}, path)``).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import safetensors
import safetensors.torch
import torch

from discinvert.directions import FORMAT_NAME, DirectionSet, find_directions, learn_directions
from discinvert.inverter import Inverter
from discinvert.pixels import model_to_uint8, prepare_images
from discinvert.web.session import Examples
from discinvert.zoo import read_image_source

__all__ = ["UNSUPERVISED_K", "directions_from_file", "directions_from_folders", "examples_from",
           "unsupervised_directions", "zoo_examples"]

UNSUPERVISED_K = 8
"""Sliders :func:`unsupervised_directions` finds by default."""


def examples_from(source: str, inverter: Inverter, limit: int = 1000) -> Examples:
    """The first ``limit`` pictures of ``source`` (see :func:`discinvert.zoo.read_image_source`), in G's shape.

    Raises:
        FileNotFoundError, ValueError: as the command line's image reading does.
    """
    images = prepare_images(read_image_source(source), inverter.image_shape, inverter.value_range)[:limit]
    return Examples(model_to_uint8(images, inverter.value_range))


def zoo_examples(entry: str, inverter: Inverter) -> tuple[Examples, torch.Tensor, np.ndarray, tuple[str, ...]]:
    """A zoo entry's bundled test pictures with their label names, and the pictures and labels themselves.

    Returns:
        ``(examples, images in G's range (N, C, H, W), labels (N,), label names)``.
    """
    from discinvert import zoo
    from discinvert.zoo.datasets import to_model_range

    pictures, labels = zoo.load_test_images(entry)
    names = zoo.label_names(entry)
    images = to_model_range(pictures).float()
    examples = Examples(model_to_uint8(images, (-1.0, 1.0)), tuple(names[int(c)] for c in labels))
    return examples, images, labels, names


def directions_from_folders(folder: str | Path, inverter: Inverter) -> DirectionSet:
    """One direction per sub-folder of ``folder`` (its name is the label), learned from the images in it.

    :func:`discinvert.directions.learn_directions` with each sub-folder's pictures against all the others'
    (seed 0; a quarter of each side held out to measure the balanced accuracy).

    Raises:
        FileNotFoundError: no such folder.
        ValueError: fewer than two labelled sub-folders, unreadable images, fewer than 2 pictures with or
            without a label.
    """
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder of labelled sub-folders.")
    labels = sorted(p for p in root.iterdir() if p.is_dir())
    if len(labels) < 2:
        raise ValueError(f"{root}: expected at least two sub-folders of images, one per label, got {len(labels)}.")
    batches = [prepare_images(read_image_source(p), inverter.image_shape, inverter.value_range) for p in labels]
    images = torch.cat(batches)
    label_ids = torch.cat([torch.full((len(b),), i, dtype=torch.long) for i, b in enumerate(batches)])
    try:
        return learn_directions(inverter, images, label_ids, names=[p.name for p in labels], seed=0)
    except ValueError as error:
        raise ValueError(f"{root}: {error}") from None


def unsupervised_directions(inverter: Inverter, *, k: int = UNSUPERVISED_K, seed: int = 0) -> DirectionSet:
    """Directions found from the inverter's G alone: :func:`discinvert.directions.find_directions` with SeFa.

    ``min(k, code elements)`` directions of the inverter's latent space (Z, or the space of a
    :class:`~discinvert.MappedGenerator`), ranked by how much they change G's pictures.

    Raises:
        ValueError: what :func:`find_directions` raises, e.g. no layer of G takes the code.
    """
    return find_directions(inverter.generator, latent_shape=tuple(inverter.latent_shape), method="sefa",
                           k=min(k, math.prod(inverter.latent_shape)), seed=seed)


def directions_from_file(path: str | Path, inverter: Inverter) -> DirectionSet | dict[str, torch.Tensor]:
    """The directions of a ``.safetensors`` file: a direction set, or bare named tensors.

    A file :meth:`DirectionSet.save` wrote (metadata ``format`` ``"discinvert-directions"``) is loaded
    strictly for the inverter's G (:meth:`DirectionSet.load` with ``generator=``). Any other safetensors
    file is read as named tensors, each of the inverter's latent shape (amounts in units of each vector).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a safetensors file, empty, a tensor of another size; a direction set that
            :meth:`DirectionSet.load` refuses, made for another G
            (:class:`~discinvert.inverter.FingerprintMismatchError`) or of another latent shape.
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"{file}: no such directions file.")
    try:
        with safetensors.safe_open(str(file), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except (safetensors.SafetensorError, OSError, ValueError) as error:
        raise ValueError(f"{file}: not a readable .safetensors file of directions ({error}).") from None
    if metadata.get("format") == FORMAT_NAME:
        directions = DirectionSet.load(file, generator=inverter.generator)
        if tuple(directions.latent_shape) != tuple(inverter.latent_shape):
            raise ValueError(f"{file}: a direction set of latent shape {tuple(directions.latent_shape)}; expected the "
                             f"inverter's {tuple(inverter.latent_shape)}.")
        return directions
    try:
        tensors = safetensors.torch.load_file(str(file))
    except (safetensors.SafetensorError, OSError, ValueError) as error:
        raise ValueError(f"{file}: not a readable .safetensors file of directions ({error}).") from None
    if not tensors:
        raise ValueError(f"{file}: expected named direction tensors, got an empty file.")
    shape = tuple(inverter.latent_shape)
    size = int(np.prod(shape))
    out = {}
    for name, tensor in tensors.items():
        if tensor.numel() != size:
            raise ValueError(f"{file}: direction {name!r} has shape {tuple(tensor.shape)}; expected the latent shape "
                             f"{shape}.")
        out[name] = tensor.float().reshape(shape)
    return out
