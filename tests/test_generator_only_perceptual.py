"""The generator-only route's optional perceptual term (issue 35 item 2): ``fit_inverter(G, None, images=...,
perceptual=None | 'encoder' | 'random')``, weighted by ``feature_weight``, off by default."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import safetensors
import torch

from discinvert import Inverter, fit_inverter
from discinvert.features import FeatureTap
from discinvert.fitting import fit as fit_module
from discinvert.fitting.fit_config import FitConfig
from discinvert.fitting.image_sets import ImageBatches, split_images
from discinvert.fitting.loop import Plan, Runtime
from discinvert.fitting.pixel_route import PixelRegressor, perceptual_network
from discinvert.fitting.run import FrozenGAN, Seeds
from discinvert.fitting.step_network_stage import train_step_networks
from discinvert.fitting.updates import LossWeights
from discinvert.guard import frozen
from discinvert.pixel_encoder import PixelEncoder
from discinvert.step_networks import StepConfig, residual_shape
from tests.conftest import _build, assert_untouched, hook_counts, snapshot

QUICK: dict[str, Any] = dict(steps=30, batch_size=32, validation_size=64, cn_hidden=(64, 64), pixel_width=8, seed=5,
                             eval_every=5, progress=False)
REAL: dict[str, Any] = dict(real_steps=10, real_batch_size=16, real_held_out=32)
STEPS: dict[str, Any] = dict(iterations=1, iteration_steps=6, iteration_batch_size=16, step_hidden=(32,))


def _fit(gan: Any, images: torch.Tensor | None, **settings: Any) -> Inverter:
    extra = {} if images is None else {"images": images, **REAL}
    return fit_inverter(gan.generator, None, latent_shape=gan.latent_shape, **{**QUICK, **extra, **settings})


def _captured_fit(gan: Any, images: torch.Tensor, **settings: Any) -> tuple[Inverter, dict[str, Any]]:
    """A fit whose perceptual network is kept (with its weights as made, and a count of its forward passes)."""
    seen: dict[str, Any] = {"calls": 0}

    def keep(kind: str, regressor: PixelRegressor, seed: int) -> PixelEncoder:
        network = perceptual_network(kind, regressor, seed)
        seen.update(network=network, made={k: v.clone() for k, v in network.state_dict().items()}, seed=seed)
        network.register_forward_hook(lambda *_: seen.__setitem__("calls", seen["calls"] + 1))
        return network

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fit_module, "perceptual_network", keep)
        return _fit(gan, images, **settings), seen


def _untimed(value: Any) -> Any:
    """A fit record without what the clock measured, at every depth (the stages' records hold seconds too)."""
    if isinstance(value, dict):
        return {k: _untimed(v) for k, v in value.items() if k != "seconds"}
    if isinstance(value, list) and value and all(isinstance(row, list) and len(row) == 4 for row in value):
        return [row[:3] for row in value]  # history rows: [step, train, validation, seconds]
    return [_untimed(v) for v in value] if isinstance(value, list) else value


def _same_weights(a: Inverter, b: Inverter) -> bool:
    first, second = a.state_dict(), b.state_dict()
    return first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


@pytest.fixture(scope="module")
def fits() -> dict[str, Any]:
    """Generator-only fits of the tiny DCGAN (G with BatchNorm and an inplace ReLU, handed over in train mode) with
    images and one step network: the setting left out, None, 'encoder' and 'random'; G snapshotted before."""
    gan = _build("dcgan")
    before = snapshot(gan.generator)
    _, images, _ = gan.sample(96, seed=11)
    made: dict[str, Any] = {"gan": gan, "before": before, "images": images,
                            "left out": _fit(gan, images, **STEPS), "None": _fit(gan, images, perceptual=None, **STEPS)}
    for kind in ("encoder", "random"):
        made[kind], made[f"{kind} network"] = _captured_fit(gan, images, perceptual=kind, **STEPS)
    made["alone"] = _fit(gan, None)  # the same self-generated stage, without images
    return made


# ----------------------------------------------------------------------------- off by default
def test_perceptual_none_is_the_default_and_changes_nothing(fits) -> None:
    assert FitConfig().perceptual is None
    left_out, none = fits["left out"], fits["None"]
    assert _same_weights(left_out, none)
    assert _untimed(left_out.config.fit) == _untimed(none.config.fit)
    real = none.config.fit["real_images"]
    assert real["perceptual"] is None and real["feature_weight"] == 0.0
    assert "perceptual" not in none.config.fit  # recorded with the real-image stage only
    assert_untouched(fits["before"], fits["gan"].generator)


@pytest.mark.filterwarnings("ignore::discinvert.fitting.fit.UselessInverterWarning")  # a fit of 10 updates
def test_a_d_route_record_does_not_name_the_setting(make_gan) -> None:
    gan = make_gan("dcgan")
    _, images, _ = gan.sample(48, seed=3)
    inverter = fit_inverter(gan.generator, gan.discriminator, gan.feature_layer, latent_shape=gan.latent_shape,
                            steps=10, batch_size=16, validation_size=16, cn_hidden=(16,), seed=1, progress=False,
                            images=images, real_steps=3, real_batch_size=8, real_held_out=8)
    assert "perceptual" not in inverter.config.fit and "perceptual" not in inverter.config.fit["real_images"]
    assert inverter.config.fit["real_images"]["feature_weight"] == 0.5


# ----------------------------------------------------------------------------- each network trains and changes the result
@pytest.mark.parametrize("kind", ["encoder", "random"])
def test_each_perceptual_network_changes_the_fit_and_is_recorded(fits, kind) -> None:
    inverter, none = fits[kind], fits["None"]
    fit = inverter.config.fit
    assert fit["real_images"]["perceptual"] == kind and fit["real_images"]["feature_weight"] == 0.5
    assert [row[:3] for row in fit["history"]] == [row[:3] for row in none.config.fit["history"]]  # same stage 1
    assert not _same_weights(inverter, none)  # the term's gradient reached the pixel network and the CN...
    mine, plain = inverter.steps[0].state_dict(), none.steps[0].state_dict()
    assert any(not torch.equal(mine[k], plain[k]) for k in plain)
    assert fit["real_images"]["best_held_out_pixel_mse"] <= fit["real_images"]["start_held_out_pixel_mse"]
    _, x, _ = fits["gan"].sample(8)
    assert bool(torch.isfinite(inverter.encode(x)).all())
    assert hook_counts(fits["gan"].generator) == {}
    assert_untouched(fits["before"], fits["gan"].generator)


@pytest.mark.parametrize("kind", ["encoder", "random"])
def test_the_network_is_frozen_fit_time_only_and_read_in_both_stages(fits, kind, tmp_path: Path) -> None:
    seen = fits[f"{kind} network"]
    network: PixelEncoder = seen["network"]
    assert all(torch.equal(value, seen["made"][name]) for name, value in network.state_dict().items())
    assert all(not p.requires_grad and p.grad is None for p in network.parameters())
    # two passes (the image, the reconstruction) per update of the real-image stage and of the step network
    assert seen["calls"] == 2 * REAL["real_steps"] + 2 * STEPS["iteration_steps"]
    inverter = fits[kind]
    assert inverter.state_dict().keys() == fits["None"].state_dict().keys()  # nothing of it in the inverter
    assert not any(m is network for m in inverter.modules())
    path = inverter.save(tmp_path / "g.safetensors")
    with safetensors.safe_open(str(path), framework="pt") as handle:
        stored = {name: handle.get_tensor(name) for name in handle.keys()}
    assert set(stored) == set(inverter.state_dict())
    assert not any(torch.equal(tensor, weight) for tensor in stored.values() for weight in seen["made"].values()
                   if tensor.shape == weight.shape)
    loaded = Inverter.load(path, generator=fits["gan"].generator)
    assert loaded.config.fit["real_images"]["perceptual"] == kind


def test_encoder_is_the_pixel_network_the_self_generated_stage_left(fits) -> None:
    encoder = fits["encoder network"]["made"]
    alone = fits["alone"].pixels.state_dict()  # the same seed and self-generated stage, without images
    assert encoder.keys() == alone.keys() and all(torch.equal(encoder[k], alone[k]) for k in alone)
    assert not torch.equal(fits["encoder"].pixels.layers[0].weight, encoder["layers.0.weight"])  # which trained on


def test_random_is_a_seeded_network_of_the_same_layout(fits) -> None:
    seen, config = fits["random network"], fits["random"].config.pixel_encoder
    assert seen["seed"] == Seeds(QUICK["seed"]).of("perceptual")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seen["seed"])
        expected = PixelEncoder(config).state_dict()
    assert seen["made"].keys() == expected.keys() and all(torch.equal(seen["made"][k], expected[k]) for k in expected)
    encoder = fits["encoder network"]["made"]
    assert all(seen["made"][k].shape == encoder[k].shape and not torch.equal(seen["made"][k], encoder[k])
               for k in encoder)


def test_perceptual_network_leaves_the_regressor_and_the_global_rng_as_they_were(fits) -> None:
    regressor = PixelRegressor(fits["encoder"].pixels, fits["encoder"].cn)
    before = {k: v.clone() for k, v in regressor.state_dict().items()}
    state = torch.get_rng_state()
    copy = perceptual_network("encoder", regressor, 0)
    perceptual_network("random", regressor, 0)
    assert torch.equal(torch.get_rng_state(), state)
    assert copy is not regressor.pixels and not copy.training
    assert all(torch.equal(v, regressor.state_dict()[k]) for k, v in before.items())
    assert all(p.requires_grad for p in regressor.parameters())
    with pytest.raises(ValueError, match=r"perceptual: expected 'encoder' or 'random', got 'vgg'"):
        perceptual_network("vgg", regressor, 0)


@pytest.mark.parametrize("kind", ["encoder", "random"])
def test_the_same_seed_gives_the_same_inverter(fits, kind) -> None:
    again = _fit(fits["gan"], fits["images"], perceptual=kind, **STEPS)
    assert _same_weights(again, fits[kind])
    assert _untimed(again.config.fit) == _untimed(fits[kind].config.fit)
    assert_untouched(fits["before"], fits["gan"].generator)


def test_a_given_weight_is_the_terms_and_zero_drops_it(fits) -> None:
    gan, images = fits["gan"], fits["images"]
    lighter = _fit(gan, images, perceptual="encoder", feature_weight=0.25)
    assert lighter.config.fit["real_images"]["feature_weight"] == 0.25
    without_steps = _fit(gan, images, perceptual="encoder")
    assert not _same_weights(lighter, without_steps)
    dropped, seen = _captured_fit(gan, images, perceptual="random", feature_weight=0.0)
    assert seen["calls"] == 0 and dropped.config.fit["real_images"]["feature_weight"] == 0.0
    assert _same_weights(dropped, _fit(gan, images))  # no term: the default fit
    assert_untouched(fits["before"], gan.generator)


# ----------------------------------------------------------------------------- the step networks' stage alone
def test_the_step_networks_term_reads_the_perceptual_network(fits) -> None:
    """Step networks trained from one CN with the same seeds: the perceptual network's term changes them; with
    weight 0 it is dropped and the network never runs."""
    gan, inverter = fits["gan"], fits["None"]
    pixels = inverter.pixels
    tap = FeatureTap(pixels, pixels.last_layer, pixels.get_submodule(pixels.last_layer))
    split = split_images(fits["images"], inverter.image_shape, held_out=16, seed=4,
                         image_range=inverter.config.image_range)
    config = StepConfig(feature_dim=inverter.config.feature_dim, latent_dim=inverter.config.latent_dim,
                        residual_shape=residual_shape(inverter.image_shape), hidden=(16,))
    random = perceptual_network("random", PixelRegressor(pixels, inverter.cn), 3)
    calls = {"n": 0}
    random.register_forward_hook(lambda *_: calls.__setitem__("n", calls["n"] + 1))

    def train(perceptual: torch.nn.Module | None, weight: float) -> dict[str, torch.Tensor]:
        torch.manual_seed(0)
        rng = torch.Generator().manual_seed(1)
        with frozen(gan.generator, pixels):
            steps, _ = train_step_networks(
                inverter.cn, config, FrozenGAN(gan.generator, tap, inverter.latent_shape, perceptual),
                lambda n: torch.randn(n, *inverter.latent_shape, generator=rng), torch.randn(8, *inverter.latent_shape),
                ImageBatches(split, torch.Generator().manual_seed(2)), Plan(4, 1e-3, 8, 2),
                Runtime(torch.device("cpu"), progress=False), iterations=1, weights=LossWeights(weight, 0.1))
        return steps[0].state_dict()

    plain = train(None, 0.0)
    assert calls["n"] == 0
    dropped = train(random, 0.0)
    assert calls["n"] == 0 and all(torch.equal(plain[k], dropped[k]) for k in plain)
    perceived = train(random, 0.5)
    assert calls["n"] == 2 * 4 and any(not torch.equal(plain[k], perceived[k]) for k in plain)
    assert all(p.grad is None and not p.requires_grad for p in random.parameters())


# ----------------------------------------------------------------------------- what is refused
@pytest.mark.parametrize(("value", "match"), [
    ("vgg", r"perceptual: expected None, 'encoder' or 'random', got 'vgg'"),
    ("Encoder", r"perceptual: expected None, 'encoder' or 'random', got 'Encoder'"),
    (1, r"perceptual: expected None, 'encoder' or 'random', got 1"),
    (True, r"perceptual: expected None, 'encoder' or 'random', got True"),
])
def test_an_unknown_value_is_refused(make_gan, value, match) -> None:
    with pytest.raises(ValueError, match=match):
        FitConfig(perceptual=value)
    gan = make_gan("dcgan")
    before = snapshot(gan.generator)
    with pytest.raises(ValueError, match=match):
        _fit(gan, None, perceptual=value)
    assert_untouched(before, gan.generator)


@pytest.mark.parametrize("kind", ["encoder", "random"])
def test_perceptual_with_a_discriminator_is_refused(make_gan, kind) -> None:
    gan = make_gan("dcgan")
    _, images, _ = gan.sample(48, seed=3)
    before = snapshot(gan.generator, gan.discriminator)
    match = rf"perceptual: expected None with a discriminator .*got '{kind}'"
    with pytest.raises(ValueError, match=match):
        fit_inverter(gan.generator, gan.discriminator, gan.feature_layer, latent_shape=gan.latent_shape,
                     images=images, perceptual=kind, steps=5, progress=False)
    with pytest.raises(ValueError, match=match):  # in a config too
        fit_inverter(gan.generator, gan.discriminator, gan.feature_layer, latent_shape=gan.latent_shape,
                     images=images, config=FitConfig(perceptual=kind, steps=5, progress=False))
    assert_untouched(before, gan.generator, gan.discriminator)
    assert hook_counts(gan.generator) == {} and hook_counts(gan.discriminator) == {}


def test_feature_weight_without_d_still_needs_perceptual(make_gan) -> None:
    gan = make_gan("dcgan")
    with pytest.raises(ValueError, match=r"feature_weight: expected 0 without a discriminator.*got 0.5.*or set "
                                         r"perceptual"):
        _fit(gan, None, feature_weight=0.5)


def test_perceptual_without_images_warns_and_changes_nothing(fits) -> None:
    gan = fits["gan"]
    with pytest.warns(UserWarning, match=r"perceptual: these settings act only on the real-image stage"):
        quiet = _fit(gan, None, perceptual="random")
    assert _same_weights(quiet, fits["alone"])
    assert_untouched(fits["before"], gan.generator)
