"""fit_inverter under a real torchrun with 2 CPU processes (Gloo)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import safetensors.torch
import torch

from discinvert import fit_inverter
from discinvert.fitting.checkpoint import read_checkpoint
from tests.conftest import LATENT

QUICK = dict(steps=20, batch_size=16, cn_hidden=(32,), progress=False, validation_size=32, seed=1)

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


def test_torchrun_ranks_stop_together_at_a_plateau(tmp_path) -> None:
    out = tmp_path / "out"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        str(ROOT / "examples" / "distributed_fit.py"), "--steps", "400", "--batch-size", "8", "--validation-size", "32",
        "--eval-every", "2", "--patience", "1", "--schedule", "plateau", "--out", str(out / "inverter.safetensors"),
        "--codes", str(tmp_path / "codes"),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    stops = re.findall(r"rank \d: .*stopped (\d+)", result.stdout)
    assert len(stops) == 2 and stops[0] == stops[1] and int(stops[0]) < 400, result.stdout
    codes0 = safetensors.torch.load_file(str(tmp_path / "codes" / "rank0.safetensors"))["codes"]
    codes1 = safetensors.torch.load_file(str(tmp_path / "codes" / "rank1.safetensors"))["codes"]
    assert torch.equal(codes0, codes1)


def test_torchrun_real_image_stage_and_step_networks_give_every_rank_the_same_inverter(tmp_path) -> None:
    import numpy as np

    from discinvert import zoo
    from discinvert.zoo.datasets import to_model_range

    images = to_model_range(zoo.load_test_images("dcgan-fashion-mnist")[0][:64]).numpy()
    np.save(tmp_path / "images.npy", images)
    out = tmp_path / "out"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        str(ROOT / "examples" / "distributed_fit.py"), "--steps", "4", "--batch-size", "8", "--validation-size", "32",
        "--images", str(tmp_path / "images.npy"), "--real-steps", "6", "--iterations", "1", "--iteration-steps", "4",
        "--out", str(out / "inverter.safetensors"),
        "--codes", str(tmp_path / "codes"),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    codes0 = safetensors.torch.load_file(str(tmp_path / "codes" / "rank0.safetensors"))["codes"]
    codes1 = safetensors.torch.load_file(str(tmp_path / "codes" / "rank1.safetensors"))["codes"]
    assert torch.equal(codes0, codes1)
    G, D, _ = zoo.load("dcgan-fashion-mnist")
    from discinvert import Inverter

    loaded = Inverter.load(out / "inverter.safetensors", generator=G, discriminator=D)
    record = loaded.config.fit["real_images"]
    assert record["real_steps"] == 6 and record["images"] == 52 and record["held_out"] == 12
    assert loaded.iterations == 1 and loaded.config.fit["iterative"]["trained_on"] == "self-generated pairs and images"
    assert [len(step["history"]) for step in loaded.config.fit["iterative"]["steps"]] == [2]  # update 0 and 4


@pytest.mark.parametrize(("mode", "message"), [
    ("share", "expected the same images on every rank"),
    ("range", "expected values in the generator's range"),
    ("bad-item", "data set items of shape (1, 8, 8)"),
])
def test_torchrun_ranks_with_different_images_all_stop_none_hangs(tmp_path, mode, message) -> None:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               str(ROOT / "tests" / "ddp_real_images_run.py"), mode]
    result = subprocess.run(command, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    import re

    reports = re.findall(r"rank (\d): (ValueError|no error)", result.stdout)  # the ranks' lines may interleave
    assert sorted(reports) == [("0", "ValueError"), ("1", "ValueError")], result.stdout
    assert message in result.stdout, result.stdout


def _torchrun(tmp_path: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               str(ROOT / "tests" / "ddp_checkpoint_run.py"), str(out), *extra]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)


@pytest.mark.parametrize("reuse", [1, 3])
def test_torchrun_fit_resumed_after_interruption_equals_an_uninterrupted_one(tmp_path, reuse) -> None:
    reference, run = tmp_path / "reference", tmp_path / "run"
    reference.mkdir()
    run.mkdir()
    result = _torchrun(tmp_path, reference, "--no-checkpoint", "--reuse", str(reuse))
    assert result.returncode == 0, result.stderr[-3000:]

    # Both ranks are interrupted part-way (60 steps, checkpoints every 20). With reuse 3 each
    # rank's pool (its own generated batches) must come back too.
    result = _torchrun(tmp_path, run, "--stop-at", "48" if reuse == 1 else "25", "--reuse", str(reuse))
    assert result.returncode != 0 and "rank 0: interrupted" in result.stdout and "rank 1: interrupted" in result.stdout
    _, meta = read_checkpoint(run / "fit.safetensors")
    step = meta["step"]
    assert step == 40 if reuse == 1 else step in (20, 40)
    # Rank 1 keeps its own state for the step rank 0's file names (and the one before).
    expected = [f"fit.rank1.step{s}.safetensors" for s in (step - 20, step) if s > 0] + ["fit.safetensors"]
    assert sorted(p.name for p in run.iterdir()) == sorted(expected)

    result = _torchrun(tmp_path, run, "--resume", "--reuse", str(reuse))
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"rank 0: resumed from {step}" in result.stdout and f"rank 1: resumed from {step}" in result.stdout
    expected = safetensors.torch.load_file(str(reference / "cn.rank0.safetensors"))
    for rank in (0, 1):
        got = safetensors.torch.load_file(str(run / f"cn.rank{rank}.safetensors"))
        assert all(torch.equal(expected[k], got[k]) for k in expected), f"rank {rank} differs from the uninterrupted fit"


def test_a_torchrun_checkpoint_is_refused_by_another_number_of_processes(tmp_path, make_gan) -> None:
    run = tmp_path / "run"
    run.mkdir()
    result = _torchrun(tmp_path, run, "--stop-at", "25")
    assert result.returncode != 0
    gan = make_gan("spectral_dropout")
    with pytest.raises(ValueError, match="belongs to another fit .*world_size"):
        fit_inverter(gan.generator, gan.discriminator, gan.feature_layer, latent_shape=(LATENT, 1, 1),
                     checkpoint_path=run / "fit.safetensors", resume=True, steps=60, batch_size=16, cn_hidden=(64, 64),
                     progress=False, validation_size=64, seed=3, eval_every=10, checkpoint_every=20)


def test_ddp_false_fits_alone_even_under_torchrun_variables(make_gan, monkeypatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    gan = make_gan("dcgan")
    inverter = fit_inverter(gan.generator, gan.discriminator, "4", latent_shape=(LATENT, 1, 1), ddp=False, **QUICK)
    assert inverter.config.fit["world_size"] == 1
