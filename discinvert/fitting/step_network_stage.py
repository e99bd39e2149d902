"""Training the step networks of iterative refinement (:mod:`discinvert.step_networks`), one after another.

``fit_inverter(..., iterations=k)`` trains ``k`` step networks after the connection
network (and after the real-image stage when ``images`` are given). Step ``t`` is trained
with the CN and steps ``1..t-1`` frozen, on batches of two parts that go through the
step in one forward pass (its BatchNorm statistics then describe both):

* **self-generated pairs** ``(z, G(z))`` with fresh ``z`` from the prior: the
  z-regression ``MSE(z_t, z)``, weight 1 without images, ``prior_weight`` with them;
* with ``images``, **real images** ``x``: the pixel MSE of ``G(z_t)`` against ``x`` and
  the discriminator-feature term of :mod:`discinvert.fitting.real_image_stage` (weight ``feature_weight``).

The weights of lowest validation error (held-out pixel MSE of the real images, or latent
MSE on held-out self-generated pairs without images), checked every ``eval_every``
updates and before the first, are kept; a step whose training never helps stays the
identity it starts as. Under torchrun gradients are averaged and rank 0's weights kept.
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
from discinvert.guard import frozen
from discinvert.fitting.image_sets import ImageSplit
from discinvert.step_networks import StepConfig, StepNetwork, iterate, step_inputs
from discinvert.fitting.real_image_stage import feature_term
from discinvert.fitting.self_generated_stage import make_adam

__all__ = ["StepResult", "train_steps"]

logger = logging.getLogger(__name__)

_CHUNK = 256  # validation images per pass


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
    """What every step network's training shares: the frozen models, the data and the validation."""

    def __init__(self, cn: nn.Module, config: StepConfig, generator: nn.Module, tap: FeatureTap,
                 latent_shape: tuple[int, ...], validation_latents: torch.Tensor, split: ImageSplit | None,
                 device: torch.device, dist_ctx: DistContext | None) -> None:
        self.cn, self.config, self.generator, self.tap = cn, config, generator, tap
        self.latent_shape, self.split, self.device = latent_shape, split, device
        self.distributed = dist_ctx is not None and dist_ctx.enabled
        self.d_dtype = model_dtype(tap.discriminator)
        self.cn_dtype = next(cn.parameters()).dtype
        self.trained: list[StepNetwork] = []
        with torch.no_grad():
            self.val_images = torch.cat([generate(generator, validation_latents[i : i + _CHUNK])
                                         for i in range(0, len(validation_latents), _CHUNK)])
        self.val_targets = validation_latents.reshape(len(validation_latents), -1).float()
        self.metric = "held-out pixel MSE" if split is not None else "latent MSE"

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.tap(images.to(device=self.device, dtype=self.d_dtype))

    def start(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``D_f(x)`` and the codes of the frozen CN and the steps trained so far, without grad."""
        with torch.no_grad():
            target = self.features(images)
            codes = self.cn(target.to(self.cn_dtype)).float()
            return target, iterate(self.trained, self.generator, self.tap, images, target, codes, self.latent_shape)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return generate(self.generator, codes.reshape(-1, *self.latent_shape))

    def validate(self, step: StepNetwork) -> float:
        """The validation error with ``step`` after the trained ones (rank 0's under torchrun)."""
        step.eval()
        total, count = 0.0, 0
        held = None if self.split is None else self.split.held_out
        source = held if held is not None else self.val_images
        with torch.no_grad():
            for begin in range(0, len(source), _CHUNK):
                x = source[begin : begin + _CHUNK].to(self.device)
                target, codes = self.start(x)
                codes = iterate([step], self.generator, self.tap, x, target, codes, self.latent_shape)
                if held is not None:
                    total += float(F.mse_loss(self.decode(codes).float(), x.float(), reduction="sum"))
                    count += x.numel()
                else:
                    wanted = self.val_targets[begin : begin + _CHUNK]
                    total += float(F.mse_loss(codes, wanted, reduction="sum"))
                    count += wanted.numel()
        step.train()
        value = total / count
        return broadcast_scalar(value, self.device) if self.distributed else value

    def real_batch(self, batch_size: int, rng: torch.Generator) -> torch.Tensor:
        """A batch of the user's images; under torchrun a rank that cannot load it stops every rank."""
        split = self.split
        assert split is not None
        picked = split.train_indices[torch.randint(0, len(split.train_indices), (batch_size,), generator=rng)]
        if not self.distributed:
            return split.images.get(picked).to(self.device).float()
        return together(lambda: split.images.get(picked), self.device, "images").to(self.device).float()

    def loss(self, step: StepNetwork, latents: torch.Tensor, real: torch.Tensor | None, feature_weight: float,
             prior_weight: float, autocast_dtype: torch.dtype | None = None) -> torch.Tensor:
        """One update's loss: z-regression on ``G(latents)``, and with ``real`` images the pixel and D-feature terms.

        The forward passes run under ``torch.autocast`` in ``autocast_dtype`` (``None``: none);
        the codes and the losses stay float32.
        """
        n = latents.shape[0]
        with autocast_context(self.device, autocast_dtype):
            with torch.no_grad():
                x = self.decode(latents).float()
                if real is not None:
                    x = torch.cat([x, real])
                target, codes = self.start(x)
                current = self.decode(codes)
                inputs = step_inputs(self.config, target, x, self.features(current), current, codes)
            new_codes = codes + step(inputs.to(next(step.parameters()).dtype)).float()
            fake = None if real is None else self.decode(new_codes[n:])
            fake_features = None if fake is None or feature_weight == 0 else self.features(fake)
        latent_loss = F.mse_loss(new_codes[:n], latents.reshape(n, -1).float())
        if real is None or fake is None:
            return latent_loss
        loss = F.mse_loss(fake.float(), real)
        if fake_features is not None:
            loss = loss + feature_weight * feature_term(fake_features, target[n:])
        return loss + prior_weight * latent_loss if prior_weight > 0 else loss


def train_steps(
    cn: nn.Module,
    config: StepConfig,
    generator: nn.Module,
    tap: FeatureTap,
    latent_shape: tuple[int, ...],
    draw_latents: Callable[[int], torch.Tensor],
    validation_latents: torch.Tensor,
    split: ImageSplit | None,
    *,
    iterations: int,
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
) -> tuple[list[StepNetwork], list[StepResult]]:
    """Train ``iterations`` step networks after ``cn``; each is left with its best weights, in eval mode.

    Args:
        cn: the fitted connection network, features ``(B, F)`` → flat codes; run in eval mode
            without gradients here, and handed back as it came.
        config: the step networks' architecture.
        generator, tap: the user's G and the feature tap on D (frozen by the caller).
        latent_shape: the shape of one code as G takes it.
        draw_latents: ``n → (n, *latent_shape)`` fresh latents from the prior, on ``device``.
        validation_latents: held-out latents ``(V, *latent_shape)``: the validation set
            without images.
        split: the user's images (training indices and held-out images), or ``None``.
        iterations: how many step networks.
        steps, batch_size, lr: each step's schedule (Adam, betas 0.5/0.999, constant ``lr``);
            ``batch_size`` images of each part per update.
        feature_weight, prior_weight: as in the real-image stage (used with images only).
        eval_every: updates between validations.
        rng: draws the real batches' indices (a CPU generator).
        device: where G, D and the networks run.
        progress: tqdm bar (``None``: on a terminal only; off on ranks other than 0).
        dist_ctx: under torchrun, averages gradients across ranks and keeps rank 0's weights.
        autocast_dtype: run each update's forward passes under ``torch.autocast`` in this dtype
            (the codes, the losses, the weights and Adam stay float32; validation runs in full
            precision).

    Raises:
        ValueError: a step's validation error was never finite (divergence).
    """
    with frozen(cn):  # the CN in eval mode: its BatchNorm statistics stay as the fit left them
        return _train(cn, config, generator, tap, latent_shape, draw_latents, validation_latents, split,
                      iterations=iterations, steps=steps, batch_size=batch_size, lr=lr, feature_weight=feature_weight,
                      prior_weight=prior_weight, eval_every=eval_every, rng=rng, device=device, progress=progress,
                      dist_ctx=dist_ctx, autocast_dtype=autocast_dtype)


def _train(cn: nn.Module, config: StepConfig, generator: nn.Module, tap: FeatureTap, latent_shape: tuple[int, ...],
           draw_latents: Callable[[int], torch.Tensor], validation_latents: torch.Tensor, split: ImageSplit | None, *,
           iterations: int, steps: int, batch_size: int, lr: float, feature_weight: float, prior_weight: float,
           eval_every: int, rng: torch.Generator, device: torch.device, progress: bool | None,
           dist_ctx: DistContext | None, autocast_dtype: torch.dtype | None,
           ) -> tuple[list[StepNetwork], list[StepResult]]:
    stage = _Stage(cn, config, generator, tap, latent_shape, validation_latents, split, device, dist_ctx)
    quiet = stage.distributed and dist_ctx.rank != 0  # type: ignore[union-attr]
    results: list[StepResult] = []
    for index in range(iterations):
        step = StepNetwork(config).to(device)  # from the fit's seeded global RNG
        if stage.distributed:
            broadcast_module(step)  # every rank starts from rank 0's weights
        optimizer = make_adam(step, lr)
        began = time.perf_counter()
        start_error = stage.validate(step)
        best = (start_error, 0, copy.deepcopy(step.state_dict()))
        history: list[list[float | None]] = [[0, None, round(start_error, 6), 0.0]]
        running: torch.Tensor | None = None
        bar = tqdm(total=steps, desc=f"fit step {index + 1}/{iterations}", unit="step", dynamic_ncols=True,
                   disable=True if quiet else (None if progress is None else not progress))
        try:
            step.train()
            for update in range(steps):
                real = None if split is None else stage.real_batch(batch_size, rng)
                loss = stage.loss(step, draw_latents(batch_size), real, feature_weight, prior_weight, autocast_dtype)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if stage.distributed:
                    average_gradients(step, dist_ctx.world_size)  # type: ignore[union-attr]
                optimizer.step()
                running = loss.detach() if running is None else running + loss.detach()
                bar.update(1)
                if (update + 1) % eval_every == 0 or update + 1 == steps:
                    error = stage.validate(step)
                    done = (update % eval_every) + 1
                    history.append([update + 1, round(float(running) / done, 6), round(error, 6),  # type: ignore[arg-type]
                                    round(time.perf_counter() - began, 3)])
                    running = None
                    if error < best[0] or not math.isfinite(best[0]):
                        best = (error, update + 1, copy.deepcopy(step.state_dict()))
                    bar.set_postfix(val=f"{error:.4f}", best=f"{best[0]:.4f}")
        finally:
            bar.close()
        if not math.isfinite(best[0]):
            raise ValueError(
                f"iterative refinement: step {index + 1} diverged (its validation error was never finite); lower "
                "iteration_lr or check that the images are finite and in G's range.")
        step.load_state_dict(best[2])
        if stage.distributed:
            broadcast_module(step)
        stage.trained.append(step.eval())
        results.append(StepResult(stage.metric, start_error, best[0], best[1], time.perf_counter() - began, history))
        logger.info("step network %d/%d done in %.1f s: %s %.5f -> %.5f (update %d)", index + 1, iterations,
                    results[-1].seconds, stage.metric, start_error, best[0], best[1])
    return stage.trained, results
