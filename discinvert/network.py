"""The connection network (CN): discriminator features → latent code.

The paper's CN is ``FC1024-BN-LeakyReLU, FC1024-BN-LeakyReLU, FC dim(z)``; width,
depth, BatchNorm and the LeakyReLU slope are configurable through :class:`CNConfig`.
:func:`standardised_inputs` trains a CN on standardised features and folds the statistics into
its first layer afterwards, so the trained CN keeps that shape and reads raw features.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from discinvert.argument_checks import is_integer

__all__ = [
    "DEFAULT_CN_HIDDEN", "MAX_FEATURES", "MAX_HIDDEN_LAYERS", "MAX_LATENT_VALUES", "MAX_WIDTH", "CNConfig", "ConnectionNetwork",
    "check_depth", "check_widths", "feature_statistics", "mlp", "standardised_inputs",
]

DEFAULT_CN_HIDDEN: tuple[int, ...] = (1024, 1024)
"""The CN's hidden widths unless told otherwise (:class:`CNConfig`, ``fit_inverter(cn_hidden=...)``): the paper's
two layers of 1024."""

STD_FLOOR = 0.1
"""Relative deviations below ``STD_FLOOR`` are raised to it: a value (nearly) constant on generated
images is not amplified into a large input where real images move it."""

# Bounds on the sizes a config may give, checked before anything is built: a file's config must not make
# the loader build (even on the meta device) networks of absurd sizes or depths. Generous for real GANs.
MAX_HIDDEN_LAYERS = 64
"""Most hidden layers of a CN or step network (the paper's CN has 2)."""
MAX_WIDTH = 65_536
"""Widest hidden layer (the paper's CN: 1024)."""
MAX_FEATURES = 2**27
"""Most feature values a CN reads (134,217,728; a StyleGAN D layer at 1024 px gives a few million)."""
MAX_LATENT_VALUES = 2**24
"""Most values of one latent code (16,777,216; StyleGAN's W+ at 1024 px has 9,216)."""


def check_depth(items: tuple[Any, ...], name: str, what: str = "hidden layers") -> None:
    """``ValueError`` unless ``items`` has at most :data:`MAX_HIDDEN_LAYERS` entries (checked first: the
    message of a later check quotes them)."""
    if len(items) > MAX_HIDDEN_LAYERS:
        raise ValueError(f"{name}: expected at most {MAX_HIDDEN_LAYERS} {what}, got {len(items)}.")


def check_widths(hidden: tuple[int, ...], name: str) -> None:
    """``ValueError`` unless every width in ``hidden`` (positive ints) is at most :data:`MAX_WIDTH`."""
    widest = max(hidden, default=0)
    if widest > MAX_WIDTH:
        raise ValueError(f"{name}: expected hidden-layer widths of at most {MAX_WIDTH}, got {widest}.")


@dataclass(frozen=True)
class CNConfig:
    """Architecture of a connection network.

    Attributes:
        in_features: flattened size of D's feature layer output.
        out_features: number of latent values, ``prod(latent_shape)``.
        hidden: width of each hidden fully connected layer; ``()`` gives a linear map.
        batch_norm: BatchNorm1d after each hidden layer (the paper's choice).
        negative_slope: slope of the LeakyReLU after each hidden layer.

    Raises:
        ValueError: a size that is not a positive int (a float such as ``1e30`` included), more
            than :data:`MAX_FEATURES` inputs or :data:`MAX_LATENT_VALUES` outputs, more than
            :data:`MAX_HIDDEN_LAYERS` hidden layers or one wider than :data:`MAX_WIDTH`.
    """

    in_features: int
    out_features: int
    hidden: tuple[int, ...] = field(default=DEFAULT_CN_HIDDEN)
    batch_norm: bool = True
    negative_slope: float = 0.2

    def __post_init__(self) -> None:
        for name, most in (("in_features", MAX_FEATURES), ("out_features", MAX_LATENT_VALUES)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"CNConfig.{name}: expected a positive int, got {value!r}.")
            if value > most:
                raise ValueError(f"CNConfig.{name}: expected at most {most}, got {value}.")
        if is_integer(self.hidden) or isinstance(self.hidden, (str, bytes)) or not isinstance(self.hidden, Iterable):
            raise ValueError(
                f"cn_hidden: expected a sequence of hidden-layer widths such as (1024, 1024), (256,) for "
                f"one layer or () for a linear map, got {self.hidden!r}."
            )
        hidden = tuple(self.hidden)
        check_depth(hidden, "cn_hidden")
        if any(not is_integer(h) or h < 1 for h in hidden):
            raise ValueError(f"cn_hidden: expected positive ints as hidden-layer widths, got {self.hidden!r}.")
        check_widths(hidden, "cn_hidden")
        object.__setattr__(self, "hidden", tuple(int(h) for h in hidden))
        if not isinstance(self.batch_norm, bool):
            raise ValueError(f"CNConfig.batch_norm: expected a bool, got {self.batch_norm!r}.")
        slope = self.negative_slope
        if not isinstance(slope, (int, float)) or isinstance(slope, bool) or not 0.0 <= slope < 1.0:
            raise ValueError(f"CNConfig.negative_slope: expected a float in [0, 1), got {slope!r}.")
        object.__setattr__(self, "negative_slope", float(slope))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (lists for tuples)."""
        data = asdict(self)
        data["hidden"] = list(self.hidden)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CNConfig":
        """Inverse of :meth:`to_dict`; unknown or missing keys, and the sizes ``__init__`` refuses
        (non-ints, sizes beyond the bounds), raise ``ValueError``."""
        if not isinstance(data, dict):
            raise ValueError(f"CN config: expected a JSON object, got {type(data).__name__}.")
        expected = {"in_features", "out_features", "hidden", "batch_norm", "negative_slope"}
        if set(data) != expected:
            raise ValueError(
                f"CN config: expected keys {sorted(expected)}, got {sorted(data)}."
            )
        hidden = data["hidden"]
        if not isinstance(hidden, list):
            raise ValueError(f"CN config: expected 'hidden' to be a list, got {hidden!r}.")
        return cls(
            in_features=data["in_features"],
            out_features=data["out_features"],
            hidden=tuple(hidden),
            batch_norm=data["batch_norm"],
            negative_slope=data["negative_slope"],
        )


def mlp(in_features: int, hidden: tuple[int, ...], out_features: int, *, batch_norm: bool,
        negative_slope: float) -> nn.Sequential:
    """``Linear[-BatchNorm1d]-LeakyReLU`` per hidden width, then a ``Linear`` to ``out_features``.

    Shared by the connection network and the step networks (:mod:`discinvert.step_networks`); the
    layer indices are the state-dict keys of saved inverters, so their order is part of the format.
    """
    layers: list[nn.Module] = []
    width = in_features
    for size in hidden:
        layers.append(nn.Linear(width, size))
        if batch_norm:
            layers.append(nn.BatchNorm1d(size))
        layers.append(nn.LeakyReLU(negative_slope))
        width = size
    layers.append(nn.Linear(width, out_features))
    return nn.Sequential(*layers)


class ConnectionNetwork(nn.Module):
    """MLP from features ``(N, in_features)`` to flat latents ``(N, out_features)``."""

    def __init__(self, config: CNConfig) -> None:
        super().__init__()
        self.config = config
        self.layers = mlp(config.in_features, config.hidden, config.out_features, batch_norm=config.batch_norm,
                          negative_slope=config.negative_slope)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Map ``(N, in_features)`` features to ``(N, out_features)`` flat latents."""
        return self.layers(features)


def feature_statistics(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-value mean and relative deviation of ``features`` ``(N, F)``, ``N >= 2``: float32 ``(F,)`` each.

    The deviation of each value is divided by the median one (the mean one if the median is 0) and
    floored at :data:`STD_FLOOR`, so ``(f - mean) / scale`` equalises the values' spreads but keeps
    the features' overall scale: the folded weights stay within ``1 / STD_FLOOR`` times the trained
    ones, whatever the scale of D's features. In front of the CN's first BatchNorm the overall scale
    does not change training; the spreads' inequality does.
    """
    if features.dim() != 2 or features.shape[0] < 2:
        raise ValueError(f"features: expected a (N, F) tensor with N >= 2, got shape {tuple(features.shape)}.")
    values = features.detach().float()
    mean, std = values.mean(0), values.std(0)
    reference = float(std.median())
    if not reference > 0.0:
        reference = float(std.mean())
    if not reference > 0.0:  # every value constant: nothing to equalise
        return mean, torch.ones_like(std)
    return mean, (std / reference).clamp_min(STD_FLOOR)


@contextlib.contextmanager
def standardised_inputs(cn: ConnectionNetwork, mean: torch.Tensor, std: torch.Tensor) -> Iterator[None]:
    """Inside the block ``cn`` maps ``(f - mean) / std`` (a forward pre-hook, no new state); on leaving it
    without an exception the statistics are folded into the first linear layer (``W / std`` and
    ``b - (W / std) · mean``), so ``cn`` then maps raw features ``f`` as it mapped them inside.

    Args:
        cn: the network being trained; its first layer must be a ``Linear`` (every :func:`mlp` is).
        mean, std: ``(in_features,)`` float32 on ``cn``'s device, ``std > 0`` (the relative deviations
            of :func:`feature_statistics`).

    On an exception the hook is removed and the weights are left as they were (they read standardised
    features). A state dict copied inside the block holds those standardised-space weights.
    """
    first = cn.layers[0]
    if not isinstance(first, nn.Linear) or mean.shape != (first.in_features,) or std.shape != mean.shape:
        raise ValueError(f"standardised_inputs: expected a CN starting with a Linear and (in_features,) statistics, "
                         f"got {type(first).__name__} and shapes {tuple(mean.shape)}, {tuple(std.shape)}.")

    def standardise(_module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
        return ((args[0].float() - mean) / std, *args[1:])

    handle = cn.register_forward_pre_hook(standardise)
    try:
        yield
    finally:
        handle.remove()
    with torch.no_grad():
        scaled = first.weight.float() / std
        first.bias.copy_(first.bias.float() - scaled @ mean)
        first.weight.copy_(scaled)
