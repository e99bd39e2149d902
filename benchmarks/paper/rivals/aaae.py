"""The AAAE rival: an unregularised autoencoder whose code distribution a latent GAN approximates, plus an image GAN."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from benchmarks.paper.rivals.base import (
    LATENT_SHAPE,
    Encoder,
    InverterTarget,
    Rival,
    RivalConfig,
    adam,
    bce,
    make_generator,
    make_image_discriminator,
    mlp,
    running_stats_frozen,
    take_step,
)

__all__ = ["AAAE"]


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
        self.generator = make_generator(config)
        self.latent_generator = mlp([config.latent_dim, h, h, config.latent_dim])
        self.latent_discriminator = mlp([config.latent_dim, h, h, 1])
        self.discriminator = make_image_discriminator(config)

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
        return {"ae": adam([self.encoder, self.generator], self.hp), "dz": adam([self.latent_discriminator], self.hp),
                "f": adam([self.latent_generator], self.hp), "dx": adam([self.discriminator], self.hp),
                "g": adam([self.generator], self.hp)}

    def train_step(self, x: torch.Tensor, optimizers: dict[str, torch.optim.Optimizer]) -> dict[str, torch.Tensor]:
        n, dim = x.shape[0], self.config.latent_dim
        z_enc = self.encoder(x)
        rec = F.mse_loss(self.generator(z_enc), x)
        take_step(optimizers["ae"], rec)

        # Latent GAN: F approximates the distribution of E(x).
        z_enc = z_enc.detach()
        with torch.no_grad():
            z_f = self.latent_generator(torch.randn(n, dim, device=x.device))
        loss_dz = bce(self.latent_discriminator(z_enc), 1.0) + bce(self.latent_discriminator(z_f), 0.0)
        take_step(optimizers["dz"], loss_dz)
        loss_f = bce(self.latent_discriminator(self.latent_generator(torch.randn(n, dim, device=x.device))), 1.0)
        take_step(optimizers["f"], loss_f)

        # Image GAN: G(F(n)) against real images.
        with torch.no_grad(), running_stats_frozen(self.generator):
            x_gen = self.generator(self.latent_generator(torch.randn(n, dim, device=x.device)))
        loss_dx = bce(self.discriminator(x), 1.0) + bce(self.discriminator(x_gen), 0.0)
        take_step(optimizers["dx"], loss_dx)
        with torch.no_grad():
            z_f = self.latent_generator(torch.randn(n, dim, device=x.device))
        with running_stats_frozen(self.generator):
            x_gen = self.generator(z_f)
        loss_g = bce(self.discriminator(x_gen), 1.0)
        take_step(optimizers["g"], loss_g)
        return {"rec": rec.detach(), "dz_loss": loss_dz.detach(), "f_loss": loss_f.detach(),
                "dx_loss": loss_dx.detach(), "g_loss": loss_g.detach()}

