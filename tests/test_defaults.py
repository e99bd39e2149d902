"""fit_inverter's defaults are the ones the committed measurement chose."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from discinvert.fit import DEFAULT_LR, DEFAULT_STEPS

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_follow_the_sweep() -> None:
    spec = importlib.util.spec_from_file_location("fit_defaults", ROOT / "benchmarks" / "fit_defaults.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    results = json.loads((ROOT / "docs" / "results" / "fit_defaults.json").read_text())["results"]
    steps, lr, _ = module.choose(results)
    assert (steps, lr) == (DEFAULT_STEPS, DEFAULT_LR)
    assert f"steps={DEFAULT_STEPS}" in (ROOT / "docs" / "defaults.md").read_text()
