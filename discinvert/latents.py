"""Latent priors: where the codes ``z`` that the inverter learns to recover come from."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from discinvert.argument_checks import is_integer

__all__ = ["LatentSampler", "normal_sampler", "parse_latent_shape"]

LatentSampler = Callable[[int, torch.Generator, torch.device], torch.Tensor]
"""``sampler(n, generator, device) -> Tensor`` of shape ``(n, *latent_shape)``.

It must draw its randomness from ``generator`` (a ``torch.Generator`` on ``device``)
so that a seeded fit is reproducible.
"""


def parse_latent_shape(latent_shape: Sequence[int] | int) -> tuple[int, ...]:
    """Normalise ``latent_shape``: an int ``d`` means ``(d,)``.

    Raises:
        ValueError: not a non-empty sequence of positive ints.
    """
    if is_integer(latent_shape):
        latent_shape = (latent_shape,)  # type: ignore[assignment]
    try:
        shape = tuple(latent_shape)
    except TypeError:
        raise ValueError(
            f"latent_shape: expected a tuple of positive ints such as (100,) or (100, 1, 1), "
            f"got {latent_shape!r}."
        ) from None
    if not shape or any(not is_integer(d) or d < 1 for d in shape):
        raise ValueError(
            f"latent_shape: expected a tuple of positive ints such as (100,) or (100, 1, 1), "
            f"got {latent_shape!r}."
        )
    return tuple(int(d) for d in shape)


def normal_sampler(latent_shape: Sequence[int]) -> LatentSampler:
    """The standard prior: ``z ~ N(0, I)`` of shape ``(n, *latent_shape)``, float32."""
    shape = parse_latent_shape(latent_shape)

    def sample(n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
        return torch.randn((n, *shape), generator=generator, device=device)

    return sample
