"""lucidrains/lightweight-gan's calling conventions (``lightweight_gan/lightweight_gan.py``), tiny and random.

What ``Trainer(...).load(...)`` holds as ``.GAN``, a ``LightweightGAN`` module with ``G``, ``D`` and the EMA copy ``GE``
(the one the package samples from):

* ``G(z (N, latent_dim)) -> images``: no mapping network; ``initial_conv`` (``ConvTranspose2d``, ``BatchNorm2d``,
  ``GLU``), then ``layers`` of ``ModuleList([Sequential(PixelShuffleUpsample, Blur, conv, Noise, BatchNorm2d, GLU),
  sle, attn])`` and ``out_conv``; every ``Noise`` module draws ``torch.randn`` in ``forward`` (no argument fixes it);
  images in [0, 1] (``transforms.ToTensor()`` data), the output not clamped (the package clamps when it saves);
* ``D(x, calc_aux_loss=False) -> (out (N, 25), out_32x32 (N, 1, 1, 1), None)`` (``aux_loss`` in place of ``None``
  when asked): ``residual_layers`` (``ModuleList([SumBranches([...]), attn])`` per resolution down to 8x8 for
  256 px), ``to_logits`` at that resolution, then ``to_shape_disc_out`` on a 32x32 resize of the *input image*;
  the decoders run only for ``calc_aux_loss=True``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class Blur(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = torch.tensor([1.0, 2.0, 1.0], device=x.device, dtype=x.dtype)
        kernel = (f[:, None] * f[None, :] / 16).expand(x.shape[1], 1, 3, 3)
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), kernel, groups=x.shape[1])


class Noise(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        b, _, h, w = x.shape
        if noise is None:
            noise = torch.randn(b, 1, h, w, device=x.device)
        return x + self.weight * noise


class PixelShuffleUpsample(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(dim, dim * 4, 1), nn.SiLU(), nn.PixelShuffle(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class SumBranches(nn.Module):
    def __init__(self, branches: list[nn.Module]) -> None:
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sum(branch(x) for branch in self.branches)


class ChanNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.g, self.b = nn.Parameter(torch.ones(1, dim, 1, 1)), nn.Parameter(torch.zeros(1, dim, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        var, mean = torch.var_mean(x, dim=1, unbiased=False, keepdim=True)
        return (x - mean) / (var + self.eps).sqrt() * self.g + self.b


class LinearAttention(nn.Module):
    """Attention linear in the number of pixels: each pixel's query reads one context of all pixels' keys and values."""

    def __init__(self, dim: int, dim_head: int = 8) -> None:
        super().__init__()
        self.to_qkv = nn.Conv2d(dim, dim_head * 3, 1, bias=False)
        self.to_out = nn.Conv2d(dim_head, dim, 1)

    def forward(self, fmap: torch.Tensor) -> torch.Tensor:
        n, _, h, w = fmap.shape
        q, k, v = self.to_qkv(fmap).flatten(2).chunk(3, dim=1)  # (N, d, HW) each
        context = torch.einsum("bdn,ben->bde", k.softmax(dim=-1), v)
        out = torch.einsum("bde,bdn->ben", context, q.softmax(dim=1))
        return self.to_out(out.reshape(n, -1, h, w))


class PreNorm(nn.Module):
    def __init__(self, dim: int, fn: nn.Module) -> None:
        super().__init__()
        self.fn, self.norm = fn, ChanNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self.norm(x))


class Residual(nn.Module):
    def __init__(self, fn: nn.Module) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x) + x


def _down(chan_in: int, chan_out: int) -> SumBranches:
    return SumBranches([
        nn.Sequential(Blur(), nn.Conv2d(chan_in, chan_out, 4, stride=2, padding=1), nn.LeakyReLU(0.1),
                      nn.Conv2d(chan_out, chan_out, 3, padding=1), nn.LeakyReLU(0.1)),
        nn.Sequential(Blur(), nn.AvgPool2d(2), nn.Conv2d(chan_in, chan_out, 1), nn.LeakyReLU(0.1)),
    ])


class Generator(nn.Module):
    def __init__(self, *, image_size: int, latent_dim: int = 256, fmap_max: int = 512, fmap_inverse_coef: int = 12,
                 greyscale: bool = False) -> None:
        super().__init__()
        resolution = int(math.log2(image_size))
        init_channel = 1 if greyscale else 3
        self.initial_conv = nn.Sequential(nn.ConvTranspose2d(latent_dim, latent_dim * 2, 4),
                                          nn.BatchNorm2d(latent_dim * 2), nn.GLU(dim=1))
        num_layers = resolution - 2
        features = [latent_dim] + [min(2 ** (fmap_inverse_coef - n), fmap_max) if n < 8 else 3
                                   for n in range(2, num_layers + 2)]
        self.res_layers = range(2, num_layers + 2)
        self.layers = nn.ModuleList([nn.ModuleList([
            nn.Sequential(PixelShuffleUpsample(chan_in), Blur(), nn.ZeroPad2d((2, 1, 2, 1)),
                          nn.Conv2d(chan_in, chan_out * 2, 4), Noise(), nn.BatchNorm2d(chan_out * 2), nn.GLU(dim=1)),
            None,  # sle: from 128 px on
            None,  # attn: on the resolutions in attn_res_layers
        ]) for chan_in, chan_out in zip(features[:-1], features[1:])])
        self.out_conv = nn.Conv2d(features[-1], init_channel, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.normalize(self.initial_conv(x[:, :, None, None]), dim=1)
        for up, _sle, _attn in self.layers:
            x = up(x)
        return self.out_conv(x)


class SimpleDecoder(nn.Module):
    def __init__(self, *, chan_in: int, chan_out: int = 3, num_upsamples: int = 4) -> None:
        super().__init__()
        layers, chans = [], chan_in
        for ind in range(num_upsamples):
            out = chans if ind != num_upsamples - 1 else chan_out * 2
            layers.append(nn.Sequential(PixelShuffleUpsample(chans), nn.Conv2d(chans, out, 3, padding=1), nn.GLU(dim=1)))
            chans //= 2
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class Discriminator(nn.Module):
    def __init__(self, *, image_size: int, fmap_max: int = 512, fmap_inverse_coef: int = 12, greyscale: bool = False,
                 disc_output_size: int = 5) -> None:
        super().__init__()
        resolution = int(math.log2(image_size))
        init_channel = 1 if greyscale else 3
        assert resolution <= 8 and disc_output_size == 5, "the tiny version: up to 256 px, 5x5 logits"
        features = [(n, min(2 ** (fmap_inverse_coef - n), fmap_max)) for n in range(resolution, 2, -1)]
        features[0] = (features[0][0], init_channel)
        self.residual_layers = nn.ModuleList([nn.ModuleList([_down(chan_in, chan_out), None])
                                              for (_, chan_in), (_, chan_out) in zip(features[:-1], features[1:])])
        last_chan = features[-1][-1]
        self.to_logits = nn.Sequential(nn.Conv2d(last_chan, last_chan, 1), nn.LeakyReLU(0.1),
                                       nn.Conv2d(last_chan, 1, 4))
        self.to_shape_disc_out = nn.Sequential(
            nn.Conv2d(init_channel, 8, 3, padding=1), Residual(PreNorm(8, LinearAttention(8, dim_head=4))),
            _down(8, 4), Residual(PreNorm(4, LinearAttention(4, dim_head=4))), nn.AdaptiveAvgPool2d((4, 4)),
            nn.Conv2d(4, 1, 4))
        self.decoder1 = SimpleDecoder(chan_in=last_chan, chan_out=init_channel, num_upsamples=2)

    def forward(self, x: torch.Tensor,
                calc_aux_loss: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        orig_img = x
        for net, _attn in self.residual_layers:
            x = net(x)
        out = self.to_logits(x).flatten(1)
        out_32x32 = self.to_shape_disc_out(F.interpolate(orig_img, size=(32, 32)))
        if not calc_aux_loss:
            return out, out_32x32, None
        recon = self.decoder1(x)
        return out, out_32x32, F.mse_loss(recon, F.interpolate(orig_img, size=recon.shape[2:]))


class LightweightGAN(nn.Module):
    """``G``, ``D`` and the EMA copy ``GE`` (the package adds optimisers)."""

    def __init__(self, *, latent_dim: int, image_size: int, fmap_max: int = 512, fmap_inverse_coef: int = 12) -> None:
        super().__init__()
        self.latent_dim, self.image_size = latent_dim, image_size
        g_kwargs = {"image_size": image_size, "latent_dim": latent_dim, "fmap_max": fmap_max,
                    "fmap_inverse_coef": fmap_inverse_coef}
        self.G = Generator(**g_kwargs)
        self.D = Discriminator(image_size=image_size, fmap_max=fmap_max, fmap_inverse_coef=fmap_inverse_coef)
        self.GE = Generator(**g_kwargs)
        self.GE.requires_grad_(False)
        self.GE.load_state_dict(self.G.state_dict())


def tiny(seed: int = 0) -> LightweightGAN:
    """``LightweightGAN(latent_dim=16, image_size=16, fmap_inverse_coef=7)``: G 16 -> 32x32 RGB, D's residual layers
    at 16x16 and 8x8; the BatchNorm statistics, noise weights and output layer set as after training (images about
    [0, 1], not clamped, a little beyond it)."""
    torch.manual_seed(seed)
    gan = LightweightGAN(latent_dim=16, image_size=32, fmap_inverse_coef=7)
    G = gan.G
    with torch.no_grad():
        for name, param in G.named_parameters():
            if name.endswith(".weight") and param.shape == (1,):  # Noise
                param.fill_(0.1)
        norms = [m for m in G.modules() if isinstance(m, nn.BatchNorm2d)]
        for norm in norms:
            norm.momentum = None  # one pass gives the running statistics a long training would
        G.train()(torch.randn(128, 16))
        for norm in norms:
            norm.momentum = 0.1
        image = G.eval()(torch.randn(128, 16))
        G.out_conv.weight.mul_(0.25 / float(image.std()))
        G.out_conv.bias.add_(0.5 - float(G(torch.randn(128, 16)).mean()))
        gan.GE.load_state_dict(G.state_dict())
    gan.GE.eval()
    gan.D.train()
    return gan
