"""Inversion baselines the paper compares against, for benchmarks and ablations.

- :func:`fit_naive_encoder`: an image → z encoder trained from scratch on pairs
  ``(G(z), z)``. It has exactly the architecture of the inverter (a copy of D up to the
  feature layer, re-initialised, followed by the same CN), so the only difference is
  that it does not recycle D's weights.
- :func:`optimization_only`: per-image Adam on z from a random start.
- iGAN is the naive encoder followed by :func:`discinvert.optimize.optimize_latents`.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from discinvert.features import FeatureTap
from discinvert.gan import generate, model_dtype, resolve_device
from discinvert.guard import frozen
from discinvert.latents import normal_sampler, parse_latent_shape
from discinvert.layers import resolve_layer
from discinvert.network import CNConfig, ConnectionNetwork
from discinvert.optimize import DEFAULT_REFINE_LR, optimize_latents
from discinvert.pool import FreshBatches
from discinvert.training import train_regressor
from discinvert.validation import positive_float, positive_int

__all__ = ["NaiveEncoder", "fit_naive_encoder", "optimization_only"]

logger = logging.getLogger(__name__)


def _reinitialise(module: nn.Module) -> None:
    for sub in module.modules():
        reset = getattr(sub, "reset_parameters", None)
        if callable(reset):
            reset()


class NaiveEncoder(nn.Module):
    """Image → code: a re-initialised copy of D's trunk plus a CN, trained end to end.

    Owns all its weights (the trunk is a copy; the user's D is never touched).
    """

    def __init__(self, trunk: nn.Module, layer_name: str, cn: ConnectionNetwork, latent_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.trunk = trunk
        self.cn = cn
        self.layer_name = layer_name
        self.latent_shape = latent_shape
        _, layer = resolve_layer(trunk, layer_name)
        self._tap = FeatureTap(trunk, layer_name, layer)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(N, *image_shape)`` → flat codes ``(N, latent_dim)`` (differentiable)."""
        return self.cn(self._tap(images).float())

    def encode(self, images: torch.Tensor | np.ndarray, batch_size: int = 256) -> torch.Tensor:
        """Codes ``(N, *latent_shape)`` without grad, on the images' device."""
        x = torch.as_tensor(images)
        device = next(self.cn.parameters()).device
        was = self.training
        self.eval()
        try:
            with torch.no_grad():
                chunks = [
                    self(x[i : i + batch_size].to(device=device, dtype=model_dtype(self.trunk))).reshape(-1, *self.latent_shape)
                    for i in range(0, x.shape[0], batch_size)
                ]
        finally:
            self.train(was)
        if not chunks:
            return torch.empty((0, *self.latent_shape), device=x.device)
        return torch.cat(chunks).to(x.device)


def fit_naive_encoder(
    generator: nn.Module,
    discriminator: nn.Module,
    feature_layer: str | nn.Module,
    *,
    latent_shape: Sequence[int] | int,
    steps: int,
    batch_size: int = 256,
    lr: float = 2e-4,
    seed: int = 0,
    progress: bool | None = None,
    cn_hidden: Sequence[int] = (1024, 1024),
    validation_size: int = 1024,
    eval_every: int = 100,
) -> NaiveEncoder:
    """Train the naive encoder on fresh ``(G(z), z)`` pairs with the given budget.

    Same budget and schedule as :func:`discinvert.fit_inverter` (``steps`` batches of
    ``batch_size`` fresh pairs), but every weight is trained, so ``lr`` defaults to the
    DCGAN rate 2e-4. G and D come back untouched.

    Returns:
        The encoder with the lowest validation error, in eval mode, on G's device.
    """
    shape = parse_latent_shape(latent_shape)
    steps = positive_int(steps, "steps")
    batch_size = positive_int(batch_size, "batch_size", 2)
    lr = positive_float(lr, "lr")
    layer_name, _ = resolve_layer(discriminator, feature_layer)
    device = resolve_device(generator, discriminator, None)
    sampler = normal_sampler(shape)
    trunk = copy.deepcopy(discriminator)
    for hook_dict in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks"):
        for sub in trunk.modules():
            getattr(sub, hook_dict).clear()  # the copy must not fire the user's hooks
    rng_devices = [device] if device.type == "cuda" else []
    with contextlib.ExitStack() as stack:
        stack.enter_context(frozen(generator, discriminator))
        stack.enter_context(torch.random.fork_rng(devices=rng_devices))
        torch.default_generator.manual_seed(seed)
        if device.type == "cuda":
            with torch.cuda.device(device):
                torch.cuda.manual_seed(seed)
        _reinitialise(trunk)
        trunk.train()
        for p in trunk.parameters():
            p.requires_grad_(True)
        train_rng = torch.Generator(device=device).manual_seed(seed)
        val_rng = torch.Generator(device=device).manual_seed(seed + 1)
        with torch.no_grad():
            z_val = sampler(validation_size, val_rng, device)
            x_val = torch.cat([generate(generator, z_val[i : i + batch_size]) for i in range(0, validation_size, batch_size)])
            probe = FeatureTap(trunk, layer_name, resolve_layer(trunk, layer_name)[1])
            trunk.eval()
            feature_dim = probe(x_val[:2]).shape[1]
            trunk.train()
        cn = ConnectionNetwork(CNConfig(in_features=feature_dim, out_features=math.prod(shape), hidden=tuple(cn_hidden)))
        encoder = NaiveEncoder(trunk, layer_name, cn, shape).to(device)

        def next_batch() -> tuple[torch.Tensor, torch.Tensor]:
            with torch.no_grad():
                z = sampler(batch_size, train_rng, device)
                x = generate(generator, z)
            return x, z.reshape(batch_size, -1).float()

        result = train_regressor(
            encoder, FreshBatches(next_batch), x_val, z_val.reshape(validation_size, -1).float(), steps=steps, lr=lr,
            batch_size=batch_size, eval_every=eval_every, progress=progress, desc="fit naive encoder",
        )
    encoder.load_state_dict(result.best_state)
    logger.info("naive encoder: best validation MSE %.5f at step %d", result.best_error, result.best_step)
    return encoder.eval()


def optimization_only(
    generator: nn.Module,
    images: torch.Tensor,
    *,
    latent_shape: Sequence[int] | int,
    steps: int,
    lr: float = DEFAULT_REFINE_LR,
    seed: int = 0,
    batch_size: int = 256,
    progress: bool | None = None,
) -> torch.Tensor:
    """Per-image Adam on pixel MSE from ``z ~ N(0, I)``; returns ``(N, *latent_shape)`` codes.

    Args:
        generator: G; left untouched.
        images: ``(N, *image_shape)`` targets in G's range, on G's device.
    """
    shape = parse_latent_shape(latent_shape)
    device = images.device
    rng = torch.Generator(device=device).manual_seed(seed)
    init = torch.randn((images.shape[0], *shape), generator=rng, device=device)
    return optimize_latents(generator, images, init, steps=steps, lr=lr, batch_size=batch_size, progress=progress)
