"""Inverters in Z, W and W+ of a StyleGAN2-class G (issue 34 item 2): fit, encode, refine, files, the Hub."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import safetensors
import torch
from huggingface_hub import constants as hf_constants

from benchmarks.stylegan2.architecture import StyleGAN2Config, build_stylegan2
from discinvert import FingerprintMismatchError, GaussianPrior, Inverter, MappedGenerator, fit_inverter, suggest_feature_layers
from discinvert.edit import interpolate_images
from discinvert.inverter_config import LATENT_SPACE_FORMAT_VERSION, InverterConfig
from discinvert.metrics import latent_recovery
from discinvert.optimize import optimize_latents
from tests.conftest import assert_untouched, hook_counts, snapshot
from tests.stylegan2_models import tiny_stylegan2
from tests.test_hub import lay_out_cache

TINY = StyleGAN2Config(z_dim=16, w_dim=16, mapping_layers=2, channels=(16, 16, 8, 8))
QUICK: dict[str, Any] = dict(steps=30, batch_size=32, validation_size=64, seed=3, progress=False)
SPACES = ("z", "w", "w+")


@pytest.fixture(scope="module")
def stylegan() -> dict[str, Any]:
    """A tiny reference StyleGAN2 as a user hands it over (train mode), its feature layer, and an inverter
    fit in each space (G and D snapshotted before any fit)."""
    generator, discriminator = tiny_stylegan2(TINY)
    before = snapshot(generator, discriminator)
    with torch.no_grad():
        was = generator.training
        examples = generator.eval()(torch.randn(8, TINY.z_dim, generator=torch.Generator().manual_seed(1)),
                                    noise_mode="const")
        generator.train(was)
    (layer,) = suggest_feature_layers(discriminator, examples)
    return {"G": generator, "D": discriminator, "layer": layer, "before": before, "inverters": _Fits(generator, discriminator, layer),
            "images": examples.detach()}


class _Fits(dict):  # type: ignore[type-arg]
    """The inverter of each space, fit on first use (so each test pays for at most the fits it reads)."""

    def __init__(self, generator: torch.nn.Module, discriminator: torch.nn.Module, layer: str) -> None:
        super().__init__()
        self.gan = (generator, discriminator, layer)

    def __missing__(self, space: str) -> Inverter:
        generator, discriminator, layer = self.gan
        self[space] = fit_inverter(MappedGenerator.nvidia(generator, space=space), discriminator, layer, **QUICK)
        return self[space]


def _gan_untouched(stylegan: dict[str, Any]) -> None:
    assert_untouched(stylegan["before"], stylegan["G"], stylegan["D"])
    assert not hook_counts(stylegan["G"]) and not hook_counts(stylegan["D"])
    assert stylegan["G"].training and stylegan["D"].training


@pytest.mark.parametrize("space", SPACES)
def test_fit_in_each_space_records_the_space_and_its_prior(stylegan: dict[str, Any], space: str) -> None:
    inverter: Inverter = stylegan["inverters"][space]
    mapped = inverter.generator
    assert isinstance(mapped, MappedGenerator) and mapped.generator is stylegan["G"]
    assert inverter.latent_shape == mapped.latent_shape == {"z": (16,), "w": (16,), "w+": (8, 16)}[space]
    assert inverter.latent_space == mapped.space_record() and inverter.config.latent_prior == "mapped"
    codes = inverter.encode(stylegan["images"])
    assert codes.shape == (8, *mapped.latent_shape) and bool(torch.isfinite(codes).all())
    prior = inverter.prior
    assert prior is not None
    if space == "z":
        assert prior.is_standard
    else:  # estimated once at fit time: the space's own prior
        expected = mapped.prior()
        assert torch.equal(prior.mean, expected.mean) and torch.equal(prior.scale_tril, expected.scale_tril)
    assert inverter.config.probe is not None and inverter.config.probe.generator is not None  # G probed in its space
    assert inverter.check_fingerprints()
    _gan_untouched(stylegan)


def test_a_latent_shape_other_than_the_spaces_is_refused(stylegan: dict[str, Any]) -> None:
    mapped = MappedGenerator.nvidia(stylegan["G"], space="w+")
    with pytest.raises(ValueError, match=r"latent_shape: expected .* space 'w\+', \(8, 16\), or None .* got \(16,\)"):
        fit_inverter(mapped, stylegan["D"], stylegan["layer"], latent_shape=(16,), **QUICK)
    _gan_untouched(stylegan)


def test_refine_in_w_plus_uses_the_spaces_gaussian_penalty(stylegan: dict[str, Any]) -> None:
    inverter: Inverter = stylegan["inverters"]["w+"]
    images = stylegan["images"][:4]
    refined = inverter.refine(images, 4, prior_weight=2.0, lr=0.1)
    start = inverter.encode(images)
    common: dict[str, Any] = dict(steps=4, prior_weight=2.0, lr=0.1, batch_size=64)
    with_gaussian = optimize_latents(inverter.generator, images, start, prior=inverter.prior, **common)
    with_norm = optimize_latents(inverter.generator, images, start, prior=GaussianPrior.standard(16), **common)
    assert torch.equal(refined, with_gaussian)
    assert not torch.equal(refined, with_norm)
    assert not torch.equal(refined, inverter.refine(images, 4, prior_weight=0.0, lr=0.1))
    # without a prior given, optimize_latents takes the MappedGenerator's own
    assert torch.equal(optimize_latents(inverter.generator, images, start, **common), with_gaussian)
    _gan_untouched(stylegan)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_save_and_load_give_the_same_codes_and_prior(stylegan: dict[str, Any], tmp_path: Path,
                                                     dtype: torch.dtype) -> None:
    inverter: Inverter = stylegan["inverters"]["w+"]
    path = inverter.save(tmp_path / "w_plus.safetensors", dtype=dtype)
    with safetensors.safe_open(str(path), framework="pt") as handle:
        meta = handle.metadata()
        assert handle.get_tensor("prior_scale_tril").dtype == torch.float32  # never cast with the weights
    assert meta["format_version"] == str(LATENT_SPACE_FORMAT_VERSION) == "6"
    assert json.loads(meta["config"])["latent_space"] == inverter.latent_space
    loaded = Inverter.load(path, generator=inverter.generator, discriminator=stylegan["D"])
    assert torch.equal(loaded.prior_scale_tril, inverter.prior_scale_tril)
    assert torch.equal(loaded.prior_mean, inverter.prior_mean)
    assert loaded.config == inverter.config
    if dtype == torch.float32:
        assert torch.equal(loaded.encode(stylegan["images"]), inverter.encode(stylegan["images"]))
    # a fresh wrapper of the same G is the same space
    again = Inverter.load(path, generator=MappedGenerator.nvidia(stylegan["G"]), discriminator=stylegan["D"])
    assert again.check_fingerprints()
    _gan_untouched(stylegan)


def test_loading_with_another_space_or_a_plain_g_names_both(stylegan: dict[str, Any], tmp_path: Path) -> None:
    path = stylegan["inverters"]["w+"].save(tmp_path / "w_plus.safetensors")
    with pytest.raises(ValueError, match=r"fit for a MappedGenerator in latent space 'w\+' .*got a plain "
                                         r"StyleGAN2Generator; wrap it .*MappedGenerator.nvidia\(G, space='w\+'\)"):
        Inverter.load(path, generator=stylegan["G"], discriminator=stylegan["D"])
    with pytest.raises(ValueError, match=r"fit for a MappedGenerator with space='w\+', .*; got one with space='w'"):
        Inverter.load(path, generator=MappedGenerator.nvidia(stylegan["G"], space="w"), discriminator=stylegan["D"])
    with pytest.raises(ValueError, match=r"truncation_psi=1.0; got one with .*truncation_psi=0.7"):
        Inverter.load(path, generator=MappedGenerator.nvidia(stylegan["G"], truncation_psi=0.7),
                      discriminator=stylegan["D"])
    # a plain G's inverter (here: the Z inverter's config without its space) refuses a MappedGenerator
    z_inverter: Inverter = stylegan["inverters"]["z"]
    plain = dataclasses.replace(z_inverter.config, latent_space=None, latent_prior="normal")
    with pytest.raises(ValueError, match=r"fit for a plain generator .*got a MappedGenerator in space 'z'; pass the "
                                         "generator itself, unwrapped"):
        Inverter(plain, generator=z_inverter.generator, discriminator=stylegan["D"])
    # and the other way: a W inverter's file read by a Z generator of the same shape is refused too
    w_path = stylegan["inverters"]["w"].save(tmp_path / "w.safetensors")
    with pytest.raises(ValueError, match=r"space='w', .*; got one with space='z'"):
        Inverter.load(w_path, generator=MappedGenerator.nvidia(stylegan["G"], space="z"), discriminator=stylegan["D"])
    _gan_untouched(stylegan)


def test_a_changed_g_is_seen_by_the_fingerprints(stylegan: dict[str, Any], tmp_path: Path) -> None:
    path = stylegan["inverters"]["w"].save(tmp_path / "w.safetensors")
    changed, _ = build_stylegan2(TINY)
    changed.load_state_dict(stylegan["G"].state_dict())
    with torch.no_grad():
        next(changed.mapping.parameters()).mul_(1.5)
    with pytest.raises(FingerprintMismatchError, match="generator's weights differ"):
        Inverter.load(path, generator=MappedGenerator.nvidia(changed, space="w"), discriminator=stylegan["D"])


def test_the_config_of_a_space_is_versioned_strictly(stylegan: dict[str, Any]) -> None:
    data = stylegan["inverters"]["w+"].config.to_dict()
    assert InverterConfig.from_dict(json.loads(json.dumps(data))) == stylegan["inverters"]["w+"].config
    with pytest.raises(ValueError, match=r"format version 5 has no 'latent_space'"):
        InverterConfig.from_dict({**data, "format_version": 5})
    with pytest.raises(ValueError, match=r"format version 6 is written for a generator's latent space, expected a "
                                         r"'latent_space' record, got None"):
        InverterConfig.from_dict({**data, "latent_space": None})
    with pytest.raises(ValueError, match=r"expected latent_shape \[8, 16\] for latent space 'w\+', got \[16\]"):
        InverterConfig.from_dict({**data, "latent_space": {**data["latent_space"]}, "latent_shape": [16],
                                  "cn": {**data["cn"], "out_features": 16}})
    with pytest.raises(ValueError, match=r"missing keys \['mixing'\], unknown keys \['mix'\]"):
        record = {k: v for k, v in data["latent_space"].items() if k != "mixing"} | {"mix": 0.5}
        InverterConfig.from_dict({**data, "latent_space": record})
    with pytest.raises(ValueError, match=r"expected latent_prior 'mapped' or 'custom' with a latent_space, got 'normal'"):
        InverterConfig.from_dict({**data, "latent_prior": "normal"})


def test_hub_round_trip_with_a_mapped_generator(stylegan: dict[str, Any], tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    inverter: Inverter = stylegan["inverters"]["w+"]
    folder = inverter.save_pretrained(tmp_path / "repo", gan="a tiny reference StyleGAN2 in W+", repo_id="org/w-plus")
    cache = tmp_path / "cache"
    lay_out_cache(cache, "org/w-plus", {p.name: p.read_bytes() for p in Path(folder).iterdir()})
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    loaded = Inverter.from_pretrained("org/w-plus", generator=inverter.generator, discriminator=stylegan["D"],
                                      cache_dir=cache)
    assert loaded.config == inverter.config
    assert torch.equal(loaded.encode(stylegan["images"]), inverter.encode(stylegan["images"]))
    with pytest.raises(ValueError, match="got a plain StyleGAN2Generator"):
        Inverter.from_pretrained("org/w-plus", generator=stylegan["G"], discriminator=stylegan["D"], cache_dir=cache)
    _gan_untouched(stylegan)


def test_fresh_draws_and_interpolation_follow_the_space(stylegan: dict[str, Any]) -> None:
    inverter: Inverter = stylegan["inverters"]["w+"]
    mapped = inverter.generator
    recovered = latent_recovery(inverter, n=16, seed=2)
    assert recovered == latent_recovery(inverter, n=16, seed=2, latent_sampler=mapped.sample)
    assert recovered != latent_recovery(inverter, n=16, seed=2, latent_sampler=lambda n, g, d: torch.randn(
        (n, 8, 16), generator=g, device=d))
    a, b = stylegan["images"][0], stylegan["images"][1]
    assert torch.equal(interpolate_images(inverter, a, b, 3), interpolate_images(inverter, a, b, 3, method="linear"))
    z_inverter: Inverter = stylegan["inverters"]["z"]
    assert torch.equal(interpolate_images(z_inverter, a, b, 3), interpolate_images(z_inverter, a, b, 3, method="slerp"))
    _gan_untouched(stylegan)
