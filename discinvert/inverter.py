"""The :class:`Inverter`: image → latent code through D's features and the connection network."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from discinvert import behaviour, distributed, hub
from discinvert.conditioning import Conditioning, check_conditioning, check_conditions, label_count
from discinvert.inverter_config import InverterConfig
from discinvert.features import FeatureTap, reached_modules
from discinvert.fingerprint import fingerprint_discriminator, fingerprint_generator
from discinvert.gan import (DEFAULT_BATCH_SIZE, check_module, generate, model_device, model_dtype, probe,
                            probe_generator, resolve_device)
from discinvert.guard import frozen
from discinvert.step_networks import StepNetwork, iterate
from discinvert.layers import resolve_layers
from discinvert.latents import LatentSampler, normal_sampler
from discinvert.mapped import GaussianPrior, MappedGenerator, check_generator_space, prior_dim
from discinvert.network import ConnectionNetwork
from discinvert.pixel_encoder import PixelEncoder
from discinvert.keyword_settings import keyword_settings
from discinvert.optimize import OptimizeSettings, optimize_latents
from discinvert.rng import kept
from discinvert.serialization import PRIOR_TENSORS, read_inverter_file, write_inverter_file
from discinvert.argument_checks import holds_data, is_integer, numpy_tensor, positive_int
from discinvert.value_range import RANGE_MARGIN, nominal_range, range_problem

__all__ = ["DEFAULT_BATCH_SIZE", "RANGE_MARGIN", "FingerprintMismatchError", "ImageRangeWarning", "Inverter", "RangeCheck"]

logger = logging.getLogger(__name__)


RangeCheck = Literal["warn", "raise", "ignore"]
"""What ``encode``/``reconstruct``/``refine`` do with images far outside G's range."""

_LEGACY_RANGE_SAMPLES = 32


def _user_stacklevel() -> int:
    """The ``warnings`` stacklevel of the first frame outside this package: the user's line that
    called ``encode``, ``reconstruct``, ``refine`` or a metric, however deep inside discinvert."""
    package = os.path.dirname(os.path.abspath(__file__)) + os.sep
    frame, level = sys._getframe(2), 2  # the caller of the function that asks
    while frame is not None and frame.f_code.co_filename.startswith(package):
        frame, level = frame.f_back, level + 1
    return level


class FingerprintMismatchError(ValueError):
    """The inverter was fit for another generator or discriminator."""


class ImageRangeWarning(UserWarning):
    """Images handed to the inverter lie far outside the range of G's images."""


class _GAN:
    """Plain holder so G and D are referenced, never registered as the inverter's submodules.

    ``tap`` reads the CN's features: D's feature layer, or, for an inverter fit for G alone (``discriminator``
    ``None``), the last layer of the inverter's own pixel network."""

    def __init__(self, generator: nn.Module, discriminator: nn.Module | None, tap: FeatureTap,
                 conditioning: Conditioning | None):
        self.generator = generator
        self.discriminator = discriminator
        self.tap = tap
        self.conditioning = conditioning


def _check_route(config: InverterConfig, discriminator: nn.Module | None) -> None:
    """A D exactly when the config reads D's features (``ValueError`` naming the route and what came); no
    conditioning for G alone."""
    if config.feature_source == "pixels":
        if discriminator is not None:
            raise ValueError(
                "discriminator: this inverter was fit for the generator alone (feature_source 'pixels': it reads its "
                f"own pixel network); expected no discriminator, got {type(discriminator).__name__}. Leave "
                "discriminator out (None).")
        if config.conditional:
            raise ValueError("InverterConfig: an inverter fit for the generator alone is unconditional; got "
                             "conditional=True.")
        return
    if discriminator is None:
        raise ValueError(
            f"discriminator: this inverter reads the discriminator's features at {config.feature_layer!r} "
            "(feature_source 'discriminator'); expected the discriminator it was fit with, got None.")
    check_module(discriminator, "discriminator")


def _models_device(generator: nn.Module, discriminator: nn.Module | None) -> torch.device | None:
    """Where the GAN lives: D's device (G alone: G's), ``None`` for models without parameters or buffers."""
    return (None if discriminator is None else model_device(discriminator)) or model_device(generator)


def _check_batch_size(batch_size: int | None) -> int:
    return DEFAULT_BATCH_SIZE if batch_size is None else positive_int(batch_size, "batch_size")


class Inverter(nn.Module):
    """An inverse mapping for a pretrained GAN: ``z ≈ CN(D_f(x))``, optionally corrected by step networks.

    It holds the connection network (submodule ``cn``), the step networks of iterative
    refinement when it was fit with ``iterations > 0`` (submodule ``steps``, an
    ``nn.ModuleList``, empty otherwise; see :mod:`discinvert.step_networks`) and its
    :class:`~discinvert.inverter_config.InverterConfig`. G and D are referenced, not
    registered: they never appear in :meth:`state_dict`, in saved files, or under
    ``.to()``/``.parameters()``. Every method leaves G and D as it found them.

    Fit for a :class:`~discinvert.MappedGenerator` (codes in Z, W or W+ of a mapping network;
    ``config.latent_space`` records which), it also holds that space's Gaussian prior, estimated
    once at fit time, as the buffers ``prior_mean`` and ``prior_scale_tril`` (saved in its file):
    :attr:`prior`, whose penalty is :meth:`refine`'s prior term, and G must then be a
    ``MappedGenerator`` of the same space.

    Fit for G alone (``config.feature_source == "pixels"``, ``fit_inverter(G, None, ...)``), it reads no D: it
    holds its own pixel feature network (submodule ``pixels``, :mod:`discinvert.pixel_encoder`, saved with the
    CN's weights) in front of the CN, takes no discriminator, records no D fingerprint, and :meth:`refine` has
    no D-feature term.

    Build one with :func:`discinvert.fit_inverter` or :meth:`Inverter.load`.

    Args:
        config: what the inverter was fit for.
        generator: G, mapping latents ``(N, *latent_shape)`` to images ``(N, *image_shape)``.
        discriminator: D; ``config.feature_layer`` must name one of its submodules. ``None`` (the default)
            exactly for an inverter fit for G alone.
        conditioning: for a conditional GAN, how to call G and D (required exactly
            when ``config.conditional``).

    Raises:
        ValueError: the feature layer is not in D, conditioning disagrees with the config, G is not
            the kind of generator the config's ``latent_space`` names (a plain G, or a ``MappedGenerator``
            of that space and shape), or a D given for an inverter fit for G alone, or none for one
            reading D's features.
    """

    def __init__(
        self,
        config: InverterConfig,
        *,
        generator: nn.Module,
        discriminator: nn.Module | None = None,
        conditioning: Conditioning | None = None,
    ) -> None:
        super().__init__()
        check_module(generator, "generator")
        _check_route(config, discriminator)
        check_conditioning(conditioning)
        if config.conditional and conditioning is None:
            raise ValueError(
                "conditioning: this inverter was fit for a conditional GAN; pass the same "
                "Conditioning (how to call G and D with labels) you fit it with."
            )
        if not config.conditional and conditioning is not None:
            raise ValueError("conditioning: this inverter was fit for an unconditional GAN; got a Conditioning.")
        check_generator_space(generator, config.latent_space, "generator")
        if discriminator is not None:
            resolve_device(generator, discriminator, None)  # G and D on different devices: a clear error
            layer_name, layer = resolve_layers(discriminator, config.feature_layer)
        self.config = config
        with torch.random.fork_rng(devices=[]):  # building the networks must not move the user's RNG
            if config.pixel_encoder is not None:
                self.pixels = PixelEncoder(config.pixel_encoder)
            self.cn = ConnectionNetwork(config.cn)
            self.steps = nn.ModuleList(
                StepNetwork(config.step) for _ in range(config.iterations) if config.step is not None)
        if config.latent_space is not None:  # the space's prior, filled in by the fit or the file
            d = prior_dim(config.latent_space)
            self.register_buffer(PRIOR_TENSORS[0], torch.zeros(d))
            self.register_buffer(PRIOR_TENSORS[1], torch.eye(d))
        if discriminator is None:  # G alone: the features of its own pixel network
            tap = FeatureTap(self.pixels, self.pixels.last_layer, self.pixels.get_submodule(self.pixels.last_layer))
        else:
            tap = FeatureTap(discriminator, layer_name, layer, conditioning=conditioning)
        self._gan = _GAN(generator, discriminator, tap, conditioning)
        device = _models_device(generator, discriminator)
        if device is not None:
            self.to(device)
        self.eval()

    # ------------------------------------------------------------------ properties
    @property
    def generator(self) -> nn.Module:
        """The GAN's generator G (referenced, not owned)."""
        return self._gan.generator

    @property
    def discriminator(self) -> nn.Module | None:
        """The GAN's discriminator D (referenced, not owned); ``None`` for an inverter fit for G alone."""
        return self._gan.discriminator

    @property
    def feature_source(self) -> str:
        """What the CN reads: ``"discriminator"`` (D's features) or ``"pixels"`` (its own pixel network, G alone)."""
        return self.config.feature_source

    @property
    def conditioning(self) -> Conditioning | None:
        """How a conditional GAN is called, or ``None``."""
        return self._gan.conditioning

    @property
    def feature_layer(self) -> str | tuple[str, ...] | None:
        """Dotted name of D's feature layer (a tuple of names when the CN reads several); ``None`` for G alone."""
        return self.config.feature_layer

    @property
    def iterations(self) -> int:
        """Number of step networks (feed-forward corrections) :meth:`encode` runs by default."""
        return self.config.iterations

    @property
    def latent_shape(self) -> tuple[int, ...]:
        """Shape of one latent code."""
        return self.config.latent_shape

    @property
    def latent_space(self) -> dict[str, Any] | None:
        """The record of G's latent space (a :class:`~discinvert.MappedGenerator`'s ``space_record()``), or ``None``."""
        return self.config.latent_space

    @property
    def prior(self) -> GaussianPrior | None:
        """The Gaussian prior of G's latent space estimated at fit time (``None`` for a plain G, whose prior
        term is ``||z||²``); its ``penalty`` is :meth:`refine`'s prior term."""
        if self.config.latent_space is None:
            return None
        return GaussianPrior(getattr(self, PRIOR_TENSORS[0]), getattr(self, PRIOR_TENSORS[1]))

    @property
    def latent_sampler(self) -> LatentSampler:
        """Where fresh codes come from (``sampler(n, generator, device)``, as ``fit_inverter`` takes it): the
        sampler of G's latent space for a :class:`~discinvert.MappedGenerator` (W+ samples style-mixed),
        else ``N(0, I)`` of :attr:`latent_shape` (a fit's custom ``latent_sampler`` is not stored)."""
        return self.generator.sample if isinstance(self.generator, MappedGenerator) else normal_sampler(self.latent_shape)

    def _latent_sampler(self) -> LatentSampler | None:
        """The sampler of G's latent space when G is a :class:`~discinvert.MappedGenerator`, else ``None``."""
        return self.latent_sampler if isinstance(self.generator, MappedGenerator) else None

    @property
    def image_shape(self) -> tuple[int, ...]:
        """Shape of one image as G produces it."""
        return self.config.image_shape

    @property
    def value_range(self) -> tuple[float, float]:
        """G's nominal value range, the default ``value_range`` of the metrics.

        From the range of G's images recorded at fit time (``config.image_range``):
        ``(0, 1)`` or ``(0, 255)`` when the recorded range lies inside it (1% slack) and
        covers at least half of it; else ``(-1, 1)``, the usual tanh convention, when it
        lies inside that; else the recorded range itself. ``(-1, 1)`` when nothing was
        recorded. A barely trained G whose images span a sliver of values is thus
        taken as a tanh generator, not as a [0, 1] one.
        """
        return nominal_range(self.config.image_range)

    # ------------------------------------------------------------------ inputs
    def _check_images(self, images: torch.Tensor | np.ndarray) -> torch.Tensor:
        if isinstance(images, np.ndarray):
            if images.dtype.kind != "f":
                raise ValueError(
                    f"images: expected floating-point values in the generator's range (as G "
                    f"produces them), got a numpy array of dtype {images.dtype}; convert and "
                    "scale them first (e.g. uint8 x → x / 127.5 - 1 for a tanh generator)."
                )
            images = numpy_tensor(images, "images")
        elif not isinstance(images, torch.Tensor):
            raise ValueError(
                f"images: expected a torch.Tensor or numpy array of shape (N, {', '.join(map(str, self.image_shape))}), "
                f"got {type(images).__name__}."
            )
        elif not images.is_floating_point():
            raise ValueError(
                f"images: expected floating-point values in the generator's range (as G "
                f"produces them), got dtype {images.dtype}; convert and scale them first "
                "(e.g. uint8 x → x / 127.5 - 1 for a tanh generator)."
            )
        elif images.is_nested or images.layout != torch.strided:
            kind = "a nested tensor" if images.is_nested else f"a tensor of layout {images.layout}"
            raise ValueError(f"images: expected a dense tensor of shape (N, {', '.join(map(str, self.image_shape))}), "
                             f"got {kind}; convert it first (e.g. images.to_dense()).")
        else:
            # detached: never backpropagate into the caller's graph (e.g. images = G(z))
            images = holds_data(images, "images").detach()
        expected = self.image_shape
        if images.dim() != len(expected) + 1 or tuple(images.shape[1:]) != expected:
            hint = " (a single image: add a batch dimension, images[None])" if tuple(images.shape) == expected else ""
            raise ValueError(
                f"images: expected shape (N, {', '.join(map(str, expected))}), got "
                f"{tuple(images.shape)}{hint}."
            )
        if images.numel() and not bool(torch.isfinite(images).all()):
            bad = int((~torch.isfinite(images)).sum())
            raise ValueError(f"images: expected finite values, got {bad} NaN or Inf value(s).")
        return images

    def _check_range(self, images: torch.Tensor, range_check: RangeCheck) -> None:
        """Warn about (or refuse) images far outside the range of G's images."""
        if range_check not in ("warn", "raise", "ignore"):
            raise ValueError(f"range_check: expected 'warn', 'raise' or 'ignore', got {range_check!r}.")
        recorded = self.config.image_range
        if range_check == "ignore" or recorded is None or images.numel() == 0:
            return
        found = (float(images.min()), float(images.max()))
        problem = range_problem(found, recorded)
        if problem is None:
            return
        message = f"{problem} Codes of such images are meaningless; range_check='ignore' skips this check."
        if range_check == "raise":
            raise ValueError(message)
        warnings.warn(message, ImageRangeWarning, stacklevel=_user_stacklevel())

    def _check_conditions(self, conditions: torch.Tensor | np.ndarray | None, n: int) -> torch.Tensor | None:
        if self.conditioning is None:
            if conditions is not None:
                raise ValueError("conditions: this inverter is unconditional; expected None.")
            return None
        if conditions is None:
            raise ValueError(
                "conditions: this inverter was fit for a conditional GAN; pass the images' "
                "conditions (e.g. class labels of shape (N,))."
            )
        # What the conditioning knows: the kind and row shape of what its sampler draws, and the class count.
        device = self._run_device()
        with kept(device):  # a sampler drawing from a global RNG must not move the user's
            reference = self.conditioning.sampler(2, torch.Generator(device=device).manual_seed(0), device)
        return check_conditions(conditions, n, name="conditions", per="image",
                                classes=label_count(self.conditioning, self.generator, self.discriminator),
                                reference=reference if isinstance(reference, torch.Tensor) else None)

    def _run_device(self) -> torch.device:
        device = _models_device(self.generator, self.discriminator)
        if device is None:
            device = next(self.cn.parameters()).device
        if next(self.cn.parameters()).device != device:
            logger.debug("moving the connection network to %s, where the GAN lives", device)
            self.cn.to(device)
        for step in self.steps:
            if next(step.parameters()).device != device:
                step.to(device)
        if self.config.pixel_encoder is not None and next(self.pixels.parameters()).device != device:
            self.pixels.to(device)  # G alone: the pixel network is ours and follows G as the CN does
        return device

    def _check_iterations(self, iterations: int | None) -> int:
        if iterations is None:
            return self.config.iterations
        if not is_integer(iterations) or not 0 <= iterations <= self.config.iterations:
            raise ValueError(
                f"iterations: expected an int from 0 (the connection network alone) to {self.config.iterations} "
                f"(the step networks this inverter was fit with), got {iterations!r}."
            )
        return int(iterations)

    # ------------------------------------------------------------------ inference
    def encode(
        self,
        images: torch.Tensor | np.ndarray,
        batch_size: int | None = None,
        *,
        conditions: torch.Tensor | np.ndarray | None = None,
        range_check: RangeCheck = "warn",
        iterations: int | None = None,
    ) -> torch.Tensor:
        """Latent codes for images: one partial pass of D plus the connection network, then the corrections.

        For an inverter fit for G alone, its own pixel network stands where D's partial pass stands (here and below).
        Each of the ``iterations`` feed-forward corrections (no gradient steps; see
        :mod:`discinvert.step_networks`) costs one more G pass, one more partial D pass and
        a step network's MLP.

        Args:
            images: ``(N, *image_shape)``, floating point, in G's value range (as G
                produces them, e.g. [-1, 1] for a tanh generator); tensor or numpy array.
                They are never modified, also by a D that writes into its input.
            batch_size: images per forward pass (default :data:`DEFAULT_BATCH_SIZE`);
                results do not depend on it.
            conditions: for a conditional GAN, ``(N, ...)`` conditions (e.g. labels).
            range_check: images outside G's range (:attr:`value_range`, from the range
                recorded at fit time) by more than :data:`RANGE_MARGIN` of its span (e.g.
                0..255 for a tanh G) give an :class:`ImageRangeWarning` (``"warn"``,
                default), a ``ValueError`` (``"raise"``), or nothing (``"ignore"``).
            iterations: step networks to run, from ``0`` (the connection network's
                codes) to :attr:`iterations` (the default, ``None``: every step the
                inverter was fit with, its best feed-forward codes).

        Returns:
            ``(N, *latent_shape)`` codes, float32, on the images' device (CPU for numpy),
            without grad. An empty batch gives an empty result.

        Raises:
            ValueError: wrong type, dtype or shape, NaN/Inf values, bad conditions;
                images out of range with ``range_check="raise"``; codes that come out NaN
                or Inf (the message says whether D's features or the CN produced them).
        """
        x = self._check_images(images)
        c = self._check_conditions(conditions, x.shape[0])
        self._check_range(x, range_check)
        size = _check_batch_size(batch_size)
        steps = list(self.steps)[: self._check_iterations(iterations)]
        out_device = x.device
        if x.shape[0] == 0:
            return torch.empty((0, *self.latent_shape), device=out_device)
        device = self._run_device()
        d_dtype = model_dtype(self._gan.tap.discriminator)  # D's, or the pixel network's
        cn_dtype = next(self.cn.parameters()).dtype
        chunks = []
        with frozen(self, self.generator, self.discriminator), torch.no_grad():
            for start in range(0, x.shape[0], size):
                xb = x[start : start + size].to(device=device, dtype=d_dtype)
                cb = None if c is None else c[start : start + size].to(device)
                target = self._gan.tap(xb, cb)
                features = target.to(cn_dtype)
                codes = self.cn(features).float()
                if not bool(torch.isfinite(codes).all()):
                    raise ValueError(self._non_finite_codes(features, codes, start))
                if steps:
                    # As the steps were trained: the residual in full precision, D's features in D's dtype.
                    # G runs now: a G that draws noise from the global RNG must not move the user's RNG.
                    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                        codes = iterate(steps, self.generator, self._gan.tap, x[start : start + size].to(device).float(),
                                        target, codes, self.latent_shape, conditions=cb, conditioning=self.conditioning)
                    if not bool(torch.isfinite(codes).all()):
                        raise ValueError(
                            f"encode: expected finite codes, got NaN/Inf codes from the step networks for images "
                            f"{start}..{start + xb.shape[0] - 1}: their weights overflow (e.g. saved in float16, "
                            "or a damaged file), or G gives NaN/Inf images. Refit or reload the inverter.")
                chunks.append(codes.reshape(-1, *self.latent_shape).to(out_device))
        return torch.cat(chunks)

    def _non_finite_codes(self, features: torch.Tensor, codes: torch.Tensor, start: int) -> str:
        """Why a batch's codes are NaN/Inf: D's (or the pixel network's) features, or the CN itself."""
        n = codes.shape[0]
        bad_codes = int((~torch.isfinite(codes).all(1)).sum())
        bad_features = int((~torch.isfinite(features).all(1)).sum())
        where = f"images {start}..{start + n - 1}"
        if bad_features and self.discriminator is None:
            return (f"encode: expected finite codes, got NaN/Inf codes for {bad_codes} of {n} finite input images "
                    f"({where}) because the pixel network's features are NaN/Inf for {bad_features} of them: its "
                    "weights overflow (e.g. saved in float16, or a damaged file). Refit or reload the inverter.")
        if bad_features:
            single = (
                " This batch holds a single image (one image given, batch_size=1, or a last batch of one "
                "when N % batch_size == 1): a D that normalises over the batch (minibatch standard "
                "deviation, batch statistics) gives NaN for one image; encode two or more images per batch."
                if n == 1 else ""
            )
            return (
                f"encode: expected finite codes, got NaN/Inf codes for {bad_codes} of {n} finite input "
                f"images ({where}) because D's features at {self.feature_layer!r} are NaN/Inf for "
                f"{bad_features} of them.{single} Check D on these images, or choose an earlier "
                "feature layer."
            )
        return (
            f"encode: expected finite codes, got NaN/Inf codes for {bad_codes} of {n} images ({where}) "
            f"from finite {'pixel-network' if self.discriminator is None else 'D'} features: the connection "
            "network's weights overflow (e.g. saved in "
            "float16, or a damaged file). Refit or reload the inverter."
        )

    def decode(
        self,
        latents: torch.Tensor,
        batch_size: int | None = None,
        *,
        conditions: torch.Tensor | np.ndarray | None = None,
    ) -> torch.Tensor:
        """Images ``G(z)`` for codes ``(N, *latent_shape)``, batched, without grad, on the codes' device.

        Raises:
            ValueError: codes of the wrong type or shape, NaN/Inf values, bad conditions.
        """
        if not isinstance(latents, torch.Tensor) or not latents.is_floating_point():
            got = f"dtype {latents.dtype}" if isinstance(latents, torch.Tensor) else type(latents).__name__
            raise ValueError(f"latents: expected a floating-point tensor of shape (N, {', '.join(map(str, self.latent_shape))}), got {got}.")
        holds_data(latents, "latents")
        if latents.dim() != len(self.latent_shape) + 1 or tuple(latents.shape[1:]) != self.latent_shape:
            raise ValueError(
                f"latents: expected shape (N, {', '.join(map(str, self.latent_shape))}), got {tuple(latents.shape)}."
            )
        if latents.numel() and not bool(torch.isfinite(latents).all()):
            raise ValueError("latents: expected finite values, got NaN or Inf.")
        c = self._check_conditions(conditions, latents.shape[0])
        size = _check_batch_size(batch_size)
        out_device = latents.device
        if latents.shape[0] == 0:
            return torch.empty((0, *self.image_shape), device=out_device)
        device = self._run_device()
        chunks = []
        with frozen(self.generator, self.discriminator), torch.no_grad():
            for start in range(0, latents.shape[0], size):
                zb = latents[start : start + size].to(device)
                cb = None if c is None else c[start : start + size].to(device)
                chunks.append(generate(self.generator, zb, cb, self.conditioning).to(out_device))
        return torch.cat(chunks)

    def reconstruct(
        self,
        images: torch.Tensor | np.ndarray,
        batch_size: int | None = None,
        *,
        conditions: torch.Tensor | np.ndarray | None = None,
        range_check: RangeCheck = "warn",
        iterations: int | None = None,
    ) -> torch.Tensor:
        """``G(encode(images))``: ``(N, *image_shape)`` in G's range, on the images' device.

        ``range_check`` and ``iterations`` as in :meth:`encode`.
        """
        codes = self.encode(images, batch_size, conditions=conditions, range_check=range_check, iterations=iterations)
        return self.decode(codes, batch_size, conditions=conditions)

    @keyword_settings(OptimizeSettings, order=("lr", "loss", "feature_weight", "prior_weight", "batch_size", "progress",
                                               "tol", "conditions", "range_check", "iterations", "callback"))
    def refine(
        self,
        images: torch.Tensor | np.ndarray,
        steps: int = 50,
        *,
        batch_size: int | None = None,
        conditions: torch.Tensor | np.ndarray | None = None,
        range_check: RangeCheck = "warn",
        iterations: int | None = None,
        **settings: Any,
    ) -> torch.Tensor:
        """Hybrid inversion: start from :meth:`encode`, then optimise each image's code.

        Adam on ``z`` against the pixel loss, optionally plus a discriminator-feature
        term (``feature_weight``: distance between ``D_f(G(z))`` and ``D_f(x)``, against
        the drift toward average-looking images that pixel-only losses show) and a
        latent prior term (``prior_weight``: ``||z||²``; for an inverter of a
        :class:`~discinvert.MappedGenerator`, the penalty of its space's Gaussian prior
        :attr:`prior`, which is ``||z||²`` in Z). G and D come back unchanged. An inverter
        fit for G alone has no D-feature term: its loss is the pixel and prior terms, and a
        ``feature_weight`` above 0 is a ``ValueError``.
        The options it shares with :func:`~discinvert.optimize.optimize_latents` are the
        fields of :class:`~discinvert.optimize.OptimizeSettings`.

        Args:
            images: ``(N, *image_shape)`` in G's value range; tensor or numpy array.
            steps: Adam steps per image; ``0`` returns exactly :meth:`encode`'s codes.
            batch_size: images optimised together (default :data:`DEFAULT_BATCH_SIZE`);
                bounds memory, does not change results beyond float rounding.
            conditions: ``(N, ...)`` conditions for a conditional GAN.
            range_check: images far outside G's range: ``"warn"``, ``"raise"`` or
                ``"ignore"`` (see :meth:`encode`).
            iterations: the step networks :meth:`encode` runs for the start (default:
                all the inverter was fit with, its best feed-forward codes).
            {settings}

        Images that are part of an autograd graph (e.g. ``G(z)`` without ``.detach()``)
        are detached: nothing is backpropagated into the caller's graph or parameters.

        Returns:
            ``(N, *latent_shape)`` codes (the best seen per image), float32, on the
            images' device.

        Raises:
            TypeError: an unknown keyword argument.
            ValueError: bad images, conditions or options (``progress`` not ``None`` or a bool,
                ``callback`` not callable), all checked before any step.
        """
        positive_int(steps, "steps", 0)
        options = OptimizeSettings(**settings).checked()  # every option checked before any work
        if self.discriminator is None and options.feature_weight > 0:
            raise ValueError(
                f"feature_weight: expected 0 for an inverter fit for the generator alone (it has no discriminator "
                f"whose features the term compares), got {options.feature_weight!r}; refine with the pixel and prior "
                "terms.")
        x = self._check_images(images)
        c = self._check_conditions(conditions, x.shape[0])
        size = _check_batch_size(batch_size)
        codes = self.encode(x, size, conditions=c, range_check=range_check, iterations=iterations)
        if steps == 0 or x.shape[0] == 0:
            return codes
        device = self._run_device()
        refined = optimize_latents(
            self.generator,
            x.to(device=device, dtype=model_dtype(self.generator)),
            codes.to(device),
            steps=steps,
            tap=None if self.discriminator is None else self._gan.tap,
            conditions=None if c is None else c.to(device),
            conditioning=self.conditioning,
            batch_size=size,
            discriminator=self.discriminator,
            prior=self.prior,
            **settings,
        )
        return refined.to(codes.device)

    def forward(self, images: torch.Tensor, conditions: torch.Tensor | None = None) -> torch.Tensor:
        """Differentiable codes ``CN(D_f(images))``, then every step network, for use inside larger models.

        For an inverter fit for G alone, ``D_f`` is its own pixel network (part of this module, in its mode;
        images of another shape than :attr:`image_shape` are a ``ValueError``).
        See :meth:`encode` for inference. G and D run in eval mode; gradients flow through
        them to the codes and the networks' weights, never into G's or D's weights when
        their ``requires_grad`` is off. A G or D that changes a buffer in place during its
        forward pass (a hand-written power iteration) has it put back afterwards, which can
        make a later ``backward()`` fail with an in-place modification error.

        Raises:
            ValueError: ``images`` (or ``conditions``) that are no floating-point tensor (:meth:`encode` takes
                numpy arrays; this differentiable path takes tensors only).
        """
        if not isinstance(images, torch.Tensor) or not images.is_floating_point():
            got = f"a tensor of dtype {images.dtype}" if isinstance(images, torch.Tensor) else type(images).__name__
            raise ValueError(f"images: expected a floating-point torch.Tensor of shape (N, "
                             f"{', '.join(map(str, self.image_shape))}), got {got}; encode() takes numpy arrays.")
        if conditions is not None and not isinstance(conditions, torch.Tensor):
            raise ValueError(f"conditions: expected a torch.Tensor or None, got {type(conditions).__name__}.")
        with frozen(self.discriminator):  # D in eval mode: its BatchNorm statistics stay put
            features = self._gan.tap(images, conditions)
        codes = self.cn(features.to(next(self.cn.parameters()).dtype))
        if len(self.steps):
            with frozen(self.generator, self.discriminator):
                codes = iterate(list(self.steps), self.generator, self._gan.tap, images, features, codes,
                                self.latent_shape, conditions=conditions, conditioning=self.conditioning)
        return codes.reshape(-1, *self.latent_shape)

    # ------------------------------------------------------------------ files
    def save(self, path: str | os.PathLike[str], *, dtype: torch.dtype = torch.float32) -> Path:
        """Write the CN's weights and config to one ``.safetensors`` file, atomically.

        G and D are not saved; their fingerprints are, so :meth:`load` can tell
        whether it is given the same GAN. ``dtype=torch.float16`` halves the file;
        ``dtype=torch.int8`` stores each weight matrix as int8 with a float32 scale per
        output row (biases and BatchNorm in float32), about a quarter of float32, and
        needs discinvert with format version 4 to load. Every file loads back as float32
        (only float32 round-trips bit-exactly).
        Under torchrun only rank 0 writes (other ranks return the path without
        writing); there is no barrier, so other ranks must not read the file before
        rank 0 has finished (call ``torch.distributed.barrier()`` yourself if they do).

        Raises:
            ValueError: ``dtype`` is not float32, float16, bfloat16 or int8.
        """
        written = Path(path)
        if distributed.is_writer():  # under torchrun only rank 0 writes; no collective, so `if rank == 0: save()` works too
            written = write_inverter_file(path, self.state_dict(), self.config, dtype=dtype)
            logger.info("saved inverter to %s", written)
        return written

    def check_fingerprints(self, *, on_mismatch: Literal["raise", "warn"] = "raise", source: str = "inverter") -> bool:
        """Compare G and D with the fingerprints recorded at fit time.

        Two kinds are compared: the tensor fingerprints (SHA-256 of G's weights and
        buffers and of D's up to the feature layer, :mod:`discinvert.fingerprint`), and,
        for files of format version 5 and later, the behavioural fingerprint (G's images
        and D's features on fixed probe inputs within a 1% tolerance,
        :mod:`discinvert.behaviour`), which also sees a changed activation, a weight used
        outside its module or a changed non-persistent buffer. An inverter fit for G alone
        compares G's alone (its pixel network is part of it, checked by its file's digest).

        Returns:
            ``True`` when both match.

        Raises:
            FingerprintMismatchError: a mismatch, when ``on_mismatch="raise"``.
        """
        if on_mismatch not in ("raise", "warn"):
            raise ValueError(f"on_mismatch: expected 'raise' or 'warn', got {on_mismatch!r}.")
        problems = []
        if fingerprint_generator(self.generator) != self.config.generator_fingerprint:
            problems.append("the generator's weights differ from those it was fit with")
        if self.discriminator is not None:
            problems += self._discriminator_problems(self.discriminator)
        if self.config.probe is not None:
            tap = None if self.discriminator is None else self._gan.tap
            problems += behaviour.compare(self.config.probe, self.generator, tap,
                                          latent_shape=self.latent_shape, image_shape=self.image_shape,
                                          image_range=self.config.image_range, conditioning=self.conditioning,
                                          normal_prior=self.config.latent_prior in ("normal", "mapped"),
                                          latent_sampler=self._latent_sampler())
        if not problems:
            return True
        message = (
            f"{source}: this inverter was fit for another GAN: {'; '.join(problems)}. "
            "Its codes would be wrong for this GAN; refit it, or pass on_mismatch='warn' to load anyway."
        )
        if on_mismatch == "raise":
            raise FingerprintMismatchError(message)
        warnings.warn(message, stacklevel=3)
        logger.warning(message)
        return False

    def _discriminator_problems(self, discriminator: nn.Module) -> list[str]:
        """How D differs from the one recorded at fit time (its tensor fingerprint, the modules it runs)."""
        recorded = self.config.discriminator_modules
        layer = self.feature_layer if self.config.fingerprint_scheme >= 2 else None
        try:
            d_print = fingerprint_discriminator(discriminator, recorded, layer)
        except ValueError as error:
            return [str(error)]
        if d_print != self.config.discriminator_fingerprint:
            return ["the discriminator's weights up to the feature layer, or the feature layer's name and "
                    "the modules leading to it, differ from those it was fit with"]
        reached = self._reached_modules()
        if list(reached) != list(recorded):
            return [f"the modules D runs up to feature layer {self.feature_layer!r} ({len(reached)}) are "
                    f"not those recorded at fit time ({len(recorded)}): the config names another layer, "
                    "or D's forward pass changed"]
        return []

    def _sample(self, n: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``n`` fixed latents (seed 0) and their conditions, on the run device: from N(0, I), or from the
        sampler of G's latent space when G is a :class:`~discinvert.MappedGenerator`."""
        device = self._run_device()
        generator = torch.Generator(device=device).manual_seed(0)
        sampler = self._latent_sampler()
        if sampler is not None:
            latents = sampler(n, generator, device)
        else:
            latents = torch.randn((n, *self.latent_shape), generator=generator, device=device)
        if self.conditioning is None:
            return latents, None
        with kept(device):  # a sampler drawing from a global RNG must not move the user's
            return latents, self.conditioning.sampler(n, generator, device)

    def _reached_modules(self) -> list[str]:
        """D's submodules that run up to the feature layer, on two images of G."""
        latents, conditions = self._sample(2)
        device = latents.device
        with kept(device), frozen(self.generator, self.discriminator), torch.no_grad():
            images = generate(self.generator, latents, conditions, self.conditioning)
            return reached_modules(self._gan.tap, images, conditions)

    def _upgrade_legacy_config(self) -> None:
        """A version-1 file, checked the version-1 way: record what version 2 adds.

        D's fingerprint is re-computed with the feature layer's name and module path
        (the old one matched, so this D is the one it was fit for), and G's image
        range, not recorded then, is measured on :data:`_LEGACY_RANGE_SAMPLES` samples
        of N(0, I) (left unknown for a custom prior).
        """
        image_range = self.config.image_range
        if image_range is None and self.config.latent_prior == "normal":
            latents, conditions = self._sample(_LEGACY_RANGE_SAMPLES)
            device = latents.device
            with kept(device), frozen(self.generator, self.discriminator), torch.no_grad():
                images = generate(self.generator, latents, conditions, self.conditioning)
            if bool(torch.isfinite(images).all()):
                image_range = (float(images.min()), float(images.max()))
                logger.info("estimated G's image range %s from %d samples (a format-1 file records none)",
                            image_range, _LEGACY_RANGE_SAMPLES)
        d_print = fingerprint_discriminator(self.discriminator, self.config.discriminator_modules, self.feature_layer)
        self.config = dataclasses.replace(
            self.config, discriminator_fingerprint=d_print, fingerprint_scheme=2, image_range=image_range
        )

    def _record_probe(self) -> None:
        """A file written before format version 5 has no behavioural fingerprint: its tensor
        fingerprints matched, so record the probes from this G and D (a re-save carries them)."""
        probe = behaviour.record(self.generator, None if self.discriminator is None else self._gan.tap, latent_shape=self.latent_shape,
                                 image_shape=self.image_shape, image_range=self.config.image_range,
                                 conditioning=self.conditioning, normal_prior=self.config.latent_prior == "normal")
        # (files before format version 5 have no latent space: the sampler is N(0, I))
        self.config = dataclasses.replace(self.config, probe=probe)
        logger.info("recorded the behavioural fingerprint of this G and D (the file predates format version 5)")

    def _check_against_gan(self, source: str) -> None:
        """Run G and D_f on two latents and compare image and feature sizes with the config."""
        conditioning = self.conditioning
        latents, conditions = self._sample(2)
        device = latents.device
        # kept: a G that draws noise from a global RNG (torch's, NumPy's, Python's) must not move the user's on load.
        with kept(device), frozen(self.generator, self.discriminator), torch.no_grad():
            if self.discriminator is None:  # G alone: the pixel network reads images of the config's shape
                images = probe_generator(self.generator, latents, conditions, conditioning)
                image_shape, feature_dim = tuple(images.shape[1:]), self.config.feature_dim
            else:
                image_shape, feature_dim = probe(self.generator, self._gan.tap, latents, conditions, conditioning)
        if self.discriminator is None and image_shape != self.image_shape:
            raise ValueError(
                f"{source}: fit for a generator of images of shape {self.image_shape} (its pixel network reads "
                f"them), but this generator gives images of shape {image_shape}."
            )
        if image_shape != self.image_shape or feature_dim != self.config.feature_dim:
            raise ValueError(
                f"{source}: fit for images of shape {self.image_shape} and {self.config.feature_dim} "
                f"features at {self.feature_layer!r}, but this GAN gives images of shape "
                f"{image_shape} and {feature_dim} features."
            )

    @classmethod
    def from_state(
        cls,
        state: dict[str, torch.Tensor],
        config: InverterConfig,
        *,
        generator: nn.Module,
        discriminator: nn.Module | None = None,
        conditioning: Conditioning | None = None,
        on_mismatch: Literal["raise", "warn"] = "raise",
        source: str = "inverter",
    ) -> "Inverter":
        """Build a validated inverter from checked weights and config (used by the loaders).

        Nothing is returned unless every check passed: a D exactly when the config reads D's
        features (``None`` for an inverter fit for G alone), the layer exists in D, the GAN
        gives the configured image and feature sizes, the fingerprints match (or
        ``on_mismatch="warn"``), and the weights load strictly.
        """
        for key, tensor in state.items():
            if key.endswith("running_var") and tensor.numel() and bool((tensor < 0).any()):
                raise ValueError(
                    f"{source}: expected non-negative BatchNorm variances, got {int((tensor < 0).sum())} "
                    f"negative value(s) in {key!r}; the file is damaged or was edited."
                )
        try:
            inverter = cls(config, generator=generator, discriminator=discriminator, conditioning=conditioning)
        except ValueError as error:  # e.g. the file names a feature layer this D lacks: say which file
            raise ValueError(f"{source}: {error}") from None
        inverter._check_against_gan(source)
        matched = inverter.check_fingerprints(on_mismatch=on_mismatch, source=source)
        inverter.load_state_dict(state, strict=True)
        try:
            inverter.prior  # noqa: B018 - a damaged prior (not a Cholesky factor) is refused here
        except ValueError as error:
            raise ValueError(f"{source}: the latent space's prior: {error}") from None
        if config.fingerprint_scheme < 2 and matched:
            inverter._upgrade_legacy_config()
        if inverter.config.probe is None and matched:
            inverter._record_probe()
        return inverter.eval()

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        generator: nn.Module,
        discriminator: nn.Module | None = None,
        conditioning: Conditioning | None = None,
        on_mismatch: Literal["raise", "warn"] = "raise",
    ) -> "Inverter":
        """Load an inverter written by :meth:`save` for the given G and D.

        Args:
            path: the ``.safetensors`` file.
            generator, discriminator: the GAN it was fit for; ``discriminator`` omitted (``None``) exactly
                for an inverter fit for G alone (``inverter.feature_source == "pixels"``).
            conditioning: the same :class:`~discinvert.Conditioning` as at fit time, for
                a conditional GAN.
            on_mismatch: ``"raise"`` (default) refuses an inverter whose fingerprints show
                it was fit for another GAN; ``"warn"`` loads it with a warning.

        Raises:
            FileNotFoundError: no file at ``path``.
            ValueError: a truncated, corrupt or foreign file; a newer format version; a
                config and weights that disagree; a GAN that does not fit the config; a D given
                for an inverter fit for G alone, or none for one reading D's features.
            FingerprintMismatchError: fit for another GAN (``on_mismatch="raise"``).
        """
        state, config = read_inverter_file(path)
        return cls.from_state(
            state,
            config,
            generator=generator,
            discriminator=discriminator,
            conditioning=conditioning,
            on_mismatch=on_mismatch,
            source=str(path),
        )

    # ------------------------------------------------------------------ Hub
    # Written once in discinvert.hub (signatures, docstrings, torchrun guards); bound here as methods.
    save_pretrained = hub.save_pretrained
    from_pretrained = classmethod(hub.from_pretrained)  # type: ignore[var-annotated]  # mypy cannot solve cls: type[T]
    push_to_hub = hub.push_to_hub

    def extra_repr(self) -> str:
        source = "feature_source='pixels', " if self.discriminator is None else ""
        return (
            f"{source}feature_layer={self.feature_layer!r}, feature_dim={self.config.feature_dim}, "
            f"latent_shape={self.latent_shape}, image_shape={self.image_shape}, "
            f"latent_dim={math.prod(self.latent_shape)}, iterations={self.iterations}"
        )
