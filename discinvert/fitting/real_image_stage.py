"""The real-image stage: the connection network fine-tuned on the user's images through the frozen G.

After the self-generated fit, ``fit_inverter(..., images=X)`` trains the CN further on
real images so that ``G(CN(D_f(x)))`` reproduces ``x``. Each update minimises

* a **pixel term**, the MSE between ``G(ẑ)`` and ``x``;
* a **discriminator-feature term** (weight ``feature_weight``): the MSE between
  ``D_f(G(ẑ))`` and ``D_f(x)`` at the feature layer, divided by the mean square of
  ``D_f(x)``: the GAN's own discriminator as the perceptual network, no download;
* a **prior term** (weight ``prior_weight``): the self-generated z-regression
  ``MSE(CN(D_f(G(z))), z)`` on fresh pairs, which keeps codes where G's latents live.

The learning rate starts at ``real_lr`` and decays along a cosine to 1% of it at the last
update: 1e-3 decayed reached 20.28 dB on held-out train images in the default 1,500 updates,
where the earlier constant 1e-4 reached 19.73 (``docs/real_schedule.md``).

G and D stay frozen (the gradient flows through them to the codes only). The weights of
lowest pixel MSE on the held-out images (see :mod:`discinvert.fitting.image_sets`), checked every
``eval_every`` updates and before the first, are kept, so the stage never returns a CN
that reconstructs the held-out images worse than the self-generated fit did. Under
torchrun each rank draws its own batches, the gradients are averaged across ranks, and
rank 0's weights (BatchNorm statistics included) are kept everywhere.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from discinvert.fitting.acceleration import autocast_context
from discinvert.distributed import DistContext, average_gradients, broadcast_module, broadcast_scalar, together
from discinvert.features import FeatureTap
from discinvert.gan import generate, model_dtype
from discinvert.fitting.image_sets import ImageSplit
from discinvert.fitting.self_generated_stage import make_adam, lr_factor

__all__ = ["RealStageResult", "feature_term", "train_on_images"]

logger = logging.getLogger(__name__)

_CHUNK = 256  # held-out images per validation pass


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


def feature_term(fake_features: torch.Tensor, target_features: torch.Tensor) -> torch.Tensor:
    """The discriminator-feature term: MSE of ``D_f(G(ẑ))`` against ``D_f(x)``, relative to ``D_f(x)``'s energy."""
    target = target_features.float()
    return F.mse_loss(fake_features.float(), target) / (target.pow(2).mean() + 1e-8)


def train_on_images(
    cn: nn.Module,
    generator: nn.Module,
    tap: FeatureTap,
    latent_shape: tuple[int, ...],
    split: ImageSplit,
    prior_pairs: Callable[[], tuple[torch.Tensor, torch.Tensor]],
    *,
    steps: int,
    batch_size: int,
    lr: float,
    feature_weight: float,
    prior_weight: float,
    eval_every: int,
    rng: torch.Generator,
    device: torch.device,
    progress: bool | None,
    dist_ctx: DistContext | None = None,
    autocast_dtype: torch.dtype | None = None,
    decay: bool = True,
) -> RealStageResult:
    """Fine-tune ``cn`` in place on real images; leave it holding its best held-out weights, in eval mode.

    Args:
        cn: the connection network, features ``(B, F)`` → flat codes ``(B, prod(latent_shape))``.
        generator, tap: the user's G and the feature tap on D (frozen by the caller).
        latent_shape: the shape of one code as G takes it.
        split: the training indices and the held-out images, in G's range.
        prior_pairs: ``() → (features (B, F), flat latents (B, D))``: a batch of fresh
            self-generated pairs, without grad.
        steps, batch_size, lr: the schedule: Adam (betas 0.5/0.999) from ``lr``, cosine decay to 1% of it
            at the last update (:func:`~discinvert.fitting.self_generated_stage.lr_factor` without warm-up).
        decay: ``False`` holds ``lr`` constant (the stage before the decay; ``docs/real_schedule.md``).
        feature_weight, prior_weight: the weights of the D-feature and prior terms (0 drops a term).
        eval_every: updates between held-out validations.
        rng: draws the batches' indices (a CPU generator).
        device: where G, D and the CN run.
        progress: tqdm bar (``None``: on a terminal only; off on ranks other than 0).
        dist_ctx: under torchrun, averages gradients across ranks and keeps rank 0's weights.
        autocast_dtype: run each update's forward passes (D on the batch, the CN, G and D on
            the reconstructions) under ``torch.autocast`` in this dtype; the losses, the CN's
            weights and Adam stay float32, and the held-out validation runs in full precision.

    Raises:
        ValueError: the held-out error was never finite (divergence).
    """
    distributed = dist_ctx is not None and dist_ctx.enabled
    g_dtype, d_dtype, cn_dtype = model_dtype(generator), model_dtype(tap.discriminator), next(cn.parameters()).dtype
    held = split.held_out
    optimizer = make_adam(cn, lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda update: lr_factor(update, steps, 0) if decay else 1.0)

    def features(images: torch.Tensor) -> torch.Tensor:
        return tap(images.to(device=device, dtype=d_dtype)).to(cn_dtype)

    def load(picked: torch.Tensor) -> torch.Tensor:
        """The batch's images; under torchrun a rank that cannot load its batch stops every rank."""
        if not distributed:
            return split.images.get(picked)
        return together(lambda: split.images.get(picked), device, "images")

    def validate() -> float:
        cn.eval()
        total = 0.0
        with torch.no_grad():
            for start in range(0, len(held), _CHUNK):
                x = held[start : start + _CHUNK].to(device)
                codes = cn(features(x)).reshape(-1, *latent_shape)
                total += float(F.mse_loss(generate(generator, codes).float(), x, reduction="sum"))
        cn.train()
        value = total / held.numel()
        return broadcast_scalar(value, device) if distributed else value

    started = time.perf_counter()
    start_error = validate()
    best = (start_error, 0, copy.deepcopy(cn.state_dict()))
    history: list[list[float | None]] = [[0, None, round(start_error, 6), 0.0]]
    running: torch.Tensor | None = None  # summed on the device, read at validations only
    quiet = distributed and dist_ctx.rank != 0  # type: ignore[union-attr]
    bar = tqdm(total=steps, desc="fit CN on images", unit="step", dynamic_ncols=True,
               disable=True if quiet else (None if progress is None else not progress))
    train_indices = split.train_indices
    try:
        cn.train()
        for step in range(steps):
            picked = train_indices[torch.randint(0, len(train_indices), (batch_size,), generator=rng)]
            x = load(picked).to(device)
            pair_features, latents = prior_pairs() if prior_weight > 0 else (None, None)
            with autocast_context(device, autocast_dtype):
                with torch.no_grad():
                    target = features(x)
                if pair_features is not None:
                    # One forward pass over real and generated features: the CN's BatchNorm normalises
                    # them together, as its running statistics (used by encode) will describe both.
                    both = cn(torch.cat([target, pair_features.to(cn_dtype)]))
                    codes, pair_codes = both[: len(target)], both[len(target) :]
                else:
                    codes = cn(target)
                fake = generate(generator, codes.reshape(-1, *latent_shape).to(g_dtype))
                fake_features = features(fake) if feature_weight > 0 else None
            loss = F.mse_loss(fake.float(), x)
            if fake_features is not None:
                loss = loss + feature_weight * feature_term(fake_features, target)
            if pair_features is not None:
                loss = loss + prior_weight * F.mse_loss(pair_codes.float(), latents)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if distributed:
                average_gradients(cn, dist_ctx.world_size)  # type: ignore[union-attr]
            optimizer.step()
            scheduler.step()
            running = loss.detach() if running is None else running + loss.detach()
            bar.update(1)
            if (step + 1) % eval_every == 0 or step + 1 == steps:
                error = validate()
                done = (step % eval_every) + 1
                history.append([step + 1, round(float(running) / done, 6), round(error, 6),  # type: ignore[arg-type]
                                round(time.perf_counter() - started, 3)])
                running = None
                if error < best[0] or not math.isfinite(best[0]):
                    best = (error, step + 1, copy.deepcopy(cn.state_dict()))
                bar.set_postfix(held_out=f"{error:.4f}", best=f"{best[0]:.4f}")
                logger.debug("real-image stage step %d: held-out pixel MSE %.5f", step + 1, error)
    finally:
        bar.close()
    if not math.isfinite(best[0]):
        raise ValueError(
            "real-image stage diverged: the held-out pixel error was never finite; lower real_lr or check that "
            "the images are finite and in G's range."
        )
    cn.load_state_dict(best[2])
    if distributed:
        broadcast_module(cn)
    cn.eval()
    return RealStageResult(len(train_indices), len(held), split.images.source, best[1], best[0], start_error,
                           time.perf_counter() - started, history)
