"""The real-image stage: the connection network fine-tuned on the user's images through the frozen G.

After the self-generated fit, ``fit_inverter(..., images=X)`` trains the CN further on
real images so that ``G(CN(D_f(x)))`` reproduces ``x``. Each update minimises

* a **pixel term**, the MSE between ``G(ẑ)`` and ``x``;
* a **discriminator-feature term** (weight ``feature_weight``): the MSE between
  ``D_f(G(ẑ))`` and ``D_f(x)`` at the feature layer, divided by the mean square of
  ``D_f(x)``: the GAN's own discriminator as the perceptual network, no download. Without D (the
  generator-only route) it is dropped, or with ``perceptual`` it compares the features of a frozen network
  of that route's instead (``gan.perceptual``, :func:`~discinvert.fitting.pixel_route.perceptual_network`),
  not the pixels the CN reads;
* a **prior term** (weight ``prior_weight``): the self-generated z-regression
  ``MSE(CN(D_f(G(z))), z)`` on fresh pairs, which keeps codes where G's latents live.

The learning rate starts at ``real_lr`` and decays along a cosine to 1% of it at the last
update; 1e-3 decayed measured best on held-out train images, better than the earlier constant 1e-4
(``docs/results.md``, "How the defaults were chosen").

G and D stay frozen (the gradient flows through them to the codes only). The weights of
lowest pixel MSE on the held-out images (see :mod:`discinvert.fitting.image_sets`), checked every
``eval_every`` updates and before the first, are kept, so the stage never returns a CN
that reconstructs the held-out images worse than the self-generated fit did. Under
torchrun each rank draws its own batches, the gradients are averaged across ranks, and
rank 0's weights (BatchNorm statistics included) are kept everywhere.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from discinvert.fitting.acceleration import autocast_context
from discinvert.fitting.image_sets import ImageBatches
from discinvert.fitting.loop import VALIDATION_CHUNK, Labels, Plan, Runtime, Validated, train_loop
from discinvert.fitting.updates import LossWeights, Updater, feature_term, lr_factor, make_adam
from discinvert.fitting.run import FrozenGAN
from discinvert.gan import generate, model_dtype

__all__ = ["RealStageResult", "train_on_images"]

logger = logging.getLogger(__name__)


@dataclass
class RealStageResult:
    """What :func:`train_on_images` did; :meth:`record` is stored as ``inverter.config.fit['real_images']``.

    Attributes:
        history: ``[step, train loss, held-out pixel MSE, seconds]`` at each validation
            (step 0 is the CN the self-generated fit gave; its train loss is None). Under
            torchrun the train loss is this rank's; the held-out error is rank 0's.
    """

    images: int
    held_out: int
    source: str
    best_step: int
    best_pixel_mse: float
    start_pixel_mse: float
    seconds: float
    history: list[list[float | None]] = field(default_factory=list)

    def record(self, settings: dict[str, Any]) -> dict[str, Any]:
        """The JSON-able record (with the stage's settings)."""
        return {
            "images": self.images, "held_out": self.held_out, "source": self.source, **settings,
            "best_step": self.best_step, "best_held_out_pixel_mse": self.best_pixel_mse,
            "start_held_out_pixel_mse": self.start_pixel_mse, "seconds": round(self.seconds, 3),
            "history": self.history,
        }


def train_on_images(
    cn: nn.Module,
    gan: FrozenGAN,
    images: ImageBatches,
    prior_pairs: Callable[[], tuple[torch.Tensor, torch.Tensor]],
    plan: Plan,
    runtime: Runtime,
    *,
    weights: LossWeights,
    decay: bool = True,
) -> RealStageResult:
    """Fine-tune ``cn`` in place on real images; leave it holding its best held-out weights, in eval mode.

    Args:
        cn: the connection network, features ``(B, F)`` → flat codes ``(B, prod(gan.latent_shape))``.
        gan: the user's G and the feature tap on D (frozen by the caller), and the shape of one code.
        images: the training images (drawn ``plan.batch_size`` per update) and the held-out images, in G's range.
        prior_pairs: ``() → (features (B, F), flat latents (B, D))``: a batch of fresh
            self-generated pairs, without grad.
        plan: the schedule: Adam (:data:`~discinvert.fitting.fit_config.ADAM_BETAS`) from ``plan.lr``,
            cosine decay to 1% of it at the last update (:func:`~discinvert.fitting.updates.lr_factor`
            without warm-up); held-out validations every ``plan.eval_every`` updates.
        runtime: where G, D and the CN run; under torchrun the gradients are averaged across ranks and
            rank 0's weights kept; ``autocast_dtype`` runs each update's forward passes (D on the batch, the
            CN, G and D on the reconstructions) under ``torch.autocast`` (the losses, the CN's weights and
            Adam stay float32, and the held-out validation runs in full precision).
        weights: the weights of the D-feature and prior terms (0 drops a term). With ``gan.perceptual`` the
            feature term compares that network's features of ``G(ẑ)`` and ``x`` instead of the tap's.
        decay: ``False`` holds ``plan.lr`` constant (the stage before the decay).

    Raises:
        ValueError: the held-out error was never finite (divergence).
    """
    generator, tap, latent_shape, device = gan.generator, gan.tap, gan.latent_shape, runtime.device
    g_dtype, d_dtype, cn_dtype = model_dtype(generator), model_dtype(tap.discriminator), next(cn.parameters()).dtype
    held = images.split.held_out
    world_size = runtime.dist_ctx.world_size if runtime.distributed else None  # type: ignore[union-attr]
    updater = Updater(cn, make_adam(cn, plan.lr), average_over=world_size,
                      schedule=lambda update: lr_factor(update, plan.steps, 0) if decay else 1.0)

    def features(x: torch.Tensor) -> torch.Tensor:
        return tap(x.to(device=device, dtype=d_dtype)).to(cn_dtype)

    perceptual = gan.perceptual
    compared = features if perceptual is None else lambda x: perceptual(x.to(device=device, dtype=cn_dtype))

    def validate() -> float:
        total = 0.0
        for start in range(0, len(held), VALIDATION_CHUNK):
            x = held[start : start + VALIDATION_CHUNK].to(device)
            codes = cn(features(x)).reshape(-1, *latent_shape)
            total += float(F.mse_loss(generate(generator, codes).float(), x, reduction="sum"))
        return total / held.numel()

    def update(step: int) -> torch.Tensor:
        x = images.draw(plan.batch_size, device, runtime.distributed).to(device)
        pair_features, latents = prior_pairs() if weights.prior > 0 else (None, None)
        with autocast_context(device, runtime.autocast_dtype):
            with torch.no_grad():
                target = features(x)
                compared_target = target if perceptual is None or weights.feature == 0 else compared(x)
            if pair_features is not None:
                # One forward pass over real and generated features: the CN's BatchNorm normalises
                # them together, as its running statistics (used by encode) will describe both.
                both = cn(torch.cat([target, pair_features.to(cn_dtype)]))
                codes, pair_codes = both[: len(target)], both[len(target) :]
            else:
                codes = cn(target)
            fake = generate(generator, codes.reshape(-1, *latent_shape).to(g_dtype))
            fake_features = compared(fake) if weights.feature > 0 else None
        loss = F.mse_loss(fake.float(), x)
        if fake_features is not None:
            loss = loss + weights.feature * feature_term(fake_features, compared_target)
        if pair_features is not None:
            loss = loss + weights.prior * F.mse_loss(pair_codes.float(), latents)
        return loss

    def after_validation(point: Validated) -> bool:
        logger.debug("real-image stage step %d: held-out pixel MSE %.5f", point.step, point.error)
        return False

    labels = Labels("fit CN on images", lambda _: "real-image stage diverged: the held-out pixel error was never "
                    "finite; lower real_lr or check that the images are finite and in G's range.", error="held_out")
    done = train_loop(cn, update, validate, updater, plan, runtime, labels, validate_first=True,
                      after_validation=after_validation)
    return RealStageResult(len(images.split.train_indices), len(held), images.split.images.source, done.best[1],
                           done.best[0], done.start_error, done.seconds, done.history)  # type: ignore[arg-type]
