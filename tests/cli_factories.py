"""Factories for the command-line tests: ``--generator tests.cli_factories:make_generator``.

Each call builds the same tiny GAN (fixed seed, without moving the global RNG), so an
inverter fit for one call's models loads for another call's.
"""

from __future__ import annotations

import torch
from torch import nn

from tests.conftest import LATENT, ConvGenerator, conv_discriminator, minibatch_std_discriminator

__all__ = ["LATENT", "make_discriminator", "make_flat_discriminator", "make_flat_generator", "make_generator",
           "make_minibatch_std_discriminator", "make_shared_activation_discriminator", "not_a_module"]


def make_generator() -> nn.Module:
    """G: latents (N, 8, 1, 1) → images (N, 1, 8, 8) in [-1, 1]."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return ConvGenerator().eval()


def make_minibatch_std_discriminator() -> nn.Module:
    """D with a minibatch standard deviation (layer "2"): layers "2" to "6" depend on the batch, "1" is per-image."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return minibatch_std_discriminator().eval()


def make_shared_activation_discriminator() -> nn.Module:
    """D that runs one LeakyReLU module after both convolutions (``act`` runs twice)."""

    class Shared(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1, self.conv2 = nn.Conv2d(1, 16, 4, 2, 1), nn.Conv2d(16, 32, 4, 2, 1)
            self.act = nn.LeakyReLU(0.2)
            self.head = nn.Linear(32 * 2 * 2, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.act(self.conv2(self.act(self.conv1(x)))).flatten(1))

    return Shared().eval()


def make_discriminator() -> nn.Module:
    """D: a bare Sequential; the feature layer is ``"4"``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        return conv_discriminator().eval()


class _Flatten(nn.Module):
    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).flatten(1)


class _Unflatten(nn.Module):
    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.reshape(-1, 1, 8, 8))


def make_flat_generator() -> nn.Module:
    """An MLP-style G: images as flat vectors (N, 64) that are 8x8 pictures."""
    return _Flatten(make_generator()).eval()


def make_flat_discriminator() -> nn.Module:
    """D for flat (N, 64) images; the feature layer is ``"body.4"``."""
    return _Unflatten(make_discriminator()).eval()


def not_a_module() -> str:
    return "not a module"
