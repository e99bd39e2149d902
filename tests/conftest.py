"""A zoo of tiny GANs shaped like the ones users bring, and tools to check they come back untouched."""

from __future__ import annotations

import gzip
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from discinvert import Conditioning

LATENT = 8


# ----------------------------------------------------------------------------- generators
class MLPGenerator(nn.Module):
    """Flat latents (N, 8) → flat vectors (N, 16)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(LATENT, 64), nn.BatchNorm1d(64), nn.ReLU(inplace=True), nn.Linear(64, 16), nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class ConvGenerator(nn.Module):
    """4-D latents (N, 8, 1, 1) → images (N, 1, 8, 8) in [-1, 1], DCGAN style with BatchNorm."""

    def __init__(self) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.ConvTranspose2d(LATENT, 32, 4, 1, 0),  # 4x4
            nn.BatchNorm2d(32),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(32, 1, 4, 2, 1),  # 8x8
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() != 4:
            raise ValueError(f"expected (N, {LATENT}, 1, 1) latents, got {tuple(z.shape)}")
        return self.main(z)


class FlatConvGenerator(ConvGenerator):
    """Flat latents (N, 8) → images (N, 1, 8, 8)."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() != 2:
            raise ValueError(f"expected (N, {LATENT}) latents, got {tuple(z.shape)}")
        return self.main(z[:, :, None, None])


class ConditionalGenerator(nn.Module):
    """G(z, y): flat latents (N, 8) and labels (N,) in [0, 4) → images (N, 1, 8, 8)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(4, LATENT)
        self.body = FlatConvGenerator()

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.body(z + self.embed(y))


# ----------------------------------------------------------------------------- discriminators
class MLPDiscriminator(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(16, 128), nn.LeakyReLU(0.2, inplace=True), nn.Linear(128, 128), nn.LeakyReLU(0.2, inplace=True))
        self.head = nn.Linear(128, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def conv_discriminator() -> nn.Sequential:
    """DCGAN-style D as a bare Sequential: layers named by index, BatchNorm, inplace LeakyReLU."""
    return nn.Sequential(
        nn.Conv2d(1, 32, 4, 2, 1),  # 0: 4x4
        nn.LeakyReLU(0.2, inplace=True),  # 1
        nn.Conv2d(32, 64, 3, 1, 1),  # 2
        nn.BatchNorm2d(64),  # 3
        nn.LeakyReLU(0.2, inplace=True),  # 4  <- feature layer
        nn.Conv2d(64, 1, 4, 1, 0),  # 5
        nn.Flatten(),  # 6
    )


class Block(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, 2, 1)
        self.norm = nn.GroupNorm(4, cout)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))


class Critic(nn.Module):
    """WGAN-GP-style critic: no BatchNorm, feature layer nested in blocks (``blocks.1.act``)."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.Sequential(Block(1, 32), Block(32, 64))
        self.head = nn.Linear(64 * 2 * 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(x).flatten(1))


class SpectralDropoutDiscriminator(nn.Module):
    """Spectral norm, Dropout and BatchNorm: the D whose state is easiest to disturb."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            spectral_norm(nn.Conv2d(1, 32, 4, 2, 1)),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Dropout(0.3),
            spectral_norm(nn.Conv2d(32, 64, 3, 1, 1)),
            nn.BatchNorm2d(64),
            nn.LeakyReLU(0.2, inplace=True),
        )
        self.head = nn.Sequential(nn.Dropout(0.3), spectral_norm(nn.Linear(64 * 4 * 4, 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


class ConditionalDiscriminator(nn.Module):
    """D(x, y): projection-style conditional D."""

    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Conv2d(1, 32, 4, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(32, 64, 3, 1, 1), nn.LeakyReLU(0.2))
        self.label = nn.Embedding(4, 1 * 8 * 8)
        self.head = nn.Linear(64 * 4 * 4, 1)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x = x + self.label(y).view(-1, 1, 8, 8)
        return self.head(self.trunk(x).flatten(1))


class TupleLayer(nn.Module):
    """A layer returning (features, aux), as attention or multi-output blocks do."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(32, 64, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.nn.functional.leaky_relu(self.conv(x), 0.2)
        return h, h.mean(dim=(2, 3))


class TupleDiscriminator(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 32, 4, 2, 1), nn.LeakyReLU(0.2))
        self.pair = TupleLayer()
        self.head = nn.Linear(64 * 4 * 4 + 64, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, aux = self.pair(self.stem(x))
        return self.head(torch.cat([h.flatten(1), aux], dim=1))


class MinibatchStd(nn.Module):
    """StyleGAN's minibatch standard deviation: the spread of each group of images, appended as one feature map.

    ``group_size=None`` takes the whole batch as one group; ``strided`` groups every ``N/G``-th image together
    (StyleGAN2's ``x.reshape(G, -1, ...)``), else consecutive images (ProGAN's layout).
    """

    def __init__(self, group_size: int | None = 4, strided: bool = True) -> None:
        super().__init__()
        self.group_size, self.strided = group_size, strided

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = n if self.group_size is None else min(self.group_size, n)
        y = x.reshape(g, n // g, c, h, w) if self.strided else x.reshape(n // g, g, c, h, w).transpose(0, 1)
        y = (y - y.mean(0)).square().mean(0).add(1e-8).sqrt().mean(dim=(1, 2, 3))  # one value per group
        y = y.reshape(1, -1).expand(g, -1) if self.strided else y.reshape(-1, 1).expand(-1, g)
        return torch.cat([x, y.reshape(n, 1, 1, 1).expand(n, 1, h, w)], dim=1)


def minibatch_std_discriminator(group_size: int | None = 4, strided: bool = True) -> nn.Sequential:
    """The test DCGAN's D with a minibatch standard deviation before its last hidden layer ("4"); "1" is per-image.

    The next convolution's weights on the statistic are 10 times their initial size, as a trained D leans on it.
    """
    model = nn.Sequential(
        nn.Conv2d(1, 32, 4, 2, 1),  # 0: 4x4
        nn.LeakyReLU(0.2),  # 1  <- the last per-image layer
        MinibatchStd(group_size, strided),  # 2
        nn.Conv2d(33, 64, 3, 1, 1),  # 3
        nn.LeakyReLU(0.2),  # 4  <- depends on the batch
        nn.Conv2d(64, 1, 4, 1, 0),  # 5
        nn.Flatten(),  # 6
    )
    with torch.no_grad():
        model[3].weight[:, 32].mul_(10.0)
    return model


# ----------------------------------------------------------------------------- the zoo
class BreaksAfter(torch.utils.data.Dataset):
    """The images ``x`` as a data set whose items turn bad (cropped to 4 rows) after ``sound_reads`` reads:
    sound while the real-image stage's split reads them, broken in the middle of the stage."""

    def __init__(self, x: torch.Tensor, sound_reads: int) -> None:
        self.x, self.sound_reads, self.reads = x, sound_reads, 0

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> torch.Tensor:
        self.reads += 1
        return self.x[i, :, :4] if self.reads > self.sound_reads else self.x[i]


def label_sampler(n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.randint(0, 4, (n,), generator=generator, device=device)


@dataclass
class TinyGAN:
    name: str
    generator: nn.Module
    discriminator: nn.Module
    feature_layer: str
    latent_shape: tuple[int, ...]
    conditioning: Conditioning | None = None
    fit_kwargs: dict[str, Any] = field(default_factory=dict)

    def sample(self, n: int, seed: int = 123) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Fresh (z, G(z), y) with G in eval mode, leaving G's mode as it was."""
        rng = torch.Generator().manual_seed(seed)
        z = torch.randn((n, *self.latent_shape), generator=rng)
        y = None if self.conditioning is None else label_sampler(n, rng, torch.device("cpu"))
        was = self.generator.training
        self.generator.eval()
        with torch.no_grad():
            x = self.generator(z) if y is None else self.generator(z, y)
        self.generator.train(was)
        return z, x, y


def _build(name: str) -> TinyGAN:
    torch.manual_seed(0)
    if name == "mlp":
        gan = TinyGAN(name, MLPGenerator(), MLPDiscriminator(), "body.3", (LATENT,))
    elif name == "dcgan":
        gan = TinyGAN(name, ConvGenerator(), conv_discriminator(), "4", (LATENT, 1, 1))
    elif name == "wgan_gp":
        gan = TinyGAN(name, FlatConvGenerator(), Critic(), "blocks.1.act", (LATENT,))
    elif name == "spectral_dropout":
        gan = TinyGAN(name, ConvGenerator(), SpectralDropoutDiscriminator(), "features.5", (LATENT, 1, 1))
    elif name == "conditional":
        gan = TinyGAN(
            name, ConditionalGenerator(), ConditionalDiscriminator(), "trunk.3", (LATENT,),
            conditioning=Conditioning(sampler=label_sampler),
        )
    elif name == "tuple":
        gan = TinyGAN(name, ConvGenerator(), TupleDiscriminator(), "pair", (LATENT, 1, 1))
    else:  # pragma: no cover
        raise KeyError(name)
    # Users hand their models over in train mode.
    gan.generator.train()
    gan.discriminator.train()
    return gan


GAN_NAMES = ["mlp", "dcgan", "wgan_gp", "spectral_dropout", "conditional", "tuple"]


@pytest.fixture(params=GAN_NAMES)
def tiny_gan(request: pytest.FixtureRequest) -> TinyGAN:
    return _build(request.param)


@pytest.fixture
def make_gan() -> Callable[[str], TinyGAN]:
    return _build


# ----------------------------------------------------------------------------- state snapshots
def snapshot(*modules: nn.Module) -> list[dict[str, Any]]:
    """Everything about a model that must come back bit-identical."""
    shots = []
    for module in modules:
        shots.append(
            {
                "state": {k: v.detach().clone() for k, v in module.state_dict(keep_vars=True).items()},
                # The memory layout too: a lever such as channels_last must never convert the user's weights.
                "strides": {k: v.stride() for k, v in module.state_dict(keep_vars=True).items()},
                "buffers": {k: v.detach().clone() for k, v in module.named_buffers()},
                "training": {k: m.training for k, m in module.named_modules()},
                "requires_grad": {k: p.requires_grad for k, p in module.named_parameters()},
                "grads": {k: p.grad for k, p in module.named_parameters()},
            }
        )
    return shots


def hook_counts(module: nn.Module) -> dict[str, int]:
    counts = {}
    for name, sub in module.named_modules():
        n = (
            len(sub._forward_hooks)
            + len(sub._forward_pre_hooks)
            + len(sub._backward_hooks)
            + len(getattr(sub, "_backward_pre_hooks", {}))
            + len(getattr(sub, "_forward_hooks_with_kwargs", {}))
            + len(getattr(sub, "_state_dict_hooks", {}))
            + len(getattr(sub, "_load_state_dict_pre_hooks", {}))
        )
        if n:
            counts[name] = n
    return counts


def assert_untouched(before: list[dict[str, Any]], *modules: nn.Module) -> None:
    after = snapshot(*modules)
    for shot_before, shot_after, module in zip(before, after, modules):
        assert shot_before["state"].keys() == shot_after["state"].keys()
        for key, value in shot_before["state"].items():
            assert torch.equal(value, shot_after["state"][key]), f"{key} changed"
        for key, value in shot_before["buffers"].items():
            assert torch.equal(value, shot_after["buffers"][key]), f"buffer {key} changed"
        assert shot_before["strides"] == shot_after["strides"], "a weight's memory layout changed"
        assert shot_before["training"] == shot_after["training"]
        assert shot_before["requires_grad"] == shot_after["requires_grad"]
        assert all(g is None for g in shot_after["grads"].values()), "a .grad was written"
        assert hook_counts(module) == {}, f"hooks left: {hook_counts(module)}"


def interrupting_sampler(fail_at: int | None = None) -> Callable[[int, torch.Generator, torch.device], torch.Tensor]:
    """A standard-normal ``(n, LATENT, 1, 1)`` latent sampler that raises ``KeyboardInterrupt`` (a Ctrl-C) on its
    ``fail_at``-th call (never when ``None``): interrupts a fit at a known point."""
    calls = {"n": 0}

    def sample(n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
        calls["n"] += 1
        if fail_at is not None and calls["n"] == fail_at:
            raise KeyboardInterrupt
        return torch.randn((n, LATENT, 1, 1), generator=generator, device=device)

    return sample


def write_idx_gz(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array as a gzipped IDX file, the layout of Fashion-MNIST's files (fake data sets in tests)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(gzip.compress(header + array.tobytes()))


def untimed_record(fit: dict) -> dict:
    """``inverter.config.fit`` without what depends on the clock or on resuming: to compare two fits' records."""
    return {k: v for k, v in fit.items() if k not in ("seconds", "history", "resumed_from_step")} | {
        "history": [row[:3] for row in fit["history"]]}
