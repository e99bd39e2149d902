"""G and D left as found even when they change state themselves, and discinvert's calls serialised across threads."""

from __future__ import annotations

import threading

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from discinvert import Inverter, fit_inverter
from tests.conftest import LATENT, assert_untouched, snapshot

QUICK = dict(steps=20, batch_size=16, cn_hidden=(32,), progress=False, validation_size=32, seed=1)


def test_concurrent_threads_get_their_own_codes_and_leave_the_gan_alone(make_gan) -> None:
    gan = make_gan("spectral_dropout")
    inverter = fit_inverter(gan.generator, gan.discriminator, gan.feature_layer, latent_shape=gan.latent_shape, **QUICK)
    batches = [gan.sample(16, seed=s)[1] for s in range(6)]
    expected = [inverter.encode(b) for b in batches]
    before = snapshot(gan.generator, gan.discriminator)
    results: dict[int, torch.Tensor] = {}
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for _ in range(5):
                results[i] = inverter.encode(batches[i])
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i in range(6):
        torch.testing.assert_close(results[i], expected[i], rtol=1e-6, atol=1e-6)
    assert_untouched(before, gan.generator, gan.discriminator)


class IteratingSpectralNorm(nn.Module):
    """A hand-written spectral norm that runs a power iteration on every call, in any mode."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.conv = conv
        self.register_buffer("u", F.normalize(torch.randn(conv.out_channels), dim=0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.conv.weight.view(self.conv.out_channels, -1)
        with torch.no_grad():
            v = F.normalize(w.t() @ self.u, dim=0)
            self.u.copy_(F.normalize(w @ v, dim=0))
        return F.conv2d(x, self.conv.weight / (self.u @ w @ v), self.conv.bias, self.conv.stride, self.conv.padding)


def test_buffers_changed_in_eval_mode_are_put_back(make_gan, tmp_path) -> None:
    G = make_gan("dcgan").generator
    D = nn.Sequential(IteratingSpectralNorm(nn.Conv2d(1, 32, 4, 2, 1)), nn.LeakyReLU(0.2),
                      IteratingSpectralNorm(nn.Conv2d(32, 64, 3, 1, 1)), nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(1024, 1))
    before = snapshot(G, D)
    inverter = fit_inverter(G, D, "3", latent_shape=(LATENT, 1, 1), **QUICK)
    assert_untouched(before, G, D)
    inverter.encode(make_gan("dcgan").sample(4)[1])
    assert_untouched(before, G, D)
    path = inverter.save(tmp_path / "inv.safetensors")
    Inverter.load(path, generator=G, discriminator=D)  # fingerprints taken on the user's values
    assert_untouched(before, G, D)


def test_parameters_changed_in_place_are_reported(make_gan) -> None:
    class Drifting(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 8, 4, 2, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                self.conv.weight.mul_(1.0)
            return F.leaky_relu(self.conv(x), 0.2)

    G = make_gan("dcgan").generator
    D = nn.Sequential(Drifting(), nn.Flatten(), nn.Linear(8 * 16, 1))
    with pytest.raises(RuntimeError, match="changed 1 parameter"):
        fit_inverter(G, D, "0", latent_shape=(LATENT, 1, 1), **QUICK)


def test_d_that_catches_exception_still_stops_at_the_layer(make_gan) -> None:
    class Careful(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(1, 16, 4, 2, 1), nn.LeakyReLU(0.2))
            self.head = nn.Linear(16 * 16, 1)
            self.fallbacks = 0

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            try:
                h = self.body(x)
            except Exception:
                self.fallbacks += 1
                h = torch.zeros(x.shape[0], 16, 4, 4)
            return self.head(h.flatten(1))

    G, D = make_gan("dcgan").generator, Careful()
    fit_inverter(G, D, "body.1", latent_shape=(LATENT, 1, 1), **QUICK)
    assert D.fallbacks == 0
