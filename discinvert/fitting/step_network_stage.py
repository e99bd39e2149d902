"""Training the step networks of iterative refinement (:mod:`discinvert.step_networks`), one after another.

``fit_inverter(..., iterations=k)`` trains ``k`` step networks after the connection
network (and after the real-image stage when ``images`` are given). Step network ``t`` is trained
with the CN and step networks ``1..t-1`` frozen, on batches of two parts that go through the
network in one forward pass (its BatchNorm statistics then describe both):

* **self-generated pairs** ``(z, G(z))`` with fresh ``z`` from the prior: the
  z-regression ``MSE(z_t, z)``, weight 1 without images, ``prior_weight`` with them;
* with ``images``, **real images** ``x``: the pixel MSE of ``G(z_t)`` against ``x`` and
  the discriminator-feature term (:func:`~discinvert.fitting.updates.feature_term`, weight ``feature_weight``);
  with ``gan.perceptual`` (the generator-only route's ``perceptual``) on that frozen network's features, as in
  the real-image stage.

The weights of lowest validation error (held-out pixel MSE of the real images, or latent
MSE on held-out self-generated pairs without images), checked every ``eval_every``
updates and before the first, are kept (:func:`~discinvert.fitting.loop.train_loop`); a step network
whose training never helps stays the identity it starts as. Under torchrun gradients are averaged and
rank 0's weights kept.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from discinvert.distributed import broadcast_module
from discinvert.fitting.acceleration import autocast_context
from discinvert.fitting.image_sets import ImageBatches
from discinvert.fitting.loop import VALIDATION_CHUNK, Labels, Plan, Runtime, train_loop
from discinvert.fitting.updates import LossWeights, Updater, feature_term, make_adam
from discinvert.fitting.run import FrozenGAN
from discinvert.gan import generate, model_dtype
from discinvert.guard import frozen
from discinvert.step_networks import StepConfig, StepNetwork, iterate, step_inputs

__all__ = ["StepResult", "train_step_networks"]

logger = logging.getLogger(__name__)


@dataclass
class StepResult:
    """What training one step network did (its record goes into ``config.fit['iterative']['steps']``).

    Attributes:
        metric: ``"held-out pixel MSE"`` (with images) or ``"latent MSE"`` (self-generated only).
        history: ``[update, train loss, validation error, seconds]`` at each validation.
    """

    metric: str
    start_error: float
    best_error: float
    best_step: int
    seconds: float
    history: list[list[float | None]] = field(default_factory=list)

    def record(self) -> dict[str, Any]:
        """The JSON-able record."""
        return {"metric": self.metric, "start_error": self.start_error, "best_error": self.best_error,
                "best_step": self.best_step, "seconds": round(self.seconds, 3), "history": self.history}


class _Stage:
    """What every step network's training shares: the frozen models, the data, the loss and the validation."""

    def __init__(self, cn: nn.Module, config: StepConfig, gan: FrozenGAN, validation_latents: torch.Tensor,
                 images: ImageBatches | None, runtime: Runtime, weights: LossWeights) -> None:
        self.cn, self.config, self.generator, self.tap = cn, config, gan.generator, gan.tap
        self.perceptual = gan.perceptual
        self.latent_shape, self.images, self.runtime, self.weights = gan.latent_shape, images, runtime, weights
        self.device = runtime.device
        self.d_dtype = model_dtype(gan.tap.discriminator)
        self.cn_dtype = next(cn.parameters()).dtype
        self.trained: list[StepNetwork] = []
        with torch.no_grad():
            self.val_images = torch.cat([generate(gan.generator, validation_latents[i : i + VALIDATION_CHUNK])
                                         for i in range(0, len(validation_latents), VALIDATION_CHUNK)])
        self.val_targets = validation_latents.reshape(len(validation_latents), -1).float()
        self.metric = "held-out pixel MSE" if images is not None else "latent MSE"

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.tap(images.to(device=self.device, dtype=self.d_dtype))

    def compared(self, images: torch.Tensor) -> torch.Tensor:
        """The features the feature term compares: ``gan.perceptual``'s, or the tap's (D's) without it."""
        if self.perceptual is None:
            return self.features(images)
        return self.perceptual(images.to(device=self.device, dtype=self.cn_dtype))

    def start(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``D_f(x)`` and the codes of the frozen CN and the step networks trained so far, without grad."""
        with torch.no_grad():
            target = self.features(images)
            codes = self.cn(target.to(self.cn_dtype)).float()
            return target, iterate(self.trained, self.generator, self.tap, images, target, codes, self.latent_shape)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return generate(self.generator, codes.reshape(-1, *self.latent_shape))

    def validate(self, network: StepNetwork) -> float:
        """The validation error with ``network`` after the trained ones (in eval mode, without grad)."""
        total, count = 0.0, 0
        held = None if self.images is None else self.images.split.held_out
        source = held if held is not None else self.val_images
        for begin in range(0, len(source), VALIDATION_CHUNK):
            x = source[begin : begin + VALIDATION_CHUNK].to(self.device)
            target, codes = self.start(x)
            codes = iterate([network], self.generator, self.tap, x, target, codes, self.latent_shape)
            if held is not None:
                total += float(F.mse_loss(self.decode(codes).float(), x.float(), reduction="sum"))
                count += x.numel()
            else:
                wanted = self.val_targets[begin : begin + VALIDATION_CHUNK]
                total += float(F.mse_loss(codes, wanted, reduction="sum"))
                count += wanted.numel()
        return total / count

    def loss(self, network: StepNetwork, latents: torch.Tensor, real: torch.Tensor | None) -> torch.Tensor:
        """One update's loss: z-regression on ``G(latents)``, and with ``real`` images the pixel and D-feature terms.

        The forward passes run under ``torch.autocast`` in ``runtime.autocast_dtype`` (``None``: none);
        the codes and the losses stay float32.
        """
        n = latents.shape[0]
        with autocast_context(self.device, self.runtime.autocast_dtype):
            with torch.no_grad():
                x = self.decode(latents).float()
                if real is not None:
                    x = torch.cat([x, real])
                target, codes = self.start(x)
                current = self.decode(codes)
                inputs = step_inputs(self.config, target, x, self.features(current), current, codes)
                compared_target = (target[n:] if self.perceptual is None or real is None or self.weights.feature == 0
                                   else self.compared(real))
            new_codes = codes + network(inputs.to(next(network.parameters()).dtype)).float()
            fake = None if real is None else self.decode(new_codes[n:])
            fake_features = None if fake is None or self.weights.feature == 0 else self.compared(fake)
        latent_loss = F.mse_loss(new_codes[:n], latents.reshape(n, -1).float())
        if real is None or fake is None:
            return latent_loss
        loss = F.mse_loss(fake.float(), real)
        if fake_features is not None:
            loss = loss + self.weights.feature * feature_term(fake_features, compared_target)
        return loss + self.weights.prior * latent_loss if self.weights.prior > 0 else loss

    def real_batch(self, batch_size: int) -> torch.Tensor | None:
        """A batch of the user's images on the device, or ``None`` without images."""
        if self.images is None:
            return None
        return self.images.draw(batch_size, self.device, self.runtime.distributed).to(self.device).float()


def train_step_networks(
    cn: nn.Module,
    config: StepConfig,
    gan: FrozenGAN,
    draw_latents: Callable[[int], torch.Tensor],
    validation_latents: torch.Tensor,
    images: ImageBatches | None,
    plan: Plan,
    runtime: Runtime,
    *,
    iterations: int,
    weights: LossWeights,
) -> tuple[list[StepNetwork], list[StepResult]]:
    """Train ``iterations`` step networks after ``cn``; each is left with its best weights, in eval mode.

    Args:
        cn: the fitted connection network, features ``(B, F)`` → flat codes; run in eval mode
            without gradients here, and handed back as it came.
        config: the step networks' architecture.
        gan: the user's G and the feature tap on D (frozen by the caller), and the shape of one code.
        draw_latents: ``n → (n, *gan.latent_shape)`` fresh latents from the prior, on ``runtime.device``.
        validation_latents: held-out latents ``(V, *gan.latent_shape)``: the validation set
            without images.
        images: the user's images (training batches and held-out images), or ``None``.
        plan: each step network's schedule: Adam (:data:`~discinvert.fitting.fit_config.ADAM_BETAS`, constant
            ``plan.lr``); ``plan.batch_size`` images of each part per update; validations every
            ``plan.eval_every`` updates.
        runtime: where G, D and the networks run; under torchrun the gradients are averaged across ranks
            and rank 0's weights kept; ``autocast_dtype`` runs each update's forward passes under
            ``torch.autocast`` (the codes, the losses, the weights and Adam stay float32; validation runs
            in full precision).
        iterations: how many step networks.
        weights: as in the real-image stage (used with images only); with ``gan.perceptual`` the feature term
            compares that network's features instead of the tap's.

    Raises:
        ValueError: a step network's validation error was never finite (divergence).
    """
    with frozen(cn):  # the CN in eval mode: its BatchNorm statistics stay as the fit left them
        stage = _Stage(cn, config, gan, validation_latents, images, runtime, weights)
        results = [_train_one(stage, draw_latents, plan, index, iterations) for index in range(iterations)]
        return stage.trained, results


def _train_one(stage: _Stage, draw_latents: Callable[[int], torch.Tensor], plan: Plan, index: int,
               iterations: int) -> StepResult:
    """Train step network ``index`` (0-based) after the ones ``stage`` holds, and add it to them."""
    runtime = stage.runtime
    network = StepNetwork(stage.config).to(runtime.device)  # from the fit's seeded global RNG
    if runtime.distributed:
        broadcast_module(network)  # every rank starts from rank 0's weights
    world_size = runtime.dist_ctx.world_size if runtime.distributed else None  # type: ignore[union-attr]
    updater = Updater(network, make_adam(network, plan.lr), average_over=world_size)

    def update(_: int) -> torch.Tensor:
        real = stage.real_batch(plan.batch_size)
        return stage.loss(network, draw_latents(plan.batch_size), real)

    labels = Labels(f"fit step {index + 1}/{iterations}", lambda _: (
        f"iterative refinement: step {index + 1} diverged (its validation error was never finite); lower "
        "iteration_lr or check that the images are finite and in G's range."))
    done = train_loop(network, update, lambda: stage.validate(network), updater, plan, runtime, labels,
                      validate_first=True)
    stage.trained.append(network.eval())
    result = StepResult(stage.metric, done.start_error, done.best[0], done.best[1], done.seconds,  # type: ignore[arg-type]
                        done.history)
    logger.info("step network %d/%d done in %.1f s: %s %.5f -> %.5f (update %d)", index + 1, iterations,
                result.seconds, stage.metric, result.start_error, result.best_error, result.best_step)
    return result
