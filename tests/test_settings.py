"""FitConfig is the one source of truth for the fit's settings: signature, docs, checks, record, identity, flags."""

from __future__ import annotations

import dataclasses
import inspect

import pytest
import torch

from discinvert import fit_inverter
from discinvert.fitting.fit_config import FitConfig, command_line_settings


def test_every_setting_is_a_keyword_of_fit_inverter_with_its_default_and_doc() -> None:
    parameters = inspect.signature(fit_inverter).parameters
    defaults = FitConfig()
    for item in dataclasses.fields(FitConfig):
        assert parameters[item.name].kind is inspect.Parameter.KEYWORD_ONLY
        assert parameters[item.name].default == getattr(defaults, item.name)
        first_words = " ".join(item.metadata["setting"].doc.split()[:4])
        assert f"{item.name}: {first_words}" in " ".join(fit_inverter.__doc__.split()), item.name
    assert "{settings}" not in fit_inverter.__doc__


def test_unknown_setting_names_close_matches(make_gan) -> None:
    gan = make_gan("dcgan")
    with pytest.raises(ValueError, match=r"'step': expected a fit setting, one of steps, .* Did you mean 'steps'"):
        fit_inverter(gan.generator, gan.discriminator, gan.feature_layer, latent_shape=gan.latent_shape, step=10)
    with pytest.raises(ValueError, match=r"config: expected a FitConfig, got dict"):
        fit_inverter(gan.generator, gan.discriminator, gan.feature_layer, latent_shape=gan.latent_shape, config={})


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"steps": 0}, r"steps: expected an int >= 1, got 0"),
        ({"batch_size": 1}, r"batch_size: expected an int >= 2, got 1"),
        ({"lr": -1.0}, r"lr: expected a positive finite float"),
        ({"seed": 2**62}, r"seed: expected an int in \[0, 2\*\*62\)"),
        ({"progress": "yes"}, r"progress: expected None, True or False"),
        ({"channels_last": 1}, r"channels_last: expected 'auto', True or False"),
        ({"autocast_dtype": torch.float64}, r"autocast_dtype: expected 'auto', None \(full precision\)"),
        ({"resume": True}, r"resume: expected a checkpoint_path"),
        ({"cn_hidden": 16}, r"cn_hidden: expected a sequence"),
        ({"device": 3}, r"device: expected a torch device"),
    ],
)
def test_settings_are_checked_where_they_are_defined(settings, message) -> None:
    with pytest.raises(ValueError, match=message):
        FitConfig(**settings)


def test_a_config_object_and_keyword_overrides(make_gan) -> None:
    gan = make_gan("dcgan")
    config = FitConfig(steps=5, batch_size=16, cn_hidden=(16,), validation_size=16, progress=False, seed=2)
    a = fit_inverter(gan.generator, gan.discriminator, gan.feature_layer, latent_shape=gan.latent_shape, config=config)
    b = fit_inverter(gan.generator, gan.discriminator, gan.feature_layer, latent_shape=gan.latent_shape,
                     config=dataclasses.replace(config, seed=9), seed=2)
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    assert {k: a.config.fit[k] for k in config.record()} == config.record()


def test_record_and_identity_are_the_settings_flagged_for_them() -> None:
    config = FitConfig(seed=1, autocast_dtype=torch.bfloat16)
    assert set(config.record()) == {"steps", "batch_size", "lr", "schedule", "patience", "seed", "validation_size",
                                     "reuse", "autocast_dtype", "channels_last", "cn_standardize"}
    assert set(config.identity()) == set(config.record()) | {"eval_every"}
    assert config.record()["autocast_dtype"] == "torch.bfloat16"  # JSON-able


def test_the_command_line_fit_flags_come_from_the_settings(capsys) -> None:
    from discinvert.cli import main

    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    text = capsys.readouterr().out
    flags = [option.flag for _, option in command_line_settings()]
    assert flags and all(flag in text for flag in flags)
    from discinvert.cli.commands import HANDLERS
    from discinvert.cli.options import build_parser, fit_settings

    args = build_parser(HANDLERS).parse_args(["fit", "--gan", "g", "--out", "o.safetensors", "--steps", "7",
                                              "--autocast", "bf16", "--channels-last", "--no-progress",
                                              "--schedule", "plateau", "--patience", "3", "--no-cn-standardize"])
    assert fit_settings(args) == {"steps": 7, "seed": 0, "progress": False, "autocast_dtype": torch.bfloat16,
                                  "channels_last": True, "schedule": "plateau", "patience": 3,
                                  "cn_standardize": False}
    FitConfig.build(**fit_settings(args))  # what the command line gives is a valid config
