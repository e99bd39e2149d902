"""Conditional GANs: how to call a G and a D that take more than latents and images.

A class-conditional GAN calls ``G(z, y)`` and ``D(x, y)``. :class:`Conditioning` tells
:func:`discinvert.fit_inverter` how to draw ``y`` while fitting and how to call both
models; :meth:`discinvert.Inverter.encode` then takes the images' conditions as
``conditions=``. The connection network itself still sees only D's features (which
depend on ``y``), as in the paper.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

__all__ = ["Conditioning", "call_with_condition"]

ConditionSampler = Callable[[int, torch.Generator, torch.device], torch.Tensor]


def call_with_condition(model: nn.Module, inputs: torch.Tensor, condition: torch.Tensor) -> Any:
    """The default call: ``model(inputs, condition)``."""
    return model(inputs, condition)


@dataclass(frozen=True)
class Conditioning:
    """How a conditional GAN is driven.

    Attributes:
        sampler: ``sampler(n, generator, device) -> Tensor`` draws ``n`` conditions
            (e.g. class labels of shape ``(n,)``, dtype long) for fitting, using the
            given ``torch.Generator`` so a seeded fit is reproducible.
        call_generator: ``call_generator(G, z, y) -> images``; default ``G(z, y)``.
        call_discriminator: ``call_discriminator(D, x, y)``; default ``D(x, y)``.
            Only the feature layer's output is used: D stops right after it.
    """

    sampler: ConditionSampler
    call_generator: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor] = call_with_condition
    call_discriminator: Callable[[nn.Module, torch.Tensor, torch.Tensor], Any] = call_with_condition
