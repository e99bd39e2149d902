"""Invert a class-conditional GAN: G(z, y) and D(x, y) both take labels.

Run:  python examples/conditional_gan.py [--steps 300]

`Conditioning` tells fit_inverter how to draw labels while fitting and how to call G and
D with them; encode/reconstruct/refine then take the images' labels as `conditions=`.
The GAN here is a small projection-style conditional DCGAN with fresh weights, so the
example runs anywhere in a minute; put your own trained pair in its place. When your
models take the condition differently (a keyword, a one-hot vector, a dict), pass
`call_generator=` / `call_discriminator=` functions to Conditioning.
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

from discinvert import Conditioning, fit_inverter

N_CLASSES, LATENT = 10, 32


class Generator(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(N_CLASSES, LATENT)
        self.main = nn.Sequential(
            nn.ConvTranspose2d(2 * LATENT, 128, 7, 1, 0), nn.BatchNorm2d(128), nn.ReLU(inplace=True),  # 7x7
            nn.ConvTranspose2d(128, 64, 4, 2, 1), nn.BatchNorm2d(64), nn.ReLU(inplace=True),  # 14x14
            nn.ConvTranspose2d(64, 1, 4, 2, 1), nn.Tanh(),  # 28x28
        )

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.main(torch.cat([z, self.embed(y)], dim=1)[:, :, None, None])


class Discriminator(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(1, 64, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True),  # 14x14
            nn.Conv2d(64, 128, 4, 2, 1), nn.BatchNorm2d(128), nn.LeakyReLU(0.2, inplace=True),  # 7x7 <- features
        )
        self.embed = nn.Embedding(N_CLASSES, 128)
        self.head = nn.Linear(128 * 7 * 7, 1)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.main(x).flatten(1)
        return self.head(h) + (h.view(len(h), 128, -1).mean(2) * self.embed(y)).sum(1, keepdim=True)  # projection


def draw_labels(n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.randint(0, N_CLASSES, (n,), generator=generator, device=device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    torch.manual_seed(0)
    G, D = Generator(), Discriminator()

    conditioning = Conditioning(sampler=draw_labels)  # G(z, y) and D(x, y) are the default calls
    inverter = fit_inverter(G, D, "main.4", latent_shape=(LATENT,), conditioning=conditioning, steps=args.steps, seed=0)

    rng = torch.Generator().manual_seed(1)
    z = torch.randn(256, LATENT, generator=rng)
    y = draw_labels(256, rng, torch.device("cpu"))
    with torch.no_grad():
        images = G.eval()(z, y)
    codes = inverter.encode(images, conditions=y)
    refined = inverter.refine(images, 20, conditions=y, progress=False)
    pixel = lambda c: float(((inverter.decode(c, conditions=y) - images) ** 2).mean())  # noqa: E731
    print(f"latent MSE {float(((codes - z) ** 2).mean()):.3f} (predicting zero: 1.0); "
          f"pixel MSE encode {pixel(codes):.2e}, refined {pixel(refined):.2e}")


if __name__ == "__main__":
    main()
