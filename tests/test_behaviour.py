"""The behavioural fingerprint: an inverter refuses a G or D that computes another function,
even when every tensor the weight fingerprints cover is the same."""

from __future__ import annotations

import json

import pytest
import safetensors
import safetensors.torch
import torch
import torch.nn.functional as F
from torch import nn

from tests.conftest import LATENT, MLPGenerator, assert_untouched, snapshot
from discinvert import FingerprintMismatchError, Inverter, behaviour, fit_inverter

QUICK = {"steps": 20, "batch_size": 32, "cn_hidden": (32,), "progress": False, "validation_size": 64, "seed": 0}


class OutsideWeightD(nn.Module):
    """D whose first layer's weight is used through ``F.linear``: module ``fc`` itself never runs,
    so no forward hook sees it and the tensor fingerprint up to the feature layer leaves it out."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 32)
        self.act = nn.LeakyReLU(0.2)
        self.head = nn.Linear(32, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.act(F.linear(x, self.fc.weight, self.fc.bias)))


class BufferD(nn.Module):
    """D scaling its input by a non-persistent buffer (not in its ``state_dict``)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("scale", torch.ones(16), persistent=False)
        self.body = nn.Sequential(nn.Linear(16, 32), nn.LeakyReLU(0.2))
        self.head = nn.Linear(32, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x * self.scale))


class NoisyG(nn.Module):
    """G with a StyleGAN-like noise input: fresh Gaussian noise on every call, scaled by a weight."""

    def __init__(self) -> None:
        super().__init__()
        self.body = MLPGenerator()
        self.strength = nn.Parameter(torch.tensor(0.3))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.body(z) + self.strength * torch.randn(z.shape[0], 16, device=z.device))


def _fit_and_save(generator: nn.Module, discriminator: nn.Module, layer: str, latent_shape, path) -> Inverter:
    torch.manual_seed(0)
    inverter = fit_inverter(generator, discriminator, layer, latent_shape=latent_shape, **QUICK)
    inverter.save(path)
    return inverter


def test_d_with_a_swapped_activation_before_the_layer_is_refused(make_gan, tmp_path) -> None:
    """LeakyReLU(0.2) → ReLU before the feature layer: same tensors, other features."""
    gan = make_gan("dcgan")
    path = tmp_path / "inv.safetensors"
    _fit_and_save(gan.generator, gan.discriminator, gan.feature_layer, gan.latent_shape, path)
    gan.discriminator[1] = nn.ReLU(inplace=True)
    before = snapshot(gan.generator, gan.discriminator)
    with pytest.raises(FingerprintMismatchError, match=r"D's features at '4' on the probe images differ .* by \d"):
        Inverter.load(path, generator=gan.generator, discriminator=gan.discriminator)
    assert_untouched(before, gan.generator, gan.discriminator)
    with pytest.warns(UserWarning, match="D's features"):
        Inverter.load(path, generator=gan.generator, discriminator=gan.discriminator, on_mismatch="warn")


def test_a_weight_used_outside_its_module_and_negated_is_refused(tmp_path) -> None:
    torch.manual_seed(0)
    generator, discriminator = MLPGenerator(), OutsideWeightD()
    path = tmp_path / "inv.safetensors"
    _fit_and_save(generator, discriminator, "act", (LATENT,), path)
    Inverter.load(path, generator=generator, discriminator=discriminator)  # the same D loads
    with torch.no_grad():
        discriminator.fc.weight.neg_()
    with pytest.raises(FingerprintMismatchError, match="D's features at 'act'"):
        Inverter.load(path, generator=generator, discriminator=discriminator)


def test_g_with_sigmoid_for_tanh_is_refused(make_gan, tmp_path) -> None:
    gan = make_gan("dcgan")
    path = tmp_path / "inv.safetensors"
    _fit_and_save(gan.generator, gan.discriminator, gan.feature_layer, gan.latent_shape, path)
    gan.generator.main[4] = nn.Sigmoid()
    with pytest.raises(FingerprintMismatchError, match=r"G's images on the probe latents differ") as caught:
        Inverter.load(path, generator=gan.generator, discriminator=gan.discriminator)
    assert "D's features" not in str(caught.value)  # D's probes do not depend on G: the message names G alone


def test_a_changed_non_persistent_buffer_is_refused(tmp_path) -> None:
    torch.manual_seed(0)
    generator, discriminator = MLPGenerator(), BufferD()
    path = tmp_path / "inv.safetensors"
    _fit_and_save(generator, discriminator, "body.1", (LATENT,), path)
    discriminator.scale[:8] = -1.0
    with pytest.raises(FingerprintMismatchError, match="D's features at 'body.1'"):
        Inverter.load(path, generator=generator, discriminator=discriminator)


def test_resume_refuses_a_checkpoint_written_for_a_g_that_computes_another_function(make_gan, tmp_path) -> None:
    gan = make_gan("dcgan")
    path = tmp_path / "ckpt.safetensors"
    kwargs = {**QUICK, "steps": 30, "checkpoint_path": path, "checkpoint_every": 10}
    fit_inverter(gan.generator, gan.discriminator, gan.feature_layer, latent_shape=gan.latent_shape, **kwargs)
    gan.generator.main[4] = nn.Sigmoid()  # the same tensors: the checkpoint's identity alone matches
    before = snapshot(gan.generator, gan.discriminator)
    with pytest.raises(ValueError, match=r"ckpt.safetensors: this checkpoint belongs to a fit of another GAN \(G's images"):
        fit_inverter(gan.generator, gan.discriminator, gan.feature_layer, latent_shape=gan.latent_shape, resume=True,
                     **kwargs)
    assert_untouched(before, gan.generator, gan.discriminator)


def test_the_same_gan_loads_also_with_noise_inputs_and_the_rng_is_left_alone(tmp_path) -> None:
    """No false alarm: a G drawing fresh noise in every call is probed under a fixed seed."""
    torch.manual_seed(0)
    generator, discriminator = NoisyG(), OutsideWeightD()
    path = tmp_path / "inv.safetensors"
    fitted = _fit_and_save(generator, discriminator, "act", (LATENT,), path)
    assert fitted.config.probe.generator.stochastic and not fitted.config.probe.discriminator.stochastic
    state = torch.get_rng_state()
    loaded = Inverter.load(path, generator=generator, discriminator=discriminator)
    assert torch.equal(torch.get_rng_state(), state)
    assert loaded.config == fitted.config
    with torch.no_grad():
        generator.body.net[3].weight.mul_(-1)  # a changed weight is still caught by the tensor fingerprint
    with pytest.raises(FingerprintMismatchError, match="generator's weights differ"):
        Inverter.load(path, generator=generator, discriminator=discriminator)


def test_every_kind_of_gan_records_a_probe_that_round_trips(tiny_gan, tmp_path) -> None:
    inverter = fit_inverter(tiny_gan.generator, tiny_gan.discriminator, tiny_gan.feature_layer,
                            latent_shape=tiny_gan.latent_shape, conditioning=tiny_gan.conditioning, **QUICK)
    probe = inverter.config.probe
    assert probe is not None and probe.generator is not None and probe.discriminator is not None
    assert len(probe.discriminator.summary) == behaviour.PROBES * 2 * min(behaviour.CHUNKS, inverter.config.feature_dim)
    path = inverter.save(tmp_path / "inv.safetensors")
    loaded = Inverter.load(path, generator=tiny_gan.generator, discriminator=tiny_gan.discriminator,
                           conditioning=tiny_gan.conditioning)
    assert loaded.config.probe == probe


def _edit_config(path, edit) -> None:
    with safetensors.safe_open(str(path), framework="pt") as handle:
        metadata = dict(handle.metadata())
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    config = json.loads(metadata["config"])
    edit(config)
    metadata["config"] = json.dumps(config)
    safetensors.torch.save_file(tensors, str(path), metadata=metadata)


def test_a_probe_edited_in_the_file_is_refused(make_gan, tmp_path) -> None:
    gan = make_gan("mlp")
    path = tmp_path / "inv.safetensors"
    _fit_and_save(gan.generator, gan.discriminator, gan.feature_layer, gan.latent_shape, path)

    def scale(config):
        config["probe"]["discriminator"]["summary"] = [2 * v for v in config["probe"]["discriminator"]["summary"]]

    _edit_config(path, scale)
    with pytest.raises(FingerprintMismatchError, match="D's features at 'body.3' on the probe images differ"):
        Inverter.load(path, generator=gan.generator, discriminator=gan.discriminator)
    malformed = (
        (lambda c: c["probe"]["generator"].update(summary=[1.0] * 3), r"'probe.generator.summary' to be 128 finite"),
        (lambda c: c["probe"]["generator"].update(summary=[float("nan")] * 128), "finite numbers"),
        (lambda c: c["probe"].update(extra=1), "expected 'probe' to be null or an object"),
        (lambda c: c["probe"]["discriminator"].update(device="tpu9"), "a device type"),
        (lambda c: c["probe"]["discriminator"].update(stochastic="yes"), "to be a bool"),
    )
    for edit, message in malformed:
        _fit_and_save(gan.generator, gan.discriminator, gan.feature_layer, gan.latent_shape, path)
        _edit_config(path, edit)
        with pytest.raises(ValueError, match=message) as caught:
            Inverter.load(path, generator=gan.generator, discriminator=gan.discriminator)
        assert "inv.safetensors" in str(caught.value)


def test_a_file_without_a_probe_loads_and_records_one_from_the_gan(make_gan, tmp_path) -> None:
    """Files written before format version 5 have no probe: once the tensor fingerprints match, the
    loader records it from the GAN given, and a re-save carries it."""
    gan = make_gan("wgan_gp")
    path = tmp_path / "inv.safetensors"
    fitted = _fit_and_save(gan.generator, gan.discriminator, gan.feature_layer, gan.latent_shape, path)

    def as_format_4(config):
        del config["probe"]
        config["format_version"] = 4

    _edit_config(path, as_format_4)
    with safetensors.safe_open(str(path), framework="pt") as handle:
        metadata = dict(handle.metadata()) | {"format_version": "4"}
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    metadata.pop("tensor_digest", None)  # format 4 had no digest of its tensors
    safetensors.torch.save_file(tensors, str(path), metadata=metadata)
    loaded = Inverter.load(path, generator=gan.generator, discriminator=gan.discriminator)
    assert loaded.config.probe == fitted.config.probe
    again = Inverter.load(loaded.save(tmp_path / "again.safetensors"), generator=gan.generator,
                          discriminator=gan.discriminator)
    assert again.config.probe == fitted.config.probe


def test_the_summary_sees_sign_and_scale() -> None:
    """The summary moves with a sign flip, a rescale or a shuffle of the values, and not with float noise."""
    torch.manual_seed(0)
    x = torch.randn(4, 3, 16, 16)
    base = behaviour.summarise(x)
    for changed in (-x, 1.05 * x, x.flip(-1), torch.relu(x)):
        assert behaviour.distance(behaviour.summarise(changed), base) > behaviour.TOLERANCE
    noisy = x + 1e-4 * torch.randn_like(x)
    assert behaviour.distance(behaviour.summarise(noisy), base) < behaviour.TOLERANCE / 10


def _global_torch_labels(n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.randint(0, 4, (n,), device=device)  # ignores the generator it is handed: draws from the global RNG


def _numpy_labels(n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    import numpy as np

    return torch.as_tensor(np.random.randint(0, 4, size=n), device=device)


class _Counter:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
        self.calls += 1  # a source no seed reaches: each draw differs
        return (torch.arange(n, device=device) + self.calls) % 4


@pytest.mark.parametrize("sampler", [_global_torch_labels, _numpy_labels, _Counter()], ids=["torch-global", "numpy", "unseedable"])
def test_a_condition_sampler_that_ignores_its_generator_gives_no_false_alarm_and_leaves_the_rngs(make_gan, tmp_path,
                                                                                                 sampler) -> None:
    import random

    import numpy as np

    from discinvert import Conditioning

    gan = make_gan("conditional")
    conditioning = Conditioning(sampler=sampler)
    path = tmp_path / "inv.safetensors"
    torch.manual_seed(0)
    fitted = fit_inverter(gan.generator, gan.discriminator, gan.feature_layer, latent_shape=gan.latent_shape,
                          conditioning=conditioning, **QUICK)
    fitted.save(path)
    assert (fitted.config.probe.generator is None) == isinstance(sampler, _Counter)  # unseedable: no probe at all
    torch.manual_seed(123)
    np.random.seed(123)
    random.seed(123)
    states = torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()
    loaded = Inverter.load(path, generator=gan.generator, discriminator=gan.discriminator, conditioning=conditioning)
    assert loaded.config.probe == fitted.config.probe
    assert torch.equal(torch.get_rng_state(), states[0]) and np.array_equal(np.random.get_state()[1], states[1])
    assert random.getstate() == states[2]


def test_probes_ignore_a_callers_autocast(make_gan, tmp_path) -> None:
    """Loading (or fitting) inside a user's ``torch.autocast`` block probes in full precision."""
    gan = make_gan("dcgan")
    path = tmp_path / "inv.safetensors"
    fitted = _fit_and_save(gan.generator, gan.discriminator, gan.feature_layer, gan.latent_shape, path)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loaded = Inverter.load(path, generator=gan.generator, discriminator=gan.discriminator)
        tap = loaded._gan.tap
        again = behaviour.record(gan.generator, tap, latent_shape=gan.latent_shape, image_shape=loaded.image_shape,
                                 image_range=loaded.config.image_range)
    assert again == fitted.config.probe


def test_a_custom_prior_probes_d_alone_and_a_g_taking_only_its_codes_fits(tmp_path) -> None:
    """The sampler of a custom prior is not stored, so G's probe could not draw its codes on load: only D is probed,
    and a G that refuses N(0, I) codes (latents in [0, 1] only) still fits."""
    class UnitLatentG(MLPGenerator):
        def forward(self, z: torch.Tensor) -> torch.Tensor:
            if bool((z < 0).any() or (z > 1).any()):
                raise ValueError("this G takes latents in [0, 1]")
            return super().forward(z)

    def uniform(n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
        return torch.rand((n, LATENT), generator=generator, device=device)

    torch.manual_seed(0)
    generator, discriminator = UnitLatentG(), OutsideWeightD()
    inverter = fit_inverter(generator, discriminator, "act", latent_sampler=uniform, **QUICK)
    assert inverter.config.probe.generator is None and inverter.config.probe.discriminator is not None
    # Loading checks G's image shape on N(0, I) codes, which this G refuses (as before the probes): a G that
    # takes any codes shows the custom prior's probe round-trips, D's check included.
    generator = MLPGenerator()
    inverter = fit_inverter(generator, discriminator, "act", latent_sampler=uniform, **QUICK)
    path = inverter.save(tmp_path / "inv.safetensors")
    assert Inverter.load(path, generator=generator, discriminator=discriminator).config.probe == inverter.config.probe
    with torch.no_grad():
        discriminator.fc.weight.neg_()
    with pytest.raises(FingerprintMismatchError, match="D's features at 'act'"):
        Inverter.load(path, generator=generator, discriminator=discriminator)


class PrivateNoiseG(MLPGenerator):
    """Noise from a generator of its own, which no global seed reaches."""

    def __init__(self) -> None:
        super().__init__()
        self.rng = torch.Generator().manual_seed(7)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(super().forward(z) + 0.3 * torch.randn(z.shape[0], 16, generator=self.rng))


def test_noise_no_global_seed_reaches_gives_no_probe_instead_of_a_false_alarm(tmp_path) -> None:
    torch.manual_seed(0)
    generator, discriminator = PrivateNoiseG(), OutsideWeightD()
    path = tmp_path / "inv.safetensors"
    fitted = _fit_and_save(generator, discriminator, "act", (LATENT,), path)
    assert fitted.config.probe.generator is None and fitted.config.probe.discriminator is not None
    Inverter.load(path, generator=generator, discriminator=discriminator)  # the same G loads


def test_the_probes_do_not_follow_the_default_dtype(make_gan, tmp_path) -> None:
    gan = make_gan("dcgan")
    path = tmp_path / "inv.safetensors"
    _fit_and_save(gan.generator, gan.discriminator, gan.feature_layer, gan.latent_shape, path)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        Inverter.load(path, generator=gan.generator, discriminator=gan.discriminator)  # float32 models: no alarm
    finally:
        torch.set_default_dtype(default)


def test_a_stored_summary_that_overflows_is_refused(make_gan, tmp_path) -> None:
    gan = make_gan("mlp")
    path = tmp_path / "inv.safetensors"
    _fit_and_save(gan.generator, gan.discriminator, gan.feature_layer, gan.latent_shape, path)
    _edit_config(path, lambda c: c["probe"]["generator"].update(summary=[1e308] * 128))
    with pytest.raises(ValueError, match=r"inv.safetensors: expected 'probe.generator.summary' to be 128 finite numbers"):
        Inverter.load(path, generator=gan.generator, discriminator=gan.discriminator)
    assert not behaviour.distance([0.0] * 4, [1e200] * 4) <= behaviour.TOLERANCE


def test_loading_leaves_numpy_s_and_python_s_rngs_alone_for_a_g_drawing_from_them(tmp_path) -> None:
    import random

    import numpy as np

    class NumpyNoiseG(MLPGenerator):
        def forward(self, z: torch.Tensor) -> torch.Tensor:
            shift = float(np.random.rand()) * 1e-3 + random.random() * 1e-3
            return super().forward(z) + shift

    torch.manual_seed(0)
    generator, discriminator = NumpyNoiseG(), OutsideWeightD()
    path = tmp_path / "inv.safetensors"
    _fit_and_save(generator, discriminator, "act", (LATENT,), path)
    np.random.seed(5)
    random.seed(5)
    states = np.random.get_state()[1].copy(), random.getstate()
    Inverter.load(path, generator=generator, discriminator=discriminator)
    assert np.array_equal(np.random.get_state()[1], states[0]) and random.getstate() == states[1]
