"""Tiny reference StyleGAN2s for the tests, built as a user would hand one over."""

from __future__ import annotations

import torch
from torch import nn

from discinvert.zoo.stylegan2 import StyleGAN2Config, build_stylegan2


def tiny_stylegan2(config: StyleGAN2Config, *, move_w_avg: bool = True) -> tuple[nn.Module, nn.Module]:
    """``(G, D)`` of ``config`` from torch's global RNG seeded with 0: noise strengths 0.3 (as after training, not
    the initial 0) and, with ``move_w_avg``, ``G.mapping.w_avg`` drawn from N(0, I) (as moved by training).
    Modes as built (train)."""
    torch.manual_seed(0)
    generator, discriminator = build_stylegan2(config)
    with torch.no_grad():
        for name, param in generator.named_parameters():
            if name.endswith("noise_strength"):
                param.fill_(0.3)
        if move_w_avg:
            generator.mapping.w_avg.normal_()
    return generator, discriminator
