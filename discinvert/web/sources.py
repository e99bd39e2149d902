"""Where the page's example pictures and edit directions come from.

- **examples**: any image source the command line reads (a folder of PNG/JPEG files, an
  ``.npy`` array, an IDX file, or ``zoo:NAME``'s bundled test images), as uint8 pictures;
- **directions** from labelled pictures: a folder with one sub-folder of images per label,
  or a zoo entry's labelled test images: one direction per label
  (:func:`discinvert.edit.class_directions`, the label's mean code minus the others');
- **directions** from a file: a ``.safetensors`` file of named tensors, each of the
  inverter's latent shape (``safetensors.torch.save_file({"smile": d, ...}, path)``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import safetensors
import safetensors.torch
import torch

from discinvert.edit import class_directions
from discinvert.inverter import Inverter
from discinvert.pixels import model_to_uint8, prepare_images
from discinvert.web.session import Examples
from discinvert.zoo import read_image_source

__all__ = ["directions_from_file", "directions_from_folders", "examples_from", "zoo_examples"]


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


def directions_from_folders(folder: str | Path, inverter: Inverter) -> dict[str, torch.Tensor]:
    """One direction per sub-folder of ``folder`` (its name is the label), from the images in it.

    Raises:
        FileNotFoundError: no such folder.
        ValueError: fewer than two labelled sub-folders, or unreadable images.
    """
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder of labelled sub-folders.")
    labels = sorted(p for p in root.iterdir() if p.is_dir())
    if len(labels) < 2:
        raise ValueError(f"{root}: expected at least two sub-folders of images, one per label, got {len(labels)}.")
    batches = [prepare_images(read_image_source(p), inverter.image_shape, inverter.value_range) for p in labels]
    images = torch.cat(batches)
    label_ids = np.concatenate([np.full(len(b), i) for i, b in enumerate(batches)])
    return class_directions(inverter, images, label_ids, [p.name for p in labels])


def directions_from_file(path: str | Path, inverter: Inverter) -> dict[str, torch.Tensor]:
    """The named directions of a ``.safetensors`` file, each of the inverter's latent shape.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a safetensors file, empty, or a tensor of another size.
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"{file}: no such directions file.")
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
