"""The short examples run as written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str, cwd: Path) -> str:
    result = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=600, cwd=cwd)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_quickstart(tmp_path) -> None:
    out = _run(str(ROOT / "examples" / "quickstart.py"), "--steps", "20", "--out", str(tmp_path / "q"), cwd=tmp_path)
    assert "identical codes" in out and (tmp_path / "q" / "inverter.safetensors").is_file()


def test_conditional_gan(tmp_path) -> None:
    out = _run(str(ROOT / "examples" / "conditional_gan.py"), "--steps", "20", cwd=tmp_path)
    assert "latent MSE" in out


def test_bring_your_own_gan(tmp_path) -> None:
    assert len((ROOT / "examples" / "byo_gan.py").read_text().strip().splitlines()) <= 20
    out = _run(str(ROOT / "examples" / "byo_gan.py"), cwd=tmp_path)
    assert "latent MSE" in out


def test_rank_gans_on_the_bundled_entry(tmp_path) -> None:
    out = _run(str(ROOT / "examples" / "rank_gans.py"), "--gans", "zoo:dcgan-fashion-mnist", "--n", "50",
               "--repeats", "2", "--data-root", str(tmp_path / "no-data"), cwd=tmp_path)
    assert "zoo:dcgan-fashion-mnist" in out and "bundled test images" in out


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist").is_dir(), reason="needs Debian's dataset-fashion-mnist")
def test_editing_on_the_bundled_gan(tmp_path) -> None:
    out = _run(str(ROOT / "examples" / "editing.py"), "--out", str(tmp_path / "e"), "--per-class", "100", cwd=tmp_path)
    assert "wrote" in out and list((tmp_path / "e").glob("*.png"))
