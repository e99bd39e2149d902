"""Same seed, same inverter; the caller's RNGs left alone; results that do not depend on batching."""

from __future__ import annotations

import torch
from torch import nn

from discinvert import Inverter, fit_inverter
from tests.conftest import LATENT

QUICK = dict(steps=20, batch_size=16, cn_hidden=(32,), progress=False, validation_size=32, seed=1)


def test_cpu_fit_never_seeds_the_cuda_generators(make_gan, monkeypatch) -> None:
    def forbidden(*_args, **_kwargs):
        raise AssertionError("fit_inverter re-seeded every CUDA device")

    gan = make_gan("dcgan")  # the fixture itself seeds with torch.manual_seed
    monkeypatch.setattr(torch.cuda, "manual_seed_all", forbidden)
    fit_inverter(gan.generator, gan.discriminator, "4", latent_shape=(LATENT, 1, 1), **QUICK)


class NoisyGenerator(nn.Module):
    """Draws noise from the global RNG in every forward, as StyleGAN-like generators do."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(LATENT, 64)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.fc(z) + 0.01 * torch.randn(z.shape[0], 64)
        return torch.tanh(h).view(-1, 1, 8, 8)


def test_fit_and_load_leave_the_global_rng_alone(make_gan, tmp_path) -> None:
    D = make_gan("dcgan").discriminator
    G = NoisyGenerator()
    state = torch.get_rng_state()
    inverter = fit_inverter(G, D, "4", latent_shape=(LATENT,), **QUICK)
    path = inverter.save(tmp_path / "inv.safetensors")
    Inverter.load(path, generator=G, discriminator=D)
    assert torch.equal(torch.get_rng_state(), state)


def test_refine_early_stop_does_not_depend_on_batching(make_gan) -> None:
    gan = make_gan("dcgan")
    inverter = fit_inverter(gan.generator, gan.discriminator, "4", latent_shape=(LATENT, 1, 1), **QUICK)
    _, x, _ = gan.sample(8)
    together = inverter.refine(x, 60, tol=0.05, batch_size=8, progress=False)
    alone = inverter.refine(x, 60, tol=0.05, batch_size=1, progress=False)
    torch.testing.assert_close(together, alone, rtol=1e-4, atol=1e-4)
