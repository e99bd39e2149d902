"""The README's usage example runs as written, and CI runs the README's test command."""

from __future__ import annotations

import re
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_usage_example_runs_as_written(tmp_path, monkeypatch) -> None:
    (code,) = _blocks("python")
    assert len(code.strip().splitlines()) <= 12
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["z"].shape == (16, 100, 1, 1)
    assert namespace["x_hat"].shape == (16, 1, 28, 28)
    assert (tmp_path / "inv.safetensors").is_file()
    assert torch.equal(namespace["inv2"].encode(namespace["images"]), namespace["z"])


def test_quickstart_has_two_setup_commands_and_ci_runs_the_test_one() -> None:
    commands = [block.strip() for block in _blocks("bash")]
    assert len(commands) == 2
    ci = (ROOT / ".ci" / "run").read_text()
    assert commands[1] in ci
