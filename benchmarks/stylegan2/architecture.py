"""The reference StyleGAN2's training-only helpers (style mixing, the EMA generator), and its architecture.

The architecture itself (``StyleGAN2Config``, ``StyleGAN2Generator``, ``StyleGAN2Discriminator``,
``build_stylegan2``, ``save_stylegan2``, ``load_stylegan2``, ...) lives in the package, in
``discinvert.zoo.stylegan2`` (the zoo entry ``stylegan2-fashion-mnist`` loads it without ``benchmarks/``); it is
re-exported here so that the training script and the benchmarks read it from one place.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from discinvert.zoo.stylegan2 import (
    CONFIG_FILE,
    D_FILE,
    G_FILE,
    MappingNetwork,
    NoiseMode,
    StyleGAN2Config,
    StyleGAN2Discriminator,
    StyleGAN2Generator,
    build_stylegan2,
    load_stylegan2,
    save_stylegan2,
)

__all__ = [
    "CONFIG_FILE",
    "D_FILE",
    "G_FILE",
    "NoiseMode",
    "StyleGAN2Config",
    "StyleGAN2Discriminator",
    "StyleGAN2Generator",
    "build_stylegan2",
    "ema_copy",
    "load_stylegan2",
    "mixed_ws",
    "save_stylegan2",
    "update_ema",
]


def mixed_ws(mapping: MappingNetwork, z: torch.Tensor, *, probability: float, update_w_avg: bool = False) -> torch.Tensor:
    """Style mixing: ``ws`` for ``z`` where, with ``probability``, the codes from a random layer on come from
    another ``z`` (one draw of the crossover layer per batch, as in the paper's code; draws use torch's global RNG).
    """
    ws = mapping(z, update_w_avg=update_w_avg)
    if probability > 0 and float(torch.rand(())) < probability:
        cutoff = int(torch.randint(1, ws.shape[1], ()))
        other = mapping(torch.randn_like(z), update_w_avg=False)
        ws = torch.cat([ws[:, :cutoff], other[:, cutoff:]], dim=1)
    return ws


def ema_copy(generator: StyleGAN2Generator) -> StyleGAN2Generator:
    """A copy of ``generator`` for the moving average of its weights: eval mode, no gradients."""
    ema = copy.deepcopy(generator).eval()
    ema.requires_grad_(False)
    return ema


@torch.no_grad()
def update_ema(ema: nn.Module, generator: nn.Module, beta: float) -> None:
    """``ema``'s parameters move to ``beta * ema + (1 - beta) * generator``; its buffers (``w_avg``, the const
    noise) are copied."""
    for target, source in zip(ema.parameters(), generator.parameters()):
        target.copy_(source.detach().lerp(target, beta))
    for target, source in zip(ema.buffers(), generator.buffers()):
        target.copy_(source)
