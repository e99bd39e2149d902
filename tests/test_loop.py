"""The one training loop every stage runs (discinvert.fitting.loop) and the seed of each random stream."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from discinvert.fitting.loop import Labels, Plan, Runtime, train_loop
from discinvert.fitting.updates import Updater, make_adam
from discinvert.fitting.run import RANK_STRIDE, STREAMS, Seeds


def _regression(errors: list[float] | None = None):
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    x, y = torch.randn(32, 3), torch.randn(32, 1)
    given = iter(errors or [])

    def update(step: int) -> torch.Tensor:
        return nn.functional.mse_loss(model(x[step % 4 * 8 : step % 4 * 8 + 8]), y[step % 4 * 8 : step % 4 * 8 + 8])

    def validate() -> float:
        assert not model.training and not torch.is_grad_enabled()
        error = float(nn.functional.mse_loss(model(x), y))
        return next(given, error) if errors is not None else error

    return model, update, validate, Updater(model, make_adam(model, 1e-2))


def test_the_loop_validates_every_eval_every_updates_and_after_the_last_and_keeps_the_best() -> None:
    model, update, validate, updater = _regression()
    done = train_loop(model, update, validate, updater, Plan(7, 1e-2, 8, 3), Runtime(torch.device("cpu"), progress=False),
                      Labels("test", lambda last: f"diverged ({last})"), validate_first=True)
    assert [row[0] for row in done.history] == [0, 3, 6, 7] and done.history[0][1] is None
    assert done.start_error == pytest.approx(done.history[0][2], abs=1e-6)
    best_row = min(done.history, key=lambda row: row[2])
    assert (round(done.best[0], 6), done.best[1]) == (best_row[2], best_row[0])
    assert not model.training and done.stopped is None and done.resumed_from == 0
    assert all(torch.equal(model.state_dict()[k], v) for k, v in done.best[2].items())


def test_after_validation_stops_the_loop_and_a_never_finite_error_is_the_stages_message() -> None:
    model, update, validate, updater = _regression()
    done = train_loop(model, update, validate, updater, Plan(20, 1e-2, 8, 2), Runtime(torch.device("cpu"), progress=False),
                      Labels("test", lambda last: "x"), after_validation=lambda point: point.step == 4)
    assert done.stopped == 4 and [row[0] for row in done.history] == [2, 4]

    model, update, validate, updater = _regression([math.nan, math.inf, math.nan])
    with pytest.raises(ValueError, match=r"^diverged \(nan\)$"):
        train_loop(model, update, validate, updater, Plan(4, 1e-2, 8, 2), Runtime(torch.device("cpu"), progress=False),
                   Labels("test", lambda last: f"diverged ({last})"), validate_first=True)


def test_every_random_stream_keeps_its_seed() -> None:
    """The seeds fit_inverter drew before the streams had names (seed + offset, + 1_000_003 * rank per rank)."""
    assert RANK_STRIDE == 1_000_003
    expected = {"global": 7, "cn_batches": 7, "validation": 8, "real_batches": 9, "real_prior_pairs": 10,
                "image_split": 11, "step_batches": 12, "step_latents": 13, "perceptual": 14}
    assert {name: Seeds(7).of(name) for name in STREAMS} == expected
    per_rank = {"cn_batches", "real_batches", "real_prior_pairs", "step_batches", "step_latents"}
    assert {name: Seeds(7, rank=2).of(name) - expected[name] for name in STREAMS} == {
        name: 2 * RANK_STRIDE if name in per_rank else 0 for name in STREAMS}
    assert torch.equal(Seeds(7).generator("image_split").get_state(), torch.Generator().manual_seed(11).get_state())
