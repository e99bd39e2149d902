"""An image's features, hence its code, never depend on the other images in its batch (issue 32, item 4).

A minibatch standard deviation layer (StyleGAN's and ProGAN's D) appends the spread of the batch as a
feature map: every layer after it gives an image other features in another batch. ``fit_inverter`` refuses
such a feature layer and names the deepest per-image one before it, unless the user opts in;
``list_layers`` marks such layers and ``suggest_feature_layers`` passes them over.
"""

from __future__ import annotations

import re
import warnings

import pytest
import torch
from torch import nn

from discinvert import UselessInverterWarning, fit_inverter, list_layers, suggest_feature_layers
from discinvert.features import FeatureTap
from discinvert.gan import BATCH_CHECK_SIZE, check_batch_independence
from discinvert.layers import batch_permutation, resolve_layers
from tests.conftest import LATENT, ConvGenerator, assert_untouched, minibatch_std_discriminator, snapshot

TINY = dict(latent_shape=(LATENT, 1, 1), steps=5, batch_size=16, cn_hidden=(16,), validation_size=16,
            progress=False, seed=0, autocast_dtype=None, channels_last=False)

GROUPINGS = [  # (group_size, strided): the whole batch, StyleGAN2's strided groups, ProGAN's consecutive ones
    (None, True), (4, True), (2, True), (4, False), (2, False)]


def _gan(group_size: int | None = 4, strided: bool = True) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    generator, discriminator = ConvGenerator(), minibatch_std_discriminator(group_size, strided)
    generator.train(), discriminator.train()  # handed over in train mode, as users do
    return generator, discriminator


def _images(generator: nn.Module, n: int) -> torch.Tensor:
    z = torch.randn((n, LATENT, 1, 1), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return generator.eval()(z)


def test_a_minibatch_std_d_gives_the_same_images_other_codes_in_batches_of_other_sizes() -> None:
    """The defect the check exists for: with the statistic before the feature layer the code moves with the batch."""
    generator, discriminator = _gan(None)
    with pytest.warns(UserWarning, match="Fitting anyway"):
        inverter = fit_inverter(generator, discriminator, "4", allow_batch_dependent_features=True, **TINY)
    images = _images(generator, 16)
    tap = FeatureTap(discriminator.eval(), *resolve_layers(discriminator, "4"))
    with torch.no_grad():
        together, in_pairs = tap(images), torch.cat([tap(images[i : i + 2]) for i in range(0, 16, 2)])
    assert float((together - in_pairs).abs().max()) > 0.05 * float(together.abs().max())  # features move by > 5%
    moved = float((inverter.encode(images, batch_size=16) - inverter.encode(images, batch_size=2)).abs().max())
    per_image = fit_inverter(generator, discriminator, "1", **TINY)  # the layer the refusal names instead
    still = float((per_image.encode(images, batch_size=16) - per_image.encode(images, batch_size=2)).abs().max())
    assert moved > 1e-4 and still < 1e-6  # a 5-update CN barely reads its features, yet its codes move


@pytest.mark.parametrize(("group_size", "strided"), GROUPINGS)
def test_a_feature_layer_after_a_minibatch_std_is_refused_naming_the_last_per_image_layer(group_size, strided) -> None:
    generator, discriminator = _gan(group_size, strided)
    before = snapshot(generator, discriminator)
    message = (r"feature_layer '4': expected features of each image that do not depend on the other images in its "
               r"batch.* D's first layer whose output depends on the batch is '2' \(MinibatchStd\); the deepest layer "
               r"before it whose features are per-image is '1': fit with feature_layer='1' \(see "
               r"discinvert.list_layers\(D, images\): LayerInfo.batch_dependent\), or pass "
               r"allow_batch_dependent_features=True \(discinvert fit --allow-batch-dependent-features\)")
    with pytest.raises(ValueError, match=message):
        fit_inverter(generator, discriminator, "4", **TINY)
    assert_untouched(before, generator, discriminator)  # weights, buffers, modes, requires_grad, no hooks


def test_the_minibatch_std_layer_itself_and_a_list_holding_it_are_refused() -> None:
    generator, discriminator = _gan()
    with pytest.raises(ValueError, match=r"feature_layer '2': .* per-image is '1'"):
        fit_inverter(generator, discriminator, "2", **TINY)
    with pytest.raises(ValueError, match=re.escape("feature_layer '4' (of ['1', '4'])") + ".* per-image is '1'"):
        fit_inverter(generator, discriminator, ["1", "4"], **TINY)


def test_the_opt_in_fits_with_a_warning_and_the_file_records_it(tmp_path) -> None:
    generator, discriminator = _gan()
    before = snapshot(generator, discriminator)
    with pytest.warns(UserWarning, match=r"feature_layer '4': .*per-image is '1'.* Fitting anyway "
                                         r"\(allow_batch_dependent_features=True\): codes depend on the batch"):
        inverter = fit_inverter(generator, discriminator, "4", allow_batch_dependent_features=True, **TINY)
    assert_untouched(before, generator, discriminator)
    path = inverter.save(tmp_path / "inv.safetensors")
    from discinvert import Inverter

    assert Inverter.load(path, generator=generator, discriminator=discriminator).config.fit[
        "batch_dependent_features"] is True
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*depend on the other images")
        clean = fit_inverter(generator, discriminator, "1", **TINY)
    assert clean.config.fit["batch_dependent_features"] is False


@pytest.mark.parametrize(("group_size", "strided"), GROUPINGS)
def test_list_layers_marks_the_layers_whose_output_depends_on_the_batch(group_size, strided) -> None:
    generator, discriminator = _gan(group_size, strided)
    before = snapshot(discriminator)
    for n in (2, 8):
        rows = {row.name: row.batch_dependent for row in list_layers(discriminator, _images(generator, n))}
        assert rows == {"": True, "0": False, "1": False, "2": True, "3": True, "4": True, "5": True, "6": True}, n
    assert {row.batch_dependent for row in list_layers(discriminator)} == {None}  # no example, no verdict
    assert {row.batch_dependent for row in list_layers(discriminator, _images(generator, 1))} == {None}
    assert_untouched(before, discriminator)


def test_suggest_feature_layers_never_picks_a_batch_dependent_layer() -> None:
    generator, discriminator = _gan()
    assert suggest_feature_layers(discriminator, _images(generator, 2)) == ["1"]
    assert suggest_feature_layers(discriminator, _images(generator, 8), depths=2) == ["1"]


def test_the_command_line_shows_the_mark(capsys) -> None:
    from discinvert.cli import main

    assert main(["layers", "--discriminator", "tests.cli_factories:make_minibatch_std_discriminator",
                 "--image-shape", "1,8,8"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in out.splitlines()[3:11]}
    assert out.splitlines()[2].split()[-2:] == ["batch", "calls"]
    assert rows["1"][-2] == "per-image" and rows["2"][-2] == "DEPENDS" and rows["4"][-2] == "DEPENDS"
    assert "batch DEPENDS: the layer's output for one image changes with the other images in the batch" in out
    assert "--allow-batch-dependent-features" in out
    assert "suggested (D's last hidden layer, the paper's choice): --feature-layer 1" in out


class _Norms(nn.Module):
    """BatchNorm and InstanceNorm (with running statistics): in train mode they would mix the batch."""

    def __init__(self) -> None:
        super().__init__()
        self.main = nn.Sequential(nn.Conv2d(1, 16, 3, 1, 1), nn.BatchNorm2d(16), nn.LeakyReLU(0.2),
                                  nn.Conv2d(16, 16, 3, 2, 1), nn.InstanceNorm2d(16, affine=True, track_running_stats=True),
                                  nn.LeakyReLU(0.2), nn.GroupNorm(4, 16), nn.LayerNorm([16, 4, 4]))
        self.head = nn.Linear(16 * 4 * 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.main(x).flatten(1))


def _no_false_alarm(generator: nn.Module, discriminator: nn.Module, layer: str, latents: torch.Tensor,
                    conditions: torch.Tensor | None = None, conditioning=None) -> None:
    name, modules = resolve_layers(discriminator, layer)
    tap = FeatureTap(discriminator, name, modules, conditioning=conditioning)
    before = snapshot(generator, discriminator)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_batch_independence(generator, tap, latents, conditions, conditioning) is False
    assert_untouched(before, generator, discriminator)


def test_no_false_alarm_on_eval_mode_norms_and_the_test_zoo(tiny_gan) -> None:
    z, x, y = tiny_gan.sample(BATCH_CHECK_SIZE)
    _no_false_alarm(tiny_gan.generator, tiny_gan.discriminator, tiny_gan.feature_layer, z, y, tiny_gan.conditioning)
    example = x if y is None else (x, y)
    assert not any(row.batch_dependent for row in list_layers(tiny_gan.discriminator, example))
    if tiny_gan.name == "dcgan":  # BatchNorm, InstanceNorm with running statistics, GroupNorm, LayerNorm
        norms = _Norms().train()
        _no_false_alarm(tiny_gan.generator, norms, "main.7", z)
        assert not any(row.batch_dependent for row in list_layers(norms, x))


def test_no_false_alarm_on_the_zoo_dcgan() -> None:
    from discinvert import zoo

    generator, discriminator, inverter = zoo.load("dcgan-fashion-mnist")
    latents = torch.randn((BATCH_CHECK_SIZE, *inverter.config.latent_shape), generator=torch.Generator().manual_seed(0))
    _no_false_alarm(generator, discriminator, inverter.config.feature_layer, latents)


def test_the_check_is_cheap_and_deterministic() -> None:
    """Five forward passes of D over 24 images in all (the batch, permuted, its two halves, and the batch again),
    stopped at the feature layer; the rearrangement is fixed and moves every image into new company."""
    generator, discriminator = _gan()
    tap = FeatureTap(discriminator, *resolve_layers(discriminator, "1"))
    seen: list[int] = []
    handle = discriminator.register_forward_pre_hook(lambda _m, inputs: seen.append(inputs[0].shape[0]))
    tail = discriminator[5].register_forward_pre_hook(lambda _m, _i: seen.append(-1))  # past the feature layer
    latents = torch.randn((BATCH_CHECK_SIZE, LATENT, 1, 1), generator=torch.Generator().manual_seed(0))
    try:
        assert check_batch_independence(generator, tap, latents) is False
    finally:
        handle.remove(), tail.remove()
    assert seen == [8, 8, 4, 4, 8]
    assert batch_permutation(8).tolist() == [4, 0, 7, 3, 2, 5, 1, 6] == batch_permutation(8).tolist()
    assert batch_permutation(2).tolist() == [1, 0]


def test_the_command_line_fit_refuses_in_one_line_and_the_flag_fits_with_a_warning(tmp_path, capsys) -> None:
    from discinvert.cli import main

    gan = ["--generator", "tests.cli_factories:make_generator", "--discriminator",
           "tests.cli_factories:make_minibatch_std_discriminator", "--latent-shape", "8,1,1", "--feature-layer", "4",
           "--steps", "2", "--batch-size", "16", "--validation-size", "16", "--no-progress", "--autocast", "off"]
    out = tmp_path / "inv.safetensors"
    assert main(["fit", *gan, "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("discinvert fit: error: feature_layer '4': expected features")
    assert "per-image is '1': fit with feature_layer='1'" in err and "--allow-batch-dependent-features" in err
    assert not out.exists()
    assert main(["fit", *gan, "--out", str(out), "--allow-batch-dependent-features"]) == 0
    assert "discinvert fit: warning: feature_layer '4': expected features" in capsys.readouterr().err and out.is_file()


def test_the_check_leaves_the_global_rng_of_a_fit_alone() -> None:
    """A G drawing noise in its forward pass runs during the check: the fit's seeded global stream must not move."""
    from discinvert.features import FeatureTap
    from discinvert.gan import check_batch_independence
    from tests.conftest import MLPDiscriminator, MLPGenerator

    class NoisyG(MLPGenerator):
        def forward(self, z: torch.Tensor) -> torch.Tensor:
            return super().forward(z) + 0.1 * torch.randn(z.shape[0], 16)

    generator, discriminator = NoisyG(), MLPDiscriminator()
    tap = FeatureTap(discriminator, "body.3", discriminator.body[3])
    torch.manual_seed(5)
    state = torch.get_rng_state()
    assert check_batch_independence(generator, tap, torch.randn(8, 8, generator=torch.Generator().manual_seed(1))) is False
    assert torch.equal(torch.get_rng_state(), state)


def test_a_d_drawing_noise_in_its_forward_pass_is_not_called_batch_dependent() -> None:
    """Instance noise added in D's forward pass (even in eval mode) changes the features between two runs of the
    same images: that is randomness, not dependence on the batch, so the fit goes on and the layers are unmarked."""
    class NoisyInput(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + 0.05 * torch.randn_like(x)

    torch.manual_seed(0)
    generator = ConvGenerator()
    discriminator = nn.Sequential(NoisyInput(), nn.Conv2d(1, 16, 4, 2, 1), nn.LeakyReLU(0.2), nn.Flatten(),
                                  nn.Linear(16 * 4 * 4, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # neither refused nor warned about the batch
        warnings.filterwarnings("ignore", category=UselessInverterWarning)
        fit_inverter(generator, discriminator, "2", latent_shape=(LATENT, 1, 1), steps=2, batch_size=16,
                     validation_size=16, progress=False, seed=0)
    images = generator.eval()(torch.randn(8, LATENT, 1, 1)).detach()
    marks = {info.name: info.batch_dependent for info in list_layers(discriminator, images)}
    assert marks["1"] is None and marks["2"] is None  # random, not compared


def test_a_minibatch_std_d_that_also_draws_noise_is_still_refused() -> None:
    """Instance noise before a minibatch standard deviation layer makes every later layer random; the batch's
    spread still moves the features far more than the noise does, so the layer is refused all the same."""
    class NoisyMinibatchStd(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.m = minibatch_std_discriminator()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.m(x + 1e-3 * torch.randn_like(x))

    torch.manual_seed(0)
    generator, discriminator = ConvGenerator(), NoisyMinibatchStd()
    with pytest.raises(ValueError, match=r"feature_layer 'm.4': expected features of each image that do not depend"):
        fit_inverter(generator, discriminator, "m.4", **TINY)
