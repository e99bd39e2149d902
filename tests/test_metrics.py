"""The paper's metric and the other evaluation functions, checked against independent computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from discinvert import fit_inverter
from discinvert.metrics import (
    draw_subsets,
    image_quality,
    latent_recovery,
    nearest_neighbour_accuracy,
    reconstruction_score,
)

QUICK = dict(steps=60, batch_size=32, cn_hidden=(64,), progress=False, validation_size=64, seed=0)


@pytest.fixture
def fitted(make_gan):
    gan = make_gan("dcgan")
    return gan, fit_inverter(gan.generator, gan.discriminator, gan.feature_layer, latent_shape=gan.latent_shape, **QUICK)


def test_reconstruction_score_matches_scikit_image(fitted) -> None:
    gan, inverter = fitted
    _, x, _ = gan.sample(20)
    x = x.clamp(-0.9, 0.9) + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    score = reconstruction_score(inverter, x, n=20, repeats=1)
    recon = inverter.reconstruct(x).numpy()
    a = np.clip((x.numpy() + 1) / 2, 0, 1)
    b = np.clip((recon + 1) / 2, 0, 1)
    psnr = [peak_signal_noise_ratio(a[i, 0], b[i, 0], data_range=1) for i in range(20)]
    ssim = [structural_similarity(a[i, 0], b[i, 0], data_range=1) for i in range(20)]
    assert score["psnr_mean"] == pytest.approx(np.mean(psnr), rel=1e-9)
    assert score["ssim_mean"] == pytest.approx(np.mean(ssim), rel=1e-9)
    assert score["psnr_std"] == 0.0 and score["n"] == 20 and score["repeats"] == 1


def test_draws_mean_and_std(fitted) -> None:
    gan, inverter = fitted
    _, x, _ = gan.sample(30)
    score = reconstruction_score(inverter, x, n=10, repeats=4, seed=3)
    psnr, ssim = image_quality(x, inverter.reconstruct(x))
    draws = draw_subsets(30, 10, 4, 3)
    means = [psnr[d].mean() for d in draws]
    assert score["psnr_mean"] == pytest.approx(np.mean(means))
    assert score["psnr_std"] == pytest.approx(np.std(means))
    assert score["ssim_mean"] == pytest.approx(np.mean([ssim[d].mean() for d in draws]))
    assert all(len(set(d)) == 10 for d in draws)
    refined = reconstruction_score(inverter, x, n=10, repeats=4, seed=3, refine_steps=10)
    assert refined["psnr_mean"] > score["psnr_mean"]


def test_reconstruction_score_reports_refinement_progress_without_changing_the_score(fitted) -> None:
    """Issue 32 item 17: ``progress_callback(done, total)`` in image-steps over every image refined (the draws' union)."""
    gan, inverter = fitted
    _, x, _ = gan.sample(30)
    calls = []
    score = reconstruction_score(inverter, x, n=10, repeats=2, seed=3, refine_steps=3, batch_size=4,
                                 progress_callback=lambda done, total: calls.append((done, total)))
    used = len(np.unique(np.concatenate(draw_subsets(30, 10, 2, 3))))
    assert {total for _, total in calls} == {used * 3}
    assert [done for done, _ in calls] == sorted(done for done, _ in calls) and calls[-1][0] == used * 3
    quiet = reconstruction_score(inverter, x, n=10, repeats=2, seed=3, refine_steps=3, batch_size=4)
    assert (score["psnr_mean"], score["ssim_mean"]) == (quiet["psnr_mean"], quiet["ssim_mean"])
    with pytest.raises(ValueError, match="progress_callback: expected a callable"):
        reconstruction_score(inverter, x, n=10, repeats=1, refine_steps=3, progress_callback=5)


def test_colour_images_use_channel_axis() -> None:
    rng = np.random.default_rng(0)
    a = rng.uniform(-1, 1, (3, 3, 16, 16)).astype(np.float32)
    b = np.clip(a + rng.normal(0, 0.1, a.shape), -1, 1).astype(np.float32)
    psnr, ssim = image_quality(a, b)
    ua, ub = (a + 1) / 2, (b + 1) / 2
    expected = structural_similarity(np.moveaxis(ua[0], 0, -1), np.moveaxis(ub[0], 0, -1), data_range=1, channel_axis=-1)
    assert ssim[0] == pytest.approx(expected)
    assert psnr[0] == pytest.approx(peak_signal_noise_ratio(ua[0], ub[0], data_range=1))
    assert image_quality(a, a)[0][0] == float("inf")


@pytest.mark.parametrize(("height", "width", "window"), [(7, 9, 7), (6, 20, 5), (4, 4, 3), (3, 28, 3)])
def test_images_smaller_than_7x7_get_ssim_over_the_largest_odd_window_that_fits(height, width, window) -> None:
    rng = np.random.default_rng(0)
    for channels in (1, 3):
        a = rng.uniform(-1, 1, (2, channels, height, width)).astype(np.float32)
        b = np.clip(a + rng.normal(0, 0.2, a.shape), -1, 1).astype(np.float32)
        psnr, ssim = image_quality(a, b)
        ua, ub = (a[1] + 1) / 2, (b[1] + 1) / 2
        expected = (structural_similarity(ua[0], ub[0], data_range=1, win_size=window) if channels == 1 else
                    structural_similarity(np.moveaxis(ua, 0, -1), np.moveaxis(ub, 0, -1), data_range=1,
                                          channel_axis=-1, win_size=window))
        assert ssim[1] == pytest.approx(expected) and 0 < ssim[1] < 1
        assert psnr[1] == pytest.approx(peak_signal_noise_ratio(ua, ub, data_range=1))


def test_images_smaller_than_3x3_get_no_ssim_but_their_psnr() -> None:
    a = np.linspace(-1, 1, 2 * 1 * 2 * 30, dtype=np.float32).reshape(2, 1, 2, 30)
    with pytest.warns(UserWarning, match=r"images of 2x30 pixels are too small for SSIM \(it needs at least 3x3\)"):
        psnr, ssim = image_quality(a, a * 0.9)
    assert np.isnan(ssim).all() and np.isfinite(psnr).all()


def test_metric_errors(fitted) -> None:
    gan, inverter = fitted
    _, x, _ = gan.sample(5)
    with pytest.raises(ValueError, match="at most the number of images"):
        reconstruction_score(inverter, x, n=6, repeats=1)
    with pytest.raises(ValueError, match="same shape"):
        image_quality(x, x[:2])
    with pytest.raises(ValueError, match="value_range"):
        image_quality(x, x, value_range=(1.0, -1.0))


def test_latent_recovery(fitted) -> None:
    _, inverter = fitted
    result = latent_recovery(inverter, 200, seed=5)
    z = torch.randn((200, *inverter.latent_shape), generator=torch.Generator().manual_seed(5))
    codes = inverter.encode(inverter.decode(z))
    assert result["mse"] == pytest.approx(float(((codes - z) ** 2).mean()), rel=1e-5)
    assert result["n"] == 200 and 0.0 < result["mse"] < 0.8 and result["cosine"] > 0.4


class _Identity:
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return images.reshape(len(images), -1)


def test_nearest_neighbour_accuracy_known_answer() -> None:
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    rng = torch.Generator().manual_seed(0)
    train = centres.repeat_interleave(20, 0) + torch.randn(60, 2, generator=rng)
    train_labels = torch.arange(3).repeat_interleave(20)
    test = centres.repeat_interleave(5, 0) + torch.randn(15, 2, generator=rng)
    test_labels = torch.arange(3).repeat_interleave(5)
    assert nearest_neighbour_accuracy(_Identity(), train, train_labels, test, test_labels) == 1.0
    wrong = (test_labels + 1) % 3
    assert nearest_neighbour_accuracy(_Identity(), train, train_labels, test, wrong) == 0.0
    # Half the test points moved onto another centre: exactly half right.
    moved = test.clone()
    moved[::2] = centres[(test_labels[::2] + 1) % 3]
    expected = 1 - len(range(0, 15, 2)) / 15
    assert nearest_neighbour_accuracy(lambda t: t, train, train_labels, moved, test_labels) == pytest.approx(expected)
    with pytest.raises(ValueError, match="one per image"):
        nearest_neighbour_accuracy(_Identity(), train, train_labels[:5], test, test_labels)


class _UnitRangeG(torch.nn.Module):
    """A [0, 1] generator: a sigmoid on the tiny G's (narrow, untrained) output, scaled to fill [0, 1]."""

    def __init__(self, body: torch.nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(20 * self.body(z))


def test_metric_takes_the_recorded_range_by_default(make_gan) -> None:
    gan = make_gan("dcgan")
    G = _UnitRangeG(gan.generator)
    inverter = fit_inverter(G, gan.discriminator, gan.feature_layer, latent_shape=gan.latent_shape, **QUICK)
    assert inverter.value_range == (0.0, 1.0)
    x = torch.sigmoid(20 * gan.sample(12)[1])
    default = reconstruction_score(inverter, x, n=12, repeats=1)
    explicit = reconstruction_score(inverter, x, n=12, repeats=1, value_range=(0.0, 1.0))
    tanh_range = reconstruction_score(inverter, x, n=12, repeats=1, value_range=(-1.0, 1.0))
    assert default["psnr_mean"] == explicit["psnr_mean"] and default["ssim_mean"] == explicit["ssim_mean"]
    assert default["psnr_mean"] != tanh_range["psnr_mean"]


class _FlatImageG(torch.nn.Module):
    """An MLP-style G: images as flat vectors (N, 64) that are 8x8 pictures."""

    def __init__(self, body: torch.nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(z).flatten(1)


class _FlatImageD(torch.nn.Module):
    def __init__(self, body: torch.nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.reshape(-1, 1, 8, 8))


def test_metric_scores_flat_images_with_image_shape(make_gan) -> None:
    gan = make_gan("dcgan")
    G, D = _FlatImageG(gan.generator), _FlatImageD(gan.discriminator)
    inverter = fit_inverter(G, D, "body.4", latent_shape=gan.latent_shape, **QUICK)
    assert inverter.image_shape == (64,)
    x = gan.sample(10)[1].flatten(1)
    with pytest.raises(ValueError, match=r"image_shape: the generator's images have shape \(64,\), not \(C, H, W\).*image_shape=\(C, H, W\)"):
        reconstruction_score(inverter, x, n=10, repeats=1)
    with pytest.raises(ValueError, match=r"image_shape: expected \(C, H, W\) holding 64 values"):
        reconstruction_score(inverter, x, n=10, repeats=1, image_shape=(1, 8, 7))
    flat = reconstruction_score(inverter, x, n=10, repeats=1, image_shape=(1, 8, 8))
    recon = inverter.reconstruct(x).reshape(-1, 1, 8, 8)
    psnr, ssim = image_quality(x.reshape(-1, 1, 8, 8), recon)
    assert flat["psnr_mean"] == pytest.approx(psnr.mean()) and flat["ssim_mean"] == pytest.approx(ssim.mean())


@pytest.mark.parametrize(
    "recorded, nominal",
    [
        ((-0.98, 0.99), (-1.0, 1.0)),  # a tanh G
        ((0.01, 0.97), (0.0, 1.0)),  # a sigmoid G
        ((0.0001, 0.0027), (-1.0, 1.0)),  # a barely trained G: a sliver is no evidence of [0, 1]
        ((-0.2, 0.6), (-1.0, 1.0)),
        ((3.0, 250.0), (0.0, 255.0)),
        ((0.0, 1.5), (0.0, 1.0)),  # an unclamped [0, 1] G overshooting by half its span
        ((-0.3, 1.3), (0.0, 1.0)),  # lucidrains' unclamped [0, 1] generators: nearer [0, 1]'s centre than [-1, 1]'s
        ((-2.07, 1.89), (-1.0, 1.0)),  # the reference StyleGAN2 (unclamped): not the recorded span, or PSNR gains 6 dB
        ((0.0, 5.0), (0.0, 5.0)),  # no convention fits, overshoot or not: the recorded range itself
        ((-1.0, 2.6), (-1.0, 2.6)),  # overshoots [-1, 1] by more than OVERSHOOT of its span
        (None, (-1.0, 1.0)),
    ],
)
def test_value_range_from_the_recorded_range(fitted, recorded, nominal) -> None:
    import dataclasses

    _, inverter = fitted
    inverter.config = dataclasses.replace(inverter.config, image_range=recorded)
    assert inverter.value_range == nominal


def test_an_unclamped_g_s_own_images_pass_the_range_check_and_pixels_do_not() -> None:
    from discinvert.value_range import range_problem

    recorded = (-2.07, 1.89)  # the reference StyleGAN2's overshoot; nominal (-1, 1)
    assert range_problem((-2.07, 1.89), recorded) is None  # G's own images
    assert range_problem((-1.0, 1.0), recorded) is None  # real images in the nominal range
    message = range_problem((0.0, 255.0), recorded)
    assert message is not None and "expected values in the generator's range [-1, 1]" in message
    assert "x / 127.5 - 1" in message


def test_image_shape_takes_numpy_integers(make_gan) -> None:
    gan = make_gan("dcgan")
    inverter = fit_inverter(_FlatImageG(gan.generator), _FlatImageD(gan.discriminator), "body.4",
                            latent_shape=gan.latent_shape, **QUICK)
    x = gan.sample(10)[1].flatten(1)
    plain = reconstruction_score(inverter, x, n=10, repeats=1, image_shape=(1, 8, 8))
    numpy = reconstruction_score(inverter, x, n=10, repeats=1, image_shape=tuple(np.array([1, 8, 8])))
    assert plain == {**numpy, "seconds": plain["seconds"]}
