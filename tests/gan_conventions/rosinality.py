"""rosinality/stylegan2-pytorch's calling conventions (``model.py``), tiny and random.

What ``Generator(size, style_dim, n_mlp)`` / ``Discriminator(size)`` are after
``load_state_dict(torch.load(ckpt)["g_ema"])`` / ``["d"]``:

* ``g_ema.style``: the mapping network, an ``nn.Sequential`` (``PixelNorm`` then ``EqualLinear`` layers):
  ``z (N, style_dim) -> w (N, style_dim)``; ``g_ema.style_dim``, ``g_ema.n_latent`` (``log2(size) * 2 - 2``),
  ``g_ema.num_layers`` (noise inputs), fixed noise buffers ``g_ema.noises.noise_{i}`` ``(1, 1, r, r)``;
* ``g_ema(styles, return_latents=False, inject_index=None, truncation=1, truncation_latent=None,
  input_is_latent=False, noise=None, randomize_noise=True) -> (image, latent or None)``: ``styles`` is a *list* of
  ``z`` or (``input_is_latent=True``) of ``w (N, style_dim)`` or ``ws (N, n_latent, style_dim)``; two entries mix
  styles at ``inject_index``; ``randomize_noise=True`` draws fresh noise, ``False`` uses the buffers; images about
  [-1, 1], not clamped;
* ``d(input) -> (N, 1)``: ``d.convs`` (a ``ConvLayer`` then ``ResBlock`` s), then the minibatch standard deviation
  as inline code in ``forward`` (groups of ``min(N, 4)``), ``d.final_conv``, ``d.final_linear``.

The one change: ``channels`` (real: 512 up to 32x32) is a keyword, so that the test's GAN is tiny.
"""

from __future__ import annotations

import math
import random

import torch
import torch.nn.functional as F
from torch import nn


class PixelNorm(nn.Module):
    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return input * torch.rsqrt(torch.mean(input**2, dim=1, keepdim=True) + 1e-8)


class FusedLeakyReLU(nn.Module):
    def __init__(self, channel: int, bias: bool = True) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channel)) if bias else None

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if self.bias is not None:
            input = input + self.bias.view(1, -1, *[1] * (input.dim() - 2))
        return F.leaky_relu(input, 0.2) * math.sqrt(2)


class EqualLinear(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, bias: bool = True, bias_init: float = 0, lr_mul: float = 1,
                 activation: str | None = None) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim).div_(lr_mul))
        self.bias = nn.Parameter(torch.zeros(out_dim).fill_(bias_init)) if bias else None
        self.activation, self.scale, self.lr_mul = activation, (1 / math.sqrt(in_dim)) * lr_mul, lr_mul

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        out = F.linear(input, self.weight * self.scale, self.bias * self.lr_mul)
        return F.leaky_relu(out, 0.2) * math.sqrt(2) if self.activation else out


class EqualConv2d(nn.Module):
    def __init__(self, in_channel: int, out_channel: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channel, in_channel, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channel)) if bias else None
        self.scale, self.stride, self.padding = 1 / math.sqrt(in_channel * kernel_size**2), stride, padding

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return F.conv2d(input, self.weight * self.scale, self.bias, stride=self.stride, padding=self.padding)


class ModulatedConv2d(nn.Module):
    def __init__(self, in_channel: int, out_channel: int, kernel_size: int, style_dim: int, demodulate: bool = True,
                 upsample: bool = False) -> None:
        super().__init__()
        self.out_channel, self.kernel_size, self.upsample, self.demodulate = out_channel, kernel_size, upsample, demodulate
        self.scale, self.padding = 1 / math.sqrt(in_channel * kernel_size**2), kernel_size // 2
        self.weight = nn.Parameter(torch.randn(1, out_channel, in_channel, kernel_size, kernel_size))
        self.modulation = EqualLinear(style_dim, in_channel, bias_init=1)

    def forward(self, input: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        styles = self.modulation(style)  # (N, in_channel); computed as rosinality's non-fused path does
        if self.upsample:
            input = F.interpolate(input, scale_factor=2, mode="nearest")
        out = F.conv2d(input * styles[:, :, None, None], self.weight[0] * self.scale, padding=self.padding)
        if self.demodulate:
            weight = self.scale * self.weight * styles[:, None, :, None, None]
            out = out * torch.rsqrt(weight.pow(2).sum([2, 3, 4]) + 1e-8)[..., None, None]
        return out


class NoiseInjection(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, image: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        if noise is None:
            batch, _, height, width = image.shape
            noise = image.new_empty(batch, 1, height, width).normal_()
        return image + self.weight * noise


class ConstantInput(nn.Module):
    def __init__(self, channel: int, size: int = 4) -> None:
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channel, size, size))

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return self.input.repeat(input.shape[0], 1, 1, 1)


class StyledConv(nn.Module):
    def __init__(self, in_channel: int, out_channel: int, kernel_size: int, style_dim: int,
                 upsample: bool = False) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_channel, out_channel, kernel_size, style_dim, upsample=upsample)
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(out_channel)

    def forward(self, input: torch.Tensor, style: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        return self.activate(self.noise(self.conv(input, style), noise=noise))


class ToRGB(nn.Module):
    def __init__(self, in_channel: int, style_dim: int, upsample: bool = True) -> None:
        super().__init__()
        self.upsample = upsample
        self.conv = ModulatedConv2d(in_channel, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, input: torch.Tensor, style: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        out = self.conv(input, style) + self.bias
        if skip is not None:
            out = out + F.interpolate(skip, scale_factor=2, mode="bilinear", align_corners=False)
        return out


class Generator(nn.Module):
    def __init__(self, size: int, style_dim: int, n_mlp: int, channel_multiplier: int = 2, lr_mlp: float = 0.01,
                 *, channels: dict[int, int]) -> None:
        super().__init__()
        self.size, self.style_dim = size, style_dim
        self.style = nn.Sequential(PixelNorm(), *[EqualLinear(style_dim, style_dim, lr_mul=lr_mlp,
                                                              activation="fused_lrelu") for _ in range(n_mlp)])
        self.channels = channels
        self.input = ConstantInput(channels[4])
        self.conv1 = StyledConv(channels[4], channels[4], 3, style_dim)
        self.to_rgb1 = ToRGB(channels[4], style_dim, upsample=False)
        self.log_size = int(math.log(size, 2))
        self.num_layers = (self.log_size - 2) * 2 + 1
        self.convs, self.to_rgbs, self.noises = nn.ModuleList(), nn.ModuleList(), nn.Module()
        for layer_idx in range(self.num_layers):
            res = (layer_idx + 5) // 2
            self.noises.register_buffer(f"noise_{layer_idx}", torch.randn(1, 1, 2**res, 2**res))
        in_channel = channels[4]
        for i in range(3, self.log_size + 1):
            out_channel = channels[2**i]
            self.convs.append(StyledConv(in_channel, out_channel, 3, style_dim, upsample=True))
            self.convs.append(StyledConv(out_channel, out_channel, 3, style_dim))
            self.to_rgbs.append(ToRGB(out_channel, style_dim))
            in_channel = out_channel
        self.n_latent = self.log_size * 2 - 2

    def forward(self, styles: list[torch.Tensor], return_latents: bool = False, inject_index: int | None = None,
                truncation: float = 1, truncation_latent: torch.Tensor | None = None, input_is_latent: bool = False,
                noise: list[torch.Tensor | None] | None = None,
                randomize_noise: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        if not input_is_latent:
            styles = [self.style(s) for s in styles]
        if noise is None:
            noise = ([None] * self.num_layers if randomize_noise
                     else [getattr(self.noises, f"noise_{i}") for i in range(self.num_layers)])
        if truncation < 1:
            styles = [truncation_latent + truncation * (style - truncation_latent) for style in styles]
        if len(styles) < 2:
            latent = styles[0].unsqueeze(1).repeat(1, self.n_latent, 1) if styles[0].ndim < 3 else styles[0]
        else:
            inject_index = random.randint(1, self.n_latent - 1) if inject_index is None else inject_index
            latent = torch.cat([styles[0].unsqueeze(1).repeat(1, inject_index, 1),
                                styles[1].unsqueeze(1).repeat(1, self.n_latent - inject_index, 1)], 1)
        out = self.conv1(self.input(latent), latent[:, 0], noise=noise[0])
        skip = self.to_rgb1(out, latent[:, 1])
        i = 1
        for conv1, conv2, noise1, noise2, to_rgb in zip(self.convs[::2], self.convs[1::2], noise[1::2], noise[2::2],
                                                        self.to_rgbs):
            out = conv2(conv1(out, latent[:, i], noise=noise1), latent[:, i + 1], noise=noise2)
            skip = to_rgb(out, latent[:, i + 2], skip)
            i += 2
        return (skip, latent) if return_latents else (skip, None)


class ConvLayer(nn.Sequential):
    def __init__(self, in_channel: int, out_channel: int, kernel_size: int, downsample: bool = False,
                 bias: bool = True, activate: bool = True) -> None:
        layers: list[nn.Module] = [EqualConv2d(in_channel, out_channel, kernel_size, stride=2 if downsample else 1,
                                               padding=kernel_size // 2, bias=bias and not activate)]
        if activate:
            layers.append(FusedLeakyReLU(out_channel, bias=bias))
        super().__init__(*layers)


class ResBlock(nn.Module):
    def __init__(self, in_channel: int, out_channel: int) -> None:
        super().__init__()
        self.conv1 = ConvLayer(in_channel, in_channel, 3)
        self.conv2 = ConvLayer(in_channel, out_channel, 3, downsample=True)
        self.skip = ConvLayer(in_channel, out_channel, 1, downsample=True, activate=False, bias=False)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.conv1(input))
        return (out + self.skip(input)) / math.sqrt(2)


class Discriminator(nn.Module):
    def __init__(self, size: int, channel_multiplier: int = 2, *, channels: dict[int, int]) -> None:
        super().__init__()
        convs: list[nn.Module] = [ConvLayer(3, channels[size], 1)]
        in_channel = channels[size]
        for i in range(int(math.log(size, 2)), 2, -1):
            convs.append(ResBlock(in_channel, channels[2 ** (i - 1)]))
            in_channel = channels[2 ** (i - 1)]
        self.convs = nn.Sequential(*convs)
        self.stddev_group, self.stddev_feat = 4, 1
        self.final_conv = ConvLayer(in_channel + 1, channels[4], 3)
        self.final_linear = nn.Sequential(EqualLinear(channels[4] * 4 * 4, channels[4], activation="fused_lrelu"),
                                          EqualLinear(channels[4], 1))

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        out = self.convs(input)
        batch, channel, height, width = out.shape
        group = min(batch, self.stddev_group)
        stddev = out.view(group, -1, self.stddev_feat, channel // self.stddev_feat, height, width)
        stddev = torch.sqrt(stddev.var(0, unbiased=False) + 1e-8).mean([2, 3, 4], keepdim=True).squeeze(2)
        out = torch.cat([out, stddev.repeat(group, 1, height, width)], 1)
        out = self.final_conv(out)
        return self.final_linear(out.view(batch, -1))


TINY_CHANNELS = {4: 16, 8: 16, 16: 8}


def tiny(seed: int = 0) -> dict[str, dict[str, torch.Tensor]]:
    """A checkpoint as rosinality's ``train.py`` saves it (``{"g", "d", "g_ema", ...}`` state dicts; the
    optimisers' left out): 16x16, ``style_dim = 8``, ``n_mlp = 2``, ``n_latent = 6``; noise strengths and the RGB
    gains as after training (images about [-1, 1], not clamped). Load with ``Generator(16, 8, 2,
    channels=TINY_CHANNELS)`` and ``Discriminator(16, channels=TINY_CHANNELS)``."""
    torch.manual_seed(seed)
    g_ema, d = Generator(16, 8, 2, channels=TINY_CHANNELS), Discriminator(16, channels=TINY_CHANNELS)
    with torch.no_grad():
        for name, param in g_ema.named_parameters():
            if name.endswith("noise.weight"):
                param.fill_(0.2)
        image, _ = g_ema([torch.randn(256, 8)], randomize_noise=False)
        for to_rgb in [g_ema.to_rgb1, *g_ema.to_rgbs]:
            to_rgb.conv.weight.mul_(0.4 / float(image.std()))
    return {"g": g_ema.state_dict(), "g_ema": g_ema.state_dict(), "d": d.state_dict(), "args": {"size": 16}}
