"""The bundled model zoo: reference GANs with their fitted inverters and real test images.

Everything ships inside the package, so it works offline on a fresh install::

    from discinvert import zoo
    G, D, inverter = zoo.load("dcgan-fashion-mnist")
    images, labels = zoo.load_test_images("dcgan-fashion-mnist")   # uint8 (1000, 28, 28)

Each entry is a folder ``discinvert/zoo/<name>/`` holding ``gan/`` (written by
:func:`discinvert.zoo.architectures.save_gan`), ``inverter/`` (laid out exactly as a Hub repo:
``model.safetensors``, ``config.json``, ``README.md``, so publishing it is one
``upload_folder`` call) and ``test_images.safetensors``. The folders are made by
``python -m tools.build_zoo``. An entry may also hold ``inverter-real-images/``: an
inverter fitted with the real-image stage (``fit_inverter(images=...)`` on the data set's train
split, a lighter CN; the bundled DCGAN's also carries two narrow step networks, so its
``encode`` runs them), made by ``python -m tools.build_zoo_real``; load it with
``zoo.load(name, inverter="real-images")``.

The command line and the page (``discinvert encode/reconstruct/evaluate/push/serve --gan zoo:NAME``,
and ``--inverter zoo:NAME``) use :func:`default_inverter`: the real-images inverter where the entry
bundles one (it reconstructs real images better on the bundled DCGAN's test images: its model card
and ``docs/results.md``), and say which one they used; ``zoo:NAME/paper`` names the paper's CN.
:func:`load` keeps ``inverter="paper"`` as its default: the paper's method, which the benchmark
scripts reproduce and build on.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import numpy as np
import safetensors.torch
import torch
from torch import nn

from discinvert.zoo.architectures import GANConfig, load_gan
from discinvert.inverter import Inverter
from discinvert.pixels import RawImages, read_images

__all__ = ["INVERTERS", "available", "default_inverter", "inverters", "label_names", "load", "load_gan_config",
           "load_test_images", "path", "read_image_source"]

INVERTERS = {"paper": "inverter", "real-images": "inverter-real-images"}
"""The inverters an entry may bundle, by name → their folder: the paper's CN, and one fitted
with the real-image stage."""


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


def inverters(name: str = "dcgan-fashion-mnist") -> list[str]:
    """Names of the inverters the entry bundles (keys of :data:`INVERTERS`), ``"paper"`` first."""
    folder = path(name)
    return [kind for kind, sub in INVERTERS.items() if (folder / sub / "model.safetensors").is_file()]


def default_inverter(name: str = "dcgan-fashion-mnist") -> str:
    """The inverter the command line and the page use for the entry when none is named.

    ``"real-images"`` when the entry bundles it (fitted on real images, it reconstructs them
    better), else ``"paper"``. :func:`load`'s own default stays ``"paper"``.

    Raises:
        ValueError: an unknown entry.
    """
    return "real-images" if "real-images" in inverters(name) else "paper"


def load(name: str = "dcgan-fashion-mnist", *, device: str | torch.device = "cpu",
         inverter: str = "paper") -> tuple[nn.Module, nn.Module, Inverter]:
    """Load the entry's generator, discriminator and fitted inverter.

    Args:
        name: the entry (:func:`available`).
        device: where to put G and D.
        inverter: ``"paper"`` (the paper's CN, self-generated pairs only) or
            ``"real-images"`` (fitted with the real-image stage, and step networks where
            its model card says so), when the entry has it
            (:func:`inverters`). The command line and the page default to
            :func:`default_inverter` instead (the real-images one where bundled).

    Returns:
        ``(G, D, inverter)``: G and D in eval mode on ``device``; G maps latents
        ``(N, 100, 1, 1)`` to images ``(N, 1, 28, 28)`` in [-1, 1].

    Raises:
        ValueError: an unknown entry, or an inverter the entry does not bundle.
    """
    folder = path(name)
    bundled = inverters(name)
    if inverter not in bundled:
        raise ValueError(f"inverter: expected one of {bundled} for zoo entry {name!r}, got {inverter!r}.")
    G, D, _, _ = load_gan(folder / "gan", device=device)
    fitted = Inverter.from_pretrained(folder / INVERTERS[inverter], generator=G, discriminator=D)
    return G, D, fitted


def load_test_images(name: str = "dcgan-fashion-mnist") -> tuple[np.ndarray, np.ndarray]:
    """The entry's bundled real test images: uint8 ``(N, 28, 28)`` and int64 labels ``(N,)``.

    They come from the data set's test split, which no bundled model saw in training.
    """
    tensors = safetensors.torch.load_file(str(path(name) / "test_images.safetensors"))
    return tensors["images"].numpy(), tensors["labels"].numpy()


def read_image_source(source: str | os.PathLike[str]) -> RawImages:
    """Images as the command line and the page name them: ``zoo:NAME`` is entry NAME's bundled test images
    (named ``zoo:NAME[i]``); any other source is read by :func:`discinvert.pixels.read_images` (a folder of
    PNG/JPEG files, one such file, an ``.npy`` array or an IDX file).

    Raises:
        FileNotFoundError, ValueError: as :func:`discinvert.pixels.read_images`; an unknown zoo entry (the
            message lists the available ones).
    """
    text = str(source)
    if not text.startswith("zoo:"):
        return read_images(text)
    name = text[len("zoo:"):]
    if name not in available():
        raise ValueError(f"{text!r}: unknown zoo entry; available: {', '.join(available())}.")
    images, _ = load_test_images(name)
    return RawImages(images, [f"{text}[{i}]" for i in range(len(images))], f"{text} (bundled test images)", "batch")


def label_names(name: str = "dcgan-fashion-mnist") -> tuple[str, ...]:
    """The class name of each label of the entry's test images (index = label).

    Entries are named ``<gan>-<data set>``; every bundled one is a Fashion-MNIST entry.

    Raises:
        ValueError: an unknown entry, or one whose data set has no known class names.
    """
    from discinvert.zoo.datasets import FASHION_MNIST_CLASSES

    path(name)
    if name.endswith("fashion-mnist"):
        return FASHION_MNIST_CLASSES
    raise ValueError(f"zoo entry {name!r}: expected a Fashion-MNIST entry (the only data set with known class names).")

