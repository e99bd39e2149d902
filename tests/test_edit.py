"""Latent arithmetic (discinvert.edit) against answers computed independently."""

from __future__ import annotations

import logging
import math

import pytest
import torch

from discinvert import Inverter, fit_inverter
from discinvert.edit import (
    apply_direction,
    attribute_direction,
    edit,
    interpolate,
    interpolate_images,
)
from tests.conftest import LATENT, TinyGAN, _build, assert_untouched, snapshot

QUICK = {"steps": 30, "batch_size": 32, "cn_hidden": (64,), "progress": False, "validation_size": 64, "seed": 0}


def _fit(gan: TinyGAN) -> Inverter:
    return fit_inverter(
        gan.generator, gan.discriminator, gan.feature_layer,
        latent_shape=gan.latent_shape, conditioning=gan.conditioning, **QUICK,
    )


@pytest.fixture(scope="module")
def fitted() -> tuple[TinyGAN, Inverter]:
    gan = _build("dcgan")  # 4-D latents (8, 1, 1): the shape handling is not just flat vectors
    return gan, _fit(gan)


@pytest.fixture(scope="module")
def fitted_conditional() -> tuple[TinyGAN, Inverter]:
    gan = _build("conditional")
    return gan, _fit(gan)


def _random_code(seed: int, shape: tuple[int, ...] = (LATENT, 1, 1)) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------- attribute_direction
def test_direction_is_difference_of_mean_codes(fitted) -> None:
    gan, inverter = fitted
    _, with_images, _ = gan.sample(20, seed=1)
    _, without_images, _ = gan.sample(33, seed=2)
    direction = attribute_direction(inverter, with_images, without_images, batch_size=7)
    expected = inverter.encode(with_images).mean(0) - inverter.encode(without_images).mean(0)
    assert direction.shape == inverter.latent_shape == (LATENT, 1, 1)
    assert not direction.requires_grad
    torch.testing.assert_close(direction, expected, rtol=1e-5, atol=1e-6)


def test_direction_accepts_numpy_and_normalizes(fitted) -> None:
    gan, inverter = fitted
    a = gan.sample(16, seed=3)[1]
    b = gan.sample(16, seed=4)[1]
    raw = attribute_direction(inverter, a, b)
    from_numpy = attribute_direction(inverter, a.numpy(), b.numpy())
    torch.testing.assert_close(from_numpy, raw)
    unit = attribute_direction(inverter, a, b, normalize=True)
    assert math.isclose(float(torch.linalg.vector_norm(unit)), 1.0, rel_tol=1e-6)
    torch.testing.assert_close(unit * torch.linalg.vector_norm(raw), raw, rtol=1e-5, atol=1e-6)


def test_direction_rejects_empty_sets_naming_them(fitted) -> None:
    gan, inverter = fitted
    images = gan.sample(4)[1]
    empty = images[:0]
    with pytest.raises(ValueError, match=r"with_attribute: expected at least one image"):
        attribute_direction(inverter, empty, images)
    with pytest.raises(ValueError, match=r"without_attribute: expected at least one image"):
        attribute_direction(inverter, images, empty)


def test_direction_rejects_bad_images_naming_the_set(fitted) -> None:
    gan, inverter = fitted
    images = gan.sample(4)[1]
    with pytest.raises(ValueError, match=r"without_attribute: images: expected shape \(N, 1, 8, 8\), got \(4, 8, 8\)"):
        attribute_direction(inverter, images, images[:, 0])
    with pytest.raises(ValueError, match=r"with_attribute: .*floating-point"):
        attribute_direction(inverter, (images * 100).to(torch.uint8), images)
    with pytest.raises(ValueError, match=r"inverter: expected a discinvert.Inverter"):
        attribute_direction(gan.generator, images, images)
    with pytest.raises(ValueError, match=r"normalize: expected True or False"):
        attribute_direction(inverter, images, images, normalize="yes")


def test_normalizing_a_zero_direction_raises(fitted) -> None:
    gan, inverter = fitted
    images = gan.sample(8)[1]
    assert torch.count_nonzero(attribute_direction(inverter, images, images)) == 0
    with pytest.raises(ValueError, match=r"same mean code"):
        attribute_direction(inverter, images, images, normalize=True)


# ----------------------------------------------------------------------------- apply_direction / edit
def test_apply_direction_is_exact_arithmetic() -> None:
    codes = torch.randn(5, LATENT, 1, 1, generator=torch.Generator().manual_seed(0))
    direction = _random_code(1)
    assert torch.equal(apply_direction(codes, direction), codes + direction)
    assert torch.equal(apply_direction(codes, direction, 0.7), codes + 0.7 * direction)
    assert torch.equal(apply_direction(codes, direction, -2), codes - 2 * direction)
    strengths = torch.tensor([0.0, 0.5, 1.0, -1.5, 3.0])
    per_sample = apply_direction(codes, direction, strengths)
    for i in range(5):
        assert torch.equal(per_sample[i], codes[i] + float(strengths[i]) * direction)
    assert torch.equal(apply_direction(codes, direction, strengths.numpy()), per_sample)
    assert torch.equal(apply_direction(codes, direction, torch.tensor(0.7)), codes + 0.7 * direction)


def test_apply_direction_casts_direction_to_codes_dtype() -> None:
    codes = torch.randn(3, 4)
    direction = torch.randn(4, dtype=torch.float64)
    out = apply_direction(codes, direction, 2.0)
    assert out.dtype == torch.float32
    assert torch.equal(out, codes + 2.0 * direction.float())


def test_apply_direction_rejects_bad_input() -> None:
    codes = torch.randn(3, LATENT, 1, 1)
    direction = _random_code(0)
    with pytest.raises(ValueError, match=r"codes: expected shape \(N, 8, 1, 1\) .* got \(3, 8\)"):
        apply_direction(codes[:, :, 0, 0], direction)
    with pytest.raises(ValueError, match=r"add a batch dimension"):
        apply_direction(codes[0], direction)
    with pytest.raises(ValueError, match=r"strength: expected a float or a tensor of shape \(3,\), one per code, got shape \(2,\)"):
        apply_direction(codes, direction, torch.ones(2))
    with pytest.raises(ValueError, match=r"strength: expected a finite number"):
        apply_direction(codes, direction, float("nan"))
    with pytest.raises(ValueError, match=r"strength: expected finite values"):
        apply_direction(codes, direction, torch.tensor([1.0, math.inf, 0.0]))
    with pytest.raises(ValueError, match=r"strength: expected a float or a real tensor"):
        apply_direction(codes, direction, True)
    with pytest.raises(ValueError, match=r"codes: expected a floating-point tensor"):
        apply_direction(codes.long(), direction)
    with pytest.raises(ValueError, match=r"direction: expected finite values"):
        apply_direction(codes, direction * math.nan)


def test_edit_with_zero_strength_is_reconstruct(fitted) -> None:
    gan, inverter = fitted
    images = gan.sample(6, seed=5)[1]
    direction = _random_code(2)
    torch.testing.assert_close(edit(inverter, images, direction, 0.0), inverter.reconstruct(images), rtol=0, atol=0)


def test_edit_decodes_shifted_codes(fitted) -> None:
    gan, inverter = fitted
    images = gan.sample(6, seed=6)[1]
    direction = _random_code(3)
    strengths = torch.linspace(-1.0, 1.5, 6)
    edited = edit(inverter, images, direction, strengths, batch_size=4)
    expected = inverter.decode(inverter.encode(images) + strengths[:, None, None, None] * direction)
    assert edited.shape == images.shape
    torch.testing.assert_close(edited, expected, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(edited, inverter.reconstruct(images))


def test_edit_rejects_direction_of_the_wrong_shape(fitted) -> None:
    gan, inverter = fitted
    images = gan.sample(3)[1]
    with pytest.raises(ValueError, match=r"direction: expected shape \(8, 1, 1\), got \(8,\)"):
        edit(inverter, images, torch.zeros(LATENT))
    with pytest.raises(ValueError, match=r"one code, not a batch"):
        edit(inverter, images, torch.zeros(3, LATENT, 1, 1))
    with pytest.raises(ValueError, match=r"strength: .*\(3,\), one per code"):
        edit(inverter, images, torch.zeros(LATENT, 1, 1), torch.ones(4))


# ----------------------------------------------------------------------------- interpolate
def test_linear_interpolation_endpoints_and_midpoint() -> None:
    z0, z1 = _random_code(10), _random_code(11)
    path = interpolate(z0, z1, 5)
    assert path.shape == (5, LATENT, 1, 1)
    assert torch.equal(path[0], z0) and torch.equal(path[-1], z1)
    torch.testing.assert_close(path[2], (z0 + z1) / 2, rtol=0, atol=1e-7)
    steps = path[1:] - path[:-1]
    torch.testing.assert_close(steps, ((z1 - z0) / 4).expand_as(steps), rtol=1e-5, atol=1e-6)


def _angle(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double().flatten(), b.double().flatten()
    return math.acos(max(-1.0, min(1.0, float(a @ b / (a.norm() * b.norm())))))


def test_slerp_endpoints_norm_and_constant_angular_speed() -> None:
    z0 = _random_code(20, (64,))
    z1 = _random_code(21, (64,))
    z1 = z1 * (z0.norm() / z1.norm())  # equal norms
    path = interpolate(z0, z1, 9, method="slerp")
    assert torch.equal(path[0], z0) and torch.equal(path[-1], z1)
    torch.testing.assert_close(path.norm(dim=1), z0.norm().expand(9), rtol=1e-6, atol=0)
    total = _angle(z0, z1)
    for i in range(8):
        assert math.isclose(_angle(path[i], path[i + 1]), total / 8, rel_tol=1e-4)


def test_slerp_matches_shoemakes_formula_for_equal_norms() -> None:
    z0 = _random_code(30, (16,)).double()
    z1 = _random_code(31, (16,)).double()
    z1 = z1 * (z0.norm() / z1.norm())
    omega = math.acos(float(z0 @ z1 / (z0.norm() * z1.norm())))
    t = torch.linspace(0, 1, 7, dtype=torch.float64)
    expected = (torch.sin((1 - t) * omega)[:, None] * z0 + torch.sin(t * omega)[:, None] * z1) / math.sin(omega)
    torch.testing.assert_close(interpolate(z0, z1, 7, method="slerp"), expected, rtol=1e-10, atol=1e-12)


def test_slerp_interpolates_norm_linearly_for_unequal_norms() -> None:
    z0 = _random_code(40, (32,))
    z1 = 3 * _random_code(41, (32,))
    path = interpolate(z0, z1, 6, method="slerp")
    t = torch.linspace(0, 1, 6)
    torch.testing.assert_close(path.norm(dim=1), (1 - t) * z0.norm() + t * z1.norm(), rtol=1e-5, atol=1e-6)


def test_slerp_at_tiny_angles_is_linear_without_nan() -> None:
    z0 = _random_code(50)
    nearby = z0 + 1e-6 * _random_code(51)
    for z1 in (nearby, z0.clone(), 2.5 * z0):
        slerp = interpolate(z0, z1, 7, method="slerp")
        assert torch.isfinite(slerp).all()
        torch.testing.assert_close(slerp, interpolate(z0, z1, 7), rtol=1e-5, atol=1e-6)
    assert torch.equal(interpolate(z0, z0.clone(), 4, method="slerp"), z0.expand(4, *z0.shape))


def test_slerp_with_a_zero_code_is_linear() -> None:
    z1 = _random_code(60)
    zero = torch.zeros_like(z1)
    torch.testing.assert_close(interpolate(zero, z1, 5, method="slerp"), interpolate(zero, z1, 5))
    torch.testing.assert_close(interpolate(z1, zero, 5, method="slerp"), interpolate(z1, zero, 5))


def test_slerp_between_antiparallel_codes_stays_on_the_sphere(caplog) -> None:
    z0 = _random_code(70, (16,))
    with caplog.at_level(logging.WARNING, logger="discinvert.edit"):
        path = interpolate(z0, -z0, 5, method="slerp")
    assert "antiparallel" in caplog.text
    assert torch.isfinite(path).all()
    assert torch.equal(path[0], z0) and torch.equal(path[-1], -z0)
    torch.testing.assert_close(path.norm(dim=1), z0.norm().expand(5), rtol=1e-6, atol=0)
    assert abs(float(path[2] @ z0)) < 1e-5 * float(z0 @ z0)  # half way round: perpendicular
    assert torch.equal(interpolate(z0, -z0, 5, method="slerp"), path)  # the choice is deterministic


def test_interpolate_keeps_dtype_and_rejects_bad_input() -> None:
    z0, z1 = _random_code(80), _random_code(81)
    assert interpolate(z0.double(), z1.double(), 3, method="slerp").dtype == torch.float64
    with pytest.raises(ValueError, match=r"steps: expected an int >= 2"):
        interpolate(z0, z1, 1)
    with pytest.raises(ValueError, match=r"steps: expected an int >= 2"):
        interpolate(z0, z1, True)
    with pytest.raises(ValueError, match=r"method: expected one of \('linear', 'slerp'\), got 'cubic'"):
        interpolate(z0, z1, 3, method="cubic")
    with pytest.raises(ValueError, match=r"z1: expected the shape of z0 \(8, 1, 1\), got \(8,\)"):
        interpolate(z0, z1.flatten(), 3)
    with pytest.raises(ValueError, match=r"z0: expected a floating-point tensor, got list"):
        interpolate([0.0, 1.0], z1, 3)
    with pytest.raises(ValueError, match=r"z1: expected finite values"):
        interpolate(z0, z1 * math.inf, 3)
    with pytest.raises(ValueError, match=r"one-dimensional codes"):
        interpolate(torch.tensor([2.0]), torch.tensor([-1.0]), 3, method="slerp")


def test_interpolate_refuses_a_path_that_leaves_the_finite_range() -> None:
    """Codes of ±3e38 are finite in float32, but slerp's arc between them passes 3e39: refused, not Inf."""
    big = torch.full((100, 1, 1), 3e38)
    with pytest.raises(ValueError, match=r"z0, z1: expected codes whose slerp path stays finite in torch.float32, "
                                         r"got a path with NaN or Inf \(the largest entry of the two codes is 3e\+38"):
        interpolate(big, -big, 9, method="slerp")
    assert bool(torch.isfinite(interpolate(big, -big, 9, method="linear")).all())  # the line stays in range
    half = torch.full((4,), 6e4, dtype=torch.float16)
    with pytest.raises(ValueError, match=r"stays finite in torch.float16"):
        interpolate(half, -half, 5, method="slerp")


# ----------------------------------------------------------------------------- interpolate_images
def test_interpolate_images_decodes_the_latent_path(fitted) -> None:
    gan, inverter = fitted
    images = gan.sample(2, seed=90)[1]
    path = interpolate_images(inverter, images[0], images[1], 6)
    assert path.shape == (6, *inverter.image_shape)
    codes = inverter.encode(images)
    torch.testing.assert_close(path, inverter.decode(interpolate(codes[0], codes[1], 6, method="slerp")))
    torch.testing.assert_close(path[[0, -1]], inverter.reconstruct(images), rtol=1e-5, atol=1e-6)
    from_numpy = interpolate_images(inverter, images[0].numpy(), images[1].numpy(), 6, method="linear")
    torch.testing.assert_close(from_numpy, inverter.decode(interpolate(codes[0], codes[1], 6)))


def test_interpolate_images_rejects_batches_and_bad_options(fitted) -> None:
    gan, inverter = fitted
    images = gan.sample(2)[1]
    with pytest.raises(ValueError, match=r"image0: expected one image of shape \(1, 8, 8\), got \(2, 1, 8, 8\) \(a batch"):
        interpolate_images(inverter, images, images[1], 4)
    with pytest.raises(ValueError, match=r"image1: expected one image"):
        interpolate_images(inverter, images[0], [1.0], 4)
    with pytest.raises(ValueError, match=r"steps"):
        interpolate_images(inverter, images[0], images[1], 0)
    with pytest.raises(ValueError, match=r"path_conditions: this inverter is unconditional"):
        interpolate_images(inverter, images[0], images[1], 3, path_conditions=torch.zeros(3))


# ----------------------------------------------------------------------------- conditional GANs
def test_conditional_gan_edits_with_conditions(fitted_conditional) -> None:
    gan, inverter = fitted_conditional
    _, images, labels = gan.sample(12, seed=100)
    direction = attribute_direction(
        inverter, images[:6], images[6:], conditions_with=labels[:6], conditions_without=labels[6:],
    )
    expected = inverter.encode(images[:6], conditions=labels[:6]).mean(0) - inverter.encode(images[6:], conditions=labels[6:]).mean(0)
    torch.testing.assert_close(direction, expected)
    edited = edit(inverter, images, direction, 0.0, conditions=labels)
    torch.testing.assert_close(edited, inverter.reconstruct(images, conditions=labels), rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"without_attribute: conditions"):
        attribute_direction(inverter, images[:6], images[6:], conditions_with=labels[:6])


def test_conditional_interpolation_needs_a_path_condition_when_labels_differ(fitted_conditional) -> None:
    gan, inverter = fitted_conditional
    _, images, _ = gan.sample(2, seed=101)
    same = torch.tensor([2, 2])
    path = interpolate_images(inverter, images[0], images[1], 5, conditions=same)
    codes = inverter.encode(images, conditions=same)
    expected = inverter.decode(interpolate(codes[0], codes[1], 5, method="slerp"), conditions=torch.full((5,), 2))
    torch.testing.assert_close(path, expected)
    differ = torch.tensor([0, 3])
    with pytest.raises(ValueError, match=r"path_conditions: image0 and image1 have different conditions"):
        interpolate_images(inverter, images[0], images[1], 5, conditions=differ)
    along = torch.tensor([0, 0, 3, 3, 3])
    assert interpolate_images(inverter, images[0], images[1], 5, conditions=differ, path_conditions=along).shape == (5, 1, 8, 8)


# ----------------------------------------------------------------------------- the GAN is left alone
def test_editing_leaves_g_and_d_untouched() -> None:
    gan = _build("dcgan")
    inverter = _fit(gan)
    _, images, _ = gan.sample(10, seed=110)
    before = snapshot(gan.generator, gan.discriminator)
    direction = attribute_direction(inverter, images[:5], images[5:], normalize=True)
    edit(inverter, images, direction, torch.linspace(0, 2, 10))
    interpolate_images(inverter, images[0], images[1], 4)
    assert_untouched(before, gan.generator, gan.discriminator)
    assert gan.generator.training and gan.discriminator.training


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_results_follow_the_inputs_device() -> None:
    gan = _build("dcgan")
    _, images, _ = gan.sample(8)  # TinyGAN.sample draws on the CPU, so before the move
    gan.generator.cuda()
    gan.discriminator.cuda()
    inverter = _fit(gan)
    direction = attribute_direction(inverter, images[:4], images[4:])
    assert direction.device.type == "cpu"
    direction_cuda = attribute_direction(inverter, images[:4].cuda(), images[4:])
    assert direction_cuda.is_cuda
    torch.testing.assert_close(direction_cuda.cpu(), direction, rtol=1e-4, atol=1e-5)
    assert edit(inverter, images, direction_cuda, 1.0).device.type == "cpu"
    assert edit(inverter, images.cuda(), direction, 1.0).is_cuda
    assert interpolate(direction_cuda, direction, 3).is_cuda
    assert interpolate_images(inverter, images[0], images[1].cuda(), 3).device.type == "cpu"
