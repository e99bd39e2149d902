"""encode / decode / reconstruct behave like a well-kept inference API."""

from __future__ import annotations

import pytest
import torch

from discinvert import Inverter, fit_inverter, list_layers
from tests.conftest import LATENT, TinyGAN

QUICK = dict(steps=40, batch_size=32, cn_hidden=(64, 64), progress=False, validation_size=64, seed=0)


def _fit(gan: TinyGAN) -> Inverter:
    return fit_inverter(
        gan.generator, gan.discriminator, gan.feature_layer,
        latent_shape=gan.latent_shape, conditioning=gan.conditioning, **QUICK,
    )


def test_results_do_not_depend_on_batch_size(make_gan) -> None:
    gan = make_gan("dcgan")
    inverter = _fit(gan)
    _, x, _ = gan.sample(37)
    whole = inverter.encode(x)
    torch.testing.assert_close(inverter.encode(x, batch_size=5), whole, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(inverter.encode(x[:1]), whole[:1], rtol=1e-5, atol=1e-6)


def test_reconstruct_is_g_of_encode(make_gan) -> None:
    gan = make_gan("dcgan")
    inverter = _fit(gan)
    _, x, _ = gan.sample(9)
    codes = inverter.encode(x)
    gan.generator.eval()
    with torch.no_grad():
        expected = gan.generator(codes)
    gan.generator.train()
    assert torch.equal(inverter.reconstruct(x), expected)
    assert inverter.reconstruct(x).shape == x.shape


def test_encode_has_no_grad_and_keeps_inverter_mode(make_gan) -> None:
    gan = make_gan("mlp")
    inverter = _fit(gan)
    inverter.train()
    codes = inverter.encode(gan.sample(3)[1])
    assert not codes.requires_grad
    assert inverter.training and inverter.cn.training  # restored
    assert all(p.requires_grad for p in inverter.cn.parameters())


def test_conditional_gan_round_trip(make_gan, tmp_path) -> None:
    gan = make_gan("conditional")
    inverter = _fit(gan)
    z, x, y = gan.sample(64)
    codes = inverter.encode(x, conditions=y)
    assert codes.shape == (64, LATENT)
    recon = inverter.reconstruct(x, conditions=y)
    assert recon.shape == x.shape
    path = inverter.save(tmp_path / "cond.safetensors")
    loaded = Inverter.load(path, generator=gan.generator, discriminator=gan.discriminator, conditioning=gan.conditioning)
    assert torch.equal(loaded.encode(x, conditions=y.numpy()), codes)
    with pytest.raises(ValueError, match="conditional GAN"):
        Inverter.load(path, generator=gan.generator, discriminator=gan.discriminator)


def test_list_layers_names_types_and_shapes(make_gan) -> None:
    gan = make_gan("wgan_gp")
    _, x, _ = gan.sample(3)
    layers = {info.name: info for info in list_layers(gan.discriminator, x)}
    assert layers["blocks.1.act"].type == "LeakyReLU"
    assert layers["blocks.1.act"].output_shape == (3, 64, 2, 2)
    assert layers["blocks.1.act"].features == 256
    assert layers[""].output_shape == (3, 1)
    assert all(info.output_shape is None for info in list_layers(gan.discriminator))


def test_list_layers_on_conditional_and_tuple_layers(make_gan) -> None:
    cond = make_gan("conditional")
    _, x, y = cond.sample(2)
    layers = {info.name: info for info in list_layers(cond.discriminator, (x, y))}
    assert layers["trunk.3"].output_shape == (2, 64, 4, 4)
    assert layers["label"].output_shape == (2, 64)
    tup = make_gan("tuple")
    layers = {info.name: info for info in list_layers(tup.discriminator, tup.sample(2)[1])}
    assert layers["pair"].output_shape == (2, 64, 4, 4)  # first tensor of the tuple


def test_cli_entry_point_is_reserved() -> None:
    from discinvert.cli import main

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert main([]) == 2


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_path(make_gan, tmp_path) -> None:
    from tests.conftest import assert_untouched, snapshot

    gan = make_gan("spectral_dropout")
    gan.generator.cuda()
    gan.discriminator.cuda()
    before = snapshot(gan.generator, gan.discriminator)
    inverter = fit_inverter(gan.generator, gan.discriminator, gan.feature_layer, latent_shape=gan.latent_shape,
                            steps=300, batch_size=64, cn_hidden=(256, 256), progress=False, seed=0)
    assert_untouched(before, gan.generator, gan.discriminator)
    assert next(inverter.cn.parameters()).device.type == "cuda"
    assert inverter.config.fit["device"].startswith("cuda")
    rng = torch.Generator(device="cuda").manual_seed(1)
    z = torch.randn((256, *gan.latent_shape), generator=rng, device="cuda")
    gan.generator.eval()
    with torch.no_grad():
        x = gan.generator(z)
    gan.generator.train()
    codes = inverter.encode(x)
    assert codes.device.type == "cuda"
    assert float(((codes - z) ** 2).mean()) < 0.35
    codes_cpu = inverter.encode(x.cpu())  # CPU images: computed on the GAN's device, returned on the CPU
    assert codes_cpu.device.type == "cpu"
    torch.testing.assert_close(codes_cpu, codes.cpu(), rtol=1e-4, atol=1e-4)
    path = inverter.save(tmp_path / "cuda.safetensors")
    loaded = Inverter.load(path, generator=gan.generator, discriminator=gan.discriminator)
    assert torch.equal(loaded.encode(x), codes)
    assert_untouched(before, gan.generator, gan.discriminator)


class _InputWritingD(torch.nn.Module):
    """A D whose first op writes into its input (an in-place activation on the images)."""

    def __init__(self) -> None:
        super().__init__()
        from tests.conftest import conv_discriminator

        self.first = torch.nn.LeakyReLU(0.2, inplace=True)
        self.rest = conv_discriminator()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rest(self.first(x))


def test_a_d_writing_into_its_input_leaves_the_users_images_alone(make_gan) -> None:
    gan = make_gan("dcgan")
    D = _InputWritingD()
    inverter = fit_inverter(gan.generator, D, "rest.4", latent_shape=gan.latent_shape, **QUICK)
    _, x, _ = gan.sample(8)
    before = x.clone()
    codes = inverter.encode(x)
    inverter.refine(x, 2, feature_weight=0.1)
    inverter(x)
    assert torch.equal(x, before), "D wrote into the caller's images"
    assert torch.equal(inverter.encode(x), codes)


def test_images_far_outside_g_range_warn_or_raise(make_gan) -> None:
    import warnings

    from discinvert.inverter import ImageRangeWarning

    gan = make_gan("dcgan")
    inverter = _fit(gan)
    _, x, _ = gan.sample(8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # in range: no warning at all
        inverter.encode(x)
        inverter.encode((x + 1) / 2)  # [0, 1] lies inside a tanh G's range
    bytes_like = (x + 1) * 127.5  # 0..255 handed to a tanh G
    with pytest.warns(ImageRangeWarning, match=r"expected values in the generator's range \[-?\d.*got values in \[\d.*x / 127.5 - 1"):
        inverter.encode(bytes_like)
    with pytest.warns(ImageRangeWarning):
        inverter.reconstruct(bytes_like)
    with pytest.warns(ImageRangeWarning):
        inverter.refine(bytes_like, 1)
    with pytest.raises(ValueError, match=r"expected values in the generator's range"):
        inverter.encode(bytes_like, range_check="raise")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        inverter.encode(bytes_like, range_check="ignore")
    with pytest.raises(ValueError, match=r"range_check: expected 'warn', 'raise' or 'ignore'"):
        inverter.encode(x, range_check="strict")


class _MinibatchStdD(torch.nn.Module):
    """ProGAN-style minibatch standard deviation: NaN for a batch of one (unbiased std)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 8, 4, 2, 1)
        self.mbstd = _MinibatchStd()
        self.head = torch.nn.Linear(9 * 16, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.mbstd(self.conv(x)).flatten(1))


class _MinibatchStd(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        std = x.std(dim=0, keepdim=True).mean().expand(x.shape[0], 1, *x.shape[2:])
        return torch.cat([x, std], dim=1)


@pytest.mark.filterwarnings("ignore:std\\(\\)")
def test_non_finite_codes_are_an_error_that_says_why(make_gan) -> None:
    gan = make_gan("dcgan")
    with pytest.warns(UserWarning, match="Fitting anyway"):  # refused without the opt-in (issue 32, item 4)
        inverter = fit_inverter(gan.generator, _MinibatchStdD(), "mbstd", latent_shape=gan.latent_shape,
                                allow_batch_dependent_features=True, **QUICK)
    _, x, _ = gan.sample(4)
    assert torch.isfinite(inverter.encode(x)).all()
    with pytest.raises(ValueError, match=r"NaN/Inf codes for 1 of 1 .*D's features at 'mbstd'.*single image"):
        inverter.encode(x[:1])
    with pytest.raises(ValueError, match=r"single image"):
        inverter.encode(x, batch_size=1)
    plain = _fit(gan)
    with torch.no_grad():
        plain.cn.layers[0].weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"from finite D features: the connection network's weights"):
        plain.encode(x)


def test_big_endian_and_read_only_numpy_images(make_gan) -> None:
    gan = make_gan("dcgan")
    inverter = fit_inverter(gan.generator, gan.discriminator, "4", latent_shape=(LATENT, 1, 1), **QUICK)
    x = gan.sample(4)[1].numpy()
    big = x.astype(">f4")
    frozen_array = x.copy()
    frozen_array.setflags(write=False)
    expected = inverter.encode(x)
    torch.testing.assert_close(inverter.encode(big), expected)
    torch.testing.assert_close(inverter.encode(frozen_array), expected)


def test_range_warnings_point_at_the_callers_line(make_gan) -> None:
    from discinvert.inverter import ImageRangeWarning
    from discinvert.metrics import reconstruction_score

    gan = make_gan("dcgan")
    inverter = _fit(gan)
    bytes_like = (gan.sample(8)[1] + 1) * 127.5
    for call in (lambda: inverter.encode(bytes_like), lambda: inverter.reconstruct(bytes_like),
                 lambda: inverter.refine(bytes_like, 1), lambda: reconstruction_score(inverter, bytes_like, n=8, repeats=1)):
        with pytest.warns(ImageRangeWarning) as record:
            call()
        assert record[0].filename == __file__
