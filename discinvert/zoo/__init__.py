"""The bundled model zoo: reference GANs with their fitted inverters and real test images.

Everything ships inside the package, so it works offline on a fresh install::

    from discinvert import zoo
    G, D, inverter = zoo.load("dcgan-fashion-mnist")
    images, labels = zoo.load_test_images("dcgan-fashion-mnist")   # uint8 (1000, 28, 28)

Each entry is a folder ``discinvert/zoo/<name>/`` holding ``gan/`` (written by
:func:`discinvert.zoo.architectures.save_gan`), ``inverter/`` (laid out exactly as a Hub repo:
``model.safetensors``, ``config.json``, ``README.md``, so publishing it is one
``upload_folder`` call) and ``test_images.safetensors``. The folders are made by
``python -m benchmarks.paper.build_zoo``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import safetensors.torch
import torch
from torch import nn

from discinvert.zoo.architectures import GANConfig, load_gan
from discinvert.inverter import Inverter

__all__ = ["available", "load", "load_gan_config", "load_test_images", "path"]


def path(name: str) -> Path:
    """Folder of the zoo entry ``name``.

    Raises:
        ValueError: no such entry (the message lists the available ones).
    """
    root = Path(str(resources.files(__name__)))
    folder = root / name
    if not (folder / "gan").is_dir():
        raise ValueError(f"zoo: expected one of {available()}, got {name!r}.")
    return folder


def available() -> list[str]:
    """Names of the bundled entries."""
    root = Path(str(resources.files(__name__)))
    return sorted(p.name for p in root.iterdir() if (p / "gan").is_dir())


def load_gan_config(name: str) -> GANConfig:
    """The entry's GAN config (latent shape, feature layer, ...) without loading weights."""
    return load_gan(path(name) / "gan")[2]


def load(name: str = "dcgan-fashion-mnist", *, device: str | torch.device = "cpu") -> tuple[nn.Module, nn.Module, Inverter]:
    """Load the entry's generator, discriminator and fitted inverter.

    Returns:
        ``(G, D, inverter)``: G and D in eval mode on ``device``; G maps latents
        ``(N, 100, 1, 1)`` to images ``(N, 1, 28, 28)`` in [-1, 1].
    """
    folder = path(name)
    G, D, _, _ = load_gan(folder / "gan", device=device)
    inverter = Inverter.from_pretrained(folder / "inverter", generator=G, discriminator=D)
    return G, D, inverter


def load_test_images(name: str = "dcgan-fashion-mnist") -> tuple[np.ndarray, np.ndarray]:
    """The entry's bundled real test images: uint8 ``(N, 28, 28)`` and int64 labels ``(N,)``.

    They come from the data set's test split, which no bundled model saw in training.
    """
    tensors = safetensors.torch.load_file(str(path(name) / "test_images.safetensors"))
    return tensors["images"].numpy(), tensors["labels"].numpy()
