"""The bundled model zoo: reference GANs with their fitted inverters and real test images.

Everything ships inside the package, so it works offline on a fresh install::

    from discinvert import zoo
    G, D, inverter = zoo.load("dcgan-fashion-mnist")
    images, labels = zoo.load_test_images("dcgan-fashion-mnist")   # uint8 (1000, 28, 28)

Each entry is a folder ``discinvert/zoo/<name>/`` holding ``gan/`` (written by
:func:`discinvert.zoo.architectures.save_gan` for a DCGAN, :func:`discinvert.zoo.stylegan2.save_stylegan2` for a
StyleGAN2; its ``config.json`` names the architecture, :mod:`discinvert.zoo.gans`), ``inverter/`` (laid out exactly as a Hub repo:
``model.safetensors``, ``config.json``, ``README.md``, so publishing it is one
``upload_folder`` call) and its test images: ``test_images.safetensors``, or ``test_images.json``, a pointer
to the same images in the entry beside it with its own padding and the digest of that file::

    {"same_as": "dcgan-fashion-mnist", "pad": 2, "sha256": "<sha256 of ../dcgan-fashion-mnist/test_images.safetensors>"}

(the StyleGAN2 entry's: it ships the DCGAN entry's 1,000 images once; :mod:`discinvert.zoo.test_images` reads
both strictly and documents the format). The folders are made by
``python -m tools.build_zoo`` (the DCGAN) and ``python -m tools.build_zoo_stylegan2`` (the StyleGAN2, whose
G :func:`load` gives as the ``MappedGenerator`` of its W+ codes). An entry may also hold ``inverter-real-images/``: an
inverter fitted with the real-image stage (``fit_inverter(images=...)`` on the data set's train
split, a lighter CN; the bundled DCGAN's also carries two narrow step networks, so its
``encode`` runs them), made by ``python -m tools.build_zoo_real``; load it with
``zoo.load(name, inverter="real-images")``.
An entry may ship ``directions/labels.safetensors``: one edit direction per class, learned on train images by
``python -m tools.build_zoo_directions``; :func:`load_directions` reads it (the page's sliders).

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
from typing import Any

import numpy as np
import torch
from torch import nn

from discinvert.directions import DirectionSet
from discinvert.inverter import Inverter
from discinvert.zoo.gans import ZooGAN, load_zoo_gan
from discinvert.zoo.test_images import read_test_images
from discinvert.pixels import RawImages, read_images

__all__ = ["INVERTERS", "available", "default_inverter", "inverters", "label_names", "load", "load_entry_gan",
           "load_directions", "load_gan_config", "load_test_images", "path", "read_image_source", "read_test_images"]

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


def load_gan_config(name: str) -> Any:
    """The entry's GAN config: a :class:`~discinvert.zoo.architectures.GANConfig` (latent shape, feature layer, ...)
    for a DCGAN entry, a :class:`~discinvert.zoo.stylegan2.StyleGAN2Config` for a StyleGAN2 entry (whose feature
    layer and code shape :func:`load_entry_gan` gives)."""
    return load_entry_gan(name).config


def load_entry_gan(name: str, *, device: str | torch.device = "cpu") -> ZooGAN:
    """The entry's GAN with what the zoo knows of it: G as its inverters see it, D, the architecture, the feature
    layer and the shape of one code (:class:`~discinvert.zoo.gans.ZooGAN`).

    Raises:
        ValueError: an unknown entry.
    """
    return load_zoo_gan(path(name) / "gan", device=device)


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
        ``(G, D, inverter)``: G and D in eval mode on ``device``; G maps the inverter's codes to images in
        [-1, 1]. The DCGAN's G maps latents ``(N, 100, 1, 1)`` to images ``(N, 1, 28, 28)``. A StyleGAN2
        entry's G is the :class:`~discinvert.mapped.MappedGenerator` its inverters were fitted against (codes
        ``(N, 8, 128)`` in W+ for ``stylegan2-fashion-mnist``, images ``(N, 1, 32, 32)``): an inverter's
        fingerprint is of the module it was fitted with, so the wrapper, not the bare G, is what loads it and
        decodes its codes; the StyleGAN2 G (``G.mapping``, ``G.synthesis``) is ``G.generator``.

    Raises:
        ValueError: an unknown entry, or an inverter the entry does not bundle.
    """
    folder = path(name)
    bundled = inverters(name)
    if inverter not in bundled:
        raise ValueError(f"inverter: expected one of {bundled} for zoo entry {name!r}, got {inverter!r}.")
    gan = load_zoo_gan(folder / "gan", device=device)
    G, D = gan.generator, gan.discriminator
    fitted = Inverter.from_pretrained(folder / INVERTERS[inverter], generator=G, discriminator=D)
    return G, D, fitted


def load_test_images(name: str = "dcgan-fashion-mnist") -> tuple[np.ndarray, np.ndarray]:
    """The entry's bundled real test images: uint8 ``(N, H, W)`` and int64 labels ``(N,)``.

    They come from the data set's test split, which no bundled model saw in training: ``(1000, 28, 28)`` for
    ``dcgan-fashion-mnist``; padded to ``(1000, 32, 32)`` with the background value 0 for
    ``stylegan2-fashion-mnist`` (its images' size). See :func:`read_test_images`.

    Raises:
        ValueError: an unknown entry; a bad ``"pad"`` record; a bad ``test_images.json`` pointer.
    """
    return read_test_images(path(name))


def load_directions(name: str = "dcgan-fashion-mnist", *, generator: nn.Module | None = None) -> DirectionSet | None:
    """The entry's shipped label directions (``directions/labels.safetensors``: one per class), or ``None``.

    Made by ``python -m tools.build_zoo_directions`` (:func:`discinvert.directions.learn_directions` through the
    entry's default inverter on labelled **train** images; the set's ``info["command"]`` says which), so the page
    need not learn its sliders at start-up. Loaded strictly (:meth:`DirectionSet.load`).

    Args:
        name: the zoo entry.
        generator: the G to use them with (e.g. ``zoo.load(name)[0]``); given, it must be the entry's G in the set's
            space (the StyleGAN2 entry's: W+).

    Returns:
        The set, or ``None`` when the entry ships none.

    Raises:
        ValueError: an unknown entry; a damaged file; ``generator`` is another G or in another space.
    """
    file = path(name) / "directions" / "labels.safetensors"
    if not file.is_file():
        return None
    return DirectionSet.load(file, generator=generator)


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

