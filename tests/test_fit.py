"""fit_inverter on every kind of tiny GAN: it inverts, it is reproducible, it leaves the GAN alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from discinvert import Inverter, fit_inverter
from tests.conftest import LATENT, TinyGAN, assert_untouched, snapshot

FAST = dict(steps=300, batch_size=64, cn_hidden=(256, 256), progress=False, validation_size=256)


def _fit(gan: TinyGAN, **overrides) -> Inverter:
    kwargs = {**FAST, "seed": 0, **gan.fit_kwargs, **overrides}
    return fit_inverter(
        gan.generator, gan.discriminator, gan.feature_layer,
        latent_shape=gan.latent_shape, conditioning=gan.conditioning, **kwargs,
    )


def test_inverts_far_better_than_trivial(tiny_gan: TinyGAN) -> None:
    before = snapshot(tiny_gan.generator, tiny_gan.discriminator)
    inverter = _fit(tiny_gan)
    assert_untouched(before, tiny_gan.generator, tiny_gan.discriminator)

    z, x, y = tiny_gan.sample(512)
    codes = inverter.encode(x, conditions=y)
    assert codes.shape == (512, *tiny_gan.latent_shape)
    mse = float(((codes - z) ** 2).mean())
    # Predicting zero (the prior's mean) scores E[z^2] = 1.
    assert mse < 0.35, f"{tiny_gan.name}: latent MSE {mse:.3f}"
    fit = inverter.config.fit
    assert fit["best_validation_mse"] < 0.35 < fit["baseline_validation_mse"]
    assert_untouched(before, tiny_gan.generator, tiny_gan.discriminator)


def test_default_connection_network_is_the_papers(make_gan) -> None:
    gan = make_gan("dcgan")
    inverter = fit_inverter(gan.generator, gan.discriminator, "4", latent_shape=(LATENT, 1, 1), steps=2, seed=0, progress=False)
    kinds = [type(m).__name__ for m in inverter.cn.layers]
    assert kinds == ["Linear", "BatchNorm1d", "LeakyReLU", "Linear", "BatchNorm1d", "LeakyReLU", "Linear"]
    assert inverter.cn.layers[0].out_features == 1024 and inverter.cn.layers[3].out_features == 1024
    assert inverter.cn.layers[6].out_features == LATENT
    assert inverter.config.feature_dim == 64 * 4 * 4
    assert inverter.config.image_shape == (1, 8, 8)


def test_same_seed_bit_identical_and_global_rng_untouched(make_gan) -> None:
    gan = make_gan("dcgan")
    state = torch.get_rng_state()
    a = _fit(gan, steps=50, seed=7)
    assert torch.equal(torch.get_rng_state(), state), "fit_inverter changed the global RNG"
    b = _fit(gan, steps=50, seed=7)
    c = _fit(gan, steps=50, seed=8)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    untimed = lambda fit: {**fit, "seconds": None, "history": [row[:3] for row in fit["history"]]}  # noqa: E731
    assert untimed(a.config.fit) == untimed(b.config.fit)


def test_seed_none_is_recorded(make_gan) -> None:
    gan = make_gan("mlp")
    inverter = _fit(gan, steps=5, seed=None)
    assert isinstance(inverter.config.fit["seed"], int)


def test_best_validation_cn_is_returned(make_gan) -> None:
    gan = make_gan("mlp")
    inverter = _fit(gan, steps=200, eval_every=50)
    fit = inverter.config.fit
    assert fit["best_validation_mse"] <= fit["final_validation_mse"]
    assert fit["best_step"] in (50, 100, 150, 200)


def test_custom_latent_sampler_uniform_prior(make_gan) -> None:
    gan = make_gan("wgan_gp")

    def uniform(n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
        return torch.rand((n, LATENT), generator=generator, device=device) * 2 - 1

    inverter = fit_inverter(gan.generator, gan.discriminator, gan.feature_layer, latent_sampler=uniform, **FAST, seed=0)
    assert inverter.latent_shape == (LATENT,)
    assert inverter.config.latent_prior == "custom"
    z = uniform(256, torch.Generator().manual_seed(5), torch.device("cpu"))
    gan.generator.eval()
    with torch.no_grad():
        x = gan.generator(z)
    mse = float(((inverter.encode(x) - z) ** 2).mean())
    assert mse < 0.1, mse  # the uniform prior's variance is 1/3


def test_sampler_disagreeing_with_latent_shape_is_refused(make_gan) -> None:
    gan = make_gan("mlp")

    def wrong(n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
        return torch.randn((n, LATENT + 1), generator=generator, device=device)

    with pytest.raises(ValueError, match=r"latent_shape \(8,\)"):
        fit_inverter(gan.generator, gan.discriminator, "body.3", latent_shape=(LATENT,), latent_sampler=wrong, steps=2)


def test_feature_layer_as_module_and_flat_or_4d_latents(make_gan) -> None:
    gan = make_gan("dcgan")
    layer = gan.discriminator[4]
    inverter = fit_inverter(gan.generator, gan.discriminator, layer, latent_shape=(LATENT, 1, 1), steps=3, seed=0, progress=False)
    assert inverter.feature_layer == "4"
    flat = make_gan("wgan_gp")
    inverter = fit_inverter(flat.generator, flat.discriminator, "blocks.1.act", latent_shape=LATENT, steps=3, seed=0, progress=False)
    assert inverter.latent_shape == (LATENT,)


def test_early_exit_does_not_run_the_rest_of_d(make_gan) -> None:
    gan = make_gan("dcgan")
    original = gan.discriminator[5]
    calls = []
    handle = original.register_forward_hook(lambda module, _i, _o: calls.append(module is original))
    try:
        inverter = fit_inverter(gan.generator, gan.discriminator, "4", latent_shape=(LATENT, 1, 1), steps=3, seed=0, progress=False)
        inverter.encode(gan.sample(4)[1])
    finally:
        handle.remove()
    # Only fit's check that the layer runs once goes past it, once, on a copy of D (which carries the hook).
    assert calls == [False], "the user's D ran past the feature layer"


def test_progress_bar_shows_when_asked(make_gan, capsys) -> None:
    gan = make_gan("mlp")
    _fit(gan, steps=5, progress=True, eval_every=5)
    err = capsys.readouterr().err
    assert "fit CN" in err and "val=" in err
    _fit(gan, steps=5, progress=False)
    assert "fit CN" not in capsys.readouterr().err


def test_numpy_images_are_accepted(make_gan) -> None:
    gan = make_gan("dcgan")
    inverter = _fit(gan, steps=5)
    _, x, _ = gan.sample(6)
    from_numpy = inverter.encode(x.numpy().astype(np.float64))
    assert from_numpy.device.type == "cpu"
    torch.testing.assert_close(from_numpy, inverter.encode(x), rtol=1e-5, atol=1e-5)


class _InplaceLatentG(torch.nn.Module):
    """A G whose first op writes into its latent input: ``LeakyReLU(inplace=True)`` on z."""

    def __init__(self, inplace: bool) -> None:
        super().__init__()
        from tests.conftest import ConvGenerator

        self.act = torch.nn.LeakyReLU(0.2, inplace=inplace)
        self.body = ConvGenerator()

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(self.act(z))


def test_a_g_writing_into_its_latent_does_not_corrupt_targets_or_codes(make_gan) -> None:
    # The same function with and without inplace: the fit must not notice the difference.
    torch.manual_seed(0)
    plain = _InplaceLatentG(inplace=False)
    inplace = _InplaceLatentG(inplace=True)
    inplace.load_state_dict(plain.state_dict())
    D = make_gan("dcgan").discriminator
    kwargs = dict(steps=40, batch_size=32, cn_hidden=(64,), progress=False, validation_size=64, seed=3)
    a = fit_inverter(plain, D, "4", latent_shape=(LATENT, 1, 1), **kwargs)
    b = fit_inverter(inplace, D, "4", latent_shape=(LATENT, 1, 1), **kwargs)
    assert a.config.fit["best_validation_mse"] == b.config.fit["best_validation_mse"]
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    codes = torch.randn(5, LATENT, 1, 1)
    before = codes.clone()
    b.decode(codes)
    _, x, _ = make_gan("dcgan").sample(5)
    b.refine(x, 2)
    assert torch.equal(codes, before), "decode let G write into the caller's codes"


def test_numpy_integers_are_accepted_as_seed_and_shape(make_gan) -> None:
    gan = make_gan("dcgan")
    kwargs = dict(steps=5, batch_size=16, cn_hidden=(np.int64(16),), progress=False, validation_size=16)
    a = fit_inverter(gan.generator, gan.discriminator, gan.feature_layer, latent_shape=(LATENT, 1, 1), seed=4, **kwargs)
    b = fit_inverter(gan.generator, gan.discriminator, gan.feature_layer,
                     latent_shape=(np.int64(LATENT), np.int32(1), np.int64(1)), seed=np.int64(4), **kwargs)
    assert b.latent_shape == (LATENT, 1, 1) and type(b.config.fit["seed"]) is int
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())


def test_g_image_range_is_recorded(make_gan) -> None:
    gan = make_gan("dcgan")
    inverter = _fit(gan, steps=5)
    low, high = inverter.config.image_range
    _, x, _ = gan.sample(64)
    assert -1.0 <= low < high <= 1.0 and low < float(x.max()) and high > float(x.min())
    assert inverter.value_range == (-1.0, 1.0)


def test_standardised_features_are_folded_into_the_papers_cn(make_gan) -> None:
    """cn_standardize (default) trains on standardised features and folds them in: the stored CN keeps the
    paper's shape and state keys, and maps raw features as the network did at its best validation."""
    gan = make_gan("dcgan")
    z, x, _ = gan.sample(32)
    layer = gan.discriminator.get_submodule(gan.feature_layer)
    captured: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda _m, _i, out: captured.append(out.flatten(1).clone()))
    with torch.no_grad():
        gan.discriminator.eval()(x)
    handle.remove()
    gan.discriminator.train()
    features, seen = captured[0], {}

    def record(point) -> None:
        with torch.no_grad():
            seen[point.step] = point.network(features)

    folded = _fit(gan, steps=60, eval_every=20, on_validation=record)
    raw = _fit(gan, steps=60, eval_every=20, cn_standardize=False)
    fit = folded.config.fit
    assert fit["cn_standardize"] is True and raw.config.fit["cn_standardize"] is False
    assert folded.cn.state_dict().keys() == raw.cn.state_dict().keys()  # no new state: the file format is unchanged
    assert not torch.equal(folded.cn.layers[0].weight, raw.cn.layers[0].weight)
    with torch.no_grad():
        assert torch.allclose(folded.cn(features), seen[fit["best_step"]], atol=1e-4, rtol=1e-4)


def test_standardised_inputs_fold_exactly_and_leave_weights_alone_on_error() -> None:
    from discinvert.network import STD_FLOOR, CNConfig, ConnectionNetwork, feature_statistics, standardised_inputs

    torch.manual_seed(0)
    cn = ConnectionNetwork(CNConfig(in_features=6, out_features=3, hidden=(8,))).eval()
    features = torch.randn(64, 6) * torch.tensor([100.0, 1.0, 0.5, 5.0, 1.0, 1.0]) + 40.0
    features[:, 5] = 3.0  # constant here: its relative deviation is floored, not zero
    mean, std = feature_statistics(features)
    spread = features.std(0)
    assert torch.allclose(std[:5], spread[:5] / spread.median()) and std[5] == STD_FLOOR
    assert torch.equal(feature_statistics(torch.ones(4, 6))[1], torch.ones(6))  # nothing varies: nothing scaled
    with standardised_inputs(cn, mean, std):
        inside = cn(features)
        assert torch.allclose(cn.layers((features - mean) / std), inside)
    assert not cn._forward_pre_hooks
    assert torch.allclose(cn(features), inside, atol=1e-4, rtol=1e-4)
    before = {k: v.clone() for k, v in cn.state_dict().items()}
    with pytest.raises(RuntimeError, match="boom"), standardised_inputs(cn, mean, std):
        raise RuntimeError("boom")
    assert not cn._forward_pre_hooks and all(torch.equal(before[k], v) for k, v in cn.state_dict().items())
    with pytest.raises(ValueError, match=r"\(N, F\) tensor with N >= 2"):
        feature_statistics(torch.zeros(1, 6))
    with pytest.raises(ValueError, match="in_features"):
        with standardised_inputs(cn, mean[:3], std[:3]):
            pass


# ----------------------------------------------------------------------------- useless inverters (issue 32, item 8)
SMALL = dict(steps=40, batch_size=32, cn_hidden=(64,), validation_size=64, eval_every=10, autocast_dtype=None,
             channels_last=False)


def _dead_discriminator() -> torch.nn.Module:
    """D whose feature layer ("1") is a ReLU that never fires: the same (zero) features for every image."""
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 4, 2, 1), torch.nn.ReLU(), torch.nn.Flatten(),
                                torch.nn.Linear(8 * 4 * 4, 1))
    with torch.no_grad():
        model[0].weight.zero_(), model[0].bias.fill_(-1.0)
    return model


@pytest.mark.parametrize("case", ["lr=1e6", "dead feature layer"])
def test_a_fit_that_does_not_beat_the_mean_code_warns_and_the_file_records_it(make_gan, tmp_path, case) -> None:
    from discinvert.fitting.fit import UselessInverterWarning

    gan = make_gan("dcgan")
    if case == "dead feature layer":
        gan.discriminator, gan.feature_layer = _dead_discriminator(), "1"
    overrides = {**SMALL, "lr": 1e6} if case == "lr=1e6" else SMALL
    tip = r"Try a smaller lr \(this fit: 1e\+06\)" if case == "lr=1e6" else r"Try a smaller lr \(this fit: 0.002\)"
    with pytest.warns(UselessInverterWarning, match=r"fit: expected a validation MSE below \d\.\d+, what predicting the "
                      rf"mean code scores, got .* at best: this inverter ignores its input .*{tip}, another "
                      r"feature_layer whose features vary with the image"):
        inverter = _fit(gan, **overrides)
    fit = inverter.config.fit
    assert fit["useless"] is True and fit["best_validation_mse"] >= fit["baseline_validation_mse"]
    assert 0.7 < fit["baseline_validation_mse"] < 1.3  # the mean code's MSE: about 1 per value for N(0, I)
    path = inverter.save(tmp_path / "inv.safetensors")  # the extra key survives strict loading
    assert Inverter.load(path, generator=gan.generator, discriminator=gan.discriminator).config.fit["useless"] is True


def test_a_normal_tiny_fit_does_not_warn_that_it_is_useless(make_gan) -> None:
    import warnings

    from discinvert.fitting.fit import UselessInverterWarning

    gan = make_gan("dcgan")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UselessInverterWarning)
        inverter = _fit(gan, **SMALL)
    fit = inverter.config.fit
    assert fit["useless"] is False and fit["best_validation_mse"] < fit["baseline_validation_mse"]
