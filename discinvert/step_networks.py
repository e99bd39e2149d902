"""Iterative feed-forward refinement: step networks that correct a code from what its reconstruction misses.

The connection network gives a first code ``z_0 = CN(D_f(x))``. Each step network then
reads where that code falls short and predicts a correction, without any gradient step:

``z_{t+1} = z_t + S_t([D_f(x) - D_f(G(z_t)),  pool(x - G(z_t)),  z_t])``

that is, D's features of the target against those of the current reconstruction, the
pixel residual (average-pooled to at most :data:`MAX_RESIDUAL_SIDE` per side), and the
current code. Each iteration costs one G pass, one partial D pass and the step's MLP.
The step networks are trained one after the other by
:func:`discinvert.fitting.step_network_stage.train_step_networks` (earlier steps frozen), and
``Inverter.encode(images, iterations=k)`` runs the first ``k`` of them.

A step's output layer starts at zero, so an untrained step changes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from discinvert.conditioning import Conditioning
from discinvert.features import FeatureTap
from discinvert.gan import generate, model_dtype
from discinvert.network import MAX_FEATURES, MAX_LATENT_VALUES, check_depth, check_widths, mlp
from discinvert.argument_checks import is_integer

__all__ = ["DEFAULT_STEP_HIDDEN", "MAX_ITERATIONS", "MAX_RESIDUAL_SIDE", "MAX_RESIDUAL_VALUES", "StepConfig", "StepNetwork", "iterate",
           "residual_shape"]

MAX_RESIDUAL_SIDE = 32
"""The pixel residual of images larger than this (per spatial side) is average-pooled down to it."""

DEFAULT_STEP_HIDDEN: tuple[int, ...] = (512,)
"""A step network's hidden widths unless told otherwise (:class:`StepConfig`, ``fit_inverter(step_hidden=...)``)."""

MAX_ITERATIONS = 64
"""Most step networks an inverter may have (each costs a G pass per ``encode``; a few are the useful range)."""

MAX_RESIDUAL_VALUES = 2**28
"""Most values of a step's pixel residual (images read as they are when not ``(C, H, W)``)."""


def residual_shape(image_shape: Sequence[int]) -> tuple[int, ...]:
    """The shape of the pixel residual a step network reads, for images of ``image_shape``.

    Images ``(C, H, W)`` keep their channels; ``H`` and ``W`` above
    :data:`MAX_RESIDUAL_SIDE` are pooled down to it. Other image shapes are read as they are.
    """
    shape = tuple(int(s) for s in image_shape)
    if len(shape) != 3:
        return shape
    c, h, w = shape
    return (c, min(h, MAX_RESIDUAL_SIDE), min(w, MAX_RESIDUAL_SIDE))


def _positive(value: Any, name: str) -> int:
    if not is_integer(value) or value < 1:
        raise ValueError(f"StepConfig.{name}: expected a positive int, got {value!r}.")
    return int(value)


@dataclass(frozen=True)
class StepConfig:
    """Architecture of one step network (every step of an inverter shares it).

    Attributes:
        feature_dim: flattened size of D's feature layer output.
        latent_dim: number of latent values, ``prod(latent_shape)``.
        residual_shape: shape of the pooled pixel residual (see :func:`residual_shape`).
        hidden: widths of the hidden layers.
        batch_norm: BatchNorm1d after each hidden layer.
        negative_slope: slope of the LeakyReLU after each hidden layer.

    Raises:
        ValueError: a size that is not a positive int, more than
            :data:`~discinvert.network.MAX_FEATURES` features,
            :data:`~discinvert.network.MAX_LATENT_VALUES` latent values or
            :data:`MAX_RESIDUAL_VALUES` residual values, more than
            :data:`~discinvert.network.MAX_HIDDEN_LAYERS` hidden layers or one wider than
            :data:`~discinvert.network.MAX_WIDTH`.
    """

    feature_dim: int
    latent_dim: int
    residual_shape: tuple[int, ...]
    hidden: tuple[int, ...] = field(default=DEFAULT_STEP_HIDDEN)
    batch_norm: bool = True
    negative_slope: float = 0.2

    def __post_init__(self) -> None:
        for name, most in (("feature_dim", MAX_FEATURES), ("latent_dim", MAX_LATENT_VALUES)):
            if _positive(getattr(self, name), name) > most:
                raise ValueError(f"StepConfig.{name}: expected at most {most}, got {getattr(self, name)}.")
        for name in ("residual_shape", "hidden"):
            value = getattr(self, name)
            if is_integer(value) or isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
                raise ValueError(f"StepConfig.{name}: expected a sequence of positive ints, got {value!r}.")
            items = tuple(value)
            check_depth(items, f"StepConfig.{name}", "hidden layers" if name == "hidden" else "dimensions")
            if (name == "residual_shape" and not items) or any(not is_integer(v) or v < 1 for v in items):
                raise ValueError(f"StepConfig.{name}: expected a sequence of positive ints, got {value!r}.")
            object.__setattr__(self, name, tuple(int(v) for v in items))
        check_widths(self.hidden, "StepConfig.hidden")
        if math.prod(self.residual_shape) > MAX_RESIDUAL_VALUES:
            raise ValueError(f"StepConfig.residual_shape: expected at most {MAX_RESIDUAL_VALUES} values, got "
                             f"{list(self.residual_shape)}.")
        if not isinstance(self.batch_norm, bool):
            raise ValueError(f"StepConfig.batch_norm: expected a bool, got {self.batch_norm!r}.")
        slope = self.negative_slope
        if not isinstance(slope, (int, float)) or isinstance(slope, bool) or not 0.0 <= slope < 1.0:
            raise ValueError(f"StepConfig.negative_slope: expected a float in [0, 1), got {slope!r}.")
        object.__setattr__(self, "negative_slope", float(slope))

    @property
    def in_features(self) -> int:
        """Size of the step's input: feature difference, pooled residual and code."""
        return self.feature_dim + math.prod(self.residual_shape) + self.latent_dim

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (lists for tuples)."""
        data = asdict(self)
        data["residual_shape"] = list(self.residual_shape)
        data["hidden"] = list(self.hidden)
        return data

    @classmethod
    def from_dict(cls, data: Any) -> "StepConfig":
        """Inverse of :meth:`to_dict`; unknown or missing keys, and the sizes ``__init__`` refuses
        (non-ints, sizes beyond the bounds), raise ``ValueError``."""
        if not isinstance(data, dict):
            raise ValueError(f"step config: expected a JSON object, got {type(data).__name__}.")
        expected = {"feature_dim", "latent_dim", "residual_shape", "hidden", "batch_norm", "negative_slope"}
        if set(data) != expected:
            raise ValueError(f"step config: expected keys {sorted(expected)}, got {sorted(data)}.")
        for key in ("residual_shape", "hidden"):
            if not isinstance(data[key], list):
                raise ValueError(f"step config: expected {key!r} to be a list, got {data[key]!r}.")
        return cls(**{**data, "residual_shape": tuple(data["residual_shape"]), "hidden": tuple(data["hidden"])})


class StepNetwork(nn.Module):
    """One correction: ``(N, in_features)`` step inputs → ``(N, latent_dim)`` change of the code."""

    def __init__(self, config: StepConfig) -> None:
        super().__init__()
        self.config = config
        self.layers = mlp(config.in_features, config.hidden, config.latent_dim, batch_norm=config.batch_norm,
                          negative_slope=config.negative_slope)
        nn.init.zeros_(self.layers[-1].weight)
        nn.init.zeros_(self.layers[-1].bias)  # an untrained step leaves the code as it is

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Map ``(N, in_features)`` inputs (see :func:`step_inputs`) to a ``(N, latent_dim)`` correction."""
        return self.layers(inputs)


def step_inputs(config: StepConfig, target_features: torch.Tensor, images: torch.Tensor,
                current_features: torch.Tensor, current_images: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """A step's input ``(N, in_features)``: feature difference, pooled pixel residual, flat code.

    Args:
        target_features, current_features: ``D_f(x)`` and ``D_f(G(z_t))``, ``(N, feature_dim)``.
        images, current_images: ``x`` and ``G(z_t)``, ``(N, *image_shape)``.
        codes: ``z_t`` flattened, ``(N, latent_dim)``.
    """
    residual = (images.float() - current_images.float())
    if residual.dim() == 4 and tuple(residual.shape[1:]) != config.residual_shape:
        residual = F.adaptive_avg_pool2d(residual, config.residual_shape[1:])
    n = codes.shape[0]
    return torch.cat([(target_features.float() - current_features.float()), residual.reshape(n, -1),
                      codes.float()], dim=1)


def iterate(
    steps: Sequence[StepNetwork],
    generator: nn.Module,
    tap: FeatureTap,
    images: torch.Tensor,
    target_features: torch.Tensor,
    codes: torch.Tensor,
    latent_shape: tuple[int, ...],
    *,
    conditions: torch.Tensor | None = None,
    conditioning: Conditioning | None = None,
) -> torch.Tensor:
    """Run ``steps`` in order from flat codes ``(N, latent_dim)``; the corrected flat codes.

    Grad mode is the caller's: with grad enabled the result is differentiable with respect
    to the steps' weights (and the incoming codes). G and D must be frozen by the caller.
    """
    d_dtype = model_dtype(tap.discriminator)
    for step in steps:
        step_dtype = next(step.parameters()).dtype
        current = generate(generator, codes.reshape(-1, *latent_shape), conditions, conditioning)
        current_features = tap(current.to(d_dtype), conditions)
        inputs = step_inputs(step.config, target_features, images, current_features, current, codes)
        codes = codes + step(inputs.to(step_dtype)).to(codes.dtype)
    return codes
