"""FitConfig is the one source of truth for the fit's settings: signature, docs, checks, record, identity, flags."""

from __future__ import annotations

import dataclasses
import inspect
import re

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


def _help_text(argv: list[str], capsys) -> str:
    from discinvert.cli import main

    with pytest.raises(SystemExit):
        main(argv)
    return " ".join(capsys.readouterr().out.split())  # one line: argparse wraps the help to the terminal


def test_every_default_the_fit_help_shows_is_the_field_s(capsys) -> None:
    from discinvert.fitting.fit_config import command_line_help, shown_default

    text = _help_text(["fit", "--help"], capsys)
    fields = {item.name: item for item in dataclasses.fields(FitConfig)}
    shown = 0
    for name, option in command_line_settings():
        assert not re.search(r"\(default:? [0-9]", option.help), option.help  # no number written by hand
        rendered = " ".join(command_line_help(name).replace("%%", "%").split())  # as argparse prints it
        assert rendered.replace(" ", "") in text.replace(" ", ""), rendered  # argparse also wraps after hyphens
        if "{default}" in option.help:
            default = option.default if option.default is not None else fields[name].default
            assert shown_default(default, option) in rendered
            shown += 1
    assert shown >= 15  # steps, batch sizes, seed, validation size, reuse, autocast, the stages' settings
    assert "(default 256)" in text and "(default 1e-3)" in text and "(default 3e-4)" in text  # as written before


def test_changing_a_default_changes_the_help(monkeypatch, capsys) -> None:
    from discinvert.fitting.fit_config import command_line_help

    fields = {item.name: item for item in dataclasses.fields(FitConfig)}
    for name, value, words in (("batch_size", 128, "(default 128)"), ("real_lr", 5e-4, "(default 5e-4)"),
                               ("feature_weight", 0.25, "(default 0.25)"), ("autocast_dtype", None, "(default: off)")):
        monkeypatch.setattr(fields[name], "default", value)
        assert words in command_line_help(name)
        assert words in _help_text(["fit", "--help"], capsys).replace("- ", "-")


def test_the_settings_docs_name_the_defaults_they_mark() -> None:
    """A doc that marks one value ``(default)`` marks the field's default, and quotes no other Adam betas."""
    from discinvert.fitting.fit_config import ADAM_BETAS

    for item in dataclasses.fields(FitConfig):
        doc = item.metadata["setting"].doc
        for value in re.findall(r"``([^`]+)`` \(default\)", doc):
            assert value == repr(item.default), (item.name, value)
        for betas in re.findall(r"betas ([0-9.]+, [0-9.]+)", doc):
            assert betas == f"{ADAM_BETAS[0]:g}, {ADAM_BETAS[1]:g}", item.name


def test_one_seed_limit_for_the_library_and_every_seed_flag(capsys) -> None:
    from discinvert.cli.commands import HANDLERS
    from discinvert.cli.options import build_parser
    from discinvert.fitting.fit_config import MAX_SEED, MAX_SEED_TEXT

    assert MAX_SEED_TEXT == "2**62" and eval(MAX_SEED_TEXT) == MAX_SEED  # noqa: S307 (a constant)
    parser = build_parser(HANDLERS)
    for command in (["fit", "--gan", "g", "--out", "o"], ["demo"], ["evaluate", "--images", "x"]):
        assert parser.parse_args([*command, "--seed", str(MAX_SEED - 1)]).seed == MAX_SEED - 1
        with pytest.raises(SystemExit):
            parser.parse_args([*command, "--seed", str(MAX_SEED)])
        assert f"expected an integer in [0, {MAX_SEED_TEXT})" in capsys.readouterr().err
    FitConfig(seed=MAX_SEED - 1)
    with pytest.raises(ValueError, match=r"seed: expected an int in \[0, 2\*\*62\)"):
        FitConfig(seed=MAX_SEED)


def test_the_network_widths_are_defined_once() -> None:
    from discinvert.network import DEFAULT_CN_HIDDEN, CNConfig
    from discinvert.step_networks import DEFAULT_STEP_HIDDEN, StepConfig

    assert FitConfig().cn_hidden == DEFAULT_CN_HIDDEN == CNConfig(in_features=1, out_features=1).hidden == (1024, 1024)
    assert FitConfig().step_hidden == DEFAULT_STEP_HIDDEN == (512,)
    assert StepConfig(feature_dim=1, latent_dim=1, residual_shape=(1,)).hidden == DEFAULT_STEP_HIDDEN


def test_the_inference_batch_size_is_defined_once(capsys) -> None:
    """encode/decode/refine's batch size (not the fit's pairs per update, a setting of its own) is gan's one constant."""
    import discinvert.inverter
    from discinvert.gan import DEFAULT_BATCH_SIZE
    from discinvert.optimize import optimize_latents

    assert discinvert.inverter.DEFAULT_BATCH_SIZE is DEFAULT_BATCH_SIZE
    assert inspect.signature(optimize_latents).parameters["batch_size"].default == DEFAULT_BATCH_SIZE
    for command in ("encode", "reconstruct", "evaluate"):
        assert f"images per forward pass (default {DEFAULT_BATCH_SIZE})" in _help_text([command, "--help"], capsys)


def test_evaluate_s_flags_default_to_reconstruction_score_s_draws() -> None:
    """``discinvert evaluate``'s --repeats and --seed defaults, and the --n its help names, are metrics.Draws'
    (the command line cannot import metrics when it builds its parser, so this test ties the two)."""
    import argparse

    from discinvert.cli.options import build_parser
    from discinvert.metrics import Draws

    from collections import defaultdict

    parser = build_parser(defaultdict(lambda: print))
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    defaults = {action.dest: action for action in commands.choices["evaluate"]._actions}
    assert (defaults["repeats"].default, defaults["seed"].default) == (Draws().repeats, Draws().seed)
    assert defaults["n"].default is None and f"default: {Draws().n}," in defaults["n"].help
