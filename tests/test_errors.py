"""Bad input gets a ValueError naming what was expected and what came."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from discinvert import Inverter, LayerNotReachedError, fit_inverter
from tests.conftest import LATENT, TinyGAN

QUICK = dict(steps=10, batch_size=16, cn_hidden=(32,), progress=False, validation_size=32, seed=0)


@pytest.fixture
def fitted(make_gan) -> tuple[TinyGAN, Inverter]:
    gan = make_gan("dcgan")
    return gan, fit_inverter(gan.generator, gan.discriminator, gan.feature_layer, latent_shape=gan.latent_shape, **QUICK)


def test_unknown_layer_lists_close_matches(make_gan) -> None:
    gan = make_gan("wgan_gp")
    with pytest.raises(ValueError) as info:
        fit_inverter(gan.generator, gan.discriminator, "blocks.1.actt", latent_shape=(LATENT,))
    message = str(info.value)
    assert "'blocks.1.act'" in message and "list_layers" in message


def test_module_not_in_d(make_gan) -> None:
    gan = make_gan("dcgan")
    with pytest.raises(ValueError, match="not a submodule"):
        fit_inverter(gan.generator, gan.discriminator, nn.ReLU(), latent_shape=(LATENT, 1, 1))


def test_layer_d_never_reaches(make_gan) -> None:
    gan = make_gan("mlp")
    gan.discriminator.unused = nn.Linear(128, 128)
    with pytest.raises(LayerNotReachedError, match="without running this layer"):
        fit_inverter(gan.generator, gan.discriminator, "unused", latent_shape=(LATENT,), steps=2)


def test_latent_shape_g_rejects_is_named(make_gan) -> None:
    gan = make_gan("dcgan")
    with pytest.raises(ValueError, match=r"rejected latents of shape \(8,\)"):
        fit_inverter(gan.generator, gan.discriminator, "4", latent_shape=(LATENT,), steps=2)


def test_neither_latent_shape_nor_sampler(make_gan) -> None:
    gan = make_gan("dcgan")
    with pytest.raises(ValueError, match="latent_shape.*latent_sampler"):
        fit_inverter(gan.generator, gan.discriminator, "4")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"latent_shape": (0,)}, "latent_shape"),
        ({"latent_shape": "100"}, "latent_shape"),
        ({"latent_shape": (LATENT, 1, 1), "steps": 0}, "steps"),
        ({"latent_shape": (LATENT, 1, 1), "batch_size": 1}, "batch_size"),
        ({"latent_shape": (LATENT, 1, 1), "lr": -1.0}, "lr"),
        ({"latent_shape": (LATENT, 1, 1), "lr": float("nan")}, "lr"),
        ({"latent_shape": (LATENT, 1, 1), "seed": -3}, "seed"),
        ({"latent_shape": (LATENT, 1, 1), "device": "gpu:banana"}, "device"),
        ({"latent_shape": (LATENT, 1, 1), "device": "meta"}, "never moves"),
        ({"latent_shape": (LATENT, 1, 1), "progress": "yes"}, "progress"),
        ({"latent_shape": (LATENT, 1, 1), "cn_hidden": (0,)}, "hidden"),
    ],
)
def test_bad_fit_arguments(make_gan, kwargs, message) -> None:
    gan = make_gan("dcgan")
    with pytest.raises(ValueError, match=message):
        fit_inverter(gan.generator, gan.discriminator, "4", **kwargs)


def test_models_must_be_modules(make_gan) -> None:
    gan = make_gan("dcgan")
    with pytest.raises(ValueError, match="generator: expected a torch.nn.Module"):
        fit_inverter(lambda z: z, gan.discriminator, "4", latent_shape=(LATENT, 1, 1))


def test_g_and_d_on_different_devices(make_gan) -> None:
    gan = make_gan("dcgan")
    gan.discriminator.to("meta")
    with pytest.raises(ValueError, match="same device"):
        fit_inverter(gan.generator, gan.discriminator, "4", latent_shape=(LATENT, 1, 1))


@pytest.mark.parametrize(
    "images, message",
    [
        (torch.zeros(2, 1, 9, 9), r"expected shape \(N, 1, 8, 8\), got \(2, 1, 9, 9\)"),
        (torch.zeros(1, 8, 8), r"got \(1, 8, 8\)"),
        (torch.zeros(1, 1, 8, 8, 1), "expected shape"),
        (torch.zeros(2, 1, 8, 8, dtype=torch.uint8), "floating-point.*uint8"),
        (np.zeros((2, 1, 8, 8), dtype=np.uint8), "floating-point.*uint8"),
        (torch.zeros(2, 1, 8, 8, dtype=torch.int64), "floating-point.*int64"),
        ([[0.0]], "torch.Tensor or numpy array"),
        (torch.tensor(float("nan")).expand(3, 1, 8, 8).clone(), "192 NaN or Inf"),
        (torch.zeros(2, 1, 8, 8).index_fill_(0, torch.tensor([1]), float("inf")), "64 NaN or Inf"),
    ],
)
def test_bad_images(fitted, images, message) -> None:
    _, inverter = fitted
    with pytest.raises(ValueError, match=message):
        inverter.encode(images)
    with pytest.raises(ValueError, match=message):
        inverter.reconstruct(images)


def test_single_image_gets_a_hint(fitted) -> None:
    _, inverter = fitted
    with pytest.raises(ValueError, match=r"images\[None\]"):
        inverter.encode(torch.zeros(1, 8, 8))


def test_empty_batch_gives_empty_result(fitted) -> None:
    _, inverter = fitted
    codes = inverter.encode(torch.zeros(0, 1, 8, 8))
    assert codes.shape == (0, LATENT, 1, 1)
    assert inverter.reconstruct(np.zeros((0, 1, 8, 8), dtype=np.float32)).shape == (0, 1, 8, 8)


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, True])
def test_bad_batch_size(fitted, batch_size) -> None:
    _, inverter = fitted
    with pytest.raises(ValueError, match="batch_size"):
        inverter.encode(torch.zeros(2, 1, 8, 8), batch_size=batch_size)


def test_bad_latents_for_decode(fitted) -> None:
    _, inverter = fitted
    with pytest.raises(ValueError, match=r"expected shape \(N, 8, 1, 1\)"):
        inverter.decode(torch.zeros(2, LATENT))
    with pytest.raises(ValueError, match="finite"):
        inverter.decode(torch.full((2, LATENT, 1, 1), float("inf")))


def test_conditions_checked(make_gan) -> None:
    gan = make_gan("conditional")
    inverter = fit_inverter(gan.generator, gan.discriminator, gan.feature_layer, latent_shape=gan.latent_shape, conditioning=gan.conditioning, **QUICK)
    _, x, y = gan.sample(4)
    with pytest.raises(ValueError, match="conditional GAN"):
        inverter.encode(x)
    with pytest.raises(ValueError, match="4 rows"):
        inverter.encode(x, conditions=y[:3])
    plain = make_gan("dcgan")
    flat = fit_inverter(plain.generator, plain.discriminator, "4", latent_shape=(LATENT, 1, 1), **QUICK)
    with pytest.raises(ValueError, match="unconditional"):
        flat.encode(plain.sample(2)[1], conditions=torch.zeros(2))
    with pytest.raises(ValueError, match="conditional GAN"):
        Inverter(inverter.config, generator=gan.generator, discriminator=gan.discriminator)


class SharedActivationD(nn.Module):
    """One LeakyReLU module reused after both convolutions, a common way to write a D."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 4, 2, 1)
        self.conv2 = nn.Conv2d(16, 32, 4, 2, 1)
        self.act = nn.LeakyReLU(0.2, inplace=True)
        self.head = nn.Linear(32 * 2 * 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.conv1(x))
        x = self.act(self.conv2(x))
        return self.head(x.flatten(1))


def test_a_layer_d_runs_several_times_is_refused_and_listed(make_gan) -> None:
    from discinvert import list_layers
    from tests.conftest import assert_untouched, snapshot

    G, D = make_gan("dcgan").generator, SharedActivationD().train()
    before = snapshot(G, D)
    with pytest.raises(ValueError, match=r"feature_layer 'act': expected a layer D runs once .* runs 2 times"):
        fit_inverter(G, D, "act", latent_shape=(LATENT, 1, 1), **QUICK)
    assert_untouched(before, G, D)
    infos = {info.name: info for info in list_layers(D, torch.zeros(2, 1, 8, 8))}
    assert infos["act"].calls == 2 and infos["conv2"].calls == 1 and infos["head"].calls == 1
    assert list_layers(D)[0].calls is None  # without an example nothing ran
    inverter = fit_inverter(G, D, "conv2", latent_shape=(LATENT, 1, 1), **QUICK)  # a layer run once is fine
    assert inverter.config.feature_dim == 32 * 2 * 2
    assert_untouched(before, G, D)


def test_uninitialised_lazy_modules_are_refused_untouched(make_gan, fitted) -> None:
    gan = make_gan("dcgan")
    lazy_d = nn.Sequential(nn.LazyConv2d(8, 4, 2, 1), nn.LeakyReLU(0.2), nn.Flatten(), nn.LazyLinear(1))
    with pytest.raises(ValueError, match=r"discriminator: expected initialised weights, got 4 uninitialised lazy"):
        fit_inverter(gan.generator, lazy_d, "1", latent_shape=(LATENT, 1, 1), **QUICK)
    assert all(nn.parameter.is_lazy(p) for p in lazy_d.parameters()), "the lazy D was initialised"
    lazy_g = nn.Sequential(nn.Flatten(), nn.LazyLinear(64), nn.Unflatten(1, (1, 8, 8)))
    with pytest.raises(ValueError, match=r"generator: expected initialised weights"):
        fit_inverter(lazy_g, gan.discriminator, gan.feature_layer, latent_shape=(LATENT, 1, 1), **QUICK)
    _, inverter = fitted
    with pytest.raises(ValueError, match=r"discriminator: expected initialised weights"):
        Inverter(inverter.config, generator=gan.generator, discriminator=lazy_d)
    with torch.no_grad():
        lazy_d(torch.zeros(1, 1, 8, 8))  # once it has run, its weights exist and it fits
    fit_inverter(gan.generator, lazy_d, "1", latent_shape=(LATENT, 1, 1), **QUICK)


class HeadWithSideEffects(nn.Module):
    """A D whose head (after the feature layer) swaps a buffer through .data and stores its output."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 16, 4, 2, 1)
        self.act = nn.LeakyReLU(0.2)
        self.head = nn.Linear(16 * 4 * 4, 1)
        self.register_buffer("u", torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.conv(x)).flatten(1)
        self.u.data = self.u * 2  # invisible to version counters
        self.last_score = self.head(h)
        return self.last_score


def test_counting_layer_calls_never_runs_the_users_d_past_the_layer(make_gan, tmp_path) -> None:
    from tests.conftest import assert_untouched, snapshot

    G, D = make_gan("dcgan").generator, HeadWithSideEffects()
    before = snapshot(G, D)
    inverter = fit_inverter(G, D, "act", latent_shape=(LATENT, 1, 1), **QUICK)
    Inverter.load(inverter.save(tmp_path / "inv.safetensors"), generator=G, discriminator=D)
    assert_untouched(before, G, D)
    assert not hasattr(D, "last_score") and torch.equal(D.u, torch.ones(1))


def test_an_inverter_fit_on_a_shared_layer_before_the_check_still_loads(make_gan, tmp_path, monkeypatch) -> None:
    import discinvert.gan

    G, D = make_gan("dcgan").generator, SharedActivationD()
    monkeypatch.setattr(discinvert.gan, "layer_calls", lambda tap, *args: dict.fromkeys(tap.layer_names, 1))  # as before the check
    path = fit_inverter(G, D, "act", latent_shape=(LATENT, 1, 1), **QUICK).save(tmp_path / "old.safetensors")
    monkeypatch.undo()
    Inverter.load(path, generator=G, discriminator=D)  # loading checks fingerprints and shapes, not the call count


class ViewAfterConvD(nn.Module):
    """``x.view(n, -1)`` after a convolution: fine in the default layout, fails on channels-last tensors."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 16, 4, 2, 1)
        self.act = nn.LeakyReLU(0.2)
        self.head = nn.Linear(16 * 4 * 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)
        return self.head(self.act(h.view(h.shape[0], -1)))


def test_levers_the_model_cannot_run_with_are_refused_before_training(make_gan) -> None:
    from tests.conftest import assert_untouched, snapshot

    G, D = make_gan("dcgan").generator, ViewAfterConvD()
    before = snapshot(G, D)
    with pytest.raises(ValueError, match=r"channels_last=True: G and D failed on a probe batch .*fit without it"):
        fit_inverter(G, D, "act", latent_shape=(LATENT, 1, 1), channels_last=True, **QUICK)
    assert_untouched(before, G, D)
    # by default ('auto') the lever G and D cannot run with is dropped, not refused; the other one stays
    from discinvert.fitting.acceleration import native_bf16

    fitted = fit_inverter(G, D, "act", latent_shape=(LATENT, 1, 1), **QUICK)
    bf16 = "torch.bfloat16" if native_bf16(torch.device("cpu")) else None
    assert fitted.config.fit["levers"] == {"autocast_dtype": bf16, "channels_last": False}
    # a lever forced beside an automatic one: the automatic one gives way
    fitted = fit_inverter(G, D, "act", latent_shape=(LATENT, 1, 1), autocast_dtype=torch.bfloat16, **QUICK)
    assert fitted.config.fit["levers"] == {"autocast_dtype": "torch.bfloat16", "channels_last": False}
    assert_untouched(before, G, D)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal where CUDA is missing")
def test_autocast_that_torch_would_silently_disable_is_refused() -> None:
    from discinvert.fitting.acceleration import check_autocast_dtype

    # torch only warns and runs in full precision here; a fit must not record a precision it did not use.
    with pytest.raises(ValueError, match=r"autocast_dtype: torch.bfloat16 autocast is not available on cuda"):
        check_autocast_dtype(torch.bfloat16, torch.device("cuda"))


def test_shared_layer_refused_also_when_d_cannot_be_deep_copied(make_gan) -> None:
    import threading

    from tests.conftest import assert_untouched, snapshot

    G, D = make_gan("dcgan").generator, SharedActivationD().train()
    D.lock = threading.Lock()  # copy.deepcopy(D) fails: the check must still run
    before = snapshot(G, D)
    with pytest.raises(ValueError, match=r"feature_layer 'act': expected a layer D runs once .* runs 2 times"):
        fit_inverter(G, D, "act", latent_shape=(LATENT, 1, 1), **QUICK)
    assert_untouched(before, G, D)
    inverter = fit_inverter(G, D, "conv2", latent_shape=(LATENT, 1, 1), **QUICK)  # a layer run once is fine
    assert inverter.config.feature_dim == 32 * 2 * 2
    assert_untouched(before, G, D)


@pytest.mark.parametrize("hidden", [16, "64", (16, 0), (16.0,)])
def test_bad_cn_hidden_is_a_value_error(fitted, hidden) -> None:
    gan, _ = fitted
    with pytest.raises(ValueError, match=r"cn_hidden: expected"):
        fit_inverter(gan.generator, gan.discriminator, gan.feature_layer, latent_shape=gan.latent_shape,
                     **{**QUICK, "cn_hidden": hidden})


class _KeywordG(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        from tests.conftest import ConvGenerator

        self.body = ConvGenerator()

    def forward(self, z: torch.Tensor, *, truncation: float) -> torch.Tensor:
        return self.body(z * truncation)


def test_g_needing_a_keyword_is_not_called_a_latent_shape_problem(fitted) -> None:
    gan, _ = fitted
    with pytest.raises(ValueError, match=r"generator: expected G\(z\) with the latent batch as its only required argument.*truncation") as info:
        fit_inverter(_KeywordG(), gan.discriminator, gan.feature_layer, latent_shape=gan.latent_shape, **QUICK)
    assert "latent_shape" not in str(info.value).split("(")[0]


def test_g_and_d_on_different_devices_at_load(make_gan, tmp_path) -> None:
    gan = make_gan("dcgan")
    inverter = fit_inverter(gan.generator, gan.discriminator, "4", latent_shape=(LATENT, 1, 1), **QUICK)
    path = inverter.save(tmp_path / "inv.safetensors")
    gan.generator.to("meta")
    with pytest.raises(ValueError, match="same device"):
        Inverter.load(path, generator=gan.generator, discriminator=gan.discriminator)


def test_seed_out_of_range(make_gan) -> None:
    gan = make_gan("dcgan")
    with pytest.raises(ValueError, match=r"seed: expected an int in \[0, 2\*\*62\)"):
        fit_inverter(gan.generator, gan.discriminator, "4", latent_shape=(LATENT, 1, 1), **{**QUICK, "seed": 2**64})


# ----------------------------------------------------------------------------- issue 32 item 12: wrong exception types
# Each case used to escape as a RuntimeError, TypeError, AttributeError, IndexError, NotImplementedError or
# IsADirectoryError (or was accepted); each must be a ValueError naming what was expected and what came,
# with G and D left as they were.

def _fit_quick(gan: TinyGAN, **kwargs) -> Inverter:
    return fit_inverter(gan.generator, gan.discriminator, gan.feature_layer, latent_shape=gan.latent_shape,
                        **{**QUICK, **kwargs})


@pytest.mark.parametrize("method", ["encode", "reconstruct", "refine", "fit"])
def test_images_on_the_meta_device_are_refused(fitted, method) -> None:
    from tests.conftest import assert_untouched, snapshot

    gan, inverter = fitted
    before = snapshot(gan.generator, gan.discriminator)
    images = torch.zeros(16, 1, 8, 8, device="meta")
    with pytest.raises(ValueError, match=r"images: expected a tensor holding data .* got one on the meta device"):
        if method == "fit":
            _fit_quick(gan, images=images)
        elif method == "refine":
            inverter.refine(images, 2, progress=False)
        else:
            getattr(inverter, method)(images)
    assert_untouched(before, gan.generator, gan.discriminator)


def test_codes_on_the_meta_device_are_refused_by_decode(fitted) -> None:
    from tests.conftest import assert_untouched, snapshot

    gan, inverter = fitted
    before = snapshot(gan.generator, gan.discriminator)
    with pytest.raises(ValueError, match=r"latents: expected a tensor holding data .* got one on the meta device"):
        inverter.decode(torch.zeros(4, *inverter.latent_shape, device="meta"))
    assert_untouched(before, gan.generator, gan.discriminator)


@pytest.mark.parametrize("method", ["encode", "refine", "fit"])
def test_numpy_longdouble_images_are_refused(fitted, method) -> None:
    gan, inverter = fitted
    images = np.zeros((16, 1, 8, 8), dtype=np.longdouble)
    with pytest.raises(ValueError, match=r"images: expected a NumPy array of a dtype torch can take .* got dtype "
                                         rf"{np.dtype(np.longdouble)}"):
        if method == "fit":
            _fit_quick(gan, images=images)
        else:
            getattr(inverter, method)(images)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"sampler": 5}, r"Conditioning.sampler: expected a callable sampler\(n, generator, device\).*got 5"),
        ({"call_generator": "G"}, r"Conditioning.call_generator: expected a callable .* got 'G'"),
        ({"call_discriminator": None}, r"Conditioning.call_discriminator: expected a callable .* got None"),
        ({"num_classes": 0}, r"Conditioning.num_classes: expected an int >= 1, got 0"),
        ({"num_classes": 4.0}, r"Conditioning.num_classes: expected an int >= 1, got 4.0"),
    ],
    ids=["sampler", "call_generator", "call_discriminator", "num_classes_zero", "num_classes_float"],
)
def test_a_conditioning_of_wrong_parts_is_refused(kwargs, message) -> None:
    from discinvert import Conditioning
    from tests.conftest import label_sampler

    with pytest.raises(ValueError, match=message):
        Conditioning(**{"sampler": label_sampler, **kwargs})


def test_a_plain_function_as_conditioning_is_refused(make_gan) -> None:
    from tests.conftest import assert_untouched, label_sampler, snapshot

    gan = make_gan("conditional")
    before = snapshot(gan.generator, gan.discriminator)
    expected = r"conditioning: expected a discinvert.Conditioning or None, got function .*Conditioning\(sampler=label_sampler\)"
    with pytest.raises(ValueError, match=expected):
        _fit_quick(gan, conditioning=label_sampler)
    inverter = _fit_quick(gan, conditioning=gan.conditioning)
    with pytest.raises(ValueError, match=expected):
        Inverter(inverter.config, generator=gan.generator, discriminator=gan.discriminator, conditioning=label_sampler)
    assert_untouched(before, gan.generator, gan.discriminator)


@pytest.fixture(scope="module")
def conditional_fit() -> tuple[TinyGAN, Inverter]:
    from tests.conftest import _build

    gan = _build("conditional")
    return gan, _fit_quick(gan, conditioning=gan.conditioning)


@pytest.mark.parametrize(
    "labels, message",
    [
        (lambda y: y.float(), r"conditions: expected integer conditions \(torch.int64\) like those conditioning.sampler "
                              r"draws, got dtype torch.float32"),
        (lambda y: y + 4, r"conditions: expected class labels in \[0, 4\) \(the rows of the nn.Embedding tables G and "
                          r"D look them up in.*\), got values from 4 to 7"),
        (lambda y: y - 4, r"conditions: expected class labels in \[0, 4\) .* got values from -4 to -1"),
        (lambda y: y.numpy().astype(np.int32) + 10, r"conditions: expected class labels in \[0, 4\) .* from 10 to 13"),
        (lambda y: y[:, None], r"conditions: expected conditions of shape \(4,\) like those conditioning.sampler "
                               r"draws, got \(4, 1\)"),
        (lambda y: y.to("meta"), r"conditions: expected a tensor holding data .* meta device"),
        (lambda y: y.numpy().astype(np.longdouble), r"conditions: expected a NumPy array of a dtype torch can take"),
    ],
    ids=["float", "above", "negative", "numpy_above", "extra_dimension", "meta", "longdouble"],
)
@pytest.mark.parametrize("method", ["encode", "refine", "decode"])
def test_bad_labels_in_a_conditional_inverter_are_refused(conditional_fit, labels, message, method) -> None:
    from tests.conftest import assert_untouched, snapshot

    gan, inverter = conditional_fit
    z, x, y = gan.sample(4)
    before = snapshot(gan.generator, gan.discriminator)
    with pytest.raises(ValueError, match=message):
        if method == "decode":
            inverter.decode(z, conditions=labels(y))
        elif method == "refine":
            inverter.refine(x, 2, conditions=labels(y), progress=False)
        else:
            inverter.encode(x, conditions=labels(y))
    assert_untouched(before, gan.generator, gan.discriminator)
    inverter.encode(x, conditions=y)  # the labels as drawn still work


def test_labels_beyond_a_declared_number_of_classes_are_refused(make_gan) -> None:
    from discinvert import Conditioning
    from tests.conftest import label_sampler

    gan = make_gan("conditional")

    def three_labels(n, generator, device):
        return label_sampler(n, generator, device) % 3

    # custom calls: discinvert cannot see where the labels go, so only num_classes bounds them
    conditioning = Conditioning(sampler=three_labels, call_generator=lambda G, z, y: G(z, y),
                                call_discriminator=lambda D, x, y: D(x, y), num_classes=3)
    inverter = _fit_quick(gan, conditioning=conditioning)
    _, x, y = gan.sample(8)
    y = torch.arange(8) % 3
    inverter.encode(x, conditions=y)
    with pytest.raises(ValueError, match=r"conditions: expected class labels in \[0, 3\) \(Conditioning.num_classes\), "
                                         r"got values from 0 to 3"):
        inverter.encode(x, conditions=y.index_fill(0, torch.tensor([5]), 3))


def _float_labels(n, generator, device):
    return torch.randint(0, 4, (n,), generator=generator, device=device).float()


def _one_label_too_many(n, generator, device):
    return torch.randint(0, 4, (n + 1,), generator=generator, device=device)


def _labels_beyond_the_tables(n, generator, device):
    return torch.randint(10, 14, (n,), generator=generator, device=device)


def _list_of_labels(n, generator, device):
    return [0] * n


def _meta_labels(n, generator, device):
    return torch.zeros(n, dtype=torch.long, device="meta")


@pytest.mark.parametrize(
    "sampler, message",
    [
        (_float_labels, r"expected integer class labels in \[0, 4\) .* got dtype torch.float32"),
        (_one_label_too_many, r"expected a tensor of conditions with 2 rows \(one per latent\), got \(3,\)"),
        (_labels_beyond_the_tables, r"expected class labels in \[0, 4\) .* got values from 1[0-3] to 1[0-3]"),
        (_list_of_labels, r"expected a tensor of conditions with 2 rows \(one per latent\), got list"),
        (_meta_labels, r"expected a tensor holding data .* meta device"),
    ],
    ids=["float", "rows", "out_of_range", "list", "meta"],
)
def test_a_bad_condition_sampler_is_named_as_such(make_gan, sampler, message) -> None:
    from discinvert import Conditioning
    from tests.conftest import assert_untouched, snapshot

    gan = make_gan("conditional")
    before = snapshot(gan.generator, gan.discriminator)
    with pytest.raises(ValueError, match=r"^conditioning.sampler: " + message) as info:
        _fit_quick(gan, conditioning=Conditioning(sampler=sampler))
    assert "latent_shape" not in str(info.value)
    assert_untouched(before, gan.generator, gan.discriminator)


def test_a_generator_that_rejects_conditions_names_the_sampler_too(make_gan) -> None:
    from discinvert import Conditioning

    gan = make_gan("conditional")

    def wide_labels(n, generator, device):  # a custom call hides where the labels go: G fails on them
        return torch.zeros(n, 3, dtype=torch.long, device=device)

    conditioning = Conditioning(sampler=wide_labels, call_generator=lambda G, z, y: G(z, y))
    with pytest.raises(ValueError, match=r"^generator: G rejected latents of shape \(8,\) .* with conditions of shape "
                                         r"\(3,\) and dtype torch.int64 from conditioning.sampler.*check latent_shape "
                                         r"and conditioning.sampler"):
        _fit_quick(gan, conditioning=conditioning)


def test_a_latent_sampler_returning_meta_tensors_is_refused(make_gan) -> None:
    from tests.conftest import assert_untouched, snapshot

    gan = make_gan("dcgan")
    before = snapshot(gan.generator, gan.discriminator)

    def meta_latents(n, generator, device):
        return torch.zeros((n, LATENT, 1, 1), device="meta")

    with pytest.raises(ValueError, match=r"latent_sampler: expected a tensor holding data .* got one on the meta device"):
        fit_inverter(gan.generator, gan.discriminator, gan.feature_layer, latent_sampler=meta_latents, **QUICK)
    assert_untouched(before, gan.generator, gan.discriminator)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"callback": 5}, r"callback: expected a callable callback\(start, step, codes\) or None, got 5"),
        ({"progress": "yes"}, r"progress: expected None, True or False, got 'yes'"),
        ({"progress": 1}, r"progress: expected None, True or False, got 1"),
    ],
    ids=["callback", "progress_string", "progress_int"],
)
def test_bad_refine_options_are_refused_before_any_step(fitted, kwargs, message) -> None:
    from discinvert.optimize import optimize_latents

    gan, inverter = fitted
    z, x, _ = gan.sample(2)
    calls = []
    hook = gan.generator.register_forward_pre_hook(lambda *args: calls.append(1))
    try:
        with pytest.raises(ValueError, match=message):
            inverter.refine(x, 2, **kwargs)
        with pytest.raises(ValueError, match=message):
            optimize_latents(gan.generator, x, z, steps=2, **kwargs)
    finally:
        hook.remove()
    assert calls == [], "G ran before the options were checked"


@pytest.mark.parametrize("model", ["D", None, [nn.Linear(2, 2)]], ids=["string", "none", "list"])
def test_list_layers_of_something_other_than_a_module_is_refused(model) -> None:
    from discinvert import list_layers, suggest_feature_layers

    with pytest.raises(ValueError, match=r"model: expected a torch.nn.Module \(usually the discriminator D\), got "):
        list_layers(model)
    with pytest.raises(ValueError, match=r"model: expected a torch.nn.Module"):
        suggest_feature_layers(model, torch.zeros(2, 1, 8, 8))


def test_a_checkpoint_path_at_a_directory_is_refused_before_training(make_gan, tmp_path) -> None:
    from tests.conftest import assert_untouched, snapshot

    gan = make_gan("dcgan")
    before = snapshot(gan.generator, gan.discriminator)
    validations = []
    with pytest.raises(ValueError, match=rf"checkpoint_path: {tmp_path}: expected a file to write, got an existing "
                                         "directory"):
        _fit_quick(gan, checkpoint_path=tmp_path, checkpoint_every=5, eval_every=1, on_validation=validations.append)
    assert validations == [], "training started before the checkpoint path was checked"
    assert list(tmp_path.iterdir()) == []
    assert_untouched(before, gan.generator, gan.discriminator)


def test_label_count_is_inferred_only_when_every_embedding_table_agrees() -> None:
    """A class table beside a table of another size (positions, say) says nothing about which one takes the
    labels: no range is inferred, so valid labels are never refused; declared classes still are checked."""
    from discinvert.conditioning import Conditioning, label_count
    from tests.conftest import ConditionalDiscriminator, ConditionalGenerator, label_sampler

    generator, discriminator = ConditionalGenerator(), ConditionalDiscriminator()
    conditioning = Conditioning(sampler=label_sampler)
    assert label_count(conditioning, generator, discriminator).count == 4
    generator.positions = nn.Embedding(2, 3)  # unrelated, smaller than the 4 classes
    assert label_count(conditioning, generator, discriminator) is None
    declared = Conditioning(sampler=label_sampler, num_classes=4)
    assert label_count(declared, generator, discriminator).count == 4


@pytest.mark.parametrize("kind", ["sparse", "nested"])
def test_sparse_and_nested_images_are_refused(fitted, kind) -> None:
    gan, inverter = fitted
    dense = gan.sample(2)[1]
    images = dense.to_sparse() if kind == "sparse" else torch.nested.nested_tensor(list(dense))
    for method in ("encode", "refine"):
        with pytest.raises(ValueError, match=r"images: expected a dense tensor of shape \(N, 1, 8, 8\)"):
            getattr(inverter, method)(images) if method == "encode" else inverter.refine(images, 1, progress=False)
