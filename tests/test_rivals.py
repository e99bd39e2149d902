"""Fast CPU tests of benchmarks/paper/rivals (VAE, BiGAN/ALI, GAAN/Dist-GAN, AAAE): no Debian data needed."""

from __future__ import annotations

import gzip
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks.paper import table1
from benchmarks.paper.rivals import models
from discinvert import fit_inverter
from discinvert.zoo.architectures import (
    DCGANDiscriminator,
    DCGANGenerator,
    GANConfig,
    parameter_count,
)

REPO_ROOT = Path(__file__).resolve().parents[1]


def small(name: str, seed: int = 0) -> models.Rival:
    """A narrow rival (width 8) so that CPU steps take milliseconds."""
    torch.manual_seed(seed)
    return models.build_model(models.RivalConfig(model=name, g_width=8, d_width=8, e_width=8))


def images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.mark.parametrize("name", models.MODELS)
def test_build_and_shapes(name: str) -> None:
    model = small(name)
    x = images(6)
    z = model.encode(x)
    assert z.shape == (6, 100) and z.dtype == torch.float32 and torch.isfinite(z).all()
    out = model.decode(torch.randn(5, 100))
    assert out.shape == (5, 1, 28, 28) and out.abs().max() <= 1
    assert model.sample_latents(4).shape == (4, 100)
    assert model.reconstruct(x).shape == x.shape
    assert model.training  # encode/decode leave the mode as it was
    z_batched = model.encode(x, batch_size=4)
    torch.testing.assert_close(z_batched, model.encode(x))  # eval mode: batching does not matter
    counts = model.parameter_counts()
    assert counts["total"] == parameter_count(model) and {"encoder", "generator"} <= set(counts)


def test_full_size_backbones_match_the_reference_dcgan() -> None:
    reference_g = parameter_count(DCGANGenerator(GANConfig()))
    reference_d = parameter_count(DCGANDiscriminator(GANConfig()))
    for name in models.MODELS:
        model = models.build_model(name)
        counts = model.parameter_counts()
        assert counts["generator"] == reference_g
        assert counts["encoder"] <= 3 * reference_d  # D-trunk + one linear to the latent
        if "discriminator" in counts:
            assert reference_d / 2 <= counts["discriminator"] <= 2 * reference_d, (name, counts)
    vae = models.build_model("vae")
    assert vae.encoder.head.out_features == 200


@pytest.mark.parametrize("name", models.MODELS)
def test_one_training_step_changes_every_trained_module(name: str) -> None:
    model = small(name)
    optimizers = model.make_optimizers()
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    losses = model.train_step(images(16), optimizers)
    assert losses and all(torch.isfinite(v).all() for v in losses.values()), losses
    changed = {k.split(".")[0] for k, v in model.named_parameters() if not torch.equal(v, before[k])}
    assert changed == {k for k, _ in model.named_children()}, changed
    for optimizer in optimizers.values():  # every optimiser moved some of its parameters
        params = {id(p) for group in optimizer.param_groups for p in group["params"]}
        assert any(not torch.equal(v, before[k]) for k, v in model.named_parameters() if id(v) in params)


def test_running_stats_frozen_keeps_batchnorm_buffers() -> None:
    model = small("aaae")
    bn = model.generator.main[1]
    before = bn.running_mean.clone()
    with models.running_stats_frozen(model.generator):
        model.generator(torch.randn(8, 100) * 5)
    assert torch.equal(bn.running_mean, before) and bn.momentum == 0.1
    model.generator(torch.randn(8, 100))
    assert not torch.equal(bn.running_mean, before)


def test_vae_loss_terms() -> None:
    model = small("vae")
    out = model.losses(images(8))
    assert torch.allclose(out["sigma"] ** 2, out["mse"])
    expected = 0.5 * 784 * (torch.log(2 * torch.pi * out["mse"]) + 1)
    torch.testing.assert_close(out["rec_nll"], expected)
    assert out["kl"] >= 0


def test_latent_data_distance_is_scale_free() -> None:
    g = torch.Generator().manual_seed(0)
    z_enc, z = torch.randn(8, 100, generator=g), torch.randn(8, 100, generator=g)
    x_rec, x_gen = torch.randn(8, 1, 28, 28, generator=g), torch.randn(8, 1, 28, 28, generator=g)
    value = models.latent_data_distance(z_enc, z, x_rec, x_gen)
    torch.testing.assert_close(models.latent_data_distance(3 * z_enc, 3 * z, x_rec / 5, x_gen / 5), value)
    assert models.latent_data_distance(z_enc, z, z_enc.repeat(1, 8)[:, :784].reshape(8, 1, 28, 28),
                                       z.repeat(1, 8)[:, :784].reshape(8, 1, 28, 28)) < value


def test_bigan_wrapper_features_ignore_z() -> None:
    model = small("bigan").eval()
    wrapper = model.image_discriminator()
    x = images(4)
    captured = []
    handle = model.discriminator.x_trunk[7].register_forward_hook(lambda m, i, o: captured.append(o.clone()))
    with torch.no_grad():
        wrapper(x)
        model.discriminator(x, torch.randn(4, 100))
    handle.remove()
    torch.testing.assert_close(captured[0], captured[1])
    assert dict(wrapper.named_modules())[models.BiGANImageDiscriminator.feature_layer] is model.discriminator.x_trunk[7]


@pytest.mark.parametrize("name", ["bigan", "gaan", "aaae"])
def test_fit_inverter_hooks_each_rival(name: str) -> None:
    model = small(name).eval()
    target = model.inverter_target()
    inverter = fit_inverter(target.generator, target.discriminator, target.feature_layer,
                            latent_shape=target.latent_shape, latent_sampler=target.latent_sampler, steps=3,
                            batch_size=8, validation_size=8, eval_every=1, seed=0, progress=False, cn_hidden=(32,))
    x = images(5)
    codes = inverter.encode(x)
    assert codes.shape == (5, 100) and torch.isfinite(codes).all()
    assert inverter.decode(codes).shape == x.shape
    assert small("vae").inverter_target() is None


def test_bigan_conditioning_option() -> None:
    model = small("bigan").eval()
    inverter = fit_inverter(model.generator, model.discriminator, models.JointDiscriminator.feature_layer,
                            latent_shape=(100,), conditioning=models.bigan_conditioning(), steps=2, batch_size=8,
                            validation_size=8, eval_every=1, seed=0, progress=False, cn_hidden=(32,))
    codes = inverter.encode(images(3), conditions=torch.zeros(3, 100))
    assert codes.shape == (3, 100)


@pytest.mark.parametrize("half", [False, True])
def test_save_load_round_trip(tmp_path: Path, half: bool) -> None:
    model = small("aaae")
    model.train_step(images(8), model.make_optimizers())  # non-trivial BatchNorm buffers
    models.save(tmp_path, model, training={"epochs": 1}, half=half)
    loaded = models.load(tmp_path)
    assert type(loaded) is type(model) and not loaded.training
    assert loaded.record["training"] == {"epochs": 1} and loaded.record["parameters"]["total"] == parameter_count(model)
    x = images(4)
    tol = {"atol": 5e-3, "rtol": 5e-3} if half else {"atol": 0, "rtol": 0}
    torch.testing.assert_close(loaded.encode(x), model.encode(x), **tol)
    (tmp_path / models.CONFIG_FILE).write_text(json.dumps({"format": "other"}))
    with pytest.raises(ValueError, match="format"):
        models.load(tmp_path)


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(gzip.compress(header + array.tobytes()))


def _fake_split(root: Path, prefix: str, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    _write_idx(root / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
    _write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, (n,), dtype=np.uint8))


def test_train_script_end_to_end_then_evaluate(tmp_path: Path) -> None:
    """rivals.train for every model on 128 fake train images (train split only), then table1 on them."""
    root = tmp_path / "data"
    root.mkdir()
    _fake_split(root, "train", 160, seed=0)  # only the train files: train.py must never read the test split
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH", "")]))
    env.pop("DISCINVERT_FASHION_MNIST", None)
    env["OMP_NUM_THREADS"] = "1"
    procs = {}
    for name in models.MODELS:
        out = tmp_path / name
        cmd = [sys.executable, "-m", "benchmarks.paper.rivals.train", "--model", name, "--epochs", "1", "--limit", "128",
               "--batch-size", "64", "--device", "cpu", "--seed", "0", "--width", "8", "--out", str(out),
               "--data-root", str(root)]
        procs[name] = (subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True), out)
    for name, (proc, out) in procs.items():
        output, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, output
        assert output.count("command: ") == 2, output
        assert {"model.safetensors", "config.json", "samples.png", "reconstructions.png"} <= {p.name for p in out.iterdir()}
        for png in ("samples.png", "reconstructions.png"):
            assert (out / png).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
        model = models.load(out)
        assert model.name == name and model.config.g_width == 8
        record = model.record["training"]
        assert record["epochs"] == 1 and record["device"] == "cpu" and record["n_train"] == 128
        assert "--limit 128" in record["command"] and record["torch_version"] == torch.__version__
        assert len(record["losses_per_epoch"]) == 1 and record["losses_per_epoch"][0]["steps"] == 2
        assert all(v is not None for v in record["losses_per_epoch"][0].values())
        assert model.encode(images(3)).shape == (3, 100)
        assert not (out / "model.safetensors").read_bytes().startswith(b"\x80")  # not a pickle

    _fake_split(root, "t10k", 40, seed=1)
    check_table1_with_rivals(tmp_path, root)


def check_table1_with_rivals(tmp_path: Path, root: Path) -> None:
    """table1 scores the reference GAN and the rivals in one run and one table, and merges split runs."""
    gan = REPO_ROOT / "discinvert" / "zoo" / "dcgan-fashion-mnist" / "gan"
    rivals = [str(tmp_path / n) for n in models.MODELS]
    common = ["--device", "cpu", "--fit-steps", "2", "--k", "2", "--curve", "1", "2", "--n", "16", "--repeats", "2",
              "--nn-train", "64", "--data-root", str(root)]
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- table1:start -->\nold\n<!-- table1:end -->\noutro\n")
    out_md, out_json = tmp_path / "t1.md", tmp_path / "t1.json"
    table1.main(["--gans", str(gan), "--rivals", *rivals, *common, "--pixel-nn", "--json", str(out_json),
                 "--out", str(out_md), "--readme", str(readme)])
    data = json.loads(out_json.read_text())
    results = data["results"]
    assert list(results) == ["dcgan", *models.MODELS]
    assert set(results["dcgan"]["methods"]) == {"CN (ours)", "naive encoder", "optimisation only (2)",
                                                "iGAN (naive + 2)", "hybrid (CN + 2)"}
    assert set(results["vae"]["methods"]) == {"own encoder"}
    for name in ("bigan", "gaan", "aaae"):
        assert set(results[name]["methods"]) == {"own encoder", "CN (ours) on its G"}
        assert results[name]["methods"]["CN (ours) on its G"]["fit_steps"] == 2  # the reference GANs' CN budget
    assert results["dcgan"]["methods"]["CN (ours)"]["fit_steps"] == 2
    for res in results.values():
        for method, row in res["methods"].items():
            assert np.isfinite(row["psnr_mean"]) and row["seconds_per_1k"] > 0
            if "optimisation" in method or "iGAN" in method or "hybrid" in method:
                assert row["nn_accuracy"] is None
            else:  # every feed-forward encoder, ours included, has its 1-NN accuracy
                assert 0 <= row["nn_accuracy"] <= 1
    meta = data["meta"]
    assert (meta["nn_train"], meta["nn_test"], meta["fit_steps"]) == (64, 40, 2)
    assert 0 <= meta["pixel_nn_accuracy"] <= 1
    text = out_md.read_text()
    table = text.split("| model | method |", 1)[1].split("\n\n", 1)[0]
    assert table.count("\n| ") == 5 + 1 + 3 * 2  # a line per row: the GAN and the rivals in one table
    assert "| DCGAN | CN (ours) |" in table and "15.10 / 0.5332 |" in table
    assert "| VAE | own encoder |" in table and "11.83 / 0.3921 |" in table
    assert "| BiGAN/ALI | own encoder |" in table and "13.02 / 0.3623 |" in table
    assert "### Compared with the paper" in text and "The paper's claim that the CN on every GAN beats" in text
    ranked = text.split("Feed-forward encoders ranked by PSNR: ", 1)[1].split("\n", 1)[0]
    assert ranked.count("dB") == 2 + 4 + 3  # CN and naive encoder, the four own encoders, three CNs on rivals
    assert "Ranked by 1-NN accuracy in code space: 1. " in text
    assert "97.39" in text and "raw pixels" in text and "--fit-steps 2" in text and "No discriminator" in text
    assert "\n| DCGAN | " in readme.read_text() and "old" not in readme.read_text()

    # The same table from two runs sharing the device, merged; and a merge of two protocols refused.
    gan_json, rival_json, merged_json = (tmp_path / f"{n}.json" for n in ("gan", "rivals", "merged"))
    table1.main(["--gans", str(gan), *common, "--pixel-nn", "--concurrent", "2", "--json", str(gan_json),
                 "--out", str(tmp_path / "gan.md"), "--readme", str(readme)])
    table1.main(["--rivals", *rivals, *common, "--concurrent", "2", "--json", str(rival_json),
                 "--out", str(tmp_path / "rivals.md"), "--readme", str(readme)])
    merged_md = tmp_path / "merged.md"
    table1.main(["--merge", str(gan_json), str(rival_json), "--json", str(merged_json), "--out", str(merged_md),
                 "--readme", str(readme)])
    merged = json.loads(merged_json.read_text())
    assert list(merged["results"]) == ["dcgan", *models.MODELS]
    for name, res in merged["results"].items():  # seeded: the split runs score exactly what the single run did
        for method, row in res["methods"].items():
            assert row["psnr_mean"] == results[name]["methods"][method]["psnr_mean"], (name, method)
            assert row["nn_accuracy"] == results[name]["methods"][method]["nn_accuracy"], (name, method)
    assert merged["meta"]["pixel_nn_accuracy"] == meta["pixel_nn_accuracy"]
    merged_text = merged_md.read_text()
    assert "dcgan (2 processes)" in merged_text and "vae, bigan, gaan, aaae (2 processes)" in merged_text
    assert merged_text.count("python ") >= 3  # both runs' commands and the merge's
    gan_run = json.loads(gan_json.read_text())
    for key, value in (("fit_steps", 3), ("curve", [1, 5]), ("batch", 500)):
        other = json.loads(rival_json.read_text())
        other["meta"][key] = value
        with pytest.raises(ValueError, match=key):
            table1.merge_runs([gan_run, other], "merge")
    with pytest.raises(ValueError, match="older table1.py"):
        table1.merge_runs([gan_run, {"meta": {"command": "python -m benchmarks.paper.table1 --gans runs/lsgan"},
                                     "results": {"lsgan": {"methods": {}}}}], "merge")

    # The comparison names only the columns and rivals this run scored.
    partial = {name: merged["results"][name] for name in ("dcgan", "vae")}
    partial_md = tmp_path / "partial.md"
    table1.write_markdown(partial_md, merged["meta"], partial)
    partial_text = partial_md.read_text()
    assert "- **DCGAN**: Same DCGAN-style backbone" in partial_text and "WGAN-GP**" not in partial_text
    assert "(checked against VAE only: ALI/BiGAN was not scored in this run)" in partial_text
    assert "(checked against" not in merged_text
    with pytest.raises(ValueError, match="'dcgan' is in more than one run"):
        table1.merge_runs([json.loads(gan_json.read_text())] * 2, "merge")
