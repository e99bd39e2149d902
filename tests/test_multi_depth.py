"""Several depths of D as one feature vector (issue 17, Build item 3): ``feature_layer`` as a list."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from discinvert import Inverter, fit_inverter
from discinvert.inverter_config import InverterConfig
from discinvert.features import FeatureTap
from discinvert.guard import frozen
from discinvert.layers import resolve_layers
from tests.conftest import LATENT, assert_untouched, hook_counts, snapshot

QUICK = dict(steps=20, batch_size=16, cn_hidden=(32,), progress=False, validation_size=32, seed=0)


def _single(D: nn.Module, name: str, x: torch.Tensor) -> torch.Tensor:
    layer_name, (layer,) = resolve_layers(D, name)
    return FeatureTap(D, layer_name, layer)(x)


def test_several_layers_read_as_the_concatenation_of_each_in_the_order_given(make_gan) -> None:
    gan = make_gan("dcgan")  # "3" is a BatchNorm whose output the in-place LeakyReLU "4" overwrites
    D = gan.discriminator
    _, x, _ = gan.sample(6)
    with frozen(D), torch.no_grad():
        names, layers = resolve_layers(D, ["3", "0", "4"])
        both = FeatureTap(D, names, layers)(x)
        expected = torch.cat([_single(D, "3", x), _single(D, "0", x), _single(D, "4", x)], dim=1)
        assert names == ("3", "0", "4")
        assert torch.equal(both, expected)
        # the BatchNorm's output as D computed it, not as the in-place activation rewrote it
        assert not torch.equal(_single(D, "3", x), torch.nn.functional.leaky_relu(_single(D, "3", x), 0.2))


def test_the_forward_pass_stops_after_the_deepest_listed_layer() -> None:
    ran: list[str] = []

    class Recording(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b, self.c = nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            for name in ("a", "b", "c"):
                ran.append(name)
                x = getattr(self, name)(x)
            return x

    D = Recording()
    names, layers = resolve_layers(D, ["b", "a"])
    features = FeatureTap(D, names, layers)(torch.randn(3, 4))
    assert ran == ["a", "b"] and features.shape == (3, 8)
    assert hook_counts(D) == {}


@pytest.mark.parametrize("layer, message", [
    ([], "at least one layer"),
    (["4", "4"], "distinct layers, got '4' twice"),
    (["4", "nope"], "'nope' is not a layer"),
    (3, "or a list of them, got int"),
])
def test_a_bad_list_is_a_clear_value_error(make_gan, layer, message) -> None:
    gan = make_gan("dcgan")
    before = snapshot(gan.generator, gan.discriminator)
    with pytest.raises(ValueError, match=message):
        fit_inverter(gan.generator, gan.discriminator, layer, latent_shape=gan.latent_shape, **QUICK)
    assert_untouched(before, gan.generator, gan.discriminator)


def test_two_names_of_one_module_are_refused() -> None:
    shared = nn.Linear(4, 4)
    D = nn.Sequential(shared, nn.ReLU())
    D.alias = shared
    with pytest.raises(ValueError, match="two names of one module"):
        resolve_layers(D, ["0", "alias"])


def test_a_list_of_one_layer_is_that_layer(make_gan) -> None:
    gan = make_gan("dcgan")
    name, layers = resolve_layers(gan.discriminator, ["4"])
    assert name == "4" and layers == (gan.discriminator[4],)


def test_a_listed_layer_d_never_runs_or_runs_twice_is_refused(make_gan) -> None:
    gan = make_gan("wgan_gp")

    class Shared(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1, self.conv2 = nn.Conv2d(1, 4, 3, 2, 1), nn.Conv2d(4, 4, 3, 2, 1)
            self.act, self.unused = nn.LeakyReLU(0.2), nn.Identity()
            self.head = nn.Linear(4 * 2 * 2, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.act(self.conv2(self.act(self.conv1(x)))).flatten(1))

    D = Shared()
    with pytest.raises(ValueError, match="feature_layer 'unused' \\(of \\['conv1', 'unused'\\]\\)"):
        fit_inverter(gan.generator, D, ["conv1", "unused"], latent_shape=gan.latent_shape, **QUICK)
    with pytest.raises(ValueError, match="feature_layer 'act': expected a layer D runs once"):
        fit_inverter(gan.generator, D, ["conv1", "act"], latent_shape=gan.latent_shape, **QUICK)
    assert hook_counts(D) == {}


@pytest.mark.parametrize("name", ["dcgan", "wgan_gp"])
def test_a_multi_depth_inverter_fits_saves_and_loads_strictly(make_gan, tmp_path, name) -> None:
    gan = make_gan(name)
    G, D = gan.generator, gan.discriminator
    layers = {"dcgan": ["1", "4"], "wgan_gp": ["blocks.0.act", "blocks.1.act"]}[name]
    before = snapshot(G, D)
    inverter = fit_inverter(G, D, layers, latent_shape=gan.latent_shape, iterations=1, iteration_steps=4,
                            eval_every=2, **QUICK)
    assert_untouched(before, G, D)
    assert hook_counts(G) == {} and hook_counts(D) == {}
    assert inverter.feature_layer == tuple(layers)
    with frozen(D), torch.no_grad():
        _, x, _ = gan.sample(4)
        dims = [_single(D, layer, x).shape[1] for layer in layers]
    assert inverter.config.feature_dim == sum(dims) == inverter.config.cn.in_features == inverter.config.step.feature_dim
    path = inverter.save(tmp_path / "multi.safetensors")
    loaded = Inverter.load(path, generator=G, discriminator=D)
    assert loaded.feature_layer == tuple(layers)
    assert torch.equal(loaded.encode(x), inverter.encode(x))
    folder = inverter.save_pretrained(tmp_path / "folder")
    assert json.loads((folder / "config.json").read_text())["feature_layer"] == layers
    assert "(concatenated)" in (folder / "README.md").read_text()
    assert_untouched(before, G, D)


def test_the_fingerprint_covers_the_list_of_layers(make_gan) -> None:
    import dataclasses

    gan = make_gan("dcgan")
    G, D = gan.generator, gan.discriminator
    inverter = fit_inverter(G, D, ["1", "4"], latent_shape=gan.latent_shape, **QUICK)
    assert inverter.check_fingerprints()
    # the same modules run and the same number of features, but another layer read: refused
    moved = Inverter(dataclasses.replace(inverter.config, feature_layer=("0", "4")), generator=G, discriminator=D)
    with pytest.raises(ValueError, match="fit for another GAN"):
        moved.check_fingerprints()
    reordered = Inverter(dataclasses.replace(inverter.config, feature_layer=("4", "1")), generator=G, discriminator=D)
    with pytest.raises(ValueError, match="fit for another GAN"):
        reordered.check_fingerprints()


@pytest.mark.parametrize("value", [["4"], ["4", "4"], ["4", 3], []])
def test_a_config_whose_layer_list_is_malformed_is_refused(make_gan, value) -> None:
    gan = make_gan("dcgan")
    inverter = fit_inverter(gan.generator, gan.discriminator, "4", latent_shape=gan.latent_shape, **QUICK)
    data = inverter.config.to_dict()
    data["feature_layer"] = value
    with pytest.raises(ValueError, match="'feature_layer' to be a string or a list of at least two distinct"):
        InverterConfig.from_dict(data)


def test_a_single_layer_config_is_written_as_before(make_gan) -> None:
    gan = make_gan("dcgan")
    inverter = fit_inverter(gan.generator, gan.discriminator, "4", latent_shape=gan.latent_shape, **QUICK)
    assert inverter.config.to_dict()["feature_layer"] == "4"
    assert LATENT == inverter.config.latent_dim


def test_suggested_layers_are_the_hand_chosen_ones_on_the_reference_and_test_gans(tiny_gan) -> None:
    """The heuristic finds the layer chosen by hand for the reference DCGAN and the test zoo (tuple D: the
    tuple-returning block, whose output is its activation of the convolution)."""
    from discinvert import suggest_feature_layers, zoo
    from discinvert.zoo.architectures import GANConfig, build_gan

    _, x, y = tiny_gan.sample(4)
    example = x if y is None else (x, y)
    before = snapshot(tiny_gan.discriminator)
    expected = tiny_gan.feature_layer
    assert suggest_feature_layers(tiny_gan.discriminator, example) == [expected]
    assert_untouched(before, tiny_gan.discriminator)
    assert hook_counts(tiny_gan.discriminator) == {}
    if tiny_gan.name == "wgan_gp":
        assert suggest_feature_layers(tiny_gan.discriminator, example, depths=2) == ["blocks.0.act", "blocks.1.act"]
    G, D, _ = zoo.load("dcgan-fashion-mnist")
    images = G(torch.randn(2, 100, 1, 1)).detach()
    assert suggest_feature_layers(D, images) == [zoo.load_gan_config("dcgan-fashion-mnist").feature_layer]
    assert suggest_feature_layers(D, images, depths=2) == ["main.4", "main.7"]
    assert suggest_feature_layers(D, images, depths=9) == ["main.1", "main.4", "main.7"]
    for d_batch_norm in (True, False):  # the LSGAN/WGAN-GP reference shapes
        config = GANConfig(d_batch_norm=d_batch_norm)
        _, reference_d = build_gan(config)
        assert suggest_feature_layers(reference_d, images) == [config.feature_layer]


@pytest.mark.parametrize("depths, example, message", [
    (0, torch.zeros(4, 1, 28, 28), "depths: expected a positive int"),
    (True, torch.zeros(4, 1, 28, 28), "depths: expected a positive int"),
    (1, torch.zeros(1, 1, 28, 28), "a batch of at least 2"),
])
def test_suggestions_refuse_bad_arguments(depths, example, message) -> None:
    from discinvert import suggest_feature_layers, zoo

    _, D, _ = zoo.load("dcgan-fashion-mnist")
    with pytest.raises(ValueError, match=message):
        suggest_feature_layers(D, example, depths=depths)


def test_a_d_with_nothing_before_its_head_gets_no_suggestion() -> None:
    from discinvert import suggest_feature_layers

    with pytest.raises(ValueError, match="choose the feature layer by hand"):
        suggest_feature_layers(nn.Sequential(nn.Flatten(), nn.Linear(16, 1)), torch.zeros(3, 1, 4, 4))
