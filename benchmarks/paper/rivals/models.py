"""Rivals that learn inference jointly with generation, for Fashion-MNIST (1 x 28 x 28 in [-1, 1]).

Four models, each with an encoder ``E: x -> z`` and a decoder/generator ``G: z -> x``:

- :class:`VAE`: Gaussian encoder, Gaussian decoder with one shared, analytically optimal
  variance (the "sigma-VAE" calibrated decoder), reconstruction + KL.
- :class:`BiGAN`: BiGAN/ALI, a discriminator on joint pairs ``(x, E(x))`` against ``(G(z), z)``.
- :class:`GAAN`: GAAN / Dist-GAN, a GAN whose generator is also the decoder of an autoencoder,
  with reconstructions shown to D as (down-weighted) real samples and a latent-data
  distance regulariser.
- :class:`AAAE`: adversarially approximated autoencoder, a plain autoencoder whose latent
  distribution is approximated by a small latent generator (GAN in latent space), plus an
  adversarial regulariser in image space.

Conventions shared by all four (the choices are written down in each class's docstring):

- **Latents**: ``z`` has shape ``(100,)`` (flat; :data:`LATENT_SHAPE`). The generator is
  ``discinvert.zoo.architectures.DCGANGenerator``, which accepts ``(N, 100)`` as well as
  ``(N, 100, 1, 1)``; codes are passed flat everywhere here, and ``fit_inverter`` is called
  with ``latent_shape=(100,)``. The prior is ``N(0, I)`` for VAE, BiGAN and GAAN (the Dist-GAN
  code draws uniform [-1, 1]; N(0, I) keeps every model on the prior our CN is fit with).
  AAAE has no fixed prior: its prior is the push-forward of ``N(0, I)`` through its latent
  generator (:meth:`AAAE.sample_latents`).
- **Backbones** (comparable to our reference DCGAN, ``discinvert.zoo.architectures``):
  ``G`` is exactly ``DCGANGenerator(GANConfig())`` (1,911,233 parameters). The encoder
  mirrors D's conv trunk, i.e. it *is* ``DCGANDiscriminator(GANConfig()).main`` (conv 64,
  conv 128 + BN, conv 256 + BN, LeakyReLU 0.2; 4096 features) followed by one linear layer
  to the latent (``2 x 100`` outputs for the VAE's mean and log-variance). Image
  discriminators are ``DCGANDiscriminator`` (431,937 parameters with BN; GAAN's has no BN,
  431,553). Parameter counts per model: ``Rival.parameter_counts()``, also in config.json.
- **Interface**: :meth:`Rival.encode` (``E(x)``; the posterior mean for the VAE) and
  :meth:`Rival.decode` (``G(z)``) run in eval mode without grad, batched, on the model's
  device, and return results on the input's device. :meth:`Rival.inverter_target` returns
  what ``discinvert.fit_inverter`` needs to fit our CN on the rival's generator (``None``
  for the VAE, which has no discriminator).
- **Training**: :meth:`Rival.make_optimizers` and :meth:`Rival.train_step` hold each
  model's losses; ``benchmarks/paper/rivals/train.py`` only loops over batches.
- **Files**: :func:`save` writes ``model.safetensors`` (the whole ``state_dict``) and
  ``config.json``; :func:`load` rebuilds the model from them. Nothing is pickled.

One module per model (``vae.py``, ``bigan.py``, ``gaan.py``, ``aaae.py``), what they share in
``base.py``; this module builds, saves and loads them and re-exports their names, so
``from benchmarks.paper.rivals import models`` reaches everything.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Final

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from benchmarks.paper.rivals.aaae import AAAE
from benchmarks.paper.rivals.base import (
    DEFAULT_HPARAMS,
    IMAGE_SHAPE,
    LATENT_DIM,
    LATENT_SHAPE,
    MODELS,
    Encoder,
    InverterTarget,
    Rival,
    RivalConfig,
    running_stats_frozen,
)
from benchmarks.paper.rivals.bigan import BiGAN, BiGANImageDiscriminator, JointDiscriminator, bigan_conditioning
from benchmarks.paper.rivals.gaan import GAAN, latent_data_distance
from benchmarks.paper.rivals.vae import VAE

__all__ = [
    "AAAE",
    "CONFIG_FILE",
    "DEFAULT_HPARAMS",
    "GAAN",
    "IMAGE_SHAPE",
    "LATENT_DIM",
    "LATENT_SHAPE",
    "MODELS",
    "VAE",
    "WEIGHTS_FILE",
    "BiGAN",
    "BiGANImageDiscriminator",
    "Encoder",
    "InverterTarget",
    "JointDiscriminator",
    "Rival",
    "RivalConfig",
    "bigan_conditioning",
    "build_model",
    "latent_data_distance",
    "load",
    "read_config",
    "running_stats_frozen",
    "save",
]

WEIGHTS_FILE: Final[str] = "model.safetensors"
CONFIG_FILE: Final[str] = "config.json"
FORMAT: Final[str] = "discinvert.rival"
FORMAT_VERSION: Final[int] = 1


_CLASSES: Final[dict[str, type[Rival]]] = {"vae": VAE, "bigan": BiGAN, "gaan": GAAN, "aaae": AAAE}


def build_model(config: RivalConfig | str) -> Rival:
    """A freshly initialised rival (train mode, CPU). Draws from the global torch RNG."""
    if isinstance(config, str):
        config = RivalConfig(model=config)
    return _CLASSES[config.model](config)


def save(directory: str | os.PathLike[str], model: Rival, *, training: dict[str, Any] | None = None,
         half: bool = False) -> Path:
    """Write ``model.safetensors`` (whole state dict; float16 floats with ``half``) and ``config.json``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for name, tensor in model.state_dict().items():
        tensor = tensor.detach().to("cpu")
        if half and tensor.is_floating_point():
            tensor = tensor.to(torch.float16)
        tensors[name] = tensor.contiguous().clone()
    document = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "dtype": "float16" if half else "float32",
        "model": model.name, "description": model.description, "latent_shape": list(LATENT_SHAPE),
        "config": model.config.to_dict(), "parameters": model.parameter_counts(), "training": training or {},
    }
    text = json.dumps(document, indent=2, allow_nan=False)
    save_file(tensors, str(directory / WEIGHTS_FILE), metadata={"format": "pt", "discinvert_format": FORMAT})
    (directory / CONFIG_FILE).write_text(text + "\n", encoding="utf-8")
    return directory


def read_config(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """The parsed ``config.json`` of a saved rival (checked for format)."""
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"rival config {path} not found")
    document = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ValueError(f"{path}: expected format {FORMAT!r}")
    if document.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: expected format_version {FORMAT_VERSION}, received {document.get('format_version')!r}")
    return document


def load(directory: str | os.PathLike[str], *, device: str | torch.device = "cpu") -> Rival:
    """Load a rival written by :func:`save` (strictly; float32, eval mode, on ``device``).

    The training record and parameter counts are on ``model.record`` (the config.json document).
    """
    directory = Path(directory)
    document = read_config(directory)
    config = RivalConfig.from_dict(document["config"])
    model = build_model(config)
    path = directory / WEIGHTS_FILE
    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable safetensors file ({exc})") from exc
    expected = model.state_dict()
    if set(tensors) != set(expected):
        raise ValueError(f"{path}: state dict keys differ: missing {sorted(set(expected) - set(tensors))}, "
                         f"unexpected {sorted(set(tensors) - set(expected))}")
    model.load_state_dict({k: tensors[k].to(expected[k].dtype) for k in expected}, strict=True)
    model.record = document
    return model.to(device).eval()

