"""fit_inverter under a real torchrun with 2 CPU processes (Gloo)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import safetensors.torch
import torch

ROOT = Path(__file__).resolve().parents[1]


def test_torchrun_two_processes_identical_inverters_one_file(tmp_path) -> None:
    out = tmp_path / "out"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        str(ROOT / "examples" / "distributed_fit.py"), "--steps", "6", "--batch-size", "8",
        "--validation-size", "32", "--out", str(out / "inverter.safetensors"), "--codes", str(tmp_path / "codes"),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "rank 0: world size 2" in result.stdout and "rank 1: world size 2" in result.stdout
    codes0 = safetensors.torch.load_file(str(tmp_path / "codes" / "rank0.safetensors"))["codes"]
    codes1 = safetensors.torch.load_file(str(tmp_path / "codes" / "rank1.safetensors"))["codes"]
    assert torch.equal(codes0, codes1)
    assert sorted(p.name for p in out.iterdir()) == ["inverter.safetensors"]  # written once, by rank 0
