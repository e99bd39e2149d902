"""Bring your own GAN in 20 lines: any G, any D, one layer name.

Run:  python examples/byo_gan.py
"""
import torch
from torch import nn

from discinvert import fit_inverter, list_layers

G = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 3 * 16 * 16), nn.Tanh(), nn.Unflatten(1, (3, 16, 16)))
D = nn.Sequential(nn.Conv2d(3, 32, 4, 2, 1), nn.LeakyReLU(0.2, True), nn.Conv2d(32, 64, 4, 2, 1),
                  nn.BatchNorm2d(64), nn.LeakyReLU(0.2, True), nn.Flatten(), nn.Linear(64 * 4 * 4, 1))
print([(l.name, l.type, l.output_shape) for l in list_layers(D, G(torch.randn(2, 64)))])  # pick "4": the last hidden layer

inv = fit_inverter(G, D, "4", latent_shape=(64,), steps=300, batch_size=128, seed=0)
z = torch.randn(256, 64)
images = G.eval()(z).detach()
print(f"latent MSE {float(((inv.encode(images) - z) ** 2).mean()):.3f} (predicting zero: 1.0)")
