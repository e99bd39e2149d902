"""benchmarks/paper/table1_run.sh end to end on fake data: train, eval (one process per model), merge."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

from benchmarks.paper import table1
from tests.test_rivals import REPO_ROOT, _fake_split

SCRIPT = REPO_ROOT / "benchmarks" / "paper" / "table1_run.sh"


def _run(stage: list[str], env: dict[str, str]) -> str:
    proc = subprocess.run(["bash", str(SCRIPT), *stage], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout
    return proc.stdout


def test_train_eval_merge_one_gan_and_one_rival(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    _fake_split(data, "train", 160, seed=0)
    _fake_split(data, "t10k", 40, seed=1)
    readme = tmp_path / "README.md"
    readme.write_text("<!-- table1:start -->\nold\n<!-- table1:end -->\n")
    results_page = tmp_path / "results.md"
    shipped = (REPO_ROOT / "docs" / "results.md").read_bytes()  # the repository's page must not be touched
    results_page.write_text("<!-- table1:start -->\nold\n<!-- table1:end -->\n")
    env = dict(os.environ)
    env.update({
        "PYTHON": sys.executable, "DEVICE": "cpu", "DATA": str(data), "RUNS": str(tmp_path / "runs"),
        "PACK": str(tmp_path / "pack"), "EPOCHS": "dcgan:3 vae:1", "MAX_SECONDS": "0", "TRAIN_EXTRA": "--limit 128",
        "EVAL_EXTRA": "--fit-steps 2 --k 2 --curve 1 2 --n 16 --repeats 2 --nn-train 64",
        "DOC": str(tmp_path / "benchmarks.md"), "JSON": str(tmp_path / "table1.json"), "README": str(readme),
        "RESULTS": str(results_page),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])),
        "OMP_NUM_THREADS": "1",
    })
    env.pop("OUT", None)
    _run(["train"], env)
    runs, pack = tmp_path / "runs", tmp_path / "pack"
    gan_config = json.loads((runs / "dcgan" / "config.json").read_text())
    assert gan_config["extra"]["epochs"] == 1 and gan_config["extra"]["stopped_early"]  # MAX_SECONDS=0
    assert {p.name for p in pack.iterdir()} == {"table1-train-dcgan_vae.tgz"}

    _run(["eval"], env)
    for model in ("dcgan", "vae"):
        run = json.loads((pack / f"table1-{model}.json").read_text())
        assert list(run["results"]) == [model] and run["meta"]["runs"][0]["concurrent"] == 2
    assert json.loads((pack / "table1-dcgan.json").read_text())["meta"]["pixel_nn_accuracy"] is not None
    assert "old" in readme.read_text()  # the per-model runs leave the README alone
    # What a device sends back: at most 8 files, no weights.
    assert {p.name for p in pack.iterdir()} == {"table1-train-dcgan_vae.tgz", "table1-eval-dcgan_vae.tgz",
                                                "table1-dcgan.json", "table1-vae.json"}
    with tarfile.open(pack / "table1-eval-dcgan_vae.tgz") as archive:
        names = {Path(n).name for n in archive.getnames()}
    assert {"eval-dcgan.log", "eval-vae.log", "table1-dcgan.md", "train-vae.log", "config.json", "samples.png"} <= names
    assert not any(n.endswith(".safetensors") for n in names)

    _run(["merge"], env)
    merged = json.loads((tmp_path / "table1.json").read_text())
    assert list(merged["results"]) == ["dcgan", "vae"]
    text = (tmp_path / "benchmarks.md").read_text()
    assert "| DCGAN | CN (ours) |" in text and "| VAE | own encoder |" in text
    assert "1 epoch(s) of 3 requested (stopped by --max-seconds)" in text
    assert "old" not in readme.read_text() and "| DCGAN |" in readme.read_text()
    assert "old" not in results_page.read_text() and "| DCGAN |" in results_page.read_text()
    assert (REPO_ROOT / "docs" / "results.md").read_bytes() == shipped

    bad = subprocess.run(["bash", str(SCRIPT), "eval", "stylegan"], env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown model 'stylegan'" in bad.stderr


def test_all_stage_trains_then_scores(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    _fake_split(data, "train", 160, seed=0)
    _fake_split(data, "t10k", 40, seed=1)
    env = dict(os.environ)
    env.update({
        "PYTHON": sys.executable, "DEVICE": "cpu", "DATA": str(data), "RUNS": str(tmp_path / "runs"),
        "PACK": str(tmp_path / "pack"), "EPOCHS": "vae:1", "TRAIN_EXTRA": "--limit 128 --width 8",
        "EVAL_EXTRA": "--fit-steps 2 --n 16 --repeats 2 --nn-train 0",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])),
        "OMP_NUM_THREADS": "1",
    })
    _run(["all", "vae"], env)
    pack = tmp_path / "pack"
    assert {p.name for p in pack.iterdir()} == {"table1-train-vae.tgz", "table1-eval-vae.tgz", "table1-vae.json"}
    run = json.loads((pack / "table1-vae.json").read_text())
    assert run["results"]["vae"]["methods"]["own encoder"]["nn_accuracy"] is None  # --nn-train 0: 1-NN off
    assert run["meta"]["nn_train"] == 0


def test_table1_refuses_bad_arguments_before_loading_anything(capsys) -> None:
    import pytest

    for argv, message in ((["--nn-train", "-1", "--gans", "missing"], "--nn-train: expected >= 0"),
                          (["--concurrent", "0", "--gans", "missing"], "--concurrent: expected >= 1"),
                          (["--device", "cpu"], "expected at least one GAN or rival directory")):
        with pytest.raises(SystemExit) as exit_info:
            table1.main(argv)
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
