"""fit_inverter's defaults are the ones the committed measurement chose."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.speed.fit_defaults import choose
from discinvert.fitting.fit import DEFAULT_LR, DEFAULT_STEPS

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_follow_the_sweep() -> None:
    results = json.loads((ROOT / "docs" / "results" / "fit_defaults.json").read_text())["results"]
    steps, lr, _ = choose(results)
    assert (steps, lr) == (DEFAULT_STEPS, DEFAULT_LR)
    assert f"steps={DEFAULT_STEPS}" in (ROOT / "docs" / "lab" / "defaults.md").read_text()
