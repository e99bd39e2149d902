"""A GAN folder of the zoo's formats, loaded by the architecture its ``config.json`` names.

Two architectures, told apart by the ``format`` of ``config.json``:

- ``"dcgan"``: :mod:`discinvert.zoo.architectures` (``"discinvert.gan"``, written by ``save_gan``); G maps
  latents ``(N, latent_dim, 1, 1)`` to images, and the inverter's codes are those latents.
- ``"stylegan2"``: :mod:`discinvert.zoo.stylegan2` (``"discinvert.stylegan2"``, written by ``save_stylegan2``;
  also the reference training's ``"benchmarks.stylegan2"``). Its G has a mapping network, so the inverter's codes
  live in Z, W or W+ (``docs/byo_gan.md``): :func:`load_zoo_gan` hands over G wrapped in a
  :class:`~discinvert.mapped.MappedGenerator` (``MappedGenerator.nvidia``, fixed noise), the module that maps
  codes to images and that the entry's inverters were fitted (and fingerprinted) against; the StyleGAN2 G itself is
  its ``.generator``. The space, the noise, the truncation and D's feature layer come from the folder's
  ``inversion`` record (:func:`discinvert.zoo.stylegan2.check_inversion`), else :data:`STYLEGAN2_INVERSION`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import torch
from torch import nn

from discinvert.files import parse_json
from discinvert.mapped import MappedGenerator
from discinvert.zoo import architectures, stylegan2

__all__ = ["ARCHITECTURES", "STYLEGAN2_INVERSION", "ZooGAN", "gan_architecture", "load_zoo_gan"]

ARCHITECTURES: Final[dict[str, tuple[str, ...]]] = {
    "dcgan": ("discinvert.gan",),
    "stylegan2": stylegan2.FORMATS,
}
"""Each architecture the zoo loads, by name → the ``format`` names of its ``config.json``."""

STYLEGAN2_INVERSION: Final[dict[str, Any]] = {"space": "w+", "noise_mode": "const", "truncation_psi": 1.0,
                                              "feature_layer": "b8"}
"""How a StyleGAN2 folder without an ``inversion`` record is inverted: W+ codes, the fixed noise buffers, no
truncation, D's ``b8`` (the last block before the minibatch standard deviation, whose output is per-image)."""


@dataclass(frozen=True)
class ZooGAN:
    """A GAN as the zoo loads it.

    Attributes:
        generator: G as the inverter sees it, in eval mode: the DCGAN's G, or for a StyleGAN2 the
            :class:`~discinvert.mapped.MappedGenerator` over it (the StyleGAN2 G is ``generator.generator``).
        discriminator: D, in eval mode; ``None`` for a folder of G alone (no ``discriminator.safetensors``) or
            loaded with ``read_discriminator=False``.
        architecture: a key of :data:`ARCHITECTURES`.
        config: the architecture's config (:class:`~discinvert.zoo.architectures.GANConfig` or
            :class:`~discinvert.zoo.stylegan2.StyleGAN2Config`).
        feature_layer: D's layer the zoo's inverters read (as the folder records it, also without D).
        latent_shape: the shape of one code: ``(latent_dim, 1, 1)``, or the space's (``(num_ws, w_dim)`` in W+).
        extra: the folder's saved metadata (the training record).
        summary: a few words naming the GAN and its codes: ``"dcgan, latent 100"`` (the DCGAN's loss, its latent
            size) or ``"stylegan2, W+ codes (8, 128)"``.
    """

    generator: nn.Module
    discriminator: nn.Module | None
    architecture: str
    config: Any
    feature_layer: str
    latent_shape: tuple[int, ...]
    extra: dict[str, Any]
    summary: str


def _document(directory: Path) -> dict[str, Any]:
    path = directory / architectures.CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"GAN checkpoint file {path} not found")
    document = parse_json(path.read_bytes(), source=str(path))  # deep nesting, huge files: a ValueError
    if not isinstance(document, dict):
        raise ValueError(f"{path}: expected a JSON object, received {type(document).__name__}")
    return document


def gan_architecture(directory: str | os.PathLike[str]) -> str:
    """The architecture a GAN folder's ``config.json`` names (a key of :data:`ARCHITECTURES`).

    Raises:
        FileNotFoundError: no ``config.json``.
        ValueError: unreadable JSON, or a ``format`` of no known architecture (the message lists the known ones).
    """
    directory = Path(directory)
    found = _document(directory).get("format")
    for name, formats in ARCHITECTURES.items():
        if found in formats:
            return name
    known = [f for formats in ARCHITECTURES.values() for f in formats]
    raise ValueError(f"{directory / architectures.CONFIG_FILE}: expected format one of {known}, received {found!r}")


def load_zoo_gan(directory: str | os.PathLike[str], *, device: str | torch.device = "cpu",
                 space: str | None = None, read_discriminator: bool = True) -> ZooGAN:
    """Load a GAN folder of either architecture (strictly: names, shapes and kinds of every tensor).

    Args:
        directory: the folder with ``config.json`` and the two safetensors files (or only
            ``generator.safetensors`` for G alone: D is then ``None``).
        device: where to put G and D (float32, eval mode).
        space: StyleGAN2 only: ``"z"``, ``"w"`` or ``"w+"`` instead of the folder's recorded space.
        read_discriminator: ``False`` leaves ``discriminator.safetensors`` unread (D is ``None``): G alone.

    Returns:
        The :class:`ZooGAN`.

    Raises:
        FileNotFoundError: a file is missing.
        ValueError: as :func:`gan_architecture`, the architecture's loader (another version, a malformed config,
            weights that do not match it), or ``space`` given for a DCGAN or not one of ``"z"``, ``"w"``, ``"w+"``.
    """
    directory = Path(directory)
    architecture = gan_architecture(directory)
    if architecture == "dcgan":
        if space is not None:
            raise ValueError(f"space: expected None for the DCGAN in {directory} (its codes are its latents; spaces "
                             f"are a StyleGAN2's), received {space!r}")
        G, D, config, extra = architectures.load_gan(directory, device=device, read_discriminator=read_discriminator)
        return ZooGAN(G, D, architecture, config, str(config.feature_layer), tuple(config.latent_shape), extra,
                      f"{config.loss}, latent {config.latent_dim}")
    record = dict(stylegan2.read_document(directory).get("inversion", STYLEGAN2_INVERSION))
    if space is not None:
        record["space"] = space
    record = stylegan2.check_inversion(record, source=f"{directory}: inversion")
    G, D, config, extra = stylegan2.load_stylegan2(directory, device=device, read_discriminator=read_discriminator)
    if D is not None and record["feature_layer"] not in dict(D.named_modules()):
        raise ValueError(f"{directory}: inversion: feature_layer: expected a module of D such as 'b8', received "
                         f"{record['feature_layer']!r}")
    mapped = MappedGenerator.nvidia(G, space=record["space"], noise_mode=record["noise_mode"],
                                    truncation_psi=float(record["truncation_psi"])).eval()
    shape = tuple(mapped.latent_shape)
    space_name = record["space"].upper()
    return ZooGAN(mapped, D, architecture, config, record["feature_layer"], shape, extra,
                  f"stylegan2, {space_name} codes ({', '.join(map(str, shape))})")
