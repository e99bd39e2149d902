"""The generator-only route of a fit (``fit_inverter(G, None, latent_shape=...)``): no discriminator at hand.

The fit's machinery is the D route's, with the pixels in D's place: :class:`PixelInput` stands where D
stands (a module without weights whose tapped child passes the images on), so the pairs, their pool
(``reuse``), the held-out set, the levers and the checkpoints carry ``(G(z) flattened, z)``; and the
network the stages train is :class:`PixelRegressor`, the pixel feature network
(:mod:`discinvert.pixel_encoder`) and the CN as one model, trained jointly from scratch.

What differs from the D route, and why:

* ``feature_weight`` is 0: the real-image stage's D-feature term has no D to read. An explicitly given
  ``feature_weight > 0`` is a ``ValueError``; the default is replaced by 0, which the record shows. Unless
  ``perceptual`` names a network to read instead (:func:`perceptual_network`): then ``feature_weight`` weights
  the same term, :func:`~discinvert.fitting.updates.feature_term`, on that frozen network's features, in the
  real-image stage and in the step networks' training on the images, wherever the D route compares D's. The
  network is a fit-time tool: it never trains and is never saved. ``perceptual`` is refused with D.
* ``cn_standardize`` is off: it standardises fixed features with statistics measured once, but the pixel
  network's features move while it trains. An explicitly given ``True`` is a ``ValueError``; the record shows
  ``False``.
* The step networks (``iterations > 0``) read the trained pixel network's features, frozen, where the D
  route's read D's.
* No conditional GANs yet (the pixel network does not read conditions).
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

import torch
from torch import nn

from discinvert.fitting.fit_config import FitConfig
from discinvert.network import ConnectionNetwork
from discinvert.pixel_encoder import PixelEncoder

__all__ = ["PIXEL_LAYER", "PixelInput", "PixelRegressor", "check_route", "perceptual_network", "route_settings"]

PIXEL_LAYER = "pixels"
"""The name of :class:`PixelInput`'s tapped child: the "feature layer" of the pairs in this route."""


class PixelInput(nn.Module):
    """What stands in D's place in this route: ``pixels`` (an identity) passes the images on, so a tap on it
    gives the images flattened, ``(N, C*H*W)``. It holds no weights; the user's G is never part of it."""

    def __init__(self) -> None:
        super().__init__()
        self.pixels = nn.Identity()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.pixels(images)


class PixelRegressor(nn.Module):
    """The pixel network and the CN as one regressor: flattened images ``(N, C*H*W)`` → flat codes ``(N, D)``.

    Its state-dict keys are ``pixels.*`` and ``cn.*``, as the :class:`~discinvert.Inverter`'s.
    """

    def __init__(self, pixels: PixelEncoder, cn: ConnectionNetwork) -> None:
        super().__init__()
        self.pixels = pixels
        self.cn = cn

    @property
    def config(self) -> Any:
        """The CN's config (what the stages read as the regressor's)."""
        return self.cn.config

    def forward(self, flat_images: torch.Tensor) -> torch.Tensor:
        return self.cn(self.pixels(flat_images))


def check_route(discriminator: nn.Module | None, feature_layer: Any, settings: FitConfig, given: set[str],
                config: FitConfig | None, conditional: bool) -> None:
    """The arguments that pick a route agree: D with a feature layer, or neither (G alone, unconditional, without
    the D-feature term or the standardised features asked for).

    Raises:
        ValueError: D without a feature layer, a feature layer without D; for G alone a conditioning, an
            explicit ``feature_weight > 0`` (without ``perceptual``), ``cn_standardize=True`` or
            ``allow_batch_dependent_features=True``.

    Warns:
        UserWarning: ``pixel_width`` asked for with D (it acts only without D).
    """
    if discriminator is not None and feature_layer is None:
        raise ValueError(
            f"feature_layer: expected the layer of D the connection network reads (a name from "
            f"discinvert.list_layers(D)) with a discriminator, got None. To fit for the generator alone, pass "
            f"discriminator=None (got a {type(discriminator).__name__}).")
    if discriminator is None and feature_layer is not None:
        raise ValueError(
            f"discriminator: feature_layer {feature_layer!r:.100} names a layer of a discriminator, but none came "
            "(None). Pass D, or leave feature_layer out to fit for the generator alone.")
    defaults = FitConfig()

    def asked(name: str) -> bool:  # given as a keyword, or in a config with another value than the default
        return name in given or (config is not None and getattr(config, name) != getattr(defaults, name))

    if discriminator is not None:
        if settings.perceptual is not None:
            raise ValueError(
                f"perceptual: expected None with a discriminator (D's features are the perceptual term there, "
                f"weighted by feature_weight), got {settings.perceptual!r}. Leave it out, or pass discriminator=None.")
        if asked("pixel_width"):
            warnings.warn("pixel_width: this setting acts only without a discriminator (fit_inverter(G, None, ...)); "
                          "with D it is ignored.", UserWarning, stacklevel=3)
        return
    if conditional:
        raise ValueError("conditioning: expected None without a discriminator, got a Conditioning; the "
                         "generator-only route does not support conditional GANs yet. Pass D and a feature layer.")
    if asked("feature_weight") and settings.feature_weight > 0 and settings.perceptual is None:
        raise ValueError(
            f"feature_weight: expected 0 without a discriminator (the D-feature term compares D's features, and there "
            f"is no D), got {settings.feature_weight!r}. Leave it out: this route's real-image stage uses the pixel "
            "and prior terms; or set perceptual ('encoder' or 'random') for a perceptual term of that weight.")
    if asked("allow_batch_dependent_features") and settings.allow_batch_dependent_features:
        raise ValueError(
            "allow_batch_dependent_features: expected False without a discriminator, got True: it lets D's feature "
            "layer depend on the rest of the batch, and without D the pixel network reads each image alone. Leave it "
            "out.")
    if asked("cn_standardize") and settings.cn_standardize:
        raise ValueError(
            "cn_standardize: expected False without a discriminator, got True: the pixel network's features move "
            "while it trains, so they cannot be standardised with statistics measured once. Leave it out.")


def route_settings(settings: FitConfig) -> FitConfig:
    """The settings of a generator-only fit: no D-feature term (``feature_weight`` 0, unless ``perceptual`` names
    the network its term reads), no standardised features (recorded so)."""
    weight = 0.0 if settings.perceptual is None else settings.feature_weight
    return FitConfig.build(settings, feature_weight=weight, cn_standardize=False)


def perceptual_network(kind: str, regressor: PixelRegressor, seed: int) -> PixelEncoder:
    """The frozen network of the perceptual term (``FitConfig.perceptual``), on ``regressor``'s device.

    Args:
        kind: ``'encoder'``: a copy of ``regressor``'s pixel network as it stands now (after the self-generated
            stage); ``'random'``: a pixel network of the same layout with PyTorch's default initialisation, drawn
            from a generator seeded with ``seed`` (the global random state is left as it was).
        regressor: the pixel network and CN being fit; never changed.
        seed: the random network's seed.

    Returns:
        A :class:`~discinvert.pixel_encoder.PixelEncoder` in eval mode whose parameters need no gradient; images
        ``(N, *image_shape)`` → features ``(N, out_features)``. Gradients still flow through it to its input.

    Raises:
        ValueError: ``kind`` is neither.
    """
    pixels = regressor.pixels
    if kind == "encoder":
        network = copy.deepcopy(pixels)
    elif kind == "random":
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed)
            network = PixelEncoder(pixels.config)
        parameter = next(pixels.parameters())
        network = network.to(device=parameter.device, dtype=parameter.dtype)
    else:
        raise ValueError(f"perceptual: expected 'encoder' or 'random', got {kind!r}.")
    return network.requires_grad_(False).eval()
