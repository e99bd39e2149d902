"""The convergence rule (``patience``), the plateau schedule and the ``on_validation`` callback."""

from __future__ import annotations

import logging

import pytest
import torch

from discinvert import fit_inverter
from discinvert.fitting.checkpoint import read_checkpoint
from discinvert.fitting.self_generated_stage import COSINE_SPAN, COSINE_STOP_FACTOR, PLATEAU_DROP, PLATEAU_DROPS, Schedule, ValidationPoint
from tests.conftest import assert_untouched, snapshot
from tests.conftest import interrupting_sampler
from tests.test_checkpoint import interrupted_fit

SETTINGS = dict(batch_size=32, cn_hidden=(64, 64), progress=False, validation_size=64, seed=3, eval_every=5)


def test_the_rule_on_a_known_sequence_of_best_errors() -> None:
    improving = [1.0, 0.9, 0.8, 0.7, 0.6]
    flat = [0.6, 0.59999, 0.59998, 0.59997]  # less than 0.1% better per validation
    cosine = Schedule("cosine", steps=1000, warmup=10, patience=3, eval_every=100)
    assert not any(cosine.after_validation(100 * (i + 1), e) for i, e in enumerate(improving))
    decisions = [cosine.after_validation(600 + 100 * i, e) for i, e in enumerate(flat)]
    assert decisions == [False, False, True, True]  # 3 validations since 0.6 without 0.1%: stop

    plateau = Schedule("plateau", steps=1000, warmup=10, patience=2, eval_every=100)
    assert plateau(5) == pytest.approx(0.6) and plateau(50) == 1.0  # warm-up, then the peak rate held
    stops = [plateau.after_validation(10 * (i + 1), 0.5) for i in range(7)]
    # plateau after 2 validations: drop; 2 more: drop; 2 more: stop
    assert stops == [False, False, False, False, False, False, True]
    assert plateau.drops == [30, 50] and len(plateau.drops) == PLATEAU_DROPS
    assert plateau(60) == pytest.approx(PLATEAU_DROP**2)

    never = Schedule("cosine", steps=1000, warmup=10, patience=None, eval_every=100)
    assert not any(never.after_validation(i, 0.5) for i in range(50))
    assert never(999) == pytest.approx(0.01, rel=1e-3)  # cosine ends at 1% of the peak


def test_under_cosine_a_plateau_at_the_peak_rate_does_not_stop_the_fit() -> None:
    """A stall that began at the peak rate stops the fit only if it lasts `patience` validations after the rate has
    decayed to half its peak (the 4-epoch WGAN-GP of docs/lab/fit_speed.md recovered there)."""
    cosine = Schedule("cosine", steps=1000, warmup=10, patience=2, eval_every=100)
    early = [cosine.after_validation(100 * (i + 1), 0.95) for i in range(4)]  # updates 100-400: rate > half the peak
    assert cosine(400) > COSINE_STOP_FACTOR and early == [False, False, False, False]
    # the stall goes on once the rate has decayed: it must last `patience` validations there to stop the fit
    assert cosine(600) <= COSINE_STOP_FACTOR and not cosine.after_validation(600, 0.95)
    assert cosine.after_validation(700, 0.95)
    recovering = Schedule("cosine", steps=1000, warmup=10, patience=2, eval_every=100)
    for i in range(4):
        recovering.after_validation(100 * (i + 1), 0.95)
    assert [recovering.after_validation(600, 0.95), recovering.after_validation(700, 0.88)] == [False, False]
    plateau = Schedule("plateau", steps=1000, warmup=10, patience=2, eval_every=100)  # the plateau schedule drops the rate as before
    assert [plateau.after_validation(100 * (i + 1), 0.95) for i in range(3)] == [False, False, False]
    assert plateau.drops == [300]



def test_under_cosine_a_plateau_spans_a_fraction_of_a_long_fit() -> None:
    """On a 20,000-update cosine fit, 5 validations (500 updates) with less than 0.1% gain are not a plateau: the
    window spans COSINE_SPAN of the steps (the zoo's rebuild stopped at update 11,500 of 20,000 with the fixed window,
    0.03 above the validation MSE the same fit reaches at its end; docs/lab/fit_speed.md)."""
    long = Schedule("cosine", steps=20000, warmup=100, patience=5, eval_every=100)
    assert long.window == 10 == round(COSINE_SPAN * 20000 / 100)
    slow = [0.7300 * (1 - 0.0003) ** i for i in range(40)]  # 0.03% per validation: 0.15% over 5, 0.3% over 10
    assert not any(long.after_validation(11000 + 100 * i, e) for i, e in enumerate(slow))
    flat = [slow[-1] * 0.99] * 11  # a 1% gain, then nothing
    decisions = [long.after_validation(15000 + 100 * i, e) for i, e in enumerate(flat)]
    assert decisions == [False] * 10 + [True]  # 10 validations without 0.1% stop it
    # short fits (up to patience * eval_every / COSINE_SPAN updates) keep `patience` validations as the window
    assert Schedule("cosine", steps=2000, warmup=100, patience=5, eval_every=100).window == 5
    # the plateau schedule's steps are only a ceiling: its window stays `patience` validations
    assert Schedule("plateau", steps=20000, warmup=100, patience=5, eval_every=100).window == 5
    assert Schedule("cosine", steps=20000, warmup=100, patience=None, eval_every=100).window is None

def test_a_plateaued_fit_stops_before_its_ceiling_and_says_so(make_gan, caplog) -> None:
    gan = make_gan("dcgan")
    before = snapshot(gan.generator, gan.discriminator)
    with caplog.at_level(logging.INFO, logger="discinvert"):
        inverter = fit_inverter(gan.generator, gan.discriminator, gan.feature_layer, latent_shape=gan.latent_shape,
                                steps=3000, patience=2, **SETTINGS)
    assert_untouched(before, gan.generator, gan.discriminator)
    fit = inverter.config.fit
    assert fit["patience"] == 2 and fit["schedule"] == "cosine"
    assert fit["stopped"] is not None and fit["stopped"] < 3000
    assert fit["history"][-1][0] == fit["stopped"]
    assert fit["best_step"] <= fit["stopped"]
    assert f"stopped at update {fit['stopped']} of 3000" in caplog.text
    # the weights returned are the best validation step's
    best = min(row[2] for row in fit["history"])
    assert fit["best_validation_mse"] == pytest.approx(best, abs=1e-6)  # the history rounds to 6 decimals


@pytest.mark.parametrize("patience", [None, 0])
def test_without_patience_the_fit_runs_to_steps(make_gan, patience) -> None:
    gan = make_gan("dcgan")
    inverter = fit_inverter(gan.generator, gan.discriminator, gan.feature_layer, latent_shape=gan.latent_shape,
                            steps=40, patience=patience, **{**SETTINGS, "eval_every": 2})
    assert inverter.config.fit["stopped"] is None and inverter.config.fit["patience"] is None
    assert inverter.config.fit["history"][-1][0] == 40


def test_the_plateau_schedule_drops_the_rate_then_stops(make_gan) -> None:
    gan = make_gan("dcgan")
    inverter = fit_inverter(gan.generator, gan.discriminator, gan.feature_layer, latent_shape=gan.latent_shape,
                            steps=3000, schedule="plateau", patience=1, **SETTINGS)
    fit = inverter.config.fit
    assert len(fit["lr_drops"]) == PLATEAU_DROPS
    assert fit["stopped"] is not None and fit["stopped"] > fit["lr_drops"][-1]
    assert fit["lr_drops"] == sorted(fit["lr_drops"])


def test_resume_keeps_the_drops_and_the_stop(make_gan, tmp_path) -> None:
    gan = make_gan("spectral_dropout")
    G, D = gan.generator, gan.discriminator
    kwargs = dict(steps=3000, schedule="plateau", patience=1, **SETTINGS)
    reference = fit_inverter(G, D, gan.feature_layer, latent_sampler=interrupting_sampler(), **kwargs)
    fit = reference.config.fit
    assert fit["lr_drops"] and fit["stopped"]
    # interrupt after the first drop, with a checkpoint written between the drop and the interruption
    first_drop = fit["lr_drops"][0]
    every = 5
    fail_at = first_drop + 2 * every + 3  # sampler calls: a few before training, then one per update
    assert fail_at < fit["stopped"], "the reference fit stopped too soon after its first drop to interrupt there"
    path = tmp_path / "fit.ckpt.safetensors"
    with pytest.raises(KeyboardInterrupt):
        fit_inverter(G, D, gan.feature_layer, latent_sampler=interrupting_sampler(fail_at=fail_at), checkpoint_path=path,
                     checkpoint_every=every, **kwargs)
    _, meta = read_checkpoint(path)
    assert first_drop <= meta["step"] < fit["stopped"]
    resumed = fit_inverter(G, D, gan.feature_layer, latent_sampler=interrupting_sampler(), checkpoint_path=path,
                           checkpoint_every=every, resume=True, **kwargs)
    assert resumed.config.fit["resumed_from_step"] == meta["step"]
    assert resumed.config.fit["lr_drops"] == fit["lr_drops"]
    assert resumed.config.fit["stopped"] == fit["stopped"]
    a, b = reference.state_dict(), resumed.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed fit differs from the uninterrupted one"


def test_on_validation_sees_every_validation_and_its_time_is_not_counted(make_gan) -> None:
    gan = make_gan("dcgan")
    points: list[ValidationPoint] = []

    def slow(point: ValidationPoint) -> None:
        assert not point.network.training
        points.append(point)
        import time

        time.sleep(0.2)

    import time

    started = time.perf_counter()
    inverter = fit_inverter(gan.generator, gan.discriminator, gan.feature_layer, latent_shape=gan.latent_shape,
                            steps=20, patience=None, on_validation=slow, **SETTINGS)
    wall = time.perf_counter() - started
    history = inverter.config.fit["history"]
    assert [p.step for p in points] == [row[0] for row in history] == [5, 10, 15, 20]
    # the history keeps 6 decimals
    assert [p.error for p in points] == pytest.approx([row[2] for row in history], abs=1e-6)
    assert points[-1].best_error == pytest.approx(min(row[2] for row in history), abs=1e-6)
    # the 0.8 s slept are not the fit's (compared with this call's wall time, so a busy machine cannot fail it)
    assert inverter.config.fit["seconds"] <= wall - 0.2 * len(points)


@pytest.mark.parametrize(("settings", "message"), [
    ({"patience": -1}, "patience: expected"),
    ({"patience": 2.5}, "patience: expected"),
    ({"schedule": "linear"}, "schedule: expected 'cosine' or 'plateau', got 'linear'"),
    ({"on_validation": "print"}, "on_validation: expected a callable"),
])
def test_bad_rule_settings_are_refused(make_gan, settings, message) -> None:
    gan = make_gan("dcgan")
    before = snapshot(gan.generator, gan.discriminator)
    with pytest.raises(ValueError, match=message):
        fit_inverter(gan.generator, gan.discriminator, gan.feature_layer, latent_shape=gan.latent_shape, steps=5,
                     **{**SETTINGS, **settings})
    assert_untouched(before, gan.generator, gan.discriminator)


def test_a_fit_that_stopped_resumes_to_the_same_stop(make_gan, tmp_path) -> None:
    """No checkpoint is written at the stop, so resume=True replays the fit and stops at the same update."""
    gan = make_gan("dcgan")
    path = tmp_path / "fit.ckpt.safetensors"
    kwargs = dict(steps=3000, patience=1, latent_shape=gan.latent_shape, checkpoint_path=path, checkpoint_every=5,
                  **SETTINGS)
    first = fit_inverter(gan.generator, gan.discriminator, gan.feature_layer, **kwargs)
    stopped = first.config.fit["stopped"]
    assert stopped is not None and stopped % 5 == 0  # every validation is a checkpoint step here
    _, meta = read_checkpoint(path)
    assert meta["step"] < stopped
    again = fit_inverter(gan.generator, gan.discriminator, gan.feature_layer, resume=True, **kwargs)
    assert again.config.fit["stopped"] == stopped and again.config.fit["resumed_from_step"] == meta["step"]
    a, b = first.state_dict(), again.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_checkpoint_from_before_the_rule_resumes_with_the_settings_of_that_version(make_gan, tmp_path) -> None:
    gan = make_gan("spectral_dropout")
    G, D = gan.generator, gan.discriminator
    old = dict(steps=60, patience=None, autocast_dtype=None, channels_last=False, cn_standardize=False,
               **{**SETTINGS, "eval_every": 10})
    path = tmp_path / "fit.ckpt.safetensors"
    reference, meta, rewrite = interrupted_fit(gan, path, old)
    for key in ("schedule", "patience", "levers", "cn_standardize"):  # what an identity written before issue 18 lacks
        del meta["identity"][key]
    rewrite(meta)
    new_defaults = {**old, "patience": 5, "autocast_dtype": "auto", "channels_last": "auto", "cn_standardize": True}
    with pytest.raises(ValueError, match=r"differs in autocast_dtype, channels_last, cn_standardize, levers, patience"):
        fit_inverter(G, D, gan.feature_layer, latent_sampler=interrupting_sampler(), checkpoint_path=path, checkpoint_every=20,
                     resume=True, **new_defaults)
    resumed = fit_inverter(G, D, gan.feature_layer, latent_sampler=interrupting_sampler(), checkpoint_path=path,
                           checkpoint_every=20, resume=True, **old)
    assert resumed.config.fit["resumed_from_step"] == meta["step"]
    a, b = reference.state_dict(), resumed.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
