"""The user's G and D come back bit-identical from every entry point, also after errors and Ctrl-C."""

from __future__ import annotations

import pytest
import torch

from discinvert import FingerprintMismatchError, Inverter, fit_inverter, list_layers
from tests.conftest import LATENT, TinyGAN, assert_untouched, snapshot

QUICK = dict(steps=20, batch_size=32, cn_hidden=(64,), progress=False, validation_size=64, seed=0)


@pytest.fixture
def awkward_gan(make_gan) -> TinyGAN:
    """Spectral norm + Dropout + BatchNorm in train mode, with mixed modes and requires_grad."""
    gan = make_gan("spectral_dropout")
    gan.discriminator.features[2].eval()  # one Dropout already in eval mode
    gan.discriminator.head[1].parametrizations.weight.original.requires_grad_(False)
    gan.generator.main[1].weight.requires_grad_(False)
    return gan


def _fit(gan: TinyGAN, **kwargs) -> Inverter:
    return fit_inverter(gan.generator, gan.discriminator, gan.feature_layer, latent_shape=gan.latent_shape, **{**QUICK, **kwargs})


def test_every_entry_point_leaves_the_gan_untouched(awkward_gan: TinyGAN, tmp_path) -> None:
    G, D = awkward_gan.generator, awkward_gan.discriminator
    before = snapshot(G, D)
    inverter = _fit(awkward_gan)
    assert_untouched(before, G, D)
    _, x, _ = awkward_gan.sample(10)
    inverter.encode(x)
    assert_untouched(before, G, D)
    inverter.reconstruct(x, batch_size=3)
    assert_untouched(before, G, D)
    inverter(x).sum().backward()  # the differentiable forward
    assert_untouched(before, G, D)
    path = inverter.save(tmp_path / "inv.safetensors")
    Inverter.load(path, generator=G, discriminator=D)
    assert_untouched(before, G, D)
    list_layers(D, x)
    assert_untouched(before, G, D)


def test_inverter_does_not_own_g_or_d(awkward_gan: TinyGAN) -> None:
    inverter = _fit(awkward_gan)
    assert all(key.startswith("cn.") for key in inverter.state_dict())
    assert [name for name, _ in inverter.named_children()] == ["cn", "steps"] and len(inverter.steps) == 0
    n_cn = sum(p.numel() for p in inverter.cn.parameters())
    assert sum(p.numel() for p in inverter.parameters()) == n_cn
    assert inverter.generator is awkward_gan.generator and inverter.discriminator is awkward_gan.discriminator


def test_untouched_after_an_exception_mid_fit(awkward_gan: TinyGAN) -> None:
    G, D = awkward_gan.generator, awkward_gan.discriminator
    before = snapshot(G, D)
    calls = {"n": 0}
    original = G.forward

    def flaky(z: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        if calls["n"] == 7:  # G runs once more before training since the batch-independence check
            raise RuntimeError("out of memory (simulated)")
        return original(z)

    G.forward = flaky  # type: ignore[method-assign]
    try:
        with pytest.raises(RuntimeError, match="simulated"):
            _fit(awkward_gan)
    finally:
        del G.forward
    assert calls["n"] == 7
    assert_untouched(before, G, D)


def test_untouched_after_ctrl_c_mid_fit(awkward_gan: TinyGAN) -> None:
    G, D = awkward_gan.generator, awkward_gan.discriminator
    before = snapshot(G, D)
    calls = {"n": 0}

    def sampler(n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return torch.randn((n, LATENT, 1, 1), generator=generator, device=device)

    with pytest.raises(KeyboardInterrupt):
        fit_inverter(G, D, awkward_gan.feature_layer, latent_sampler=sampler, **QUICK)
    assert_untouched(before, G, D)


def test_untouched_after_ctrl_c_inside_d_during_encode(awkward_gan: TinyGAN) -> None:
    G, D = awkward_gan.generator, awkward_gan.discriminator
    inverter = _fit(awkward_gan)
    _, x, _ = awkward_gan.sample(8)
    before = snapshot(G, D)

    def interrupt(*_args) -> None:
        raise KeyboardInterrupt

    handle = D.features[0].register_forward_pre_hook(interrupt)
    try:
        with pytest.raises(KeyboardInterrupt):
            inverter.encode(x)
    finally:
        handle.remove()
    assert_untouched(before, G, D)


def test_untouched_after_bad_input_errors(awkward_gan: TinyGAN, tmp_path) -> None:
    G, D = awkward_gan.generator, awkward_gan.discriminator
    before = snapshot(G, D)
    with pytest.raises(ValueError):
        fit_inverter(G, D, "features.99", latent_shape=(LATENT, 1, 1))
    with pytest.raises(ValueError):
        fit_inverter(G, D, "features.5", latent_shape=(LATENT + 1, 1, 1), steps=2)
    inverter = _fit(awkward_gan)
    with pytest.raises(ValueError):
        inverter.encode(torch.full((2, 1, 8, 8), float("nan")))
    path = inverter.save(tmp_path / "inv.safetensors")
    with torch.no_grad():
        D.features[3].bias.add_(1.0)
    before = snapshot(G, D)
    with pytest.raises(FingerprintMismatchError):
        Inverter.load(path, generator=G, discriminator=D)
    assert_untouched(before, G, D)
