"""Per-image optimisation of latent codes against a target image.

Used by :meth:`discinvert.Inverter.refine` (hybrid inversion: the CN's code as the
start) and by the optimisation-only baseline (a random start). Each image's code is
optimised independently with Adam: the loss is a sum of per-image terms, so results
do not depend on how images are batched.

Loss per image (means over that image's values)::

    ||G(z) - x||²  +  feature_weight · ||D_f(G(z)) - D_f(x)||²  +  prior_weight · ||z||²

The feature term is the remedy the paper suggests for pixel-loss drift toward
average-looking images; the prior term keeps codes near the Gaussian shell.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Literal

import torch
from torch import nn
from tqdm.auto import tqdm

from discinvert.conditioning import Conditioning
from discinvert.features import FeatureTap
from discinvert.gan import DEFAULT_BATCH_SIZE, generate
from discinvert.guard import frozen
from discinvert.argument_checks import nonnegative_float, optional_bool, optional_callable, positive_float, positive_int

__all__ = ["DEFAULT_REFINE_LR", "optimize_latents"]

logger = logging.getLogger(__name__)

DEFAULT_REFINE_LR = 0.05
"""Default Adam step size on z (codes of unit-variance priors); see ``docs/benchmarks.md``."""


def optimize_latents(
    generator: nn.Module,
    images: torch.Tensor,
    init: torch.Tensor,
    *,
    steps: int,
    lr: float = DEFAULT_REFINE_LR,
    loss: Literal["mse", "l1"] = "mse",
    tap: FeatureTap | None = None,
    feature_weight: float = 0.0,
    prior_weight: float = 0.0,
    conditions: torch.Tensor | None = None,
    conditioning: Conditioning | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    tol: float | None = None,
    progress: bool | None = None,
    discriminator: nn.Module | None = None,
    callback: Callable[[int, int, torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """Optimise codes so that ``G(z)`` matches ``images``; return the best code seen per image.

    Args:
        generator: G (frozen here; its state is left as found).
        images: ``(N, *image_shape)`` targets in G's value range, on G's device.
        init: ``(N, *latent_shape)`` starting codes, on G's device.
        steps: Adam steps per batch; ``0`` returns ``init`` unchanged.
        lr: Adam step size.
        loss: ``"mse"`` or ``"l1"`` pixel loss.
        tap: D's feature extractor, needed when ``feature_weight > 0``.
        feature_weight: weight of the discriminator-feature term.
        prior_weight: weight of the ``||z||²`` term.
        conditions: ``(N, ...)`` conditions for a conditional GAN.
        conditioning: how to call a conditional G.
        batch_size: images optimised together (memory bound: activations of one batch).
        tol: per-image early stop: an image whose loss improved by less than this
            relative amount over the last 10 steps keeps its best code from then on, and
            a batch stops once all its images have; ``None`` runs all ``steps``. Results
            do not depend on the batching either way.
        progress: tqdm bar (``None``: on a terminal only).
        discriminator: D, frozen alongside G when the feature term is used.
        callback: ``callback(start, step, codes)``, called once per scored step of each batch:
            ``start`` is the batch's first image, ``step`` runs from 0 (the start codes) to the
            batch's last step, and ``codes`` ``(B, *latent_shape)`` are a detached copy of the
            best codes so far of images ``start .. start + B - 1`` (what would be returned if
            the batch stopped there). For progress displays; it does not change the result.

    Returns:
        ``(N, *latent_shape)`` codes, detached, on ``init``'s device and dtype.

    Raises:
        ValueError: bad ``steps``, ``lr``, weights, ``loss``, ``tol``, ``progress`` (not ``None``
            or a bool) or ``callback`` (not callable); a feature weight without a feature
            extractor. All are checked before any step.
    """
    steps = positive_int(steps, "steps", 0)
    lr = positive_float(lr, "lr")
    if loss not in ("mse", "l1"):
        raise ValueError(f"loss: expected 'mse' or 'l1', got {loss!r}.")
    feature_weight = nonnegative_float(feature_weight, "feature_weight")
    prior_weight = nonnegative_float(prior_weight, "prior_weight")
    if tol is not None:
        tol = nonnegative_float(tol, "tol")
    progress = optional_bool(progress, "progress")
    callback = optional_callable(callback, "callback", "callback(start, step, codes)")
    if feature_weight > 0 and tap is None:
        raise ValueError("feature_weight: a discriminator feature term needs the feature extractor; got none.")
    if steps == 0 or init.shape[0] == 0:
        return init.detach().clone()

    pixel = torch.nn.functional.mse_loss if loss == "mse" else torch.nn.functional.l1_loss
    out = torch.empty_like(init)
    n = init.shape[0]
    bar = tqdm(total=steps * math.ceil(n / batch_size), desc="refine", unit="step",
               disable=(None if progress is None else not progress), dynamic_ncols=True)
    try:
        with frozen(generator, discriminator):
            for start in range(0, n, batch_size):
                stop = min(start + batch_size, n)
                target = images[start:stop]
                cond = None if conditions is None else conditions[start:stop]
                z = init[start:stop].detach().clone().float().requires_grad_(True)
                target_features = None
                if feature_weight > 0:
                    with torch.no_grad():
                        target_features = tap(target, cond).float()  # type: ignore[misc]
                optimizer = torch.optim.Adam([z], lr=lr)
                best = z.detach().clone()
                best_loss = torch.full((stop - start,), math.inf, device=z.device)
                # Per-image early stop: an image whose own loss stopped improving keeps its best
                # code from then on, so its result does not depend on the other images in the batch.
                done = torch.zeros(stop - start, dtype=torch.bool, device=z.device)
                window: list[torch.Tensor] = []
                for step in range(steps + 1):
                    fake = generate(generator, z, cond, conditioning)
                    per_image = pixel(fake.float(), target.float(), reduction="none").flatten(1).mean(1)
                    if feature_weight > 0:
                        features = tap(fake, cond).float()  # type: ignore[misc]
                        per_image = per_image + feature_weight * (features - target_features).pow(2).mean(1)
                    if prior_weight > 0:
                        per_image = per_image + prior_weight * z.pow(2).flatten(1).mean(1)
                    with torch.no_grad():
                        improved = (per_image < best_loss) & ~done
                        best_loss = torch.where(improved, per_image.detach(), best_loss)
                        best[improved] = z.detach()[improved]
                        if callback is not None:
                            callback(start, step, best.clone())
                        if tol is not None:
                            window.append(per_image.detach())
                            if len(window) > 11:
                                window.pop(0)
                            if len(window) == 11:
                                done |= (window[0] - window[-1]) < tol * window[0].abs()
                    if step == steps or (tol is not None and bool(done.all())):
                        bar.update(steps - step)
                        break  # the last pass only scored the final codes
                    optimizer.zero_grad(set_to_none=True)
                    per_image.sum().backward()
                    optimizer.step()
                    bar.update(1)
                out[start:stop] = best.to(out.dtype)
    finally:
        bar.close()
    return out.detach()
