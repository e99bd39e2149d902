"""Inversion baselines the paper compares against, for benchmarks and ablations.

- :func:`fit_naive_encoder`: an image → z encoder trained from scratch on pairs
  ``(G(z), z)``. It has exactly the architecture of the inverter (a copy of D up to the
  feature layer, re-initialised, followed by the same CN), so the only difference is
  that it does not recycle D's weights.
- :func:`optimization_only`: per-image Adam on z from a random start.
- iGAN is the naive encoder followed by :func:`discinvert.optimize.optimize_latents`.

The naive encoder trains with the connection network's own loop
(``discinvert.fitting.self_generated_stage.train_regressor``) inside ``discinvert.guard.frozen``: the same budget,
schedule and best-step choice as ``fit_inverter``, and G and D come back untouched. Those two
are the internal names this module uses (``benchmarks/README.md``, "Internal surface";
``tests/test_benchmarks_surface.py`` imports them); the rest is public API or the small
helpers below and in ``benchmarks/common.py``.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import numbers
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from benchmarks.common import LayerFeatures
from discinvert import CNConfig, ConnectionNetwork, FitConfig, MappedGenerator
from discinvert.guard import frozen  # internal surface (benchmarks/README.md)
from discinvert.optimize import DEFAULT_REFINE_LR, optimize_latents
from discinvert.fitting.pool import FreshBatches  # internal surface (benchmarks/README.md)
from discinvert.fitting.loop import Plan, Runtime  # internal surface (benchmarks/README.md)
from discinvert.fitting.self_generated_stage import train_regressor  # internal surface (benchmarks/README.md)

__all__ = ["NaiveEncoder", "fit_naive_encoder", "optimization_only"]

logger = logging.getLogger(__name__)


def _latent_shape(latent_shape: Sequence[int] | int) -> tuple[int, ...]:
    """``latent_shape`` as a tuple of positive ints (an int ``d`` means ``(d,)``), else ``ValueError``."""
    shape = (latent_shape,) if isinstance(latent_shape, numbers.Integral) else latent_shape
    try:
        shape = tuple(shape)  # type: ignore[arg-type]
    except TypeError:
        shape = ()
    if not shape or any(isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 1 for d in shape):
        raise ValueError(f"latent_shape: expected a tuple of positive ints such as (100,) or (100, 1, 1), got {latent_shape!r}.")
    return tuple(int(d) for d in shape)


def _positive_int(value: object, name: str, minimum: int = 1) -> int:
    """``value`` as an int if it is an integer (not a bool) ``>= minimum``, else ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value!r}.")
    return int(value)


def _positive_float(value: object, name: str) -> float:
    """``value`` as a float if it is a finite number ``> 0`` (not a bool), else ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name}: expected a positive finite float, got {value!r}.")
    return float(value)


def _dtype(module: nn.Module) -> torch.dtype:
    """Dtype of the module's first floating parameter or buffer (float32 if none)."""
    for tensor in [*module.parameters(), *module.buffers()]:
        if tensor.is_floating_point():
            return tensor.dtype
    return torch.float32


def _device(*modules: nn.Module) -> torch.device:
    """Where the first of ``modules`` holding a parameter or buffer lives (the CPU if none does)."""
    for module in modules:
        for tensor in [*module.parameters(), *module.buffers()]:
            return tensor.device
    return torch.device("cpu")


def _generate(generator: nn.Module, latents: torch.Tensor) -> torch.Tensor:
    """``G(z)`` on a copy of ``z`` in G's dtype (a G that writes into its input cannot change the targets)."""
    return generator(latents.to(_dtype(generator), copy=True))


def _layer_name(model: nn.Module, layer: str | nn.Module) -> str:
    """The dotted name of ``layer`` (a name or a submodule) inside ``model``, else ``ValueError``."""
    for name, module in model.named_modules(remove_duplicate=False):
        if module is layer or name == layer:
            return name
    raise ValueError(f"feature_layer: {layer!r} is not a layer of {type(model).__name__}; see discinvert.list_layers(D).")


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
        self._tap = LayerFeatures(trunk, layer_name)

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
                    self(x[i : i + batch_size].to(device=device, dtype=_dtype(self.trunk))).reshape(-1, *self.latent_shape)
                    for i in range(0, x.shape[0], batch_size)
                ]
        finally:
            self.train(was)
        if not chunks:
            return torch.empty((0, *self.latent_shape), device=x.device)
        return torch.cat(chunks).to(x.device)


_FIT = FitConfig()  # fit_inverter's defaults: the naive encoder's budget, widths and validation are the CN's


def fit_naive_encoder(
    generator: nn.Module,
    discriminator: nn.Module,
    feature_layer: str | nn.Module,
    *,
    latent_shape: Sequence[int] | int,
    steps: int,
    batch_size: int = _FIT.batch_size,
    lr: float = 2e-4,
    seed: int = 0,
    progress: bool | None = None,
    cn_hidden: Sequence[int] = _FIT.cn_hidden,
    validation_size: int = _FIT.validation_size,
    eval_every: int = _FIT.eval_every,
) -> NaiveEncoder:
    """Train the naive encoder on fresh ``(G(z), z)`` pairs with the given budget.

    Same budget and schedule as :func:`discinvert.fit_inverter` (``steps`` batches of
    ``batch_size`` fresh pairs), but every weight is trained, so ``lr`` defaults to the
    DCGAN rate 2e-4. G and D come back untouched. Codes are drawn as ``fit_inverter`` draws
    them: from a :class:`~discinvert.MappedGenerator`'s own sampler (W or W+ codes through
    its mapping network), else from N(0, I) of ``latent_shape``.

    Returns:
        The encoder with the lowest validation error, in eval mode, on G's device.
    """
    shape = _latent_shape(latent_shape)
    steps = _positive_int(steps, "steps")
    batch_size = _positive_int(batch_size, "batch_size", 2)
    lr = _positive_float(lr, "lr")
    layer_name = _layer_name(discriminator, feature_layer)
    device = _device(generator, discriminator)

    if isinstance(generator, MappedGenerator):
        if shape != tuple(generator.latent_shape):
            raise ValueError(f"latent_shape: expected the generator's space's code shape {tuple(generator.latent_shape)}, "
                             f"got {shape}.")
        sampler = generator.sample  # codes where the mapping network puts them, as fit_inverter draws them
    else:
        def sampler(n: int, rng: torch.Generator, on: torch.device) -> torch.Tensor:  # the prior N(0, I)
            return torch.randn((n, *shape), generator=rng, device=on)
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
            x_val = torch.cat([_generate(generator, z_val[i : i + batch_size]) for i in range(0, validation_size, batch_size)])
            probe = LayerFeatures(trunk, layer_name)
            trunk.eval()
            feature_dim = probe(x_val[:2]).shape[1]
            trunk.train()
        cn = ConnectionNetwork(CNConfig(in_features=feature_dim, out_features=math.prod(shape), hidden=tuple(cn_hidden)))
        encoder = NaiveEncoder(trunk, layer_name, cn, shape).to(device)

        def next_batch() -> tuple[torch.Tensor, torch.Tensor]:
            with torch.no_grad():
                z = sampler(batch_size, train_rng, device)
                x = _generate(generator, z)
            return x, z.reshape(batch_size, -1).float()

        result = train_regressor(
            encoder, FreshBatches(next_batch), (x_val, z_val.reshape(validation_size, -1).float()),
            Plan(steps, lr, batch_size, eval_every), Runtime(device, progress=progress), desc="fit naive encoder",
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
    shape = _latent_shape(latent_shape)
    device = images.device
    rng = torch.Generator(device=device).manual_seed(seed)
    init = torch.randn((images.shape[0], *shape), generator=rng, device=device)
    return optimize_latents(generator, images, init, steps=steps, lr=lr, batch_size=batch_size, progress=progress)
