"""The connection network (CN): discriminator features → latent code.

The paper's CN is ``FC1024-BN-LeakyReLU, FC1024-BN-LeakyReLU, FC dim(z)``; width,
depth, BatchNorm and the LeakyReLU slope are configurable through :class:`CNConfig`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from discinvert.validation import is_integer

__all__ = ["CNConfig", "ConnectionNetwork", "mlp"]


@dataclass(frozen=True)
class CNConfig:
    """Architecture of a connection network.

    Attributes:
        in_features: flattened size of D's feature layer output.
        out_features: number of latent values, ``prod(latent_shape)``.
        hidden: width of each hidden fully connected layer; ``()`` gives a linear map.
        batch_norm: BatchNorm1d after each hidden layer (the paper's choice).
        negative_slope: slope of the LeakyReLU after each hidden layer.
    """

    in_features: int
    out_features: int
    hidden: tuple[int, ...] = field(default=(1024, 1024))
    batch_norm: bool = True
    negative_slope: float = 0.2

    def __post_init__(self) -> None:
        for name in ("in_features", "out_features"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"CNConfig.{name}: expected a positive int, got {value!r}.")
        if is_integer(self.hidden) or isinstance(self.hidden, (str, bytes)) or not isinstance(self.hidden, Iterable):
            raise ValueError(
                f"cn_hidden: expected a sequence of hidden-layer widths such as (1024, 1024), (256,) for "
                f"one layer or () for a linear map, got {self.hidden!r}."
            )
        hidden = tuple(self.hidden)
        if any(not is_integer(h) or h < 1 for h in hidden):
            raise ValueError(f"cn_hidden: expected positive ints as hidden-layer widths, got {self.hidden!r}.")
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
        """Inverse of :meth:`to_dict`; unknown or missing keys raise ``ValueError``."""
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

    Shared by the connection network and the step networks (:mod:`discinvert.iterative`); the
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
