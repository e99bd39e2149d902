"""Inverting a generator alone (issue 35 item 1): the pixel feature network, the fit without D, its files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import safetensors
import safetensors.torch
import torch

from discinvert import FingerprintMismatchError, Inverter, fit_inverter
from discinvert.fitting.checkpoint import read_checkpoint
from discinvert.hub import _model_card
from discinvert.inverter_config import FORMAT_VERSION, GENERATOR_ONLY_FORMAT_VERSION, InverterConfig
from discinvert.pixel_encoder import PixelEncoder, PixelEncoderConfig
from tests.conftest import LATENT, assert_untouched, hook_counts, interrupting_sampler, snapshot, untimed_record

QUICK: dict[str, Any] = dict(steps=60, batch_size=32, validation_size=64, cn_hidden=(64, 64), pixel_width=8, seed=5,
                             eval_every=20, progress=False)


D_QUICK = {k: v for k, v in QUICK.items() if k != "pixel_width"} | {"steps": 10}
VERSION_5_KEYS = {"format_version", "library_version", "feature_layer", "latent_shape", "image_shape", "feature_dim",
                  "cn", "generator_fingerprint", "discriminator_fingerprint", "discriminator_modules", "conditional",
                  "latent_prior", "fit", "image_range", "iterations", "step", "probe"}


def _stored(path: Path) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    with safetensors.safe_open(str(path), framework="pt") as handle:
        return handle.metadata(), {name: handle.get_tensor(name) for name in handle.keys()}


def _fit(gan: Any, **settings: Any) -> Inverter:
    return fit_inverter(gan.generator, None, latent_shape=gan.latent_shape, **{**QUICK, **settings})


@pytest.fixture(scope="module")
def fitted() -> dict[str, Any]:
    """One generator-only fit of the tiny DCGAN (G with BatchNorm and an inplace ReLU, 4-D latents, handed over in
    train mode), G snapshotted before it."""
    from tests.conftest import _build

    gan = _build("dcgan")
    before = snapshot(gan.generator)
    return {"gan": gan, "before": before, "inverter": _fit(gan)}


# ----------------------------------------------------------------------------- the pixel network's layout
@pytest.mark.parametrize(("shape", "layout"), [
    ((1, 28, 28), ((32, 14, 14), (64, 7, 7), (128, 4, 4))),
    ((3, 32, 32), ((32, 16, 16), (64, 8, 8), (128, 4, 4))),
    ((3, 64, 64), ((32, 32, 32), (64, 16, 16), (128, 8, 8), (256, 4, 4))),
    ((3, 27, 20), ((32, 14, 10), (64, 7, 5), (128, 4, 3))),  # odd and non-square: each side s -> ceil(s / 2)
    ((1, 8, 8), ((32, 4, 4),)),
    ((1, 4, 4), ((32, 2, 2),)),  # already 4x4: still one block
])
def test_the_layout_follows_from_the_image_shape(shape, layout) -> None:
    config = PixelEncoderConfig(shape)
    assert config.layout == layout
    network = PixelEncoder(config)
    images = torch.randn(3, *shape)
    features = network(images)
    assert features.shape == (3, config.out_features) == (3, layout[-1][0] * layout[-1][1] * layout[-1][2])
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in network.modules())
    # an image's features depend on that image alone
    assert torch.allclose(network(images[:1]), features[:1], atol=1e-6)
    assert torch.equal(network(images.reshape(3, -1)), features)  # flattened images read the same


def test_the_width_doubles_up_to_its_cap() -> None:
    config = PixelEncoderConfig((3, 64, 64), base_width=16, max_width=32)
    assert [block[0] for block in config.layout] == [16, 32, 32, 32]
    assert PixelEncoderConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


@pytest.mark.parametrize(("kwargs", "match"), [
    (dict(image_shape=(16,)), r"three positive ints, got \(16,\)"),
    (dict(image_shape=(1, 0, 8)), "three positive ints"),
    (dict(image_shape=(1, 8, 8), base_width=0), "base_width: expected a positive int, got 0"),
    (dict(image_shape=(1, 8, 8), base_width=64, max_width=32), "max_width: expected at least base_width"),
    (dict(image_shape=(1, 8, 8), max_width=10**6), "max_width: expected at most 4096"),
    (dict(image_shape=(1, 8, 8), negative_slope=1.5), r"negative_slope: expected a float in \[0, 1\)"),
])
def test_a_bad_pixel_network_config_is_refused(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        PixelEncoderConfig(**kwargs)


# ----------------------------------------------------------------------------- the fit
def test_a_fit_without_d_gives_finite_codes_that_beat_the_baseline(fitted) -> None:
    gan, inverter = fitted["gan"], fitted["inverter"]
    assert_untouched(fitted["before"], gan.generator)
    assert inverter.discriminator is None and inverter.feature_source == "pixels"
    config = inverter.config
    assert config.feature_layer is None and config.discriminator_fingerprint is None
    assert config.discriminator_modules == () and config.probe is not None and config.probe.discriminator is None
    assert config.pixel_encoder == PixelEncoderConfig((1, 8, 8), base_width=8, max_width=64)
    assert config.feature_dim == config.cn.in_features == config.pixel_encoder.out_features
    fit = config.fit
    assert fit["cn_standardize"] is False and fit["useless"] is False
    assert fit["best_validation_mse"] < 0.8 * fit["baseline_validation_mse"]
    z, x, _ = gan.sample(16)
    codes = inverter.encode(x)
    assert codes.shape == (16, LATENT, 1, 1) and bool(torch.isfinite(codes).all())
    assert float(((codes - z) ** 2).mean()) < float(((z.mean(0) - z) ** 2).mean())
    assert inverter.reconstruct(x).shape == x.shape
    assert hook_counts(inverter) == {} and hook_counts(gan.generator) == {}
    assert_untouched(fitted["before"], gan.generator)


def test_a_flat_latent_fit_and_the_same_seed_gives_the_same_weights(make_gan) -> None:
    gan = make_gan("wgan_gp")  # flat latents (N, 8)
    before = snapshot(gan.generator)
    first, second = _fit(gan, steps=20), _fit(gan, steps=20)
    a, b = first.state_dict(), second.state_dict()
    assert a.keys() == b.keys() and any(k.startswith("pixels.") for k in a)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert first.encode(gan.sample(4)[1]).shape == (4, LATENT)
    third = _fit(gan, steps=20, seed=6)
    assert not torch.equal(third.state_dict()["pixels.layers.0.weight"], a["pixels.layers.0.weight"])
    assert_untouched(before, gan.generator)


@pytest.mark.parametrize("reuse", [1, 3])
def test_resume_after_ctrl_c_equals_an_uninterrupted_fit(make_gan, tmp_path, reuse) -> None:
    gan = make_gan("dcgan")
    G = gan.generator
    settings = {**QUICK, "steps": 50, "eval_every": 10, "reuse": reuse}
    reference = fit_inverter(G, latent_sampler=interrupting_sampler(), **settings)
    path = tmp_path / "fit.ckpt.safetensors"
    before = snapshot(G)
    with pytest.raises(KeyboardInterrupt):
        fit_inverter(G, latent_sampler=interrupting_sampler(fail_at=40 if reuse == 1 else 22), checkpoint_path=path,
                     checkpoint_every=20, **settings)
    assert_untouched(before, G)
    _, meta = read_checkpoint(path)
    assert meta["step"] in (20, 40)
    resumed = fit_inverter(G, latent_sampler=interrupting_sampler(), checkpoint_path=path, checkpoint_every=20, resume=True,
                           **settings)
    assert resumed.config.fit["resumed_from_step"] == meta["step"]
    a, b = reference.state_dict(), resumed.state_dict()
    assert any(k.startswith("pixels.") for k in a)
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed fit differs from the uninterrupted one"
    assert untimed_record(reference.config.fit) == untimed_record(resumed.config.fit)
    with pytest.raises(ValueError, match="another fit"):  # another pixel network is another fit
        fit_inverter(G, latent_sampler=interrupting_sampler(), checkpoint_path=path, checkpoint_every=20, resume=True,
                     **{**settings, "pixel_width": 4})
    assert_untouched(before, G)


def test_the_real_image_stage_and_the_step_networks_run_without_d(make_gan) -> None:
    gan = make_gan("dcgan")
    before = snapshot(gan.generator)
    _, images, _ = gan.sample(96, seed=11)
    inverter = _fit(gan, steps=30, images=images, real_steps=10, real_batch_size=16, real_held_out=32,
                    iterations=1, iteration_steps=10, iteration_batch_size=16, step_hidden=(32,))
    real = inverter.config.fit["real_images"]
    assert real["feature_weight"] == 0.0 and real["held_out"] == 96 // 5  # at most a fifth
    card = _model_card(inverter.config, gan=None, metrics=None, repo_id=None)
    assert "no feature term (no discriminator)" in card and "D-feature" not in card
    assert real["best_step"] > 0  # the stage improved on the self-generated fit's held-out pixel error
    alone = _fit(gan, steps=30)  # the same self-generated stage: the real-image stage trained the pixel network too
    assert all(a[:3] == b[:3] for a, b in zip(alone.config.fit["history"], inverter.config.fit["history"],
                                              strict=True))  # the same self-generated stage (seconds aside)
    assert not torch.equal(alone.pixels.layers[0].weight, inverter.pixels.layers[0].weight)
    assert inverter.iterations == 1 and inverter.config.step.feature_dim == inverter.config.feature_dim
    _, x, _ = gan.sample(8)
    first, refined = inverter.encode(x, iterations=0), inverter.encode(x)
    assert bool(torch.isfinite(refined).all()) and not torch.equal(first, refined)
    assert_untouched(before, gan.generator)


# ----------------------------------------------------------------------------- files, loading, refine
def test_save_and_load_without_d_give_identical_codes(fitted, tmp_path) -> None:
    gan, inverter = fitted["gan"], fitted["inverter"]
    path = inverter.save(tmp_path / "g.safetensors")
    with safetensors.safe_open(str(path), framework="pt") as handle:
        meta = handle.metadata()
        names = set(handle.keys())
    assert meta["format_version"] == str(GENERATOR_ONLY_FORMAT_VERSION) == "7"
    stored = json.loads(meta["config"])
    assert stored["feature_source"] == "pixels" and stored["discriminator_fingerprint"] is None
    assert stored["pixel_encoder"]["base_width"] == 8 and {n for n in names if n.startswith("pixels.")}
    loaded = Inverter.load(path, generator=gan.generator)
    assert loaded.config == inverter.config
    _, x, _ = gan.sample(8)
    assert torch.equal(loaded.encode(x), inverter.encode(x))
    assert loaded.check_fingerprints()
    directory = inverter.save_pretrained(tmp_path / "hub")
    again = Inverter.from_pretrained(directory, generator=gan.generator)
    assert torch.equal(again.encode(x), inverter.encode(x))
    assert "generator only" in (Path(directory) / "README.md").read_text()
    assert_untouched(fitted["before"], gan.generator)


def test_the_routes_do_not_mix(fitted, make_gan, tmp_path) -> None:
    gan, inverter = fitted["gan"], fitted["inverter"]
    path = inverter.save(tmp_path / "g.safetensors")
    with pytest.raises(ValueError, match=r"fit for the generator alone.*expected no discriminator, got Sequential"):
        Inverter.load(path, generator=gan.generator, discriminator=gan.discriminator)
    directory = inverter.save_pretrained(tmp_path / "hub")
    with pytest.raises(ValueError, match="expected no discriminator"):
        Inverter.from_pretrained(directory, generator=gan.generator, discriminator=gan.discriminator)
    d_route = fit_inverter(gan.generator, gan.discriminator, "4", latent_shape=gan.latent_shape, **D_QUICK)
    d_path = d_route.save(tmp_path / "d.safetensors")
    with pytest.raises(ValueError, match=r"reads the discriminator's features at '4'.*got None"):
        Inverter.load(d_path, generator=gan.generator)
    with pytest.raises(ValueError, match=r"feature_layer: expected the layer of D.*got None"):
        fit_inverter(gan.generator, gan.discriminator, latent_shape=gan.latent_shape, **D_QUICK)
    with pytest.raises(ValueError, match=r"discriminator: feature_layer '4' names a layer.*none came"):
        fit_inverter(gan.generator, None, "4", latent_shape=gan.latent_shape, **QUICK)


def test_a_d_route_file_is_unchanged_by_the_generator_only_format(fitted, tmp_path) -> None:
    gan = fitted["gan"]
    d_route = fit_inverter(gan.generator, gan.discriminator, "4", latent_shape=gan.latent_shape, **D_QUICK)
    assert d_route.feature_source == "discriminator" and d_route.config.pixel_encoder is None
    data = d_route.config.to_dict()
    assert data["format_version"] == FORMAT_VERSION == 5 and set(data) == VERSION_5_KEYS
    first = d_route.save(tmp_path / "a.safetensors")
    meta, tensors = _stored(first)
    assert meta["format_version"] == "5" and set(json.loads(meta["config"])) == VERSION_5_KEYS
    assert not any(name.startswith("pixels.") for name in tensors)
    loaded = Inverter.load(first, generator=gan.generator, discriminator=gan.discriminator)
    meta_again, tensors_again = _stored(loaded.save(tmp_path / "c.safetensors"))  # a load and save keeps it as it was
    assert meta_again == meta and tensors.keys() == tensors_again.keys()
    assert all(torch.equal(tensors[k], tensors_again[k]) for k in tensors)
    assert InverterConfig.from_dict(json.loads(json.dumps(data))).feature_source == "discriminator"


def test_refine_without_d_uses_the_pixel_and_prior_terms(fitted) -> None:
    gan, inverter = fitted["gan"], fitted["inverter"]
    _, x, _ = gan.sample(6)
    start = inverter.encode(x)
    refined = inverter.refine(x, 5, prior_weight=0.0)  # the pixel term alone: the best codes seen never lose to the start
    assert refined.shape == start.shape and bool(torch.isfinite(refined).all()) and not torch.equal(refined, start)
    assert float(((inverter.decode(refined) - x) ** 2).mean()) < float(((inverter.decode(start) - x) ** 2).mean())
    assert bool(torch.isfinite(inverter.refine(x, 5, prior_weight=0.01)).all())
    with pytest.raises(ValueError, match=r"feature_weight: expected 0 for an inverter fit for the generator alone"):
        inverter.refine(x, 5, feature_weight=0.5)
    for bad in ("a", None, -1.0):  # checked as on D's route, before the route's own check
        with pytest.raises(ValueError, match=r"feature_weight"):
            inverter.refine(x, 5, feature_weight=bad)
    assert hook_counts(inverter) == {}
    assert_untouched(fitted["before"], gan.generator)


def test_another_generator_is_a_fingerprint_mismatch(fitted, make_gan, tmp_path) -> None:
    inverter = fitted["inverter"]
    path = inverter.save(tmp_path / "g.safetensors")
    other = make_gan("dcgan").generator
    with torch.no_grad():
        other.main[0].weight.mul_(1.5)
    with pytest.raises(FingerprintMismatchError, match="generator's weights differ"):
        Inverter.load(path, generator=other)


def _reloaded_with_a_copy_of_g(fitted: dict[str, Any], tmp_path: Path) -> tuple[torch.nn.Module, Inverter]:
    """The fixture's inverter loaded again with a deep copy of its G (to move without touching the fixture's)."""
    import copy

    generator = copy.deepcopy(fitted["gan"].generator)
    return generator, Inverter.load(fitted["inverter"].save(tmp_path / "g.safetensors"), generator=generator)


def test_loading_with_a_generator_that_does_not_fit_is_a_clear_error(fitted, tmp_path) -> None:
    path = fitted["inverter"].save(tmp_path / "g.safetensors")
    other_latent = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 64), torch.nn.Unflatten(1, (1, 8, 8)))
    with pytest.raises(ValueError, match=r"latent_shape: the generator rejected latents of shape"):
        Inverter.load(path, generator=other_latent)  # G takes 16-dim latents, the file's are (LATENT, 1, 1)
    square = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(LATENT, 4 * 16 * 16), torch.nn.Tanh(),
                                 torch.nn.Unflatten(1, (4, 16, 16)))
    with pytest.raises(ValueError, match=r"fit for a generator of images of shape \(1, 8, 8\).*pixel network.*"
                                         r"gives images of shape \(4, 16, 16\)"):
        Inverter.load(path, generator=square)
    tupled = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(LATENT, 64), torch.nn.Unflatten(1, (1, 8, 8)))
    tupled.register_forward_hook(lambda module, args, out: (out,))  # G returns a tuple
    with pytest.raises(ValueError, match=r"generator: expected a batch of images with 2 first.*got tuple"):
        Inverter.load(path, generator=tupled)


def test_images_of_another_shape_are_refused_by_forward(fitted) -> None:
    gan, inverter = fitted["gan"], fitted["inverter"]
    _, x, _ = gan.sample(4)
    assert inverter(x).shape == (4, *gan.latent_shape)
    assert torch.equal(inverter(x.flatten(1)), inverter(x))  # flattened images are the same images
    for bad in (x.permute(0, 2, 3, 1), x.repeat(1, 2, 1, 1), x[:, :, :4]):  # channels last, 2 channels, cut
        with pytest.raises(ValueError, match=r"the pixel network expected a batch of shape \(N, 1, 8, 8\).*got"):
            inverter(bad)
    with pytest.raises(ValueError, match=r"images: expected .*shape"):
        inverter.encode(x.repeat(1, 2, 1, 1))
    for bad, got in ((x.numpy(), "ndarray"), ((x * 127).to(torch.uint8), "a tensor of dtype torch.uint8")):
        with pytest.raises(ValueError, match=rf"images: expected a floating-point torch.Tensor.*got {got}"):
            inverter(bad)
    with pytest.raises(ValueError, match=r"conditions: expected a torch.Tensor or None, got list"):
        inverter(x, [0, 1, 2, 3])


def test_the_pixel_network_follows_the_generator_to_its_device(fitted, tmp_path) -> None:
    """Moving G moves the inverter's own networks at the next call, the pixel network with the CN (no GPU here:
    the meta device stands in; ``test_cuda_path_without_d`` runs it on CUDA)."""
    generator, inverter = _reloaded_with_a_copy_of_g(fitted, tmp_path)
    generator.to("meta")
    assert inverter._run_device().type == "meta"
    assert {next(module.parameters()).device.type for module in (inverter.cn, inverter.pixels)} == {"meta"}


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_path_without_d(fitted, tmp_path) -> None:
    generator, inverter = _reloaded_with_a_copy_of_g(fitted, tmp_path)
    _, x, _ = fitted["gan"].sample(8)
    on_cpu = inverter.encode(x)
    generator.cuda()  # fit on the CPU, used on CUDA: the pixel network follows G
    codes = inverter.encode(x.cuda())
    assert codes.device.type == "cuda" and next(inverter.pixels.parameters()).device.type == "cuda"
    torch.testing.assert_close(codes.cpu(), on_cpu, rtol=1e-4, atol=1e-4)
    assert inverter.refine(x.cuda(), 2).device.type == "cuda"


def test_pixel_width_with_d_warns_however_it_is_given(make_gan) -> None:
    from discinvert.fitting.fit_config import FitConfig

    gan = make_gan("dcgan")
    for how in (dict(pixel_width=16), dict(config=FitConfig(pixel_width=16))):  # a keyword, or in a config
        with pytest.warns(UserWarning, match=r"pixel_width: this setting acts only without a discriminator"):
            fit_inverter(gan.generator, gan.discriminator, "4", latent_shape=gan.latent_shape, **D_QUICK, **how)


@pytest.mark.parametrize(("settings", "match"), [
    (dict(feature_weight=0.5), r"feature_weight: expected 0 without a discriminator.*got 0.5"),
    (dict(cn_standardize=True), "cn_standardize: expected False without a discriminator, got True"),
    (dict(allow_batch_dependent_features=True),
     "allow_batch_dependent_features: expected False without a discriminator, got True"),
])
def test_settings_that_need_d_are_refused_without_it(make_gan, settings, match) -> None:
    gan = make_gan("dcgan")
    before = snapshot(gan.generator)
    with pytest.raises(ValueError, match=match):
        _fit(gan, **settings)
    assert_untouched(before, gan.generator)


def test_a_conditional_gan_and_a_flat_g_are_refused_without_d(make_gan) -> None:
    conditional = make_gan("conditional")
    with pytest.raises(ValueError, match="conditioning: expected None without a discriminator"):
        fit_inverter(conditional.generator, latent_shape=conditional.latent_shape,
                     conditioning=conditional.conditioning, **QUICK)
    flat = make_gan("mlp")  # G gives flat vectors (N, 16): no pixel layout to convolve
    before = snapshot(flat.generator)
    with pytest.raises(ValueError, match=r"image_shape: the pixel feature network reads images.*got \(16,\)"):
        fit_inverter(flat.generator, latent_shape=flat.latent_shape, **QUICK)
    assert_untouched(before, flat.generator)


def test_a_mapped_generator_without_d_keeps_its_space_and_prior(tmp_path) -> None:
    import warnings

    from benchmarks.stylegan2.architecture import StyleGAN2Config
    from discinvert import MappedGenerator, UselessInverterWarning
    from tests.stylegan2_models import tiny_stylegan2

    generator, _ = tiny_stylegan2(StyleGAN2Config(z_dim=16, w_dim=16, mapping_layers=2, channels=(16, 16, 8, 8)))
    before = snapshot(generator)
    mapped = MappedGenerator.nvidia(generator, space="w+")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UselessInverterWarning)  # 20 updates: too few to be useful, enough to run
        inverter = fit_inverter(mapped, **{**QUICK, "steps": 20, "validation_size": 32, "batch_size": 16})
    config = inverter.config
    assert config.latent_space["space"] == "w+" and config.latent_prior == "mapped"
    assert config.pixel_encoder.image_shape == (1, 32, 32) and config.to_dict()["format_version"] == 7
    x = mapped(mapped.sample(4, torch.Generator().manual_seed(0), torch.device("cpu")))
    loaded = Inverter.load(inverter.save(tmp_path / "w.safetensors"), generator=mapped)
    assert torch.equal(loaded.encode(x), inverter.encode(x)) and loaded.encode(x).shape == (4, *mapped.latent_shape)
    assert torch.equal(loaded.prior.mean, inverter.prior.mean)
    assert_untouched(before, generator)


def test_torchrun_two_processes_fit_one_generator_only_inverter(tmp_path, make_gan) -> None:
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "out"
    out.mkdir()
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               str(root / "tests" / "ddp_generator_only_run.py"), str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "rank 0: world size 2" in result.stdout and "rank 1: world size 2" in result.stdout
    ranks = [safetensors.torch.load_file(str(out / f"inverter.rank{r}.safetensors")) for r in (0, 1)]
    assert any(k.startswith("pixels.") for k in ranks[0]) and any(k.startswith("steps.0.") for k in ranks[0])
    assert all(torch.equal(ranks[0][k], ranks[1][k]) for k in ranks[0]), "the ranks' inverters differ"
    loaded = Inverter.load(out / "inverter.safetensors", generator=make_gan("dcgan").generator)
    assert loaded.config.fit["real_images"]["feature_weight"] == 0.0 and loaded.iterations == 1


@pytest.mark.parametrize(("edit", "match"), [
    (lambda c: c.update(feature_source="discriminator"), "format version 7 is written for a generator-only inverter"),
    (lambda c: c.update(feature_source="eyes"), "format version 7 is written for a generator-only inverter"),
    (lambda c: c.update(discriminator_fingerprint="sha256:" + "0" * 64), "expected 'feature_layer' and "
     "'discriminator_fingerprint' null"),
    (lambda c: c.update(feature_layer="4"), "has no discriminator"),
    (lambda c: c.update(pixel_encoder=None), "expected the 'pixel_encoder' config"),
    (lambda c: c["pixel_encoder"].update(base_width=16), "gives 256 features, but the config says .*feature_dim=128"),
    (lambda c: c["pixel_encoder"].update(max_width=10**9), "max_width: expected at most 4096"),
    (lambda c: c["pixel_encoder"].update(depth=3), "pixel encoder config: expected keys"),
    (lambda c: (c.update(format_version=5), c.pop("latent_space")),
     r"format version 5 has no \['feature_source', 'pixel_encoder'\]"),
])
def test_a_tampered_generator_only_config_is_refused(fitted, edit, match) -> None:
    data = json.loads(json.dumps(fitted["inverter"].config.to_dict()))
    assert InverterConfig.from_dict(json.loads(json.dumps(data))) == fitted["inverter"].config
    edit(data)
    with pytest.raises(ValueError, match=match):
        InverterConfig.from_dict(data, source="g.safetensors")


def test_a_generator_only_file_without_its_pixel_network_is_refused(fitted, tmp_path) -> None:
    from discinvert.serialization import write_inverter_file

    inverter = fitted["inverter"]
    state = {k: v for k, v in inverter.state_dict().items() if not k.startswith("pixels.layers.0")}
    path = write_inverter_file(tmp_path / "g.safetensors", state, inverter.config)
    with pytest.raises(ValueError, match=r"pixel network, connection network.*missing tensors \['pixels.layers.0.bias'"):
        Inverter.load(path, generator=fitted["gan"].generator)
