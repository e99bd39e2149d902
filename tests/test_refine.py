"""Hybrid refinement and the optimisation-only / naive-encoder baselines."""

from __future__ import annotations

import pytest
import torch

from discinvert import fit_inverter
from benchmarks.baselines import fit_naive_encoder, optimization_only
from tests.conftest import assert_untouched, snapshot

QUICK = dict(steps=150, batch_size=64, cn_hidden=(128, 128), progress=False, validation_size=128, seed=0)


@pytest.fixture
def fitted(make_gan):
    gan = make_gan("spectral_dropout")
    inverter = fit_inverter(gan.generator, gan.discriminator, gan.feature_layer, latent_shape=gan.latent_shape, **QUICK)
    return gan, inverter


def _pixel_mse(inverter, codes, x):
    return float(((inverter.decode(codes) - x) ** 2).mean())


def test_refine_zero_steps_is_encode(fitted) -> None:
    gan, inverter = fitted
    _, x, _ = gan.sample(10)
    assert torch.equal(inverter.refine(x, 0), inverter.encode(x))


def test_refine_lowers_pixel_error_and_leaves_gan_untouched(fitted) -> None:
    gan, inverter = fitted
    _, x, _ = gan.sample(24, seed=9)
    x = x + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))  # off the generator's range
    before = snapshot(gan.generator, gan.discriminator)
    start = _pixel_mse(inverter, inverter.encode(x), x)
    refined = inverter.refine(x, 40, lr=0.05, progress=False)
    assert_untouched(before, gan.generator, gan.discriminator)
    assert refined.shape == (24, *gan.latent_shape)
    assert _pixel_mse(inverter, refined, x) < 0.9 * start
    with_features = inverter.refine(x, 40, feature_weight=0.1, prior_weight=0.01, loss="l1", progress=False)
    assert_untouched(before, gan.generator, gan.discriminator)
    assert _pixel_mse(inverter, with_features, x) < start


def test_refine_never_worse_than_its_start_and_batch_independent(fitted) -> None:
    gan, inverter = fitted
    _, x, _ = gan.sample(12, seed=4)
    start = ((inverter.reconstruct(x) - x) ** 2).flatten(1).mean(1)
    huge_lr = inverter.refine(x, 5, lr=50.0, progress=False)  # diverging steps: the best code is kept
    after = ((inverter.decode(huge_lr) - x) ** 2).flatten(1).mean(1)
    assert torch.all(after <= start + 1e-6)
    a = inverter.refine(x, 10, batch_size=12, progress=False)
    b = inverter.refine(x, 10, batch_size=5, progress=False)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_refine_early_stop(fitted) -> None:
    gan, inverter = fitted
    _, x, _ = gan.sample(8)
    codes = inverter.refine(x, 500, tol=0.5, progress=False)  # stops after ~11 steps
    assert codes.shape == (8, *gan.latent_shape)


@pytest.mark.parametrize(
    "kwargs, message",
    [({"steps": -1}, "steps"), ({"lr": 0.0}, "lr"), ({"loss": "huber"}, "loss"),
     ({"feature_weight": -1.0}, "feature_weight"), ({"prior_weight": float("nan")}, "prior_weight"),
     ({"tol": -0.1}, "tol")],
)
def test_refine_bad_options(fitted, kwargs, message) -> None:
    gan, inverter = fitted
    _, x, _ = gan.sample(2)
    steps = kwargs.pop("steps", 3)
    with pytest.raises(ValueError, match=message):
        inverter.refine(x, steps, **kwargs)


def test_conditional_refine(make_gan) -> None:
    gan = make_gan("conditional")
    inverter = fit_inverter(gan.generator, gan.discriminator, gan.feature_layer, latent_shape=gan.latent_shape,
                            conditioning=gan.conditioning, **QUICK)
    _, x, y = gan.sample(6)
    start = ((inverter.reconstruct(x, conditions=y) - x) ** 2).mean()
    codes = inverter.refine(x, 20, conditions=y, progress=False)
    assert ((inverter.decode(codes, conditions=y) - x) ** 2).mean() < start


def test_optimization_only_lowers_error(make_gan) -> None:
    gan = make_gan("dcgan")
    _, x, _ = gan.sample(16)
    before = snapshot(gan.generator, gan.discriminator)
    zero = optimization_only(gan.generator, x, latent_shape=gan.latent_shape, steps=0)
    codes = optimization_only(gan.generator, x, latent_shape=gan.latent_shape, steps=60)
    assert_untouched(before, gan.generator, gan.discriminator)
    gan.generator.eval()
    with torch.no_grad():
        e0 = ((gan.generator(zero) - x) ** 2).mean()
        e1 = ((gan.generator(codes) - x) ** 2).mean()
    gan.generator.train()
    assert e1 < 0.5 * e0


def test_naive_encoder_learns_and_does_not_touch_d(make_gan) -> None:
    gan = make_gan("spectral_dropout")
    before = snapshot(gan.generator, gan.discriminator)
    encoder = fit_naive_encoder(gan.generator, gan.discriminator, gan.feature_layer, latent_shape=gan.latent_shape,
                                steps=150, batch_size=64, lr=1e-3, cn_hidden=(128,), progress=False, validation_size=128)
    assert_untouched(before, gan.generator, gan.discriminator)
    assert all(p.data_ptr() != q.data_ptr() for p in encoder.parameters() for q in gan.discriminator.parameters())
    z, x, _ = gan.sample(256)
    codes = encoder.encode(x)
    assert codes.shape == (256, *gan.latent_shape)
    assert float(((codes - z) ** 2).mean()) < 0.6


def test_refine_takes_images_attached_to_a_graph(fitted) -> None:
    gan, inverter = fitted
    G = gan.generator
    was = G.training
    G.eval()
    x = G(torch.randn(4, *gan.latent_shape))  # no .detach(): x is part of a graph through G's weights
    G.train(was)
    assert x.requires_grad
    codes = inverter.refine(x, 3)
    assert codes.shape == (4, *gan.latent_shape) and not codes.requires_grad
    assert all(p.grad is None for p in G.parameters()), "refine backpropagated into the caller's G"
    inverter.refine(x, 3)  # a second call works as well


def test_speed_ratio_checks_are_the_codes_optimize_latents_returns(make_gan) -> None:
    """benchmarks/encoder/speed_ratio.py's checkpointed optimisation: at each check, optimize_latents(steps=s)'s codes."""
    from benchmarks.encoder.speed_ratio import optimise_with_checks
    from discinvert.optimize import optimize_latents

    gan = make_gan("dcgan")
    _, x, _ = gan.sample(6)
    init = torch.randn(6, *gan.latent_shape, generator=torch.Generator().manual_seed(1))
    before = snapshot(gan.generator)
    seen: dict[int, torch.Tensor] = {}

    def on_check(step: int, codes: torch.Tensor, seconds: float) -> bool:
        seen[step] = codes
        return step >= 6

    checks = optimise_with_checks(gan.generator, x, init, steps=20, check_every=3, on_check=on_check)
    assert [c["step"] for c in checks] == [0, 3, 6]  # stopped by on_check
    assert all(b["seconds"] > a["seconds"] for a, b in zip(checks, checks[1:]))
    for step, codes in seen.items():
        expected = optimize_latents(gan.generator, x, init, steps=step, batch_size=6)
        torch.testing.assert_close(codes, expected, rtol=0, atol=1e-6)
    assert not torch.equal(seen[0], seen[6])
    assert_untouched(before, gan.generator)


def test_the_naive_encoder_draws_a_mapped_generators_codes_from_its_sampler() -> None:
    """For a MappedGenerator (W+ codes) the naive baseline trains on codes drawn by the generator's own sampler, as
    fit_inverter does, not on N(0, I) in W+ (codes no mapping network puts out); a shape not the space's is refused."""
    from benchmarks.stylegan2.architecture import StyleGAN2Config
    from discinvert import MappedGenerator
    from tests.stylegan2_models import tiny_stylegan2

    generator, discriminator = tiny_stylegan2(StyleGAN2Config(z_dim=16, w_dim=16, mapping_layers=2,
                                                              channels=(16, 16, 8, 8)))
    before = snapshot(generator, discriminator)
    mapped = MappedGenerator.nvidia(generator, space="w+")
    drawn: list[torch.Tensor] = []
    own = mapped.sample

    def spy(n: int, rng: torch.Generator, device: torch.device) -> torch.Tensor:
        codes = own(n, rng, device)
        drawn.append(codes)
        return codes

    mapped.sample = spy  # type: ignore[method-assign]
    layer = [name for name, _ in discriminator.named_children()][1]
    encoder = fit_naive_encoder(mapped, discriminator, layer, latent_shape=mapped.latent_shape, steps=4, batch_size=8,
                                cn_hidden=(16,), progress=False, validation_size=16, eval_every=2)
    assert [len(c) for c in drawn[:2]] == [16, 8] and all(c.shape[1:] == mapped.latent_shape for c in drawn)
    # W+ codes from the mapping network (with style mixing): each row of a code is its first w or its last,
    # which N(0, I) never gives
    assert all(bool(((c == c[:, :1]).all(-1) | (c == c[:, -1:]).all(-1)).all()) for c in drawn)
    assert encoder.encode(mapped(drawn[0][:2])).shape == (2, *mapped.latent_shape)
    with pytest.raises(ValueError, match=r"latent_shape: expected the generator's space's code shape"):
        fit_naive_encoder(mapped, discriminator, layer, latent_shape=(16,), steps=2, batch_size=8, progress=False,
                          validation_size=16)
    assert_untouched(before, generator, discriminator)
