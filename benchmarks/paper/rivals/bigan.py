"""The BiGAN/ALI rival: E and G trained together against a discriminator on joint pairs (x, z)."""

from __future__ import annotations

import torch
from torch import nn

from benchmarks.paper.rivals.base import (
    LATENT_DIM,
    LATENT_SHAPE,
    Encoder,
    InverterTarget,
    Rival,
    RivalConfig,
    adam,
    bce,
    dcgan_config,
    make_generator,
    mlp,
    take_step,
)
from discinvert import Conditioning
from discinvert.zoo.architectures import DCGANDiscriminator

__all__ = ["BiGAN", "BiGANImageDiscriminator", "JointDiscriminator", "bigan_conditioning"]


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
        self.x_trunk = DCGANDiscriminator(dcgan_config(config, width=config.d_width)).main
        self.z_embed = mlp([config.latent_dim, hp["z_hidden"], hp["z_hidden"]], dropout=hp["dropout"], last_activation=True)
        self.head = mlp([4 * config.d_width * 16 + hp["z_hidden"], hp["joint_hidden"], hp["joint_hidden"], 1],
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
        self.generator = make_generator(config)
        self.discriminator = JointDiscriminator(config)

    def image_discriminator(self) -> BiGANImageDiscriminator:
        return BiGANImageDiscriminator(self.discriminator)

    def inverter_target(self) -> InverterTarget:
        return InverterTarget(self.generator, self.image_discriminator(), BiGANImageDiscriminator.feature_layer,
                              LATENT_SHAPE, None,
                              "joint D's x-trunk through BiGANImageDiscriminator (x -> D(x, 0)), layer d.x_trunk.7")

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"d": adam([self.discriminator], self.hp), "eg": adam([self.encoder, self.generator], self.hp)}

    def train_step(self, x: torch.Tensor, optimizers: dict[str, torch.optim.Optimizer]) -> dict[str, torch.Tensor]:
        n, dim = x.shape[0], self.config.latent_dim
        z = torch.randn(n, dim, device=x.device)
        with torch.no_grad():
            z_enc = self.encoder(x)
            x_gen = self.generator(z)
        d_real, d_fake = self.discriminator(x, z_enc), self.discriminator(x_gen, z)
        loss_d = bce(d_real, 1.0) + bce(d_fake, 0.0)
        take_step(optimizers["d"], loss_d)

        z = torch.randn(n, dim, device=x.device)
        loss_eg = bce(self.discriminator(x, self.encoder(x)), 0.0) + bce(self.discriminator(self.generator(z), z), 1.0)
        take_step(optimizers["eg"], loss_eg)
        return {"d_loss": loss_d.detach(), "eg_loss": loss_eg.detach(),
                "d_real": torch.sigmoid(d_real.detach()).mean(), "d_fake": torch.sigmoid(d_fake.detach()).mean()}

