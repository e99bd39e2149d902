"""NVIDIA's StyleGAN2-ADA / StyleGAN3 calling conventions (``training/networks.py``), tiny and random.

What ``legacy.load_network_pkl(f)`` hands back as ``['G_ema']`` and ``['D']``:

* ``G.mapping(z, c, truncation_psi=1, truncation_cutoff=None, skip_w_avg_update=False) -> ws (N, num_ws, w_dim)``,
  the moving average ``G.mapping.w_avg`` (updated in train mode only), ``c`` ignored when ``c_dim == 0``;
* ``G.synthesis(ws, noise_mode='random'|'const'|'none', ...) -> img`` in about [-1, 1], not clamped; every
  ``SynthesisLayer`` holds a ``noise_const`` buffer and a learned ``noise_strength``;
* ``G(z, c, truncation_psi=1, truncation_cutoff=None, **synthesis_kwargs)``; ``G.z_dim, c_dim, w_dim, num_ws,
  img_resolution, img_channels``;
* ``D(img, c, **block_kwargs) -> (N, 1)``: ``c`` is positional and required (a one-hot ``(N, c_dim)``; anything
  when ``c_dim == 0``); residual blocks ``b{res}`` return ``(x, img)``; ``b4`` is the epilogue with ``mbstd``
  (groups of ``min(4, N)``; N must divide by it), ``conv``, ``fc``, ``out``; a conditional D projects ``out`` onto
  ``mapping(None, c)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

NOISE_MODES = ("random", "const", "none")


def normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


def _lrelu(x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
    return F.leaky_relu(x, 0.2) * (math.sqrt(2) * gain)


class FullyConnectedLayer(nn.Module):
    def __init__(self, in_features: int, out_features: int, *, bias_init: float = 0.0, lr_multiplier: float = 1.0,
                 activation: str = "linear") -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init)))
        self.weight_gain, self.bias_gain = lr_multiplier / math.sqrt(in_features), lr_multiplier
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.linear(x, self.weight * self.weight_gain, self.bias * self.bias_gain)
        return _lrelu(x) if self.activation == "lrelu" else x


class Conv2dLayer(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, bias: bool = True,
                 activation: str = "linear", down: int = 1) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)
        self.activation, self.down, self.padding = activation, down, kernel_size // 2

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        x = F.conv2d(x, self.weight * self.weight_gain, self.bias, padding=self.padding)
        if self.down > 1:
            x = F.avg_pool2d(x, self.down)
        return _lrelu(x, gain) if self.activation == "lrelu" else x * gain


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, *, demodulate: bool = True,
                     padding: int = 0) -> torch.Tensor:
    """Per-sample modulated (and demodulated) convolution, as NVIDIA's non-fused path computes it: scale the input
    channels by the styles, convolve with the shared weight, scale the output channels by the demodulation."""
    x = F.conv2d(x * styles[:, :, None, None], weight, padding=padding)
    if demodulate:
        x = x * ((weight[None] * styles[:, None, :, None, None]).square().sum(dim=(2, 3, 4)) + 1e-8).rsqrt()[..., None, None]
    return x


class MappingNetwork(nn.Module):
    def __init__(self, z_dim: int, c_dim: int, w_dim: int, num_ws: int | None, num_layers: int = 2,
                 lr_multiplier: float = 0.01, w_avg_beta: float | None = 0.995) -> None:
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = z_dim, c_dim, w_dim, num_ws
        self.num_layers, self.w_avg_beta = num_layers, w_avg_beta
        embed_features = w_dim if c_dim > 0 else 0
        features = [z_dim + embed_features] + [w_dim] * num_layers
        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for idx in range(num_layers):
            setattr(self, f"fc{idx}", FullyConnectedLayer(features[idx], features[idx + 1], activation="lrelu",
                                                          lr_multiplier=lr_multiplier))
        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros([w_dim]))

    def forward(self, z: torch.Tensor | None, c: torch.Tensor | None, truncation_psi: float = 1,
                truncation_cutoff: int | None = None, skip_w_avg_update: bool = False) -> torch.Tensor:
        x = normalize_2nd_moment(z.to(torch.float32)) if self.z_dim > 0 else None
        if self.c_dim > 0:
            y = normalize_2nd_moment(self.embed(c.to(torch.float32)))
            x = torch.cat([x, y], dim=1) if x is not None else y
        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)
        if self.w_avg_beta is not None and self.training and not skip_w_avg_update:
            self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        if self.num_ws is not None:
            x = x.unsqueeze(1).repeat([1, self.num_ws, 1])
        if truncation_psi != 1:
            if self.num_ws is None or truncation_cutoff is None:
                x = self.w_avg.lerp(x, truncation_psi)
            else:
                x[:, :truncation_cutoff] = self.w_avg.lerp(x[:, :truncation_cutoff], truncation_psi)
        return x


class SynthesisLayer(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, up: int = 1) -> None:
        super().__init__()
        self.resolution, self.up = resolution, up
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 3, 3))
        self.register_buffer("noise_const", torch.randn([resolution, resolution]))
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "random") -> torch.Tensor:
        assert noise_mode in NOISE_MODES
        if self.up > 1:
            x = F.interpolate(x, scale_factor=self.up, mode="nearest")
        x = modulated_conv2d(x, self.weight, self.affine(w), padding=1)
        if noise_mode == "random":
            x = x + torch.randn([x.shape[0], 1, self.resolution, self.resolution], device=x.device) * self.noise_strength
        elif noise_mode == "const":
            x = x + self.noise_const * self.noise_strength
        return _lrelu(x + self.bias[None, :, None, None])


class ToRGBLayer(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, w_dim: int) -> None:
        super().__init__()
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, 1, 1]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / math.sqrt(in_channels)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        x = modulated_conv2d(x, self.weight, self.affine(w) * self.weight_gain, demodulate=False)
        return x + self.bias[None, :, None, None]


class SynthesisBlock(nn.Module):
    """Skip architecture: ``(x, img, ws) -> (x, img)``; the first block (``in_channels == 0``) starts from ``const``."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, img_channels: int,
                 is_last: bool) -> None:
        super().__init__()
        self.in_channels, self.w_dim, self.resolution, self.is_last = in_channels, w_dim, resolution, is_last
        self.num_conv, self.num_torgb = 0, 1
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=2)
            self.num_conv += 1
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution)
        self.num_conv += 1
        self.torgb = ToRGBLayer(out_channels, img_channels, w_dim)

    def forward(self, x: torch.Tensor | None, img: torch.Tensor | None, ws: torch.Tensor,
                **layer_kwargs: str) -> tuple[torch.Tensor, torch.Tensor]:
        w_iter = iter(ws.unbind(dim=1))
        if self.in_channels == 0:
            x = self.const.unsqueeze(0).repeat([ws.shape[0], 1, 1, 1])
        else:
            x = self.conv0(x, next(w_iter), **layer_kwargs)
        x = self.conv1(x, next(w_iter), **layer_kwargs)
        if img is not None:
            img = F.interpolate(img, scale_factor=2, mode="bilinear", align_corners=False)
        y = self.torgb(x, next(w_iter))
        img = img.add_(y) if img is not None else y
        return x, img


class SynthesisNetwork(nn.Module):
    def __init__(self, w_dim: int, img_resolution: int, img_channels: int, channels: dict[int, int]) -> None:
        super().__init__()
        self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
        self.block_resolutions = [2**i for i in range(2, int(math.log2(img_resolution)) + 1)]
        self.num_ws = 0
        for res in self.block_resolutions:
            is_last = res == img_resolution
            block = SynthesisBlock(channels[res // 2] if res > 4 else 0, channels[res], w_dim, res, img_channels,
                                   is_last)
            self.num_ws += block.num_conv + (block.num_torgb if is_last else 0)
            setattr(self, f"b{res}", block)

    def forward(self, ws: torch.Tensor, **block_kwargs: str) -> torch.Tensor:
        assert ws.shape[1:] == (self.num_ws, self.w_dim), ws.shape
        ws, w_idx, x, img = ws.to(torch.float32), 0, None, None
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            x, img = block(x, img, ws.narrow(1, w_idx, block.num_conv + block.num_torgb), **block_kwargs)
            w_idx += block.num_conv
        return img


class Generator(nn.Module):
    def __init__(self, z_dim: int, c_dim: int, w_dim: int, img_resolution: int, img_channels: int,
                 mapping_kwargs: dict | None = None, synthesis_kwargs: dict | None = None) -> None:
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.synthesis = SynthesisNetwork(w_dim, img_resolution, img_channels, **(synthesis_kwargs or {}))
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim, c_dim, w_dim, self.num_ws, **(mapping_kwargs or {}))

    def forward(self, z: torch.Tensor, c: torch.Tensor | None, truncation_psi: float = 1,
                truncation_cutoff: int | None = None, **synthesis_kwargs: str) -> torch.Tensor:
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, **synthesis_kwargs)


class DiscriminatorBlock(nn.Module):
    """Resnet architecture: ``(x, img) -> (x, None)``; the first block (``in_channels == 0``) reads ``img``."""

    def __init__(self, in_channels: int, tmp_channels: int, out_channels: int, resolution: int,
                 img_channels: int) -> None:
        super().__init__()
        self.in_channels, self.resolution = in_channels, resolution
        if in_channels == 0:
            self.fromrgb = Conv2dLayer(img_channels, tmp_channels, 1, activation="lrelu")
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, 3, activation="lrelu")
        self.conv1 = Conv2dLayer(tmp_channels, out_channels, 3, activation="lrelu", down=2)
        self.skip = Conv2dLayer(tmp_channels, out_channels, 1, bias=False, down=2)

    def forward(self, x: torch.Tensor | None, img: torch.Tensor | None) -> tuple[torch.Tensor, None]:
        if self.in_channels == 0:
            y = self.fromrgb(img)
            x = x + y if x is not None else y
        y = self.skip(x, gain=math.sqrt(0.5))
        x = self.conv1(self.conv0(x), gain=math.sqrt(0.5))
        return y.add_(x), None


class MinibatchStdLayer(nn.Module):
    def __init__(self, group_size: int | None, num_channels: int = 1) -> None:
        super().__init__()
        self.group_size, self.num_channels = group_size, num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = min(self.group_size, n) if self.group_size is not None else n
        f = self.num_channels
        y = x.reshape(g, -1, f, c // f, h, w)  # fails, as NVIDIA's does, when g does not divide N
        y = (y - y.mean(dim=0)).square().mean(dim=0).add(1e-8).sqrt().mean(dim=[2, 3, 4])
        return torch.cat([x, y.reshape(-1, f, 1, 1).repeat(g, 1, h, w)], dim=1)


class DiscriminatorEpilogue(nn.Module):
    def __init__(self, in_channels: int, cmap_dim: int, resolution: int, mbstd_group_size: int = 4,
                 mbstd_num_channels: int = 1) -> None:
        super().__init__()
        self.cmap_dim = cmap_dim
        self.mbstd = MinibatchStdLayer(mbstd_group_size, mbstd_num_channels)
        self.conv = Conv2dLayer(in_channels + mbstd_num_channels, in_channels, 3, activation="lrelu")
        self.fc = FullyConnectedLayer(in_channels * resolution**2, in_channels, activation="lrelu")
        self.out = FullyConnectedLayer(in_channels, 1 if cmap_dim == 0 else cmap_dim)

    def forward(self, x: torch.Tensor, img: torch.Tensor | None, cmap: torch.Tensor | None) -> torch.Tensor:
        x = self.out(self.fc(self.conv(self.mbstd(x)).flatten(1)))
        if self.cmap_dim > 0:
            x = (x * cmap).sum(dim=1, keepdim=True) * (1 / math.sqrt(self.cmap_dim))
        return x


class Discriminator(nn.Module):
    def __init__(self, c_dim: int, img_resolution: int, img_channels: int, channels: dict[int, int],
                 cmap_dim: int | None = None) -> None:
        super().__init__()
        self.c_dim, self.img_resolution, self.img_channels = c_dim, img_resolution, img_channels
        self.block_resolutions = [2**i for i in range(int(math.log2(img_resolution)), 2, -1)]
        cmap_dim = (channels[4] if cmap_dim is None else cmap_dim) if c_dim > 0 else 0
        for res in self.block_resolutions:
            in_channels = channels[res] if res < img_resolution else 0
            setattr(self, f"b{res}", DiscriminatorBlock(in_channels, channels[res], channels[res // 2], res,
                                                        img_channels))
        if c_dim > 0:
            self.mapping = MappingNetwork(0, c_dim, cmap_dim, None, w_avg_beta=None)
        self.b4 = DiscriminatorEpilogue(channels[4], cmap_dim, 4)

    def forward(self, img: torch.Tensor, c: torch.Tensor | None, **block_kwargs: object) -> torch.Tensor:
        x = None
        for res in self.block_resolutions:
            x, img = getattr(self, f"b{res}")(x, img, **block_kwargs)
        cmap = self.mapping(None, c) if self.c_dim > 0 else None
        return self.b4(x, img, cmap)


TINY_CHANNELS = {4: 16, 8: 16, 16: 8}


def tiny(*, c_dim: int = 0, seed: int = 0) -> dict[str, nn.Module]:
    """``{'G_ema': G, 'D': D}`` as ``legacy.load_network_pkl`` returns them: G_ema in eval mode, D in train mode,
    16x16 RGB, ``z_dim = w_dim = 8``, ``num_ws = 6``; noise strengths, ``w_avg`` and the RGB gains as after
    training (images about [-1, 1], not clamped)."""
    torch.manual_seed(seed)
    G = Generator(8, c_dim, 8, 16, 3, synthesis_kwargs={"channels": TINY_CHANNELS})
    D = Discriminator(c_dim, 16, 3, TINY_CHANNELS)
    with torch.no_grad():
        for name, param in G.named_parameters():
            if name.endswith("noise_strength"):
                param.fill_(0.2)
        G.mapping.w_avg.normal_(0, 0.5)
        z = torch.randn(256, 8)
        c = F.one_hot(torch.arange(256) % c_dim, c_dim).float() if c_dim else None
        spread = float(G.eval()(z, c, noise_mode="const").std())
        for block in G.synthesis.block_resolutions:
            getattr(G.synthesis, f"b{block}").torgb.weight.mul_(0.5 / spread)
    return {"G_ema": G.eval().requires_grad_(False), "D": D.train()}
