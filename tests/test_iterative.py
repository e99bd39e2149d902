"""fit_inverter(iterations=k): step networks that correct the CN's codes, feed-forward (discinvert.step_networks)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import safetensors
import safetensors.torch
import torch
import torch.nn.functional as F

from discinvert import Inverter, fit_inverter, zoo
from discinvert.inverter_config import FORMAT_VERSION, InverterConfig
from discinvert.step_networks import MAX_RESIDUAL_SIDE, StepConfig, StepNetwork, residual_shape, step_inputs
from discinvert.serialization import read_inverter_file
from discinvert.zoo.datasets import to_model_range
from tests.conftest import TinyGAN, assert_untouched, hook_counts, snapshot

TINY = dict(steps=40, batch_size=32, cn_hidden=(64,), progress=False, validation_size=64, seed=0,
            iteration_steps=30, iteration_batch_size=32, iteration_lr=1e-3, eval_every=10, step_hidden=(64,))

UNCONDITIONAL = ["mlp", "dcgan", "wgan_gp", "spectral_dropout", "tuple"]


def _fit(gan: TinyGAN, **overrides) -> Inverter:
    return fit_inverter(gan.generator, gan.discriminator, gan.feature_layer, latent_shape=gan.latent_shape,
                        **{**TINY, **overrides})


@pytest.mark.parametrize("name", UNCONDITIONAL)
def test_each_step_network_recovers_fresh_latents_better_and_leaves_the_gan_untouched(make_gan, name) -> None:
    gan = make_gan(name)
    before = snapshot(gan.generator, gan.discriminator)
    inverter = _fit(gan, iterations=2)
    assert_untouched(before, gan.generator, gan.discriminator)
    assert not hook_counts(gan.generator) and not hook_counts(gan.discriminator)
    assert inverter.iterations == 2 and len(inverter.steps) == 2
    z, x, _ = gan.sample(256, seed=99)  # fresh latents, never seen by the fit
    errors = [float(F.mse_loss(inverter.encode(x, iterations=k, range_check="ignore"), z)) for k in range(3)]
    assert errors[1] < 0.97 * errors[0] and errors[2] < errors[1], errors
    assert torch.equal(inverter.encode(x, range_check="ignore"), inverter.encode(x, iterations=2, range_check="ignore"))
    assert torch.equal(inverter.encode(x, iterations=np.int64(1), range_check="ignore"),
                       inverter.encode(x, iterations=1, range_check="ignore"))  # NumPy integers are integers
    record = inverter.config.fit["iterative"]
    assert record["iterations"] == 2 and record["trained_on"] == "self-generated pairs"
    assert [step["metric"] for step in record["steps"]] == ["latent MSE", "latent MSE"]
    assert all(step["best_error"] <= step["start_error"] for step in record["steps"])


def test_iterations_leave_the_connection_network_as_the_plain_fit_gives_it(make_gan) -> None:
    """The step networks are trained after the CN: encode(iterations=0) is exactly the plain fit's encode."""
    gan = make_gan("dcgan")
    plain = fit_inverter(
        gan.generator, gan.discriminator, gan.feature_layer, latent_shape=gan.latent_shape,
        **{k: v for k, v in TINY.items() if not k.startswith("iteration_") and k != "step_hidden"})
    iterative = _fit(gan, iterations=1)
    _, x, _ = gan.sample(32)
    assert torch.equal(plain.encode(x, range_check="ignore"), iterative.encode(x, iterations=0, range_check="ignore"))
    assert plain.iterations == 0 and len(plain.steps) == 0 and "iterative" not in plain.config.fit


def test_an_untrained_step_changes_nothing() -> None:
    config = StepConfig(feature_dim=5, latent_dim=3, residual_shape=(1, 4, 4), hidden=(8,))
    step = StepNetwork(config).eval()
    inputs = step_inputs(config, torch.randn(2, 5), torch.randn(2, 1, 4, 4), torch.randn(2, 5), torch.randn(2, 1, 4, 4),
                         torch.randn(2, 3))
    assert inputs.shape == (2, config.in_features) == (2, 5 + 16 + 3)
    assert torch.equal(step(inputs), torch.zeros(2, 3))


def test_large_images_are_read_as_a_pooled_residual() -> None:
    assert residual_shape((3, 128, 96)) == (3, MAX_RESIDUAL_SIDE, MAX_RESIDUAL_SIDE)
    assert residual_shape((1, 28, 28)) == (1, 28, 28) and residual_shape((784,)) == (784,)
    config = StepConfig(feature_dim=2, latent_dim=2, residual_shape=residual_shape((3, 64, 64)), hidden=(4,))
    images = torch.randn(2, 3, 64, 64)
    inputs = step_inputs(config, torch.zeros(2, 2), images, torch.zeros(2, 2), torch.zeros_like(images), torch.zeros(2, 2))
    expected = F.adaptive_avg_pool2d(images, (32, 32)).reshape(2, -1)
    assert torch.allclose(inputs[:, 2 : 2 + 3 * 32 * 32], expected)


@pytest.mark.parametrize("bad", [-1, 3, 1.0, True, "1"])
def test_encode_refuses_iterations_it_was_not_fit_for(make_gan, bad) -> None:
    gan = make_gan("mlp")
    inverter = _fit(gan, iterations=2, iteration_steps=2)
    _, x, _ = gan.sample(4)
    with pytest.raises(ValueError, match=r"iterations: expected an int from 0 .* to 2 .*got"):
        inverter.encode(x, iterations=bad)
    with pytest.raises(ValueError, match="iterations: expected an int from 0"):
        inverter.reconstruct(x, iterations=bad)


def test_a_plain_inverter_takes_iterations_zero_only(make_gan) -> None:
    gan = make_gan("mlp")
    inverter = fit_inverter(
        gan.generator, gan.discriminator, gan.feature_layer, latent_shape=gan.latent_shape, steps=10, batch_size=16,
        cn_hidden=(16,), progress=False, validation_size=16, seed=0)
    _, x, _ = gan.sample(4)
    assert torch.equal(inverter.encode(x, iterations=0), inverter.encode(x))
    with pytest.raises(ValueError, match="from 0 .* to 0"):
        inverter.encode(x, iterations=1)


def test_refine_starts_from_the_chosen_iteration(make_gan) -> None:
    gan = make_gan("dcgan")
    inverter = _fit(gan, iterations=2, iteration_steps=10)
    _, x, _ = gan.sample(8)
    for k in (0, 1, 2):
        assert torch.equal(inverter.refine(x, steps=0, iterations=k, range_check="ignore"),
                           inverter.encode(x, iterations=k, range_check="ignore"))
    assert not torch.equal(inverter.encode(x, iterations=0, range_check="ignore"),
                           inverter.encode(x, iterations=2, range_check="ignore"))


def test_forward_is_differentiable_through_the_steps_and_never_into_the_gan(make_gan) -> None:
    gan = make_gan("dcgan")
    inverter = _fit(gan, iterations=1, iteration_steps=10)
    before = snapshot(gan.generator, gan.discriminator)
    _, x, _ = gan.sample(8)
    inverter.train()
    codes = inverter(x)
    codes.pow(2).sum().backward()
    assert all(p.grad is not None for p in inverter.steps[0].parameters())
    assert all(p.grad is not None for p in inverter.cn.parameters())
    assert_untouched(before, gan.generator, gan.discriminator)
    inverter.eval()
    assert torch.allclose(inverter(x).detach(), inverter.encode(x, range_check="ignore"), atol=1e-5)


def test_save_load_round_trip_is_bit_exact_and_writes_the_current_format(make_gan, tmp_path) -> None:
    gan = make_gan("wgan_gp")
    inverter = _fit(gan, iterations=2, iteration_steps=10)
    path = inverter.save(tmp_path / "inv.safetensors")
    with safetensors.safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
        keys = set(handle.keys())
    assert metadata["format_version"] == str(FORMAT_VERSION) == "5"
    assert any(k.startswith("steps.1.") for k in keys) and any(k.startswith("cn.") for k in keys)
    loaded = Inverter.load(path, generator=gan.generator, discriminator=gan.discriminator)
    _, x, _ = gan.sample(16)
    for k in (0, 1, 2):
        assert torch.equal(loaded.encode(x, iterations=k), inverter.encode(x, iterations=k))
    assert loaded.config.step == inverter.config.step
    # and through a Hub-style directory, with the model card saying what the steps are
    folder = inverter.save_pretrained(tmp_path / "repo")
    again = Inverter.from_pretrained(folder, generator=gan.generator, discriminator=gan.discriminator)
    assert torch.equal(again.encode(x), inverter.encode(x))
    card = (folder / "README.md").read_text()
    assert "2 step network(s) of iterative refinement" in card and "latent MSE" in card


def _rewrite(path, tmp_path, *, config=None, drop=None, name="edited.safetensors"):
    with safetensors.safe_open(str(path), framework="pt") as handle:
        metadata = dict(handle.metadata())
        tensors = {k: handle.get_tensor(k) for k in handle.keys() if k != drop}
    if config is not None:
        metadata["config"] = json.dumps(config)
        metadata["format_version"] = str(config["format_version"])
    target = tmp_path / name
    safetensors.torch.save_file(tensors, str(target), metadata=metadata)
    return target


def test_damaged_iterative_files_are_refused_strictly(make_gan, tmp_path) -> None:
    gan = make_gan("mlp")
    inverter = _fit(gan, iterations=1, iteration_steps=5)
    path = inverter.save(tmp_path / "inv.safetensors")
    kwargs = dict(generator=gan.generator, discriminator=gan.discriminator)
    missing = _rewrite(path, tmp_path, drop="steps.0.layers.0.weight")
    with pytest.raises(ValueError, match=r"connection network and 1 step network\(s\): missing tensors \['steps.0.layers.0.weight'\]"):
        Inverter.load(missing, **kwargs)
    data = inverter.config.to_dict()
    with pytest.raises(ValueError, match="expected a 'step' config exactly when 'iterations' > 0"):
        Inverter.load(_rewrite(path, tmp_path, config={**data, "step": None}), **kwargs)
    with pytest.raises(ValueError, match="unexpected tensors \\['steps.0"):
        Inverter.load(_rewrite(path, tmp_path, config={**data, "iterations": 0, "step": None}), **kwargs)
    wrong = {**data, "step": {**data["step"], "feature_dim": data["step"]["feature_dim"] + 1}}
    with pytest.raises(ValueError, match="the step networks read"):
        Inverter.load(_rewrite(path, tmp_path, config=wrong), **kwargs)
    with pytest.raises(ValueError, match="expected 'iterations' to be an int >= 0"):
        Inverter.load(_rewrite(path, tmp_path, config={**data, "iterations": -1}), **kwargs)
    with pytest.raises(ValueError, match="step config: expected keys"):
        Inverter.load(_rewrite(path, tmp_path, config={**data, "step": {**data["step"], "extra": 1}}), **kwargs)
    old = {**data, "format_version": 2}  # a format-2 file cannot carry step networks
    with pytest.raises(ValueError, match=r"format version 2 has no \['iterations', 'step'\]"):
        Inverter.load(_rewrite(path, tmp_path, config=old), **kwargs)
    with pytest.raises(ValueError, match="expected a step config exactly when iterations > 0"):
        InverterConfig(**{**{f: getattr(inverter.config, f) for f in inverter.config.__dataclass_fields__},
                          "step": None})


def _as_format_2(source, target):
    """A Hub folder as format 2 wrote it (the zoo's real-images inverter until it gained step networks):
    no 'iterations' or 'step' in the config, no step tensors."""
    config = json.loads((source / "config.json").read_text())
    config = {k: v for k, v in config.items() if k not in ("iterations", "step", "probe")} | {"format_version": 2}
    target.mkdir()
    (target / "config.json").write_text(json.dumps(config))
    with safetensors.safe_open(str(source / "model.safetensors"), framework="pt") as handle:
        metadata = dict(handle.metadata()) | {"config": json.dumps(config), "format_version": "2"}
    metadata.pop("tensor_digest", None)  # format 2 had no digest of its tensors
    state, _ = read_inverter_file(source / "model.safetensors")  # format 2 stored floats only: undo any int8
    tensors = {k: v for k, v in state.items() if not k.startswith("steps.")}  # float32, as format 2 could store
    safetensors.torch.save_file(tensors, str(target / "model.safetensors"), metadata=metadata)
    return target


def test_a_format_2_file_loads_as_an_inverter_without_steps(tmp_path) -> None:
    """A format-2 file migrates (no step networks) and encodes with its connection network alone."""
    G, D, bundled = zoo.load("dcgan-fashion-mnist", inverter="real-images")
    folder = _as_format_2(zoo.path("dcgan-fashion-mnist") / "inverter-real-images", tmp_path / "old")
    inverter = Inverter.from_pretrained(folder, generator=G, discriminator=D)
    assert inverter.iterations == 0 and inverter.config.step is None
    data = InverterConfig.from_dict(json.loads((folder / "config.json").read_text())).to_dict()
    assert data["format_version"] == FORMAT_VERSION and data["iterations"] == 0 and data["step"] is None
    x = to_model_range(zoo.load_test_images("dcgan-fashion-mnist")[0][:8]).float()
    assert torch.equal(inverter.encode(x), bundled.encode(x, iterations=0))


def test_iterations_with_conditioning_are_refused_before_any_work(make_gan) -> None:
    gan = make_gan("conditional")
    before = snapshot(gan.generator, gan.discriminator)
    with pytest.raises(ValueError, match="iterations: expected 0 with a conditioning, got 1"):
        fit_inverter(gan.generator, gan.discriminator, gan.feature_layer, latent_shape=gan.latent_shape,
                     conditioning=gan.conditioning, iterations=1, steps=5, progress=False)
    assert_untouched(before, gan.generator, gan.discriminator)


def test_step_settings_without_iterations_warn_and_bad_ones_are_refused(make_gan) -> None:
    gan = make_gan("mlp")
    with pytest.warns(UserWarning, match="iteration_steps: these settings act only on the step networks"):
        fit_inverter(gan.generator, gan.discriminator, gan.feature_layer, latent_shape=gan.latent_shape, steps=4,
                     batch_size=8, cn_hidden=(8,), progress=False, validation_size=8, seed=0, iteration_steps=5)
    for bad in (dict(iterations=-1), dict(iteration_steps=0), dict(iteration_lr=0.0), dict(iteration_batch_size=1),
                dict(step_hidden=(0,))):
        with pytest.raises(ValueError, match=next(iter(bad)).replace("step_hidden", "cn_hidden|step_hidden")):
            _fit(gan, **bad)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _fit(gan, iterations=1, iteration_steps=2)  # acting settings: no warning


def test_real_images_train_the_steps_on_pixels_too(make_gan) -> None:
    """With images, each step is chosen by the held-out pixel error, and never worsens it (update 0 counts)."""
    gan = make_gan("dcgan")
    z, _, _ = gan.sample(80, seed=321)
    gan.generator.eval()
    with torch.no_grad():
        images = gan.generator(z * 1.5)  # a shifted domain: G's images at latents drawn wider than its prior
    gan.generator.train()
    before = snapshot(gan.generator, gan.discriminator)
    inverter = _fit(gan, images=images, real_steps=8, real_batch_size=16, iterations=1, iteration_steps=20)
    assert_untouched(before, gan.generator, gan.discriminator)
    record = inverter.config.fit["iterative"]
    assert record["trained_on"] == "self-generated pairs and images"
    step = record["steps"][0]
    assert step["metric"] == "held-out pixel MSE" and step["best_error"] <= step["start_error"]
    assert [row[0] for row in step["history"]] == [0, 10, 20]
