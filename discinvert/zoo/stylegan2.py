"""A StyleGAN2-class generator and discriminator for 32x32 single-channel images, written from the StyleGAN2 paper.

The architecture of the zoo entry ``stylegan2-fashion-mnist``, trained by the repository's
``benchmarks/stylegan2/train.py`` (whose training-only helpers, style mixing and the EMA, stay there).

Sized for Fashion-MNIST padded from 28x28 to 32x32 (values in ``[-1, 1]``, background -1) and for training on
2 CPU cores. The modules follow the split and the names researchers' StyleGAN2 code has, so that code written
for NVIDIA's modules reads ours alike:

* ``G.mapping(z) -> ws``: ``z`` of shape ``(N, z_dim)`` is normalised to unit second moment (pixel norm), passes
  ``mapping_layers`` equalised-learning-rate linear layers (learning rate multiplier 0.01) and comes back
  broadcast to every synthesis layer, ``(N, num_ws, w_dim)``. ``G.mapping.w_avg`` (a buffer, moved only when
  ``update_w_avg=True``, which training asks for) is the running mean of ``w``; ``truncation_psi < 1`` pulls the
  first ``truncation_cutoff`` codes (all by default) toward it.
* ``G.synthesis(ws, noise_mode=...) -> images``: ``ws`` of shape ``(N, num_ws, w_dim)`` (the W+ space: one style
  per layer) drive a learned constant 4x4 input through modulated and demodulated 3x3 convolutions, two per
  resolution (one at 4x4), upsampling bilinearly by 2 before the first of each pair; each conv adds a noise image
  times a learned per-layer strength; each resolution adds its own 1x1 modulated (not demodulated) "to RGB"
  output to the upsampled sum of the coarser ones (skip architecture). ``noise_mode``: ``"random"`` draws fresh
  noise from torch's global RNG on every call, ``"const"`` uses each layer's fixed noise buffer (drawn at
  construction, saved with the weights), ``"none"`` adds none. Output ``(N, 1, 32, 32)``, not clamped.
* ``G(z)`` is ``G.synthesis(G.mapping(z))``: one ``w`` for all layers. With resolutions 4, 8, 16, 32 there are 7 convs and one more code for the last to-RGB:
  ``num_ws = 2 * log2(32) - 2 = 8`` (the to-RGB of a resolution shares its code with the next resolution's first
  conv, as in the paper's code).

Discriminator (residual), names as in NVIDIA's code::

    b32: fromrgb 1x1 -> C32, then the residual block below          (32 -> 16)
    b16, b8: skip = 1x1 conv (no bias) of the 2x average-pooled input;
             main = conv0 3x3 (C -> C), conv1 3x3 (C -> C') after a 2x average pool;
             output (skip + main) / sqrt(2)                         (16 -> 8, 8 -> 4)
    b4 (epilogue): mbstd (minibatch standard deviation, groups of 4, one channel) -> conv 3x3 (C4 + 1 -> C4)
                   -> fc (16 C4 -> C4) -> out (C4 -> 1)

Every weight uses the equalised learning rate (drawn from N(0, 1), scaled by ``1 / sqrt(fan_in)`` in the forward
pass) and every activation is ``sqrt(2) * leaky_relu(x, 0.2)``. ``D(images)`` returns logits ``(N, 1)``.
Every layer from ``b4.mbstd`` on sees the other images in its batch; ``b8`` (the block whose output the
statistic reads) is the last whose output is per-image.

Simplifications against the paper, for 2 CPU cores: bilinear upsampling and average-pool downsampling instead of
the FIR (blur) filters, no path length regulariser (in training), a 4-layer mapping network and small widths.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from discinvert.files import parse_json

__all__ = [
    "CONFIG_FILE",
    "D_FILE",
    "FORMAT",
    "FORMATS",
    "G_FILE",
    "LEGACY_FORMAT",
    "MappingNetwork",
    "NoiseMode",
    "StyleGAN2Config",
    "StyleGAN2Discriminator",
    "StyleGAN2Generator",
    "build_stylegan2",
    "check_inversion",
    "load_stylegan2",
    "read_document",
    "save_stylegan2",
]

NoiseMode = Literal["random", "const", "none"]
_NOISE_MODES: Final[tuple[str, ...]] = ("random", "const", "none")
_SLOPE: Final[float] = 0.2
_GAIN: Final[float] = math.sqrt(2.0)

G_FILE: Final[str] = "generator.safetensors"
D_FILE: Final[str] = "discriminator.safetensors"
CONFIG_FILE: Final[str] = "config.json"
FORMAT: Final[str] = "discinvert.stylegan2"
"""The ``format`` of a GAN folder :func:`save_stylegan2` writes."""
LEGACY_FORMAT: Final[str] = "benchmarks.stylegan2"
"""The same layout, as the reference training wrote it before the architecture moved into the package."""
FORMATS: Final[tuple[str, ...]] = (FORMAT, LEGACY_FORMAT)
_FORMAT_VERSION: Final[int] = 1


@dataclass(frozen=True)
class StyleGAN2Config:
    """Sizes of the reference StyleGAN2.

    Attributes:
        z_dim: size of ``z ~ N(0, I)``.
        w_dim: size of each style code ``w``.
        mapping_layers: linear layers of the mapping network.
        channels: feature maps at 4x4, 8x8, 16x16 and 32x32, for G and D alike.
        image_channels: 1 for Fashion-MNIST.
        mbstd_group: images per group of the minibatch standard deviation (the largest divisor of the batch up to
            this many).
        seed_noise: seed of the fixed noise images that ``noise_mode="const"`` uses.
    """

    z_dim: int = 128
    w_dim: int = 128
    mapping_layers: int = 4
    channels: tuple[int, ...] = (128, 128, 64, 32)
    image_channels: int = 1
    mbstd_group: int = 4
    seed_noise: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(self.channels))
        for name in ("z_dim", "w_dim", "mapping_layers", "image_channels", "mbstd_group"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected a positive int, received {value!r}")
        if len(self.channels) != 4 or not all(isinstance(c, int) and not isinstance(c, bool) and c > 0
                                               for c in self.channels):
            raise ValueError(f"channels: expected 4 positive ints (4x4, 8x8, 16x16, 32x32), received {self.channels!r}")

    @property
    def resolutions(self) -> tuple[int, ...]:
        return tuple(4 * 2**i for i in range(len(self.channels)))

    @property
    def resolution(self) -> int:
        return self.resolutions[-1]

    @property
    def num_ws(self) -> int:
        """Style codes the synthesis network reads: one per conv (7) plus one for the last to-RGB."""
        return 2 * len(self.channels)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["channels"] = list(self.channels)
        return data

    @classmethod
    def from_dict(cls, data: object) -> StyleGAN2Config:
        if not isinstance(data, dict):
            raise ValueError(f"config: expected an object, received {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"config: unknown keys {unknown}; expected some of {sorted(names)}")
        return cls(**{k: tuple(v) if k == "channels" else v for k, v in data.items()})


def _unconditional(c: object) -> None:
    if c is not None:
        raise ValueError(f"c: this GAN is unconditional, expected None, received {type(c).__name__}")


def _act(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, _SLOPE) * _GAIN


# --------------------------------------------------------------------------- equalised layers
class EqualLinear(nn.Module):
    """Linear layer with the equalised learning rate; ``activation`` adds ``sqrt(2) * leaky_relu``."""

    def __init__(self, in_features: int, out_features: int, *, bias_init: float = 0.0, lr_mul: float = 1.0,
                 activation: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init) / lr_mul))
        self.weight_gain = lr_mul / math.sqrt(in_features)
        self.lr_mul = lr_mul
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.linear(x, self.weight * self.weight_gain, self.bias * self.lr_mul)
        return _act(x) if self.activation else x


class EqualConv2d(nn.Module):
    """Conv layer with the equalised learning rate, ``down``: a 2x average pool first; ``activation`` as above."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, bias: bool = True,
                 activation: bool = True, down: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size**2)
        self.activation, self.down, self.padding = activation, down, kernel_size // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.down:
            x = F.avg_pool2d(x, 2)
        x = F.conv2d(x, self.weight * self.weight_gain, self.bias, padding=self.padding)
        return _act(x) if self.activation else x


# --------------------------------------------------------------------------- generator
class MappingNetwork(nn.Module):
    """``z (N, z_dim) -> ws (N, num_ws, w_dim)``: pixel norm, then an MLP; tracks ``w_avg`` for truncation."""

    def __init__(self, config: StyleGAN2Config, *, lr_mul: float = 0.01, w_avg_beta: float = 0.995) -> None:
        super().__init__()
        self.z_dim, self.w_dim, self.num_ws = config.z_dim, config.w_dim, config.num_ws
        self.w_avg_beta = w_avg_beta
        sizes = [config.z_dim] + [config.w_dim] * config.mapping_layers
        for i in range(config.mapping_layers):
            setattr(self, f"fc{i}", EqualLinear(sizes[i], sizes[i + 1], lr_mul=lr_mul, activation=True))
        self.num_layers = config.mapping_layers
        self.register_buffer("w_avg", torch.zeros(config.w_dim))

    def forward(self, z: torch.Tensor, c: None = None, *, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None, update_w_avg: bool = False) -> torch.Tensor:
        """Map ``z`` of shape ``(N, z_dim)`` to ``ws`` of shape ``(N, num_ws, w_dim)`` (one ``w`` repeated).

        ``c``: the class label of a conditional GAN; this one is unconditional, so only ``None`` (accepted so that
        code written for NVIDIA's ``G.mapping(z, c)`` runs unchanged).

        ``truncation_psi``: each of the first ``truncation_cutoff`` codes (all for ``None``) becomes
        ``w_avg + psi * (w - w_avg)``. ``update_w_avg``: move ``w_avg`` toward this batch's mean ``w`` (training).

        Raises:
            ValueError: ``z`` is not ``(N, z_dim)``, or ``c`` is not ``None``.
        """
        _unconditional(c)
        if z.dim() != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z: expected shape (N, {self.z_dim}), received {tuple(z.shape)}")
        x = z * (z.square().mean(dim=1, keepdim=True) + 1e-8).rsqrt()
        for i in range(self.num_layers):
            x = getattr(self, f"fc{i}")(x)
        if update_w_avg:
            with torch.no_grad():
                self.w_avg.copy_(x.detach().mean(0).lerp(self.w_avg, self.w_avg_beta))
        ws = x.unsqueeze(1).repeat(1, self.num_ws, 1)
        if truncation_psi != 1:
            cutoff = self.num_ws if truncation_cutoff is None else truncation_cutoff
            ws[:, :cutoff] = self.w_avg.lerp(ws[:, :cutoff], truncation_psi)
        return ws


class ModulatedConv2d(nn.Module):
    """A conv whose weights each sample's style scales per input channel (modulation), then renormalises per output
    channel (demodulation); ``up`` upsamples the input bilinearly by 2 first."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, w_dim: int, *, demodulate: bool = True,
                 up: bool = False) -> None:
        super().__init__()
        self.affine = EqualLinear(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size**2)
        self.demodulate, self.up, self.padding = demodulate, up, kernel_size // 2

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        # Modulating the activations instead of the weights is the same product (one shared conv instead of a
        # grouped conv per sample) and several times faster on a CPU.
        styles = self.affine(w)  # (N, C_in)
        weight = self.weight * self.weight_gain
        if self.up:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        x = F.conv2d(x * styles[:, :, None, None], weight, padding=self.padding)
        if self.demodulate:  # 1 / ||w_ij * s_j||_2 over j and the kernel, per sample and output channel
            energy = styles.square() @ weight.square().sum(dim=(2, 3)).t()  # (N, C_out)
            x = x * (energy + 1e-8).rsqrt()[:, :, None, None]
        return x


class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv, plus noise times a learned strength, plus bias, then the activation."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, *, up: bool,
                 noise: torch.Tensor) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, out_channels, 3, w_dim, up=up)
        self.noise_strength = nn.Parameter(torch.zeros(()))
        self.register_buffer("noise_const", noise.reshape(1, 1, resolution, resolution).clone())
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.resolution = resolution

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: NoiseMode) -> torch.Tensor:
        x = self.conv(x, w)
        if noise_mode == "random":
            x = x + torch.randn(x.shape[0], 1, self.resolution, self.resolution, device=x.device,
                                dtype=x.dtype) * self.noise_strength
        elif noise_mode == "const":
            x = x + self.noise_const * self.noise_strength
        return _act(x + self.bias[None, :, None, None])


class ToRGB(nn.Module):
    """1x1 modulated conv without demodulation, plus bias: one resolution's contribution to the image."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, out_channels, 1, w_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return self.conv(x, w) + self.bias[None, :, None, None]


class SynthesisBlock(nn.Module):
    """One resolution: (the constant input at 4x4, else conv0 with 2x upsampling), conv1, to-RGB added to the
    upsampled image so far."""

    def __init__(self, in_channels: int, out_channels: int, config: StyleGAN2Config, resolution: int,
                 noise: torch.Generator) -> None:
        super().__init__()
        self.first = in_channels == 0
        draw = lambda: torch.randn(resolution, resolution, generator=noise)  # noqa: E731
        if self.first:
            self.const = nn.Parameter(torch.randn(out_channels, resolution, resolution))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, config.w_dim, resolution, up=True, noise=draw())
        self.conv1 = SynthesisLayer(out_channels, out_channels, config.w_dim, resolution, up=False, noise=draw())
        self.torgb = ToRGB(out_channels, config.image_channels, config.w_dim)
        self.num_conv = 1 if self.first else 2

    def forward(self, x: torch.Tensor | None, img: torch.Tensor | None, ws: torch.Tensor,
                noise_mode: NoiseMode) -> tuple[torch.Tensor, torch.Tensor]:
        """``ws``: ``(N, num_conv + 1, w_dim)``, the codes of this block's convs and its to-RGB."""
        if self.first:
            x = self.const[None].expand(ws.shape[0], -1, -1, -1)
        else:
            x = self.conv0(x, ws[:, 0], noise_mode)
        x = self.conv1(x, ws[:, self.num_conv - 1], noise_mode)
        rgb = self.torgb(x, ws[:, self.num_conv])
        if img is not None:
            rgb = rgb + F.interpolate(img, scale_factor=2, mode="bilinear", align_corners=False)
        return x, rgb


class SynthesisNetwork(nn.Module):
    """``ws (N, num_ws, w_dim) -> images (N, image_channels, 32, 32)``; see the module's docstring."""

    def __init__(self, config: StyleGAN2Config) -> None:
        super().__init__()
        self.w_dim, self.num_ws = config.w_dim, config.num_ws
        self.img_resolution, self.img_channels = config.resolution, config.image_channels
        noise = torch.Generator().manual_seed(config.seed_noise)  # the const noise does not touch the global RNG
        self.resolutions = config.resolutions
        previous = 0
        for res, width in zip(config.resolutions, config.channels):
            setattr(self, f"b{res}", SynthesisBlock(previous, width, config, res, noise))
            previous = width

    def forward(self, ws: torch.Tensor, *, noise_mode: NoiseMode = "random") -> torch.Tensor:
        """Images for the style codes ``ws`` (one per layer).

        Raises:
            ValueError: ``ws`` is not ``(N, num_ws, w_dim)`` or ``noise_mode`` is not one of
                ``"random"``, ``"const"``, ``"none"``.
        """
        if ws.dim() != 3 or tuple(ws.shape[1:]) != (self.num_ws, self.w_dim):
            raise ValueError(f"ws: expected shape (N, {self.num_ws}, {self.w_dim}), received {tuple(ws.shape)}")
        if noise_mode not in _NOISE_MODES:
            raise ValueError(f"noise_mode: expected one of {_NOISE_MODES}, received {noise_mode!r}")
        x = img = None
        index = 0
        for res in self.resolutions:
            block: SynthesisBlock = getattr(self, f"b{res}")
            x, img = block(x, img, ws[:, index : index + block.num_conv + 1], noise_mode)
            index += block.num_conv
        return img


class StyleGAN2Generator(nn.Module):
    """``G(z) = G.synthesis(G.mapping(z))``; see the module's docstring.

    Attributes (as NVIDIA's code names them): ``z_dim``, ``w_dim``, ``num_ws``, ``img_resolution``,
    ``img_channels``, ``mapping``, ``synthesis``.
    """

    def __init__(self, config: StyleGAN2Config) -> None:
        super().__init__()
        self.config = config
        self.z_dim, self.w_dim, self.num_ws = config.z_dim, config.w_dim, config.num_ws
        self.img_resolution, self.img_channels = config.resolution, config.image_channels
        self.synthesis = SynthesisNetwork(config)
        self.mapping = MappingNetwork(config)

    @property
    def w_avg(self) -> torch.Tensor:
        """The running mean of ``w`` (``G.mapping.w_avg``), shape ``(w_dim,)``."""
        return self.mapping.w_avg

    def forward(self, z: torch.Tensor, c: None = None, *, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None, noise_mode: NoiseMode = "random") -> torch.Tensor:
        """Images ``(N, image_channels, 32, 32)`` (nominally in ``[-1, 1]``, not clamped) for ``z`` ``(N, z_dim)``;
        ``c`` as in :meth:`MappingNetwork.forward`."""
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, noise_mode=noise_mode)


# --------------------------------------------------------------------------- discriminator
class MinibatchStd(nn.Module):
    """Appends the mean standard deviation over each group of images (every ``N/G``-th image in one group) as one
    more feature map. The group has the largest size up to ``group_size`` that divides the batch."""

    def __init__(self, group_size: int) -> None:
        super().__init__()
        self.group_size = group_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = min(self.group_size, n)
        while n % g:
            g -= 1
        y = x.reshape(g, n // g, c, h, w)
        y = (y - y.mean(0)).square().mean(0).add(1e-8).sqrt().mean(dim=(1, 2, 3))  # (N/G,)
        y = y.reshape(1, -1, 1, 1, 1).expand(g, -1, 1, h, w).reshape(n, 1, h, w)
        return torch.cat([x, y], dim=1)


class DiscriminatorBlock(nn.Module):
    """Residual block halving the resolution; ``fromrgb`` on the first block turns images into features."""

    def __init__(self, in_channels: int, out_channels: int, *, image_channels: int | None) -> None:
        super().__init__()
        if image_channels is not None:
            self.fromrgb = EqualConv2d(image_channels, in_channels, 1)
        self.skip = EqualConv2d(in_channels, out_channels, 1, bias=False, activation=False, down=True)
        self.conv0 = EqualConv2d(in_channels, in_channels, 3)
        self.conv1 = EqualConv2d(in_channels, out_channels, 3, down=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if hasattr(self, "fromrgb"):
            x = self.fromrgb(x)
        y = self.skip(x)
        x = self.conv1(self.conv0(x))
        return (y + x) * math.sqrt(0.5)


class DiscriminatorEpilogue(nn.Module):
    """At 4x4: minibatch standard deviation, a 3x3 conv, a dense layer and the logit."""

    def __init__(self, channels: int, resolution: int, group_size: int) -> None:
        super().__init__()
        self.mbstd = MinibatchStd(group_size)
        self.conv = EqualConv2d(channels + 1, channels, 3)
        self.fc = EqualLinear(channels * resolution**2, channels, activation=True)
        self.out = EqualLinear(channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.fc(self.conv(self.mbstd(x)).flatten(1)))


class StyleGAN2Discriminator(nn.Module):
    """Residual D: ``D(images (N, image_channels, 32, 32)) -> logits (N, 1)``; see the module's docstring."""

    def __init__(self, config: StyleGAN2Config) -> None:
        super().__init__()
        self.config = config
        widths = dict(zip(config.resolutions, config.channels))
        resolutions = config.resolutions[::-1]  # 32, 16, 8, 4
        for i, res in enumerate(resolutions[:-1]):
            block = DiscriminatorBlock(widths[res], widths[res // 2],
                                       image_channels=config.image_channels if i == 0 else None)
            setattr(self, f"b{res}", block)
        self.b4 = DiscriminatorEpilogue(widths[4], 4, config.mbstd_group)
        self.block_names = tuple(f"b{res}" for res in resolutions)

    def forward(self, img: torch.Tensor, c: None = None) -> torch.Tensor:
        """Raises ``ValueError`` for images of another shape, or a ``c`` (class label) other than ``None``."""
        _unconditional(c)
        expected = (self.config.image_channels, self.config.resolution, self.config.resolution)
        if img.dim() != 4 or tuple(img.shape[1:]) != expected:
            raise ValueError(f"img: expected shape (N, {', '.join(map(str, expected))}), received {tuple(img.shape)}")
        x = img
        for name in self.block_names:
            x = getattr(self, name)(x)
        return x


# --------------------------------------------------------------------------- build, EMA, save, load
def build_stylegan2(config: StyleGAN2Config) -> tuple[StyleGAN2Generator, StyleGAN2Discriminator]:
    """A fresh ``(G, D)`` in train mode on the CPU; weights from torch's global RNG (seed it first)."""
    if not isinstance(config, StyleGAN2Config):
        raise ValueError(f"config: expected a StyleGAN2Config, received {type(config).__name__}")
    return StyleGAN2Generator(config), StyleGAN2Discriminator(config)


# --------------------------------------------------------------------------- save, load
def _state(module: nn.Module, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    return {k: (v.detach().to(dtype) if v.is_floating_point() else v.detach()).cpu().contiguous().clone()
            for k, v in module.state_dict().items()}


def save_stylegan2(directory: str | os.PathLike[str], generator: nn.Module, discriminator: nn.Module | None,
                   config: StyleGAN2Config, *, extra: dict[str, Any] | None = None,
                   dtype: torch.dtype = torch.float32, inversion: dict[str, Any] | None = None) -> Path:
    """Write ``generator.safetensors``, ``discriminator.safetensors`` and ``config.json`` (nothing pickled).

    Args:
        directory: the folder (made if missing).
        generator: the G to use (the EMA copy after training).
        discriminator: its D; ``None`` saves G alone (no ``discriminator.safetensors``; one left by an earlier
            save is removed, as it does not belong to this G).
        config: their sizes.
        extra: a JSON object kept as is (the training record).
        dtype: ``torch.float32`` or ``torch.float16`` for every floating tensor; :func:`load_stylegan2`
            up-casts to float32.
        inversion: how discinvert inverts this GAN, for the zoo (:func:`check_inversion`): ``space``
            (``"z"``, ``"w"`` or ``"w+"``), ``noise_mode``, ``truncation_psi`` and ``feature_layer``; ``None``:
            none recorded.

    Raises:
        ValueError: another dtype, or an ``inversion`` record that :func:`check_inversion` refuses.
    """
    if dtype not in (torch.float32, torch.float16):
        raise ValueError(f"dtype: expected torch.float32 or torch.float16, received {dtype}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for module, name in ((generator, G_FILE), (discriminator, D_FILE)):
        if module is not None:
            save_file(_state(module, dtype), str(directory / name), metadata={"format": "pt"})
    if discriminator is None:
        (directory / D_FILE).unlink(missing_ok=True)
    document: dict[str, Any] = {"format": FORMAT, "format_version": _FORMAT_VERSION, "config": config.to_dict(),
                                "dtype": str(dtype).removeprefix("torch.")}
    if inversion is not None:
        document["inversion"] = check_inversion(inversion, source="inversion")
    document["extra"] = extra or {}
    (directory / CONFIG_FILE).write_text(json.dumps(document, indent=2, allow_nan=False) + "\n")
    return directory


_INVERSION_KEYS: Final[dict[str, tuple[type, ...]]] = {
    "space": (str,), "noise_mode": (str,), "truncation_psi": (int, float), "feature_layer": (str,)}


def check_inversion(record: object, *, source: str) -> dict[str, Any]:
    """A GAN folder's ``inversion`` record, checked: ``{"space": "z"|"w"|"w+", "noise_mode": "const"|"none",
    "truncation_psi": float in (0, 1], "feature_layer": str}`` (fixed noise: codes and images reproducible).

    Raises:
        ValueError: naming ``source``, a missing or unknown key or a value out of range.
    """
    if not isinstance(record, dict) or set(record) != set(_INVERSION_KEYS):
        found = sorted(record) if isinstance(record, dict) else type(record).__name__
        raise ValueError(f"{source}: expected an object with keys {sorted(_INVERSION_KEYS)}, received {found}")
    for key, types in _INVERSION_KEYS.items():
        if isinstance(record[key], bool) or not isinstance(record[key], types):
            raise ValueError(f"{source}: {key}: expected {types[0].__name__}, received {record[key]!r}")
    if record["space"] not in ("z", "w", "w+"):
        raise ValueError(f"{source}: space: expected 'z', 'w' or 'w+', received {record['space']!r}")
    if record["noise_mode"] not in ("const", "none"):
        raise ValueError(f"{source}: noise_mode: expected 'const' or 'none' (fixed noise), received "
                         f"{record['noise_mode']!r}")
    if not 0 < float(record["truncation_psi"]) <= 1:
        raise ValueError(f"{source}: truncation_psi: expected a number in (0, 1], received {record['truncation_psi']!r}")
    return dict(record)


def read_document(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """``config.json`` of a folder :func:`save_stylegan2` wrote, checked: format, version, keys.

    Raises:
        FileNotFoundError: ``config.json`` or ``generator.safetensors`` is missing (a folder of G alone has no
            ``discriminator.safetensors``).
        ValueError: another format or version, unknown keys, or a malformed ``inversion`` record.
    """
    directory = Path(directory)
    for path in (directory / CONFIG_FILE, directory / G_FILE):
        if not path.is_file():
            raise FileNotFoundError(f"GAN checkpoint file {path} not found")
    path = directory / CONFIG_FILE
    document = parse_json(path.read_bytes(), source=str(path))
    if not isinstance(document, dict) or document.get("format") not in FORMATS or document.get(
            "format_version") != _FORMAT_VERSION:
        found = (document.get("format"), document.get("format_version")) if isinstance(document, dict) else document
        raise ValueError(f"{path}: expected format {FORMAT!r} (or {LEGACY_FORMAT!r}) version {_FORMAT_VERSION}, "
                         f"received {found!r}")
    unknown = sorted(set(document) - {"format", "format_version", "config", "dtype", "inversion", "extra"})
    if unknown:
        raise ValueError(f"{path}: unknown keys {unknown}")
    if "inversion" in document:
        document["inversion"] = check_inversion(document["inversion"], source=f"{path}: inversion")
    if not isinstance(document.get("extra", {}), dict):
        raise ValueError(f"{path}: expected 'extra' to be an object, received {type(document['extra']).__name__}")
    return document


def _load_strict(module: nn.Module, path: Path) -> None:
    """``module``'s state from ``path``: the same names, shapes and kinds (float or not), up-cast to float32."""
    try:
        state = load_file(str(path))
    except Exception as exc:  # noqa: BLE001 - safetensors reports a damaged file in several ways
        raise ValueError(f"{path}: not a readable safetensors file ({type(exc).__name__}: {exc})") from None
    expected = module.state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(f"{path}: expected the tensors of the config's model; missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}")
    for name, tensor in expected.items():
        if tuple(state[name].shape) != tuple(tensor.shape) or state[name].is_floating_point() != tensor.is_floating_point():
            raise ValueError(f"{path}: tensor {name!r}: expected {tensor.dtype} {tuple(tensor.shape)}, received "
                             f"{state[name].dtype} {tuple(state[name].shape)}; the config and the weights do not belong together")
    module.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()}, strict=True)


def load_stylegan2(directory: str | os.PathLike[str], *, device: str | torch.device = "cpu",
                   read_discriminator: bool = True,
                   ) -> tuple[StyleGAN2Generator, StyleGAN2Discriminator | None, StyleGAN2Config, dict[str, Any]]:
    """Read what :func:`save_stylegan2` wrote: ``(G, D, config, extra)``, the models in eval mode, float32.

    Also reads folders of the format the reference training wrote before the architecture moved into the package
    (``"benchmarks.stylegan2"``, the same layout). ``D`` is ``None`` for a folder of G alone (no
    ``discriminator.safetensors``) or with ``read_discriminator=False`` (the file, if there, is not read).

    Raises:
        FileNotFoundError: ``config.json`` or ``generator.safetensors`` is missing.
        ValueError: another format or version, or tensors that do not match the config (strict loading).
    """
    directory = Path(directory)
    document = read_document(directory)
    try:
        config = StyleGAN2Config.from_dict(document.get("config"))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{directory / CONFIG_FILE}: invalid config ({exc})") from None
    with torch.random.fork_rng(devices=[]):  # the weights come from the files: building draws nothing from the caller's RNG
        generator, discriminator = build_stylegan2(config)
    _load_strict(generator, directory / G_FILE)
    if not (read_discriminator and (directory / D_FILE).is_file()):  # G alone
        return generator.to(device).eval(), None, config, document.get("extra", {})
    _load_strict(discriminator, directory / D_FILE)
    return generator.to(device).eval(), discriminator.to(device).eval(), config, document.get("extra", {})
