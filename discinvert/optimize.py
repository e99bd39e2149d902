"""Per-image optimisation of latent codes against a target image.

Used by :meth:`discinvert.Inverter.refine` (hybrid inversion: the CN's code as the
start) and by the optimisation-only baseline (a random start). Each image's code is
optimised independently with Adam: the loss is a sum of per-image terms, so results
do not depend on how images are batched.

Loss per image (means over that image's values)::

    ||G(z) - x||²  +  feature_weight · ||D_f(G(z)) - D_f(x)||²  +  prior_weight · ||z||²

The feature term is the remedy the paper suggests for pixel-loss drift toward
average-looking images; the prior term keeps codes near the Gaussian shell. For codes in
W or W+ of a :class:`~discinvert.mapped.MappedGenerator` the prior term is the penalty of
that space's Gaussian prior (:class:`~discinvert.mapped.GaussianPrior`: the mean squared
whitened distance from W's mean), which is ``||z||²`` for the standard normal. The options
both entry points share are the fields of :class:`OptimizeSettings` (each default and
its documentation once).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn
from tqdm.auto import tqdm

from discinvert.conditioning import Conditioning
from discinvert.features import FeatureTap
from discinvert.gan import DEFAULT_BATCH_SIZE, generate
from discinvert.guard import frozen
from discinvert.mapped import GaussianPrior, MappedGenerator
from discinvert.keyword_settings import keyword_settings, setting
from discinvert.argument_checks import nonnegative_float, optional_bool, optional_callable, positive_float, positive_int

__all__ = ["DEFAULT_REFINE_LR", "OptimizeSettings", "optimize_latents"]

logger = logging.getLogger(__name__)

DEFAULT_REFINE_LR = 0.05
"""Default Adam step size on z (codes of unit-variance priors); the step size of the Table 1 protocol's
refinement (``docs/results.md``)."""

_TOL_WINDOW = 10
"""Steps over which ``tol`` measures an image's relative improvement."""


@dataclass(frozen=True)
class OptimizeSettings:
    """The options of per-image code optimisation that :meth:`discinvert.Inverter.refine` and
    :func:`optimize_latents` share, as their keyword arguments (:mod:`discinvert.keyword_settings`)."""

    lr: float = setting(DEFAULT_REFINE_LR, "Adam step size on ``z``.")
    loss: Literal["mse", "l1"] = setting("mse", 'pixel loss, ``"mse"`` or ``"l1"``.')
    feature_weight: float = setting(
        0.0, "weight of the discriminator-feature term, the distance between ``D_f(G(z))`` and ``D_f(x)`` "
        "(0: off).")
    prior_weight: float = setting(
        0.0, "weight of the latent prior term ``||z||²`` (0: off); with a MappedGenerator, the penalty of its "
        "space's Gaussian prior.")
    tol: float | None = setting(
        None, "per-image early stop: an image whose loss improved by less than this relative amount over the "
        f"last {_TOL_WINDOW} steps keeps its best code from then on, and a batch stops once all its images "
        "have; ``None`` runs all steps. Results do not depend on the batching either way.")
    progress: bool | None = setting(None, "tqdm bar (``None``: on a terminal only).")
    callback: Callable[[int, int, torch.Tensor], None] | None = setting(
        None, "``callback(start, step, codes)``, called once per scored step of each batch: ``start`` is the "
        "batch's first image, ``step`` runs from 0 (the start codes) to the batch's last step, and ``codes`` "
        "``(B, *latent_shape)`` are a detached copy of the best codes so far of images ``start .. start + B - 1`` "
        "(what would be returned if the batch stopped there). For progress displays (``discinvert serve`` "
        "shows them live); it does not change the result. Not called when ``steps`` is 0.")

    def checked(self) -> OptimizeSettings:
        """These settings with each value checked (numbers as floats).

        Raises:
            ValueError: a bad ``lr``, ``loss``, weight or ``tol``, a ``progress`` that is not
                ``None`` or a bool, a ``callback`` that is not callable.
        """
        lr = positive_float(self.lr, "lr")
        if self.loss not in ("mse", "l1"):
            raise ValueError(f"loss: expected 'mse' or 'l1', got {self.loss!r}.")
        feature_weight = nonnegative_float(self.feature_weight, "feature_weight")
        prior_weight = nonnegative_float(self.prior_weight, "prior_weight")
        tol = None if self.tol is None else nonnegative_float(self.tol, "tol")
        progress = optional_bool(self.progress, "progress")
        callback = optional_callable(self.callback, "callback", "callback(start, step, codes)")
        return dataclasses.replace(self, lr=lr, feature_weight=feature_weight, prior_weight=prior_weight, tol=tol,
                                   progress=progress, callback=callback)


@dataclass(frozen=True)
class _Objective:
    """What every batch of one :func:`optimize_latents` call is optimised against."""

    generator: nn.Module
    tap: FeatureTap | None
    conditioning: Conditioning | None
    settings: OptimizeSettings
    steps: int
    prior: GaussianPrior | None = None

    def per_image(self, z: torch.Tensor, target: torch.Tensor, cond: torch.Tensor | None,
                  target_features: torch.Tensor | None) -> torch.Tensor:
        """``(B,)`` loss of each code ``z`` against its ``target`` image."""
        pixel = torch.nn.functional.mse_loss if self.settings.loss == "mse" else torch.nn.functional.l1_loss
        fake = generate(self.generator, z, cond, self.conditioning)
        per_image = pixel(fake.float(), target.float(), reduction="none").flatten(1).mean(1)
        if self.settings.feature_weight > 0:
            features = self.tap(fake, cond).float()  # type: ignore[misc]
            per_image = per_image + self.settings.feature_weight * (features - target_features).pow(2).mean(1)
        if self.settings.prior_weight > 0:
            penalty = z.pow(2).flatten(1).mean(1) if self.prior is None else self.prior.penalty(z)
            per_image = per_image + self.settings.prior_weight * penalty
        return per_image


@keyword_settings(OptimizeSettings, order=("steps", "lr", "loss", "tap", "feature_weight", "prior_weight", "conditions",
                                           "conditioning", "batch_size", "tol", "progress", "discriminator", "prior",
                                           "callback"))
def optimize_latents(
    generator: nn.Module,
    images: torch.Tensor,
    init: torch.Tensor,
    *,
    steps: int,
    tap: FeatureTap | None = None,
    conditions: torch.Tensor | None = None,
    conditioning: Conditioning | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    discriminator: nn.Module | None = None,
    prior: GaussianPrior | None = None,
    **settings: Any,
) -> torch.Tensor:
    """Optimise codes so that ``G(z)`` matches ``images``; return the best code seen per image.

    Args:
        generator: G (frozen here; its state is left as found).
        images: ``(N, *image_shape)`` targets in G's value range, on G's device.
        init: ``(N, *latent_shape)`` starting codes, on G's device.
        steps: Adam steps per batch; ``0`` returns ``init`` unchanged.
        tap: D's feature extractor, needed when ``feature_weight > 0``.
        conditions: ``(N, ...)`` conditions for a conditional GAN.
        conditioning: how to call a conditional G.
        batch_size: images optimised together (memory bound: activations of one batch).
        discriminator: D, frozen alongside G when the feature term is used.
        prior: the Gaussian prior whose penalty is the prior term; ``None``: ``||z||²``, or for a
            :class:`~discinvert.mapped.MappedGenerator` its space's prior (estimated here, when
            ``prior_weight > 0``, by ``generator.prior()``).
        {settings}

    Returns:
        ``(N, *latent_shape)`` codes, detached, on ``init``'s device and dtype.

    Raises:
        TypeError: an unknown keyword argument.
        ValueError: bad ``steps``, ``lr``, weights, ``loss``, ``tol``, ``progress`` (not ``None``
            or a bool) or ``callback`` (not callable); a feature weight without a feature
            extractor. All are checked before any step.
    """
    steps = positive_int(steps, "steps", 0)
    options = OptimizeSettings(**settings).checked()
    if options.feature_weight > 0 and tap is None:
        raise ValueError("feature_weight: a discriminator feature term needs the feature extractor; got none.")
    if steps == 0 or init.shape[0] == 0:
        return init.detach().clone()

    if prior is not None and not isinstance(prior, GaussianPrior):
        raise ValueError(f"prior: expected a GaussianPrior or None, got {type(prior).__name__}.")
    if prior is None and options.prior_weight > 0 and isinstance(generator, MappedGenerator):
        prior = generator.prior()
    objective = _Objective(generator, tap, conditioning, options, steps, prior)
    out = torch.empty_like(init)
    n = init.shape[0]
    bar = tqdm(total=steps * math.ceil(n / batch_size), desc="refine", unit="step",
               disable=(None if options.progress is None else not options.progress), dynamic_ncols=True)
    try:
        with frozen(generator, discriminator):
            for start in range(0, n, batch_size):
                stop = min(start + batch_size, n)
                cond = None if conditions is None else conditions[start:stop]
                best = _optimize_batch(objective, images[start:stop], init[start:stop], cond, start, bar)
                out[start:stop] = best.to(out.dtype)
    finally:
        bar.close()
    return out.detach()


def _optimize_batch(objective: _Objective, target: torch.Tensor, init: torch.Tensor, cond: torch.Tensor | None,
                    start: int, bar: tqdm) -> torch.Tensor:
    """The best code seen for each image of one batch (images ``start ..`` of the call), float32."""
    settings, steps = objective.settings, objective.steps
    z = init.detach().clone().float().requires_grad_(True)
    target_features = None
    if settings.feature_weight > 0:
        with torch.no_grad():
            target_features = objective.tap(target, cond).float()  # type: ignore[misc]
    optimizer = torch.optim.Adam([z], lr=settings.lr)
    best = z.detach().clone()
    best_loss = torch.full((len(z),), math.inf, device=z.device)
    # Per-image early stop: an image whose own loss stopped improving keeps its best
    # code from then on, so its result does not depend on the other images in the batch.
    done = torch.zeros(len(z), dtype=torch.bool, device=z.device)
    window: list[torch.Tensor] = []
    for step in range(steps + 1):
        per_image = objective.per_image(z, target, cond, target_features)
        with torch.no_grad():
            improved = (per_image < best_loss) & ~done
            best_loss = torch.where(improved, per_image.detach(), best_loss)
            best[improved] = z.detach()[improved]
            if settings.callback is not None:
                settings.callback(start, step, best.clone())
            if settings.tol is not None:
                window.append(per_image.detach())
                if len(window) > _TOL_WINDOW + 1:
                    window.pop(0)
                if len(window) == _TOL_WINDOW + 1:
                    done |= (window[0] - window[-1]) < settings.tol * window[0].abs()
        if step == steps or (settings.tol is not None and bool(done.all())):
            bar.update(steps - step)
            break  # the last pass only scored the final codes
        optimizer.zero_grad(set_to_none=True)
        per_image.sum().backward()
        optimizer.step()
        bar.update(1)
    return best
