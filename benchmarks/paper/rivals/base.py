"""What the four rivals share: the latent and image shapes, the config, the backbones, the training helpers and the interface.

Each rival (``vae.py``, ``bigan.py``, ``gaan.py``, ``aaae.py``) is a :class:`Rival`: an encoder and a
DCGAN generator, ``encode``/``decode`` in eval mode, its own optimisers and ``train_step``. The
conventions are written down in ``models.py``, which builds, saves and loads them.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

import torch
import torch.nn.functional as F
from torch import nn

from discinvert.zoo.architectures import (
    DCGANDiscriminator,
    DCGANGenerator,
    GANConfig,
    parameter_count,
)

__all__ = [
    "DEFAULT_HPARAMS",
    "IMAGE_SHAPE",
    "LATENT_DIM",
    "LATENT_SHAPE",
    "MODELS",
    "Encoder",
    "InverterTarget",
    "Rival",
    "RivalConfig",
    "adam",
    "bce",
    "dcgan_config",
    "make_generator",
    "make_image_discriminator",
    "mlp",
    "running_stats_frozen",
    "take_step",
]

LATENT_DIM: Final[int] = 100
LATENT_SHAPE: Final[tuple[int]] = (LATENT_DIM,)
IMAGE_SHAPE: Final[tuple[int, int, int]] = (1, 28, 28)
MODELS: Final[tuple[str, ...]] = ("vae", "bigan", "gaan", "aaae")

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
def dcgan_config(config: RivalConfig, *, width: int, batch_norm: bool = True) -> GANConfig:
    return GANConfig(latent_dim=config.latent_dim, g_width=config.g_width, d_width=width, loss="dcgan",
                     d_batch_norm=batch_norm)


def make_generator(config: RivalConfig) -> DCGANGenerator:
    return DCGANGenerator(dcgan_config(config, width=config.d_width))


def make_image_discriminator(config: RivalConfig, *, batch_norm: bool = True) -> DCGANDiscriminator:
    return DCGANDiscriminator(dcgan_config(config, width=config.d_width, batch_norm=batch_norm))


def mlp(sizes: list[int], *, dropout: float = 0.0, last_activation: bool = False) -> nn.Sequential:
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
        self.trunk = DCGANDiscriminator(dcgan_config(config, width=config.e_width)).main
        self.head = nn.Linear(4 * config.e_width * 4 * 4, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(x).flatten(1))


def bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def adam(modules: list[nn.Module], hp: dict[str, Any]) -> torch.optim.Adam:
    params = [p for m in modules for p in m.parameters()]
    return torch.optim.Adam(params, lr=hp["lr"], betas=tuple(hp["betas"]))


def take_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
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

