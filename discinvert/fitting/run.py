"""What one fit carries through its stages, built once per fit: :class:`FitRun`, with its :class:`Seeds`.

:class:`FitRun` holds the settings, the facts found about G and D, the device and torchrun context, the
tap, the pairs and the autocast dtype; every helper of a fit takes it instead of those values one by one.
:class:`FrozenGAN` is the part of it the real-image stage and the step networks read, and :class:`Seeds`
the one place that says which seed each random stream gets (:data:`STREAMS`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from discinvert.conditioning import Conditioning
from discinvert.distributed import DistContext
from discinvert.features import FeatureTap
from discinvert.fitting.fit_config import FitConfig
from discinvert.fitting.loop import Runtime
from discinvert.fitting.pairs import PairMaker, ValidationSet
from discinvert.fitting.pixel_route import PixelInput
from discinvert.gan import GANFacts

__all__ = ["RANK_STRIDE", "STREAMS", "FitRun", "FrozenGAN", "Seeds"]

RANK_STRIDE = 1_000_003
"""How far apart the seeds of one per-rank stream lie on neighbouring ranks under torchrun."""

STREAMS: dict[str, tuple[int, bool]] = {
    "global": (0, False),  # torch's global RNGs: the networks' initial weights
    "cn_batches": (0, True),  # the self-generated stage's training latents (and its pool's draws)
    "validation": (1, False),  # the probes, the batch-independence check and the held-out latents
    "real_batches": (2, True),  # which of the user's images each real-image update reads
    "real_prior_pairs": (3, True),  # the real-image stage's prior-term pairs
    "image_split": (4, False),  # which of the user's images are held out
    "step_batches": (5, True),  # which of the user's images each step-network update reads
    "step_latents": (6, True),  # the step networks' self-generated latents
    "perceptual": (7, False),  # the random perceptual network of the generator-only route (perceptual='random')
}
"""Every random stream of a fit: its offset from the fit's seed, and whether each rank draws its own
(its seed then moves by :data:`RANK_STRIDE` per rank). Changing one changes every fit's numbers."""


@dataclass(frozen=True)
class Seeds:
    """The seed of each random stream of a fit (see :data:`STREAMS`), from the fit's seed and this rank."""

    seed: int
    rank: int = 0

    def of(self, stream: str) -> int:
        """The seed of ``stream``, a key of :data:`STREAMS`."""
        offset, per_rank = STREAMS[stream]
        return self.seed + offset + (RANK_STRIDE * self.rank if per_rank else 0)

    def generator(self, stream: str, device: torch.device | None = None) -> torch.Generator:
        """A new generator on ``device`` (``None``: the CPU) seeded for ``stream``."""
        made = torch.Generator() if device is None else torch.Generator(device=device)
        return made.manual_seed(self.of(stream))


@dataclass(frozen=True)
class FrozenGAN:
    """The user's G and the feature tap on D (frozen by the caller), and the shape of one code as G takes it.

    Attributes:
        perceptual: the frozen network whose features the feature term of the real-image stage and the step
            networks compares, images ``(N, *image_shape)`` → ``(N, F')`` (the generator-only route's
            ``perceptual``, :func:`~discinvert.fitting.pixel_route.perceptual_network`); ``None``: the tap's.
    """

    generator: nn.Module
    tap: FeatureTap
    latent_shape: tuple[int, ...]
    perceptual: nn.Module | None = None


@dataclass(frozen=True)
class FitRun:
    """One fit: what it was asked, where it runs and what it found out about G and D before training.

    Built by :func:`discinvert.fit_inverter` once G and D have been probed, and handed to every stage.

    Attributes:
        settings: the fit's settings, with its seed.
        seeds: the seed of each random stream.
        gan: G, the tap on D's feature layer and the shape of one code (as G's probe took it).
        discriminator, conditioning: D and the conditioning as the user gave them (for G alone, D's stand-in).
        layer_name: the feature layer(s).
        pairs: makes the self-generated pairs.
        custom_prior: whether the latents come from the user's ``latent_sampler``.
        device, dist_ctx: where the fit runs; the torchrun context.
        facts: what probing G and D found (image shape, feature count, fingerprints).
        probe: the two probe latents (and conditions) the levers are tried on.
        held_out: the held-out validation pairs.
        autocast_dtype, levers: the autocast dtype the stages' updates run under, and the speed levers
            as ``inverter.config.fit['levers']`` records them: as asked in the run built before training;
            the fit replaces the run (``dataclasses.replace``) once the self-generated stage's batches have
            settled them (an ``'auto'`` lever G or D fail under is dropped), before any training.

    For G alone (no D, :attr:`pixel_route`) ``discriminator`` is the stand-in whose tap gives G's images flattened
    (:class:`~discinvert.fitting.pixel_route.PixelInput`), and the stages train the pixel network with the CN
    (:mod:`discinvert.fitting.pixel_route`).
    """

    settings: FitConfig
    seeds: Seeds
    gan: FrozenGAN
    discriminator: nn.Module
    conditioning: Conditioning | None
    layer_name: str | tuple[str, ...]
    pairs: PairMaker
    custom_prior: bool
    device: torch.device
    dist_ctx: DistContext
    facts: GANFacts
    probe: tuple[torch.Tensor, torch.Tensor | None]
    held_out: ValidationSet
    autocast_dtype: torch.dtype | None
    levers: dict[str, Any] = field(default_factory=dict)

    @property
    def pixel_route(self) -> bool:
        """Fit for G alone: ``discriminator`` is the pixels' stand-in."""
        return isinstance(self.discriminator, PixelInput)

    @property
    def runtime(self) -> Runtime:
        """Where and how the stages run."""
        return Runtime(self.device, self.dist_ctx, self.autocast_dtype, self.settings.progress)

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return self.gan.latent_shape

    def rng(self, stream: str, on_device: bool = True) -> torch.Generator:
        """A generator seeded for ``stream`` (:data:`STREAMS`), on the fit's device or the CPU."""
        return self.seeds.generator(stream, self.device if on_device else None)
