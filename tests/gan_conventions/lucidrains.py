"""lucidrains/stylegan2-pytorch's calling conventions (``stylegan2_pytorch/stylegan2_pytorch.py``), tiny and random.

What ``Trainer(...).load(...)`` (or ``ModelLoader(...).model``) holds as ``.GAN``, a ``StyleGAN2`` module:

* ``GAN.S`` / ``GAN.SE`` (the EMA copy, which the package samples from): ``StyleVectorizer``,
  ``z (N, latent_dim) -> w (N, latent_dim)`` (``F.normalize`` then ``EqualLinear`` + ``LeakyReLU`` layers);
* ``GAN.G`` / ``GAN.GE``: ``Generator(styles (N, num_layers, latent_dim), input_noise (N, image_size, image_size,
  1)) -> rgb`` with ``num_layers = log2(image_size) - 1`` (one style per ``GeneratorBlock``); the noise image is
  drawn ``uniform(0, 1)`` by the package (``image_noise``); images in [0, 1] (``transforms.ToTensor()`` data), G's
  output not clamped (the package clamps when it saves); ``G.latent_dim``, ``G.image_size``, ``G.num_layers``;
* ``GAN.D``: ``Discriminator(x) -> (logits.squeeze(), quantize_loss)``: ``blocks`` of ``DiscriminatorBlock``
  (inplace ``LeakyReLU``), ``final_conv``, ``flatten``, ``to_logit``; no minibatch standard deviation.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def leaky_relu(p: float = 0.2) -> nn.LeakyReLU:
    return nn.LeakyReLU(p, inplace=True)


class EqualLinear(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, lr_mul: float = 1, bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim))
        self.bias = nn.Parameter(torch.zeros(out_dim)) if bias else None
        self.lr_mul = lr_mul

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return F.linear(input, self.weight * self.lr_mul, bias=self.bias * self.lr_mul)


class StyleVectorizer(nn.Module):
    def __init__(self, emb: int, depth: int, lr_mul: float = 0.1) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for _ in range(depth):
            layers.extend([EqualLinear(emb, emb, lr_mul), leaky_relu()])
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(F.normalize(x, dim=1))


class Conv2DMod(nn.Module):
    def __init__(self, in_chan: int, out_chan: int, kernel: int, demod: bool = True, eps: float = 1e-8) -> None:
        super().__init__()
        self.filters, self.demod, self.kernel, self.eps = out_chan, demod, kernel, eps
        self.weight = nn.Parameter(torch.randn((out_chan, in_chan, kernel, kernel)))
        nn.init.kaiming_normal_(self.weight, a=0, mode="fan_in", nonlinearity="leaky_relu")

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        styles = y + 1  # (N, in_chan): the package folds them into per-sample weights; the same sums here
        out = F.conv2d(x * styles[:, :, None, None], self.weight, padding=self.kernel // 2)
        if self.demod:
            weights = self.weight[None] * styles[:, None, :, None, None]
            out = out * torch.rsqrt((weights**2).sum(dim=(2, 3, 4)) + self.eps)[..., None, None]
        return out


class RGBBlock(nn.Module):
    def __init__(self, latent_dim: int, input_channel: int, upsample: bool, rgba: bool = False) -> None:
        super().__init__()
        self.to_style = nn.Linear(latent_dim, input_channel)
        self.conv = Conv2DMod(input_channel, 4 if rgba else 3, 1, demod=False)
        self.upsample = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False) if upsample else None

    def forward(self, x: torch.Tensor, prev_rgb: torch.Tensor | None, istyle: torch.Tensor) -> torch.Tensor:
        x = self.conv(x, self.to_style(istyle))
        if prev_rgb is not None:
            x = x + prev_rgb
        return self.upsample(x) if self.upsample is not None else x


class GeneratorBlock(nn.Module):
    def __init__(self, latent_dim: int, input_channels: int, filters: int, upsample: bool = True,
                 upsample_rgb: bool = True) -> None:
        super().__init__()
        self.upsample = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False) if upsample else None
        self.to_style1, self.to_noise1 = nn.Linear(latent_dim, input_channels), nn.Linear(1, filters)
        self.conv1 = Conv2DMod(input_channels, filters, 3)
        self.to_style2, self.to_noise2 = nn.Linear(latent_dim, filters), nn.Linear(1, filters)
        self.conv2 = Conv2DMod(filters, filters, 3)
        self.activation = leaky_relu()
        self.to_rgb = RGBBlock(latent_dim, filters, upsample_rgb)

    def forward(self, x: torch.Tensor, prev_rgb: torch.Tensor | None, istyle: torch.Tensor,
                inoise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.upsample is not None:
            x = self.upsample(x)
        inoise = inoise[:, : x.shape[2], : x.shape[3], :]
        noise1 = self.to_noise1(inoise).permute((0, 3, 2, 1))
        noise2 = self.to_noise2(inoise).permute((0, 3, 2, 1))
        x = self.activation(self.conv1(x, self.to_style1(istyle)) + noise1)
        x = self.activation(self.conv2(x, self.to_style2(istyle)) + noise2)
        return x, self.to_rgb(x, prev_rgb, istyle)


class Generator(nn.Module):
    def __init__(self, image_size: int, latent_dim: int, network_capacity: int = 16, fmap_max: int = 512) -> None:
        super().__init__()
        self.image_size, self.latent_dim = image_size, latent_dim
        self.num_layers = int(math.log2(image_size) - 1)
        filters = [min(network_capacity * (2 ** (i + 1)), fmap_max) for i in range(self.num_layers)][::-1]
        filters = [filters[0], *filters]
        self.initial_block = nn.Parameter(torch.randn((1, filters[0], 4, 4)))
        self.initial_conv = nn.Conv2d(filters[0], filters[0], 3, padding=1)
        self.blocks = nn.ModuleList([
            GeneratorBlock(latent_dim, in_chan, out_chan, upsample=ind != 0, upsample_rgb=ind != self.num_layers - 1)
            for ind, (in_chan, out_chan) in enumerate(zip(filters[:-1], filters[1:]))])

    def forward(self, styles: torch.Tensor, input_noise: torch.Tensor) -> torch.Tensor:
        x = self.initial_conv(self.initial_block.expand(styles.shape[0], -1, -1, -1))
        rgb = None
        for style, block in zip(styles.transpose(0, 1), self.blocks):
            x, rgb = block(x, rgb, style, input_noise)
        return rgb


class DiscriminatorBlock(nn.Module):
    def __init__(self, input_channels: int, filters: int, downsample: bool = True) -> None:
        super().__init__()
        self.conv_res = nn.Conv2d(input_channels, filters, 1, stride=2 if downsample else 1)
        self.net = nn.Sequential(nn.Conv2d(input_channels, filters, 3, padding=1), leaky_relu(),
                                 nn.Conv2d(filters, filters, 3, padding=1), leaky_relu())
        self.downsample = nn.Conv2d(filters, filters, 3, padding=1, stride=2) if downsample else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        res = self.conv_res(x)
        x = self.net(x)
        if self.downsample is not None:
            x = self.downsample(x)
        return (x + res) * (1 / math.sqrt(2))


class Discriminator(nn.Module):
    def __init__(self, image_size: int, network_capacity: int = 16, fmap_max: int = 512) -> None:
        super().__init__()
        num_layers = int(math.log2(image_size) - 1)
        filters = [3] + [min(network_capacity * 4 * 2**i, fmap_max) for i in range(num_layers + 1)]
        chan_in_out = list(zip(filters[:-1], filters[1:]))
        self.blocks = nn.ModuleList([DiscriminatorBlock(c_in, c_out, downsample=ind != len(chan_in_out) - 1)
                                     for ind, (c_in, c_out) in enumerate(chan_in_out)])
        self.final_conv = nn.Conv2d(filters[-1], filters[-1], 3, padding=1)
        self.flatten = nn.Flatten()
        self.to_logit = nn.Linear(2 * 2 * filters[-1], 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        quantize_loss = torch.zeros(1).to(x)
        for block in self.blocks:
            x = block(x)
        x = self.to_logit(self.flatten(self.final_conv(x)))
        return x.squeeze(), quantize_loss


class StyleGAN2(nn.Module):
    """``S, G, D`` and the EMA copies ``SE, GE`` (the package adds optimisers and an augmenting ``D_aug``)."""

    def __init__(self, image_size: int, latent_dim: int = 512, style_depth: int = 8, network_capacity: int = 16,
                 fmap_max: int = 512, lr_mlp: float = 0.1) -> None:
        super().__init__()
        self.S = StyleVectorizer(latent_dim, style_depth, lr_mul=lr_mlp)
        self.G = Generator(image_size, latent_dim, network_capacity, fmap_max=fmap_max)
        self.D = Discriminator(image_size, network_capacity, fmap_max=fmap_max)
        self.SE = StyleVectorizer(latent_dim, style_depth, lr_mul=lr_mlp)
        self.GE = Generator(image_size, latent_dim, network_capacity, fmap_max=fmap_max)
        self.SE.load_state_dict(self.S.state_dict())
        self.GE.load_state_dict(self.G.state_dict())
        for module in (self.SE, self.GE):
            module.requires_grad_(False)


def tiny(seed: int = 0) -> StyleGAN2:
    """``StyleGAN2(16, latent_dim=8, style_depth=2, network_capacity=2)``: ``num_layers = 3``; the RGB gains of the
    generators set as after training, so that images with the package's uniform noise image lie about [0, 1] (not
    clamped, a little beyond it)."""
    torch.manual_seed(seed)
    gan = StyleGAN2(16, latent_dim=8, style_depth=2, network_capacity=2)
    with torch.no_grad():
        styles = gan.SE(torch.randn(256, 8))[:, None].expand(-1, gan.GE.num_layers, -1)
        noise = torch.rand(256, 16, 16, 1)
        for generator in (gan.G, gan.GE):
            for block in generator.blocks:
                block.to_rgb.conv.weight.abs_()
            image = generator(styles, noise)
            for block in generator.blocks:
                block.to_rgb.conv.weight.mul_(0.5 / float(image.mean()))
    return gan
