"""The VAE rival: a Gaussian encoder and a DCGAN decoder with one shared, analytically optimal variance (sigma-VAE)."""

from __future__ import annotations

import math

import torch

from benchmarks.paper.rivals.base import Encoder, Rival, RivalConfig, adam, make_generator, take_step

__all__ = ["VAE"]


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
        self.generator = make_generator(config)

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        limit = self.hp["logvar_clamp"]
        return mu, logvar.clamp(-limit, limit)

    def _encode_batch(self, x: torch.Tensor) -> torch.Tensor:
        return self.posterior(x)[0]

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"vae": adam([self.encoder, self.generator], self.hp)}

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
        take_step(optimizers["vae"], out["loss"])
        return {k: v.detach() for k, v in out.items()}

