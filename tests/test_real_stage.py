"""fit_inverter(images=...): the real-image stage fine-tunes the CN on real images through the frozen G."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, TensorDataset

from discinvert import Inverter, fit_inverter, zoo
from discinvert.features import FeatureTap
from discinvert.guard import frozen
from discinvert.fitting.image_sets import UnitRangeWarning, split_images
from discinvert.network import CNConfig, ConnectionNetwork
from discinvert.fitting.image_sets import ImageBatches
from discinvert.fitting.loop import Plan, Runtime
from discinvert.fitting.updates import LossWeights
from discinvert.fitting.real_image_stage import train_on_images
from discinvert.fitting.run import FrozenGAN
from discinvert.fitting.fit_config import FitConfig
from discinvert.zoo.datasets import to_model_range
from tests.conftest import LATENT, BreaksAfter, TinyGAN, assert_untouched, snapshot

TINY = dict(steps=40, batch_size=32, cn_hidden=(64,), progress=False, validation_size=64, seed=0,
            real_steps=12, real_batch_size=16, eval_every=4)


def _images(gan: TinyGAN, n: int = 80) -> torch.Tensor:
    """Stand-ins for real images: G's images at latents drawn wider than its prior (a shifted domain)."""
    z, _, _ = gan.sample(n, seed=321)
    gan.generator.eval()
    with torch.no_grad():
        x = gan.generator(z * 1.5)
    gan.generator.train()
    return x


def _fit(gan: TinyGAN, images, **overrides) -> Inverter:
    return fit_inverter(gan.generator, gan.discriminator, gan.feature_layer, latent_shape=gan.latent_shape,
                        images=images, **{**TINY, **overrides})


def test_the_real_stage_reconstructs_unseen_real_images_better() -> None:
    """On the bundled DCGAN: the same short self-generated fit, then 150 real-image updates on 600 of the
    bundled Fashion-MNIST images; the other 400 (never trained on) reconstruct with a clearly lower error.
    A mechanism check on a small budget, not a benchmark (see docs/lab/encoder_ablations.md for those)."""
    G, D, _ = zoo.load("dcgan-fashion-mnist")
    config = zoo.load_gan_config("dcgan-fashion-mnist")
    images = to_model_range(zoo.load_test_images("dcgan-fashion-mnist")[0]).float()
    train, unseen = images[:600], images[600:]
    settings = dict(latent_shape=config.latent_shape, steps=60, batch_size=64, cn_hidden=(256,), progress=False,
                    validation_size=128, seed=0)
    G.train(), D.train()  # handed over in train mode, as users do
    before = snapshot(G, D)
    plain = fit_inverter(G, D, config.feature_layer, **settings)
    real = fit_inverter(G, D, config.feature_layer, images=train, real_steps=150, **settings)
    assert_untouched(before, G, D)
    plain_error = float(F.mse_loss(plain.reconstruct(unseen), unseen))
    real_error = float(F.mse_loss(real.reconstruct(unseen), unseen))
    assert real_error < 0.85 * plain_error, (plain_error, real_error)
    record = real.config.fit["real_images"]
    assert record["images"] == 480 and record["held_out"] == 120  # a fifth held out
    assert record["best_step"] > 0 and record["best_held_out_pixel_mse"] < record["start_held_out_pixel_mse"]
    assert record["real_steps"] == 150 and record["source"] == "tensor of 600 images"
    assert math.isfinite(record["latent_validation_mse"])
    assert "real_images" not in plain.config.fit


def test_tensor_array_dataset_and_dataloader_give_the_same_inverter(make_gan) -> None:
    gan = make_gan("dcgan")
    x = _images(gan)
    labels = torch.arange(len(x))

    class Items(Dataset):
        def __len__(self) -> int:
            return len(x)

        def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
            return x[i].numpy(), i

    reference = _fit(gan, x).state_dict()
    for source in (x.numpy(), Items(), TensorDataset(x, labels), DataLoader(TensorDataset(x, labels), batch_size=7)):
        state = _fit(gan, source).state_dict()
        assert all(torch.equal(reference[k], state[k]) for k in reference), type(source).__name__


def test_same_seed_same_inverter_and_the_stage_changes_the_cn(make_gan) -> None:
    gan = make_gan("mlp")
    x = _images(gan)
    before = snapshot(gan.generator, gan.discriminator)
    a, b = _fit(gan, x).state_dict(), _fit(gan, x).state_dict()
    assert_untouched(before, gan.generator, gan.discriminator)
    assert all(torch.equal(a[k], b[k]) for k in a)
    plain = fit_inverter(gan.generator, gan.discriminator, gan.feature_layer, latent_shape=gan.latent_shape,
                         **{k: v for k, v in TINY.items() if not k.startswith("real")})
    assert not all(torch.equal(a[k], plain.state_dict()[k]) for k in a)
    record = _fit(gan, x, real_lr=1e-2).config.fit["real_images"]
    assert [row[0] for row in record["history"]] == [0, 4, 8, 12]
    assert record["history"][0][1] is None  # step 0: the self-generated CN, no training loss yet


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (lambda x: x[:, :, :4], r"expected shape \(N, 1, 8, 8\) as G makes them, got \(80, 1, 4, 8\)"),
        (lambda x: (x * 127 + 128).to(torch.uint8), r"expected floating-point images .* got dtype torch.uint8"),
        (lambda x: x[:5], r"expected at least 8 real images, got 5"),
        (lambda x: x * 255, r"expected values in the generator's range .* x / 127.5 - 1"),
        (lambda x: [x], r"expected a tensor or NumPy array .* got list"),
        (lambda x: torch.where(torch.arange(x.numel()).reshape(x.shape) == 3, float("nan"), x), r"expected finite values"),
        (lambda x: DataLoader(TensorDataset(x[:0]), batch_size=4), r"yields nothing"),
    ],
)
def test_bad_images_are_refused_before_fitting_and_the_gan_is_untouched(make_gan, images, message) -> None:
    gan = make_gan("dcgan")
    x = _images(gan)
    before = snapshot(gan.generator, gan.discriminator)
    with pytest.raises(ValueError, match=message):
        _fit(gan, images(x))
    assert_untouched(before, gan.generator, gan.discriminator)


def test_a_bad_dataset_item_mid_stage_is_an_error_and_the_gan_is_untouched(make_gan) -> None:
    gan = make_gan("dcgan")
    x = _images(gan)

    before = snapshot(gan.generator, gan.discriminator)
    broken = BreaksAfter(x, 80 + 16 * 4)  # the split reads all 80 images; broken from the stage's 5th batch on
    with pytest.raises(ValueError, match=r"data set items of shape \(1, 8, 8\)"):
        _fit(gan, broken, real_steps=200)
    assert broken.reads == 80 + 16 * 5  # it failed in the stage, on its 5th batch
    assert_untouched(before, gan.generator, gan.discriminator)


def test_images_with_a_conditional_gan_are_refused(make_gan) -> None:
    gan = make_gan("conditional")
    with pytest.raises(ValueError, match="does not support conditional GANs"):
        fit_inverter(gan.generator, gan.discriminator, gan.feature_layer, latent_shape=gan.latent_shape,
                     conditioning=gan.conditioning, images=torch.zeros(10, 1, 8, 8), **TINY)


@pytest.mark.parametrize(("name", "value"), [("feature_weight", -0.1), ("prior_weight", float("nan")),
                                             ("real_steps", 0), ("real_batch_size", 1), ("real_lr", 0.0)])
def test_bad_real_stage_settings_are_refused(name, value) -> None:
    with pytest.raises(ValueError, match=name):
        FitConfig.build(**{name: value})


@pytest.mark.parametrize(("feature_weight", "prior_weight"), [(0.0, 0.0), (0.5, 0.0), (0.0, 0.1), (0.5, 0.1)])
def test_zero_weights_drop_the_terms(make_gan, feature_weight, prior_weight) -> None:
    """The stage taps D once per update for the target, once more for the D-feature term, and draws
    self-generated pairs only for the prior term."""
    gan = make_gan("dcgan")
    x = _images(gan)
    layer = gan.discriminator.get_submodule(gan.feature_layer)
    tap = FeatureTap(gan.discriminator, gan.feature_layer, layer)
    calls = {"tap": 0, "pairs": 0}

    class CountingTap:
        discriminator = gan.discriminator

        def __call__(self, images: torch.Tensor) -> torch.Tensor:
            calls["tap"] += 1
            return tap(images)

    def prior_pairs() -> tuple[torch.Tensor, torch.Tensor]:
        calls["pairs"] += 1
        z = torch.randn(8, LATENT, 1, 1)
        with torch.no_grad():
            return tap(gan.generator(z)), z.flatten(1)

    cn = ConnectionNetwork(CNConfig(in_features=64 * 4 * 4, out_features=LATENT, hidden=(32,)))
    split = split_images(x, (1, 8, 8), held_out=8, seed=0, image_range=(-1.0, 1.0))
    with frozen(gan.generator, gan.discriminator):
        train_on_images(cn, FrozenGAN(gan.generator, CountingTap(), (LATENT, 1, 1)),
                        ImageBatches(split, torch.Generator().manual_seed(0)), prior_pairs, Plan(5, 1e-3, 8, 100),
                        Runtime(torch.device("cpu"), progress=False),
                        weights=LossWeights(feature_weight, prior_weight))
    validations = 2  # before the first update and after the last, one chunk of 8 held-out images each
    assert calls["tap"] == validations + 5 * (2 if feature_weight else 1)
    assert calls["pairs"] == (5 if prior_weight else 0)


def test_eight_images_and_a_batch_larger_than_the_training_set(make_gan) -> None:
    gan = make_gan("dcgan")
    record = _fit(gan, _images(gan, 8), real_batch_size=32).config.fit["real_images"]
    assert (record["images"], record["held_out"]) == (7, 1)


def test_unit_range_images_for_a_tanh_generator_warn(make_gan) -> None:
    gan = make_gan("dcgan")
    x = (_images(gan) + 1) / 2  # [0, 1] images for a G whose images span about [-1, 1]
    with pytest.warns(UnitRangeWarning, match=r"look like \[0, 1\] images .* x \* 2 - 1"):
        _fit(gan, x)


@pytest.mark.parametrize("kind", ["tensor", "array", "dataset", "dataloader"])
def test_bool_images_are_read_as_the_two_ends_of_g_s_range(kind: str) -> None:
    """Black-and-white (bool) images mean black and white, i.e. 0 and 255: G's low and high, not 0.0 and 1.0."""
    mask = torch.rand(20, 1, 8, 8, generator=torch.Generator().manual_seed(0)) > 0.5
    sources = {"tensor": lambda: mask, "array": lambda: mask.numpy(), "dataset": lambda: TensorDataset(mask),
               "dataloader": lambda: DataLoader(TensorDataset(mask), batch_size=6)}
    for image_range, (low, high) in (((-0.98, 0.97), (-1.0, 1.0)), ((0.01, 0.99), (0.0, 1.0))):
        split = split_images(sources[kind](), (1, 8, 8), held_out=4, seed=0, image_range=image_range)
        images = split.images.get(torch.arange(20))
        assert images.dtype == torch.float32 and torch.equal(images, torch.where(mask, high, low))
        assert set(split.held_out.unique().tolist()) == {low, high}


def test_real_stage_settings_without_images_warn(make_gan) -> None:
    gan = make_gan("dcgan")
    with pytest.warns(UserWarning, match="prior_weight, real_steps: these settings act only on the real-image stage"):
        fit_inverter(gan.generator, gan.discriminator, gan.feature_layer, latent_shape=gan.latent_shape, steps=2,
                     progress=False, seed=0, real_steps=5, prior_weight=0.2)


def test_the_record_survives_save_and_load(make_gan, tmp_path) -> None:
    gan = make_gan("dcgan")
    inverter = _fit(gan, _images(gan))
    path = inverter.save(tmp_path / "inv.safetensors")
    loaded = Inverter.load(path, generator=gan.generator, discriminator=gan.discriminator)
    assert loaded.config.fit["real_images"] == inverter.config.fit["real_images"]
    x = _images(gan)
    assert torch.equal(loaded.encode(x), inverter.encode(x))
    card = (inverter.save_pretrained(tmp_path / "repo") / "README.md").read_text()
    assert "Then the real-image stage: 12 updates of 16 real images (tensor of 80 images, 16 held out)" in card


def test_a_resumed_fit_runs_the_real_image_stage_again_to_the_same_inverter(make_gan, tmp_path) -> None:
    """Checkpoints cover the self-generated stage; resuming a finished one re-runs the real-image stage."""
    gan = make_gan("dcgan")
    x = _images(gan)
    checkpoint = dict(checkpoint_path=tmp_path / "fit.safetensors", checkpoint_every=10)
    first = _fit(gan, x, **checkpoint)
    resumed = _fit(gan, x, resume=True, **checkpoint)
    assert resumed.config.fit["resumed_from_step"] > 0
    a, b = first.state_dict(), resumed.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.config.fit["real_images"]["best_step"] == first.config.fit["real_images"]["best_step"]


def test_every_kind_of_gan_takes_the_stage_and_comes_back_untouched(tiny_gan: TinyGAN) -> None:
    """The test zoo (MLP, DCGAN, WGAN-GP critic without BatchNorm, spectral norm + dropout, tuple outputs)
    with the stage's default weights; conditional GANs are refused (tested above)."""
    if tiny_gan.conditioning is not None:
        pytest.skip("the real-image stage refuses conditional GANs")
    x = _images(tiny_gan)
    before = snapshot(tiny_gan.generator, tiny_gan.discriminator)
    inverter = _fit(tiny_gan, x)
    assert_untouched(before, tiny_gan.generator, tiny_gan.discriminator)
    record = inverter.config.fit["real_images"]
    assert record["best_held_out_pixel_mse"] <= record["start_held_out_pixel_mse"]
    assert bool(torch.isfinite(inverter.encode(x)).all())


@pytest.mark.parametrize("dtype", [torch.bfloat16, None])
def test_the_later_stages_train_under_the_fit_autocast_dtype_and_validate_in_full_precision(make_gan, dtype) -> None:
    """Every update of the real-image stage and of the step networks runs G under the fit's autocast dtype
    (one G pass with gradients per update); validations, without gradients, run in full precision."""
    gan = make_gan("dcgan")
    x = _images(gan)
    calls: list[tuple[bool, bool, torch.dtype]] = []

    def record(_module, _inputs, _output) -> None:
        calls.append((torch.is_grad_enabled(), torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))

    handle = gan.generator.register_forward_hook(record)
    try:
        inverter = _fit(gan, x, autocast_dtype=dtype, channels_last=False, iterations=1, iteration_steps=6,
                        iteration_batch_size=8, step_hidden=(32,))
    finally:
        handle.remove()
    trained = [(autocast, kind) for grad, autocast, kind in calls if grad]
    assert len(trained) == TINY["real_steps"] + 6  # one G pass with gradients per update of each stage
    if dtype is None:
        assert not any(autocast for _, autocast, _ in calls)
    else:
        assert all(autocast and kind == dtype for autocast, kind in trained)
        assert any(not grad and not autocast for grad, autocast, _ in calls)  # the validations
    assert inverter.config.fit["levers"]["autocast_dtype"] == (None if dtype is None else str(dtype))


def test_the_stage_decays_its_learning_rate_from_real_lr_along_a_cosine(make_gan, monkeypatch) -> None:
    import discinvert.fitting.real_image_stage
    from discinvert.fitting.updates import lr_factor

    rates: list[float] = []
    real_make_adam = discinvert.fitting.real_image_stage.make_adam

    def recording_adam(model: torch.nn.Module, lr: float) -> torch.optim.Optimizer:
        optimizer = real_make_adam(model, lr)
        optimizer.register_step_pre_hook(lambda opt, *_: rates.append(opt.param_groups[0]["lr"]))
        return optimizer

    monkeypatch.setattr(discinvert.fitting.real_image_stage, "make_adam", recording_adam)
    gan = make_gan("dcgan")
    _fit(gan, _images(gan), real_lr=2e-3)
    steps = TINY["real_steps"]
    assert rates == pytest.approx([2e-3 * lr_factor(update, steps, 0) for update in range(steps)])
    assert rates[0] == 2e-3 and rates[-1] < 0.05 * 2e-3 and rates == sorted(rates, reverse=True)
    assert FitConfig().real_lr == 1e-3
