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
  model's losses; ``benchmarks/rivals/train.py`` only loops over batches.
- **Files**: :func:`save` writes ``model.safetensors`` (the whole ``state_dict``) and
  ``config.json``; :func:`load` rebuilds the model from them. Nothing is pickled.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from discinvert import Conditioning
from discinvert.zoo.architectures import (
    DCGANDiscriminator,
    DCGANGenerator,
    GANConfig,
    parameter_count,
)

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
    "RivalConfig",
    "bigan_conditioning",
    "build_model",
    "load",
    "save",
]

LATENT_DIM: Final[int] = 100
LATENT_SHAPE: Final[tuple[int]] = (LATENT_DIM,)
IMAGE_SHAPE: Final[tuple[int, int, int]] = (1, 28, 28)
MODELS: Final[tuple[str, ...]] = ("vae", "bigan", "gaan", "aaae")

WEIGHTS_FILE: Final[str] = "model.safetensors"
CONFIG_FILE: Final[str] = "config.json"
FORMAT: Final[str] = "discinvert.rival"
FORMAT_VERSION: Final[int] = 1

_LEAK: Final[float] = 0.2

#: Per-model training hyper-parameters (written into every config.json).
DEFAULT_HPARAMS: Final[dict[str, dict[str, Any]]] = {
    # Adam 1e-3 is the usual VAE rate; min_sigma2 floors the analytic decoder variance.
    "vae": {"lr": 1e-3, "betas": [0.9, 0.999], "min_sigma2": 1e-6, "logvar_clamp": 10.0},
    # DCGAN/BiGAN optimiser; ALI's dropout 0.2 in the z and joint parts of D.
    "bigan": {"lr": 2e-4, "betas": [0.5, 0.999], "dropout": 0.2, "z_hidden": 256, "joint_hidden": 64},
    # Dist-GAN released code: Adam 2e-4, betas (0.5, 0.9), lambda_p = 1 (RMS-gradient penalty),
    # D weights 0.95 real + 0.05 reconstructions; lambda_r (here lambda_dist) = 1.
    "gaan": {"lr": 2e-4, "betas": [0.5, 0.9], "lambda_gp": 1.0, "lambda_dist": 1.0,
             "real_weight": 0.95, "recon_weight": 0.05},
    "aaae": {"lr": 2e-4, "betas": [0.5, 0.999], "latent_hidden": 512},
}


@dataclass
class RivalConfig:
    """Architecture and training hyper-parameters of one rival (JSON-serialisable).

    Attributes:
        model: one of :data:`MODELS`.
        latent_dim: size of ``z`` (100).
        g_width, d_width, e_width: base widths of G (``DCGANGenerator``), of the image
            discriminators (``DCGANDiscriminator``) and of the encoder's conv trunk.
        hparams: model-specific hyper-parameters; missing keys are filled from
            :data:`DEFAULT_HPARAMS`.
    """

    model: str
    latent_dim: int = LATENT_DIM
    g_width: int = 64
    d_width: int = 64
    e_width: int = 64
    hparams: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"model: expected one of {MODELS}, received {self.model!r}")
        for name in ("latent_dim", "g_width", "d_width", "e_width"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected a positive int, received {value!r}")
        unknown = sorted(set(self.hparams) - set(DEFAULT_HPARAMS[self.model]))
        if unknown:
            raise ValueError(f"hparams: unknown keys {unknown} for {self.model!r}")
        self.hparams = {**DEFAULT_HPARAMS[self.model], **self.hparams}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RivalConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        if not isinstance(data, dict) or set(data) - known:
            raise ValueError(f"RivalConfig: expected a dict with keys among {sorted(known)}, received {data!r}")
        return cls(**data)


# --------------------------------------------------------------------------- building blocks
def _dcgan_config(config: RivalConfig, *, width: int, batch_norm: bool = True) -> GANConfig:
    return GANConfig(latent_dim=config.latent_dim, g_width=config.g_width, d_width=width, loss="dcgan",
                     d_batch_norm=batch_norm)


def _generator(config: RivalConfig) -> DCGANGenerator:
    return DCGANGenerator(_dcgan_config(config, width=config.d_width))


def _image_discriminator(config: RivalConfig, *, batch_norm: bool = True) -> DCGANDiscriminator:
    return DCGANDiscriminator(_dcgan_config(config, width=config.d_width, batch_norm=batch_norm))


def _mlp(sizes: list[int], *, dropout: float = 0.0, last_activation: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2 or last_activation:
            layers.append(nn.LeakyReLU(_LEAK))
            if dropout:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class Encoder(nn.Module):
    """``x (N, 1, 28, 28) -> (N, out_features)``: D's conv trunk (``DCGANDiscriminator.main``) + one linear.

    ``trunk`` is conv 4x4/2 -> 64, LeakyReLU; conv 4x4/2 -> 128, BN, LeakyReLU; conv 3x3/2 ->
    256, BN, LeakyReLU (for ``e_width = 64``): the layout of our reference D up to its
    feature layer. ``head`` is ``Linear(4096, out_features)``.
    """

    def __init__(self, config: RivalConfig, out_features: int) -> None:
        super().__init__()
        self.trunk = DCGANDiscriminator(_dcgan_config(config, width=config.e_width)).main
        self.head = nn.Linear(4 * config.e_width * 4 * 4, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(x).flatten(1))


def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def _adam(modules: list[nn.Module], hp: dict[str, Any]) -> torch.optim.Adam:
    params = [p for m in modules for p in m.parameters()]
    return torch.optim.Adam(params, lr=hp["lr"], betas=tuple(hp["betas"]))


def _step(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


@contextlib.contextmanager
def running_stats_frozen(module: nn.Module) -> Iterator[None]:
    """BatchNorm layers of ``module`` keep normalising with batch statistics but stop updating
    their running statistics (momentum 0) inside the block.

    GAAN and AAAE run their generator on two input distributions: encoder codes ``E(x)``
    (the autoencoder) and prior samples (the GAN). A running average over both matches
    neither, and eval-mode reconstructions ``G(E(x))`` come out worse than in train mode.
    Measured on CPU (width 16, 400 steps of 64 train images, seed 0; reconstruction MSE of
    512 train images, eval mode / train mode): AAAE 0.121 / 0.058 with mixed statistics,
    0.059 / 0.058 with this block; GAAN 0.076 / 0.068 and 0.068 / 0.068. The benchmark
    scores eval-mode ``G(E(x))``, so G's running statistics follow the reconstruction path
    and the prior-path passes run inside this block.
    """
    layers = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in layers]
    for m in layers:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, momentum in zip(layers, saved):
            m.momentum = momentum


@dataclass
class InverterTarget:
    """What ``discinvert.fit_inverter`` needs to fit our CN on a rival's generator.

    Call as ``fit_inverter(t.generator, t.discriminator, t.feature_layer, latent_shape=t.latent_shape,
    latent_sampler=t.latent_sampler, ...)``; ``t.note`` says what was hooked.
    """

    generator: nn.Module
    discriminator: nn.Module
    feature_layer: str
    latent_shape: tuple[int, ...]
    latent_sampler: Callable[[int, torch.Generator, torch.device], torch.Tensor] | None
    note: str


class Rival(nn.Module):
    """Common interface: ``encoder``, ``generator``, ``encode``, ``decode``, ``sample_latents``, training."""

    name: str = ""
    description: str = ""

    def __init__(self, config: RivalConfig) -> None:
        super().__init__()
        self.config = config
        self.hp = config.hparams

    # ------------------------------------------------------------------ inference
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def _encode_batch(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def _batched(self, fn: Callable[[torch.Tensor], torch.Tensor], inputs: torch.Tensor, batch_size: int) -> torch.Tensor:
        inputs = torch.as_tensor(inputs)
        out_device = inputs.device
        device = self.device
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                chunks = [fn(inputs[i : i + batch_size].to(device=device, dtype=torch.float32)).to(out_device)
                          for i in range(0, inputs.shape[0], batch_size)]
        finally:
            self.train(was_training)
        return torch.cat(chunks)

    def encode(self, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        """Codes ``(N, 100)`` for images ``(N, 1, 28, 28)`` in [-1, 1] (eval mode, no grad, batched)."""
        return self._batched(self._encode_batch, images, batch_size)

    def decode(self, latents: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        """Images ``G(z)`` ``(N, 1, 28, 28)`` for codes ``(N, 100)`` (eval mode, no grad, batched)."""
        return self._batched(self.generator, latents, batch_size)

    def reconstruct(self, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        return self.decode(self.encode(images, batch_size), batch_size)

    def sample_latents(self, n: int, generator: torch.Generator | None = None,
                       device: torch.device | str | None = None) -> torch.Tensor:
        """``n`` codes from the model's prior, ``N(0, I)`` here, on ``device`` (default: the model's)."""
        device = torch.device(device) if device is not None else self.device
        noise_device = generator.device if generator is not None else device
        return torch.randn(n, self.config.latent_dim, generator=generator, device=noise_device).to(device)

    def inverter_target(self) -> InverterTarget | None:
        """G, D, feature layer and prior for ``fit_inverter``; ``None`` without a discriminator."""
        return None

    def parameter_counts(self) -> dict[str, int]:
        counts = {name: parameter_count(module) for name, module in self.named_children()}
        counts["total"] = parameter_count(self)
        return counts

    # ------------------------------------------------------------------ training
    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        raise NotImplementedError

    def train_step(self, x: torch.Tensor, optimizers: dict[str, torch.optim.Optimizer]) -> dict[str, torch.Tensor]:
        """One update of every optimiser on the real batch ``x``; returns detached scalar losses."""
        raise NotImplementedError


# --------------------------------------------------------------------------- VAE
class VAE(Rival):
    """Variational autoencoder with a DCGAN generator as decoder.

    - Encoder: :class:`Encoder` with 200 outputs, split into the mean and the log-variance
      (clamped to +-10) of a diagonal Gaussian ``q(z|x)``; ``encode`` returns the mean.
    - Decoder: ``DCGANGenerator`` (tanh, [-1, 1]); prior ``N(0, I)``.
    - Reconstruction term: a **Gaussian** likelihood ``N(x; G(z), sigma^2 I)`` with one sigma
      shared by all pixels and images, set to its maximum-likelihood value, the batch's mean
      squared error (the "sigma-VAE" calibrated decoder of Rybkin et al., 2021). Per image,
      ``-log p(x|z) = D/2 * (log(2 pi sigma^2) + 1)`` with ``D = 784``.
      Why Gaussian and not Bernoulli: Fashion-MNIST pixels are grey levels, not binary, so a
      Bernoulli likelihood on them is not a proper likelihood; the decoder is a tanh
      generator shared with the GANs; and the benchmark scores PSNR, a log-MSE, which the
      Gaussian term optimises directly. Why the analytic sigma: a fixed sigma is a hidden
      knob that sets the balance between reconstruction and KL (too large gives the blurry,
      prior-dominated VAE); the maximum-likelihood sigma removes it.
    - Loss per image: reconstruction NLL + ``KL(q(z|x) || N(0, I))``, one reparameterised
      sample; Adam lr 1e-3, betas (0.9, 0.999).
    - No discriminator, so no CN can be fit on its decoder (``inverter_target`` is ``None``).
    """

    name = "vae"
    description = ("VAE: encoder = D-trunk + Linear(4096, 200) (mean, log-variance); decoder = DCGAN G; "
                   "Gaussian decoder with one shared, analytically optimal sigma (sigma-VAE) + KL; Adam 1e-3.")

    def __init__(self, config: RivalConfig) -> None:
        super().__init__(config)
        self.encoder = Encoder(config, 2 * config.latent_dim)
        self.generator = _generator(config)

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        limit = self.hp["logvar_clamp"]
        return mu, logvar.clamp(-limit, limit)

    def _encode_batch(self, x: torch.Tensor) -> torch.Tensor:
        return self.posterior(x)[0]

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"vae": _adam([self.encoder, self.generator], self.hp)}

    def losses(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        mu, logvar = self.posterior(x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        x_hat = self.generator(z)
        pixels = x[0].numel()
        mse = ((x_hat - x) ** 2).mean().clamp_min(self.hp["min_sigma2"])
        rec = 0.5 * pixels * (torch.log(2 * math.pi * mse) + 1.0)  # per image, sigma^2 = mse
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1).mean()
        return {"loss": rec + kl, "rec_nll": rec, "kl": kl, "mse": mse, "sigma": mse.sqrt()}

    def train_step(self, x: torch.Tensor, optimizers: dict[str, torch.optim.Optimizer]) -> dict[str, torch.Tensor]:
        out = self.losses(x)
        _step(optimizers["vae"], out["loss"])
        return {k: v.detach() for k, v in out.items()}


# --------------------------------------------------------------------------- BiGAN / ALI
class JointDiscriminator(nn.Module):
    """BiGAN/ALI discriminator on pairs: ``D(x, z) -> logit (N,)``.

    - ``x_trunk``: ``DCGANDiscriminator(GANConfig()).main`` (conv 64, conv 128 + BN, conv 256 + BN,
      LeakyReLU; output ``(N, 256, 4, 4)``, the same layout as our D up to its feature layer
      ``main.7``; here ``x_trunk.7``), flattened to 4096 features.
    - ``z_embed``: MLP ``100 -> 256 -> 256`` (LeakyReLU 0.2, dropout 0.2).
    - ``head``: MLP on the concatenation ``4096 + 256 -> 64 -> 64 -> 1`` (LeakyReLU, dropout 0.2).

    **Why it cannot be hooked by fit_inverter as-is**: ``fit_inverter`` (its ``FeatureTap``)
    calls ``D(images)`` with one argument, and this D needs ``z`` as well. The x-trunk's
    features do not depend on ``z`` at all (``z`` enters only after the trunk), so any ``z``
    gives the same features: :class:`BiGANImageDiscriminator` wraps D as ``x -> D(x, 0)``
    (feature layer ``"d.x_trunk.7"``), and :func:`bigan_conditioning` does the same through a
    ``discinvert.Conditioning`` (feature layer ``"x_trunk.7"`` on D itself, ``conditions`` =
    zeros at encode time).
    """

    feature_layer = "x_trunk.7"

    def __init__(self, config: RivalConfig) -> None:
        super().__init__()
        hp = config.hparams
        self.latent_dim = config.latent_dim
        self.x_trunk = DCGANDiscriminator(_dcgan_config(config, width=config.d_width)).main
        self.z_embed = _mlp([config.latent_dim, hp["z_hidden"], hp["z_hidden"]], dropout=hp["dropout"], last_activation=True)
        self.head = _mlp([4 * config.d_width * 16 + hp["z_hidden"], hp["joint_hidden"], hp["joint_hidden"], 1],
                         dropout=hp["dropout"])

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        features = torch.cat([self.x_trunk(x).flatten(1), self.z_embed(z.reshape(z.shape[0], -1))], dim=1)
        return self.head(features).flatten()


class BiGANImageDiscriminator(nn.Module):
    """``x -> D(x, 0)``: BiGAN's joint D seen as an image discriminator, so ``fit_inverter`` can hook it.

    The x-trunk features (``feature_layer = "d.x_trunk.7"``, 4096 values) are exactly those
    of ``D``'s image branch: the zero ``z`` only reaches layers after the hook, which
    ``fit_inverter`` never runs (D stops at the feature layer). The wrapper holds D as a
    submodule (``self.d``), so fingerprints cover D's trunk weights.
    """

    feature_layer = "d." + JointDiscriminator.feature_layer

    def __init__(self, joint: JointDiscriminator) -> None:
        super().__init__()
        self.d = joint

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.d(x, x.new_zeros(x.shape[0], self.d.latent_dim))


def bigan_conditioning(latent_dim: int = LATENT_DIM) -> Conditioning:
    """The other option: hook BiGAN's joint D directly, with ``z`` fixed to zero as a "condition".

    ``fit_inverter(G, bigan.discriminator, "x_trunk.7", latent_shape=(100,),
    conditioning=bigan_conditioning())``, then ``inverter.encode(x, conditions=torch.zeros(len(x), 100))``.
    G ignores the condition. The wrapper :class:`BiGANImageDiscriminator` avoids having to
    pass conditions at encode time, so the benchmark uses the wrapper.
    """

    def sampler(n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
        return torch.zeros(n, latent_dim, device=device)

    return Conditioning(sampler=sampler, call_generator=lambda G, z, y: G(z), call_discriminator=lambda D, x, y: D(x, y))


class BiGAN(Rival):
    """BiGAN / ALI (Donahue et al. 2016; Dumoulin et al. 2016).

    - E: :class:`Encoder` (D-trunk + ``Linear(4096, 100)``), deterministic as in BiGAN.
    - G: ``DCGANGenerator``; prior ``N(0, I)``.
    - D: :class:`JointDiscriminator` on ``(x, E(x))`` (label 1) against ``(G(z), z)`` (label 0).
    - Losses (non-saturating): D minimises ``BCE(D(x, E(x)), 1) + BCE(D(G(z), z), 0)``; E and G,
      with one Adam optimiser, minimise the label-swapped ``BCE(D(x, E(x)), 0) + BCE(D(G(z), z), 1)``.
      One D step then one E+G step per batch (fresh z each), Adam 2e-4, betas (0.5, 0.999).
    - Our CN on its G: through :class:`BiGANImageDiscriminator` (D's x-trunk, z fixed to zero).
    """

    name = "bigan"
    description = ("BiGAN/ALI: E = D-trunk + Linear(4096, 100); G = DCGAN G; joint D = DCGAN D-trunk(x) ++ "
                   "MLP(z) -> MLP; non-saturating BCE, E and G trained together against D; Adam 2e-4.")

    def __init__(self, config: RivalConfig) -> None:
        super().__init__(config)
        self.encoder = Encoder(config, config.latent_dim)
        self.generator = _generator(config)
        self.discriminator = JointDiscriminator(config)

    def image_discriminator(self) -> BiGANImageDiscriminator:
        return BiGANImageDiscriminator(self.discriminator)

    def inverter_target(self) -> InverterTarget:
        return InverterTarget(self.generator, self.image_discriminator(), BiGANImageDiscriminator.feature_layer,
                              LATENT_SHAPE, None,
                              "joint D's x-trunk through BiGANImageDiscriminator (x -> D(x, 0)), layer d.x_trunk.7")

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"d": _adam([self.discriminator], self.hp), "eg": _adam([self.encoder, self.generator], self.hp)}

    def train_step(self, x: torch.Tensor, optimizers: dict[str, torch.optim.Optimizer]) -> dict[str, torch.Tensor]:
        n, dim = x.shape[0], self.config.latent_dim
        z = torch.randn(n, dim, device=x.device)
        with torch.no_grad():
            z_enc = self.encoder(x)
            x_gen = self.generator(z)
        d_real, d_fake = self.discriminator(x, z_enc), self.discriminator(x_gen, z)
        loss_d = _bce(d_real, 1.0) + _bce(d_fake, 0.0)
        _step(optimizers["d"], loss_d)

        z = torch.randn(n, dim, device=x.device)
        loss_eg = _bce(self.discriminator(x, self.encoder(x)), 0.0) + _bce(self.discriminator(self.generator(z), z), 1.0)
        _step(optimizers["eg"], loss_eg)
        return {"d_loss": loss_d.detach(), "eg_loss": loss_eg.detach(),
                "d_real": torch.sigmoid(d_real.detach()).mean(), "d_fake": torch.sigmoid(d_fake.detach()).mean()}


# --------------------------------------------------------------------------- GAAN / Dist-GAN
def _rms_gradient_penalty(discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Dist-GAN's penalty: ``E[(sqrt(mean_pixels(grad^2)) - 1)^2]`` on random real/fake interpolates."""
    eps = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype)
    x_hat = (eps * real + (1.0 - eps) * fake).requires_grad_(True)
    (grads,) = torch.autograd.grad(discriminator(x_hat).sum(), x_hat, create_graph=True)
    slopes = (grads.flatten(1).pow(2).mean(dim=1) + 1e-12).sqrt()
    return ((slopes - 1.0) ** 2).mean()


def _rms_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-pair Euclidean distance normalised by sqrt(dimension): ``(N,)``."""
    return ((a - b).flatten(1).pow(2).mean(dim=1) + 1e-12).sqrt()


def latent_data_distance(z_enc: torch.Tensor, z: torch.Tensor, x_rec: torch.Tensor, x_gen: torch.Tensor) -> torch.Tensor:
    """GAAN's latent-data distance regulariser on the pairs ``(E(x_i), z_i)`` -> ``(G(E(x_i)), G(z_i))``.

    ``d_z_i = ||E(x_i) - z_i|| / sqrt(100)`` and ``d_x_i = ||G(E(x_i)) - G(z_i)|| / sqrt(784)``;
    each is divided by its batch mean (the *relative* distance, scale-free, so neither space
    is pushed to a fixed scale), and the loss is ``mean_i (d_x_i / mean(d_x) - d_z_i / mean(d_z))^2``.
    """
    d_z = _rms_distance(z_enc, z)
    d_x = _rms_distance(x_rec, x_gen)
    return ((d_x / d_x.mean() - d_z / d_z.mean()) ** 2).mean()


class GAAN(Rival):
    """GAAN / Dist-GAN (Tran, Bui, Cheung 2018; seed 003): a GAN constrained by an autoencoder.

    Choices, following the seed's three ingredients and the authors' released Dist-GAN code
    where the seed is silent:

    - E: :class:`Encoder` (D-trunk + ``Linear(4096, 100)``); G: ``DCGANGenerator``, shared as the
      autoencoder's decoder; prior ``N(0, I)`` (the released code uses uniform [-1, 1]).
    - D: ``DCGANDiscriminator`` **without BatchNorm** (``d_batch_norm=False``; feature layer
      ``main.5``, 4096 features), because the released code adds a gradient penalty, which
      BatchNorm would mix across the batch.
    - Autoencoder step (E and G, own Adam): pixel MSE ``||x - G(E(x))||^2`` (mean) +
      ``lambda_dist`` (1, the code's lambda_r) x :func:`latent_data_distance` between the pairs
      ``(E(x_i), z_i)`` and ``(G(E(x_i)), G(z_i))``: per-pair distances, each normalised by its
      batch mean ("relative distance", seed). The released code instead squares the difference
      of the *batch means* of ``f(G(E(x))) - f(G(z))`` (D features) and ``lambda_w (E(x) - z)``;
      the brief asks for pairwise distances, and pixels match the reconstruction term used here
      (the released code reconstructs D features; the seed's autoencoder reconstructs images).
    - D step (own Adam): ``0.95 BCE(D(x), 1) + 0.05 BCE(D(G(E(x))), 1) + BCE(D(G(z)), 0)`` ("consider
      reconstructed samples as real", seed; the weights are the released code's) + ``lambda_gp``
      (1) x the code's RMS-gradient penalty on real/fake interpolates.
    - G step (own Adam): the seed's "new generator objective", as in the code:
      ``| mean sigmoid(D(x)) - mean sigmoid(D(G(z))) |``.
    - Order per batch: autoencoder, D, G, each with fresh z; Adam 2e-4, betas (0.5, 0.9).
    - G's BatchNorm running statistics follow the reconstruction path ``G(E(x))``: the passes
      on prior samples ``G(z)`` run inside :func:`running_stats_frozen` (still normalised with
      their own batch statistics while training).
    - Our CN on its G: D's ``main.5`` (its last hidden layer), prior ``N(0, I)``.
    """

    name = "gaan"
    description = ("GAAN/Dist-GAN: E = D-trunk + Linear(4096, 100); G = DCGAN G (also the AE decoder); "
                   "D = DCGAN D without BN; AE step: pixel MSE + relative latent-data distance; D: BCE with "
                   "reconstructions as real (0.05) + RMS-gradient penalty; G: |E sig(D(x)) - E sig(D(G(z)))|.")

    def __init__(self, config: RivalConfig) -> None:
        super().__init__(config)
        self.encoder = Encoder(config, config.latent_dim)
        self.generator = _generator(config)
        self.discriminator = _image_discriminator(config, batch_norm=False)

    def inverter_target(self) -> InverterTarget:
        layer = self.discriminator.feature_layer
        return InverterTarget(self.generator, self.discriminator, layer, LATENT_SHAPE, None, f"image D, layer {layer}")

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"ae": _adam([self.encoder, self.generator], self.hp), "d": _adam([self.discriminator], self.hp),
                "g": _adam([self.generator], self.hp)}

    def train_step(self, x: torch.Tensor, optimizers: dict[str, torch.optim.Optimizer]) -> dict[str, torch.Tensor]:
        hp = self.hp
        n, dim = x.shape[0], self.config.latent_dim
        # Autoencoder: reconstruction + latent-data distance.
        z = torch.randn(n, dim, device=x.device)
        z_enc = self.encoder(x)
        x_rec = self.generator(z_enc)
        with running_stats_frozen(self.generator):
            x_gen = self.generator(z)
        rec = F.mse_loss(x_rec, x)
        dist = latent_data_distance(z_enc, z, x_rec, x_gen)
        _step(optimizers["ae"], rec + hp["lambda_dist"] * dist)

        # Discriminator: real, reconstructions as real, fakes; gradient penalty.
        z = torch.randn(n, dim, device=x.device)
        with torch.no_grad(), running_stats_frozen(self.generator), running_stats_frozen(self.encoder):
            x_gen = self.generator(z)
            x_rec = self.generator(self.encoder(x))
        d_real = self.discriminator(x)
        loss_d = (hp["real_weight"] * _bce(d_real, 1.0) + hp["recon_weight"] * _bce(self.discriminator(x_rec), 1.0)
                  + _bce(self.discriminator(x_gen), 0.0))
        gp = _rms_gradient_penalty(self.discriminator, x, x_gen)
        _step(optimizers["d"], loss_d + hp["lambda_gp"] * gp)

        # Generator: match the mean discriminator scores of real and generated images.
        z = torch.randn(n, dim, device=x.device)
        with torch.no_grad():
            p_real = torch.sigmoid(self.discriminator(x)).mean()
        with running_stats_frozen(self.generator):
            x_gen = self.generator(z)
        p_fake = torch.sigmoid(self.discriminator(x_gen)).mean()
        loss_g = (p_real - p_fake).abs()
        _step(optimizers["g"], loss_g)
        return {"rec": rec.detach(), "dist": dist.detach(), "d_loss": loss_d.detach(), "gp": gp.detach(),
                "g_loss": loss_g.detach(), "d_real": p_real, "d_fake": p_fake.detach()}


# --------------------------------------------------------------------------- AAAE
class AAAE(Rival):
    """Adversarially approximated autoencoder (Xu, Keshmiri, Wang 2019; seed 004).

    The seed: the autoencoder is learnt "without regularization on the latent codes"; its
    latent space is "approximated with a simpler generator", the density ratio "estimated
    using a GAN"; "the image space is regularized with an additional adversarial regularizer".
    Choices:

    - E: :class:`Encoder` (D-trunk + ``Linear(4096, 100)``), unregularised codes; G: ``DCGANGenerator``.
    - Autoencoder step (E and G, own Adam): pixel MSE ``||x - G(E(x))||^2`` (mean). Nothing else
      reaches E: no prior, no adversarial gradient.
    - Latent generator F: MLP ``100 -> 512 -> 512 -> 100`` (LeakyReLU 0.2) on ``n ~ N(0, I)``;
      latent discriminator D_z: MLP ``100 -> 512 -> 512 -> 1``. GAN in latent space,
      non-saturating BCE: D_z separates ``E(x)`` (real, detached) from ``F(n)``; F fools D_z.
      The model's prior is ``F(n)`` (:meth:`sample_latents`), used for samples and for our CN.
    - Image regulariser: D_x = ``DCGANDiscriminator`` (with BN, like our D; feature layer
      ``main.7``) separates real ``x`` from generated ``G(F(n))`` (F detached); G is trained to fool
      it (own Adam, non-saturating BCE). Reconstructions are not shown to D_x.
    - Order per batch: autoencoder, D_z, F, D_x, G; Adam 2e-4, betas (0.5, 0.999) for all five.
    - G's BatchNorm running statistics follow the reconstruction path ``G(E(x))``: the passes
      on ``G(F(n))`` run inside :func:`running_stats_frozen`.
    - Our CN on its G: D_x's ``main.7`` with latents drawn from ``F(n)`` (``latent_sampler``),
      so the CN's codes live in the same space as E's.
    """

    name = "aaae"
    description = ("AAAE: E = D-trunk + Linear(4096, 100), unregularised AE (pixel MSE); latent GAN: F = MLP "
                   "100-512-512-100 on N(0, I) vs E(x), D_z = MLP; image GAN: D_x = DCGAN D on x vs G(F(n)); prior = F(n).")

    def __init__(self, config: RivalConfig) -> None:
        super().__init__(config)
        h = self.hp["latent_hidden"]
        self.encoder = Encoder(config, config.latent_dim)
        self.generator = _generator(config)
        self.latent_generator = _mlp([config.latent_dim, h, h, config.latent_dim])
        self.latent_discriminator = _mlp([config.latent_dim, h, h, 1])
        self.discriminator = _image_discriminator(config)

    def sample_latents(self, n: int, generator: torch.Generator | None = None,
                       device: torch.device | str | None = None) -> torch.Tensor:
        """``F(n)`` for ``n ~ N(0, I)``: the learnt approximation of the code distribution (no grad)."""
        noise = super().sample_latents(n, generator, self.device)
        with torch.no_grad():
            z = self.latent_generator(noise)
        return z.to(torch.device(device) if device is not None else self.device)

    def inverter_target(self) -> InverterTarget:
        layer = self.discriminator.feature_layer
        return InverterTarget(self.generator, self.discriminator, layer, LATENT_SHAPE,
                              lambda n, g, device: self.sample_latents(n, g, device),
                              f"image D_x, layer {layer}; latents drawn from F(n)")

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"ae": _adam([self.encoder, self.generator], self.hp), "dz": _adam([self.latent_discriminator], self.hp),
                "f": _adam([self.latent_generator], self.hp), "dx": _adam([self.discriminator], self.hp),
                "g": _adam([self.generator], self.hp)}

    def train_step(self, x: torch.Tensor, optimizers: dict[str, torch.optim.Optimizer]) -> dict[str, torch.Tensor]:
        n, dim = x.shape[0], self.config.latent_dim
        z_enc = self.encoder(x)
        rec = F.mse_loss(self.generator(z_enc), x)
        _step(optimizers["ae"], rec)

        # Latent GAN: F approximates the distribution of E(x).
        z_enc = z_enc.detach()
        with torch.no_grad():
            z_f = self.latent_generator(torch.randn(n, dim, device=x.device))
        loss_dz = _bce(self.latent_discriminator(z_enc), 1.0) + _bce(self.latent_discriminator(z_f), 0.0)
        _step(optimizers["dz"], loss_dz)
        loss_f = _bce(self.latent_discriminator(self.latent_generator(torch.randn(n, dim, device=x.device))), 1.0)
        _step(optimizers["f"], loss_f)

        # Image GAN: G(F(n)) against real images.
        with torch.no_grad(), running_stats_frozen(self.generator):
            x_gen = self.generator(self.latent_generator(torch.randn(n, dim, device=x.device)))
        loss_dx = _bce(self.discriminator(x), 1.0) + _bce(self.discriminator(x_gen), 0.0)
        _step(optimizers["dx"], loss_dx)
        with torch.no_grad():
            z_f = self.latent_generator(torch.randn(n, dim, device=x.device))
        with running_stats_frozen(self.generator):
            x_gen = self.generator(z_f)
        loss_g = _bce(self.discriminator(x_gen), 1.0)
        _step(optimizers["g"], loss_g)
        return {"rec": rec.detach(), "dz_loss": loss_dz.detach(), "f_loss": loss_f.detach(),
                "dx_loss": loss_dx.detach(), "g_loss": loss_g.detach()}


# --------------------------------------------------------------------------- build, save, load
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
