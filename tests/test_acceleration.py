"""The fit levers: autocast and channels-last copies for generating pairs (``'auto'`` by default), fused Adam."""

from __future__ import annotations

import threading

import pytest
import torch
from torch import nn

from discinvert import fit_inverter
from discinvert.fitting.updates import make_adam
from tests.conftest import TinyGAN, assert_untouched, snapshot

FAST = dict(steps=300, batch_size=64, cn_hidden=(256, 256), progress=False, validation_size=256, seed=0)
LEVERS = dict(autocast_dtype=torch.bfloat16, channels_last=True)


def _fit(gan: TinyGAN, **overrides):
    kwargs = {**FAST, **gan.fit_kwargs, **overrides}
    return fit_inverter(gan.generator, gan.discriminator, gan.feature_layer,
                        latent_shape=gan.latent_shape, conditioning=gan.conditioning, **kwargs)


def test_levers_invert_every_tiny_gan_and_leave_it_alone(tiny_gan: TinyGAN) -> None:
    before = snapshot(tiny_gan.generator, tiny_gan.discriminator)
    inverter = _fit(tiny_gan, **LEVERS)
    assert_untouched(before, tiny_gan.generator, tiny_gan.discriminator)
    z, x, y = tiny_gan.sample(512)
    mse = float(((inverter.encode(x, conditions=y) - z) ** 2).mean())
    assert mse < 0.35, f"{tiny_gan.name}: latent MSE {mse:.3f} with bf16 autocast and channels_last"
    assert inverter.config.fit["autocast_dtype"] == "torch.bfloat16"
    assert inverter.config.fit["channels_last"] is True
    assert_untouched(before, tiny_gan.generator, tiny_gan.discriminator)


def test_levers_are_reproducible(make_gan) -> None:
    gan = make_gan("dcgan")
    a, b = (_fit(gan, steps=40, **LEVERS).state_dict() for _ in range(2))
    assert all(torch.equal(a[k], b[k]) for k in a)


class _Log(list):
    """A list that copies of the recorder share (deepcopy would give each copy its own)."""

    def __deepcopy__(self, memo: dict) -> _Log:
        return self


class _Recorder(nn.Module):
    """Wraps G and records, per call, which module ran, under which autocast, in which layout."""

    def __init__(self, inner: nn.Module, log: _Log) -> None:
        super().__init__()
        self.inner = inner
        self.log = log

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        weight = next(p for p in self.parameters() if p.dim() == 4)
        self.log.append((id(self), torch.is_autocast_enabled("cpu"),
                         weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()))
        return self.inner(z)


def test_training_pairs_use_the_levers_and_validation_pairs_do_not(make_gan) -> None:
    gan = make_gan("dcgan")
    log = _Log()
    G = _Recorder(gan.generator, log)
    fit_inverter(G, gan.discriminator, gan.feature_layer, latent_shape=gan.latent_shape,
                 **{**FAST, "steps": 5, "validation_size": 64}, **LEVERS)
    user_calls = [entry for entry in log if entry[0] == id(G)]
    copy_calls = [entry for entry in log if entry[0] != id(G)]
    # Probing and validation run the user's G in full precision, as encode() will see images.
    assert user_calls and all(not autocast and not cl for _, autocast, cl in user_calls)
    # The levers' probe batch and each of the 5 training batches come from a channels-last copy under autocast.
    assert len(copy_calls) == 6 and all(autocast and cl for _, autocast, cl in copy_calls)

    log.clear()
    fit_inverter(G, gan.discriminator, gan.feature_layer, latent_shape=gan.latent_shape,
                 **{**FAST, "steps": 5, "validation_size": 64}, autocast_dtype=None, channels_last=False)
    assert all(entry[0] == id(G) and not entry[1] and not entry[2] for entry in log), "levers used when turned off"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, "bfloat16", 16])
def test_bad_autocast_dtype(make_gan, dtype) -> None:
    gan = make_gan("dcgan")
    before = snapshot(gan.generator, gan.discriminator)
    with pytest.raises(ValueError, match=r"autocast_dtype: expected 'auto', None .*torch.bfloat16 or torch.float16, got"):
        _fit(gan, steps=2, autocast_dtype=dtype)
    assert_untouched(before, gan.generator, gan.discriminator)


def test_bad_channels_last(make_gan) -> None:
    gan = make_gan("dcgan")
    with pytest.raises(ValueError, match=r"channels_last: expected 'auto', True or False, got 1"):
        _fit(gan, steps=2, channels_last=1)


def test_uncopyable_model_with_channels_last_is_a_clear_error(make_gan) -> None:
    gan = make_gan("dcgan")
    gan.discriminator.lock = threading.Lock()  # deepcopy cannot copy a lock
    before = snapshot(gan.generator, gan.discriminator)
    with pytest.raises(ValueError, match=r"channels_last: could not copy the discriminator .*channels_last=False"):
        _fit(gan, steps=2, channels_last=True)
    assert_untouched(before, gan.generator, gan.discriminator)
    # by default ('auto') the same model fits, in its own layout
    assert _fit(gan, steps=2).config.fit["levers"]["channels_last"] is False
    assert_untouched(before, gan.generator, gan.discriminator)


def test_the_automatic_levers_follow_the_device(make_gan) -> None:
    from discinvert.fitting.acceleration import native_bf16

    gan = make_gan("dcgan")
    before = snapshot(gan.generator, gan.discriminator)
    fit = _fit(gan, steps=20).config.fit
    assert (fit["autocast_dtype"], fit["channels_last"]) == ("auto", "auto")
    bf16 = native_bf16(torch.device("cpu"))
    assert fit["levers"] == {"autocast_dtype": "torch.bfloat16" if bf16 else None, "channels_last": True}
    assert_untouched(before, gan.generator, gan.discriminator)
    off = _fit(gan, steps=20, autocast_dtype=None, channels_last=False).config.fit
    assert off["levers"] == {"autocast_dtype": None, "channels_last": False}


def test_auto_autocast_is_bf16_only_where_native(monkeypatch) -> None:
    from discinvert.fitting import acceleration

    cpu = torch.device("cpu")
    monkeypatch.setattr(acceleration, "native_bf16", lambda device: False)
    assert acceleration.check_autocast_dtype("auto", cpu) is None
    monkeypatch.setattr(acceleration, "native_bf16", lambda device: True)
    assert acceleration.check_autocast_dtype("auto", cpu) is torch.bfloat16
    assert acceleration.resolve_channels_last("auto", torch.device("cuda")) is False
    assert acceleration.resolve_channels_last("auto", cpu) is True


def test_fused_adam_where_available_else_the_default(monkeypatch) -> None:
    model = nn.Linear(4, 2)
    assert make_adam(model, 1e-3).defaults["fused"] is True  # this torch has the fused CPU kernel
    real = torch.optim.Adam

    def no_fused(params, **kwargs):
        if kwargs.get("fused"):
            raise RuntimeError("`fused=True` requires all the params to be on a supported device")
        return real(params, **kwargs)

    monkeypatch.setattr(torch.optim, "Adam", no_fused)
    optimizer = make_adam(model, 1e-3)
    assert not optimizer.defaults.get("fused") and optimizer.defaults["betas"] == (0.5, 0.999)


def test_encode_under_autocast_returns_float32_codes_close_to_full_precision(make_gan) -> None:
    gan = make_gan("dcgan")
    inverter = _fit(gan, steps=100)
    _, x, _ = gan.sample(64)
    before = snapshot(gan.generator, gan.discriminator)
    full = inverter.encode(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fast = inverter.encode(x)
    assert fast.dtype == torch.float32 and fast.shape == full.shape
    assert not torch.equal(fast, full), "autocast had no effect"
    torch.testing.assert_close(fast, full, rtol=0.1, atol=0.1)
    assert_untouched(before, gan.generator, gan.discriminator)


def test_cn_trains_under_autocast_and_validates_in_full_precision(make_gan, monkeypatch) -> None:
    from discinvert.network import ConnectionNetwork

    seen: list[tuple[bool, bool]] = []
    original = ConnectionNetwork.forward

    def recording(self, features):
        seen.append((self.training, torch.is_autocast_enabled("cpu")))
        return original(self, features)

    monkeypatch.setattr(ConnectionNetwork, "forward", recording)
    gan = make_gan("dcgan")
    _fit(gan, steps=20, eval_every=10, autocast_dtype=torch.bfloat16)
    training = [autocast for is_training, autocast in seen if is_training]
    validation = [autocast for is_training, autocast in seen if not is_training]
    assert len(training) == 20 and all(training)
    assert validation and not any(validation)
    seen.clear()
    _fit(gan, steps=20, eval_every=10, autocast_dtype=None)
    assert seen and not any(autocast for _, autocast in seen)


def test_the_channels_last_copy_converts_4d_tensors_and_keeps_others() -> None:
    """A G holding a 5-D weight (rosinality's modulated convolutions keep ``(1, out, in, k, k)``) is copied with
    its 4-D tensors channels-last and the rest as they were; ``.to(memory_format=...)`` refused it."""
    from discinvert.fitting.acceleration import channels_last_copy

    model = nn.Module()
    model.conv = nn.Conv2d(3, 4, 3)
    model.modulated = nn.Parameter(torch.randn(1, 4, 3, 3, 3))
    model.register_buffer("table", torch.randn(2, 3))
    before = snapshot(model)
    copy = channels_last_copy(model, "generator")
    assert_untouched(before, model)
    assert copy.conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert not copy.conv.weight.is_contiguous() and isinstance(copy.modulated, nn.Parameter)
    for name, tensor in model.state_dict().items():
        assert torch.equal(copy.state_dict()[name], tensor), name
    assert copy.modulated.stride() == model.modulated.stride() and copy.table.stride() == model.table.stride()
