"""The stream of training pairs ``(D_f(G(z)), z)`` a fit learns from, and its held-out set.

:class:`PairMaker` draws latents from the prior (and conditions for a conditional GAN),
renders ``G(z)`` and reads D's features at the feature layer. The held-out validation
pairs come from the user's G and D in full precision, exactly as :meth:`Inverter.encode`
sees images; the training batches may come through the speed levers of
:mod:`discinvert.fitting.acceleration` (autocast, channels-last copies) and the batch reuse of
:mod:`discinvert.fitting.pool`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from discinvert.fitting.acceleration import autocast_context, channels_last_copy, probe_levers
from discinvert.conditioning import Conditioning, check_conditions, label_count
from discinvert.features import FeatureTap
from discinvert.gan import generate
from discinvert.latents import LatentSampler
from discinvert.fitting.pool import BatchPool, BatchSource, FreshBatches
from discinvert.argument_checks import holds_data

__all__ = ["PairMaker", "ValidationSet"]


@dataclass(frozen=True)
class ValidationSet:
    """Held-out pairs: ``features (N, F)`` float32, flat ``targets (N, D)``, and what G's images spanned.

    Attributes:
        image_range: ``(min, max)`` of the held-out images, ``None`` if G gave NaN or Inf;
            recorded as ``InverterConfig.image_range``.
        baseline: the MSE of predicting the mean latent (what a useless CN scores).
    """

    features: torch.Tensor
    targets: torch.Tensor
    image_range: tuple[float, float] | None
    baseline: float


class PairMaker:
    """Makes ``(z, c)`` draws and their features ``D_f(G(z))`` for one fit.

    Args:
        generator, tap: the user's G and the feature tap on the user's D.
        sampler: the latent prior, ``sampler(n, rng, device) -> (n, *latent_shape)``.
        latent_shape: the shape every draw must have, or ``None`` to take the sampler's.
        conditioning: how to draw conditions and call a conditional GAN.
        device: where the fit runs.
    """

    def __init__(
        self,
        generator: nn.Module,
        tap: FeatureTap,
        sampler: LatentSampler,
        latent_shape: tuple[int, ...] | None,
        conditioning: Conditioning | None,
        device: torch.device,
    ) -> None:
        self.generator = generator
        self.tap = tap
        self.sampler = sampler
        self.latent_shape = latent_shape
        self.conditioning = conditioning
        self.device = device
        self.levers: dict[str, Any] = {"autocast_dtype": None, "channels_last": False}  # set by training_batches
        self.classes = None if conditioning is None else label_count(conditioning, generator, tap.discriminator)

    def draw(self, n: int, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``n`` latents ``(n, *latent_shape)`` on the fit's device and their conditions (or ``None``).

        Raises:
            ValueError: the latent sampler returned no batch of ``n``, another latent shape or
                a meta tensor; the condition sampler returned no tensor of ``n`` rows, a meta
                tensor, or labels outside the known classes
                (:func:`~discinvert.conditioning.check_conditions`).
        """
        z = self.sampler(n, rng, self.device)
        if not isinstance(z, torch.Tensor) or z.dim() < 2 or z.shape[0] != n:
            got = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
            raise ValueError(f"latent_sampler: expected a tensor of shape ({n}, ...), got {got}.")
        if self.latent_shape is not None and tuple(z.shape[1:]) != self.latent_shape:
            raise ValueError(
                f"latent_sampler: expected samples of latent_shape {self.latent_shape}, got {tuple(z.shape[1:])}."
            )
        holds_data(z, "latent_sampler")
        c = None
        if self.conditioning is not None:
            c = check_conditions(self.conditioning.sampler(n, rng, self.device), n, name="conditioning.sampler",
                                 per="latent", classes=self.classes)
        return z.to(self.device), c

    def validation_set(self, n: int, rng: torch.Generator, batch_size: int) -> ValidationSet:
        """``n`` held-out pairs from the user's G and D in full precision, in batches of ``batch_size``.

        Call it under :func:`discinvert.guard.frozen` and ``torch.no_grad()``.
        """
        latents, conditions = self.draw(n, rng)
        chunks = []
        low, high, finite = math.inf, -math.inf, True
        for start in range(0, n, batch_size):
            c = None if conditions is None else conditions[start : start + batch_size]
            images = generate(self.generator, latents[start : start + batch_size], c, self.conditioning)
            if finite and bool(torch.isfinite(images).all()):
                low, high = min(low, float(images.min())), max(high, float(images.max()))
            else:
                finite = False
            chunks.append(self.tap(images, c).float())
        targets = latents.reshape(n, -1).float()
        baseline = float(F.mse_loss(targets.mean(0, keepdim=True).expand_as(targets), targets))
        return ValidationSet(torch.cat(chunks), targets, (low, high) if finite else None, baseline)

    def training_batches(
        self,
        *,
        batch_size: int,
        rng: torch.Generator,
        reuse: int,
        autocast_dtype: torch.dtype | None,
        channels_last: bool,
        feature_dim: int,
        probe: tuple[torch.Tensor, torch.Tensor | None],
    ) -> BatchSource:
        """The batches the CN trains on: fresh ``(features (B, F), flat z (B, D))`` pairs, or a pool.

        With ``channels_last`` G and D run as channels-last copies (the user's models are
        never converted); with ``autocast_dtype`` under ``torch.autocast``. Either lever is
        tried on the ``probe`` latents first, so one G or D does not support fails before
        training. Call it under :func:`discinvert.guard.frozen`. ``self.levers`` then records
        the levers used.

        Raises:
            ValueError: G or D cannot be copied, or fails or changes its feature count under a lever.
        """
        generator, tap = self.generator, self.tap
        if channels_last:
            generator = channels_last_copy(self.generator, "generator")
            d_copy = channels_last_copy(self.tap.discriminator, "discriminator")
            tap = FeatureTap(d_copy, self.tap.layer_name,
                             tuple(d_copy.get_submodule(name) for name in self.tap.layer_names),
                             conditioning=self.conditioning)
        if channels_last or autocast_dtype is not None:
            probe_levers(generator, tap, probe[0], probe[1], self.conditioning, self.device, autocast_dtype,
                         channels_last, feature_dim)
        self.levers = {"autocast_dtype": None if autocast_dtype is None else str(autocast_dtype),
                       "channels_last": channels_last}

        def fresh() -> tuple[torch.Tensor, torch.Tensor]:
            with torch.no_grad():
                z, c = self.draw(batch_size, rng)
                with autocast_context(self.device, autocast_dtype):
                    features = tap(generate(generator, z, c, self.conditioning), c)
            return features.float(), z.reshape(batch_size, -1).float()

        return FreshBatches(fresh) if reuse == 1 else BatchPool(fresh, reuse=reuse, rng=rng)
