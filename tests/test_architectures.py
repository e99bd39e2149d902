"""Tests for discinvert.zoo.architectures and a smoke test of benchmarks/paper/train_gan.py."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from discinvert.zoo.architectures import (
    CONFIG_FILE,
    DISCRIMINATOR_FILE,
    GENERATOR_FILE,
    DCGANDiscriminator,
    DCGANGenerator,
    GANConfig,
    build_gan,
    discriminator_layer_kinds,
    load_gan,
    save_gan,
)
from tests.conftest import write_idx_gz

REPO_ROOT = Path(__file__).resolve().parents[1]
LOSSES = ("dcgan", "lsgan", "wgan-gp")


def _trained_like(config: GANConfig, seed: int = 0) -> tuple[DCGANGenerator, DCGANDiscriminator]:
    """A (G, D) pair whose BatchNorm buffers are non-trivial (one train-mode pass)."""
    torch.manual_seed(seed)
    generator, discriminator = build_gan(config)
    with torch.no_grad():
        discriminator(generator(torch.randn(8, config.latent_dim)))
    return generator, discriminator


def _feature_output(discriminator: DCGANDiscriminator, x: torch.Tensor) -> torch.Tensor:
    captured: list[torch.Tensor] = []
    module = discriminator.get_submodule(discriminator.feature_layer)
    handle = module.register_forward_hook(lambda _m, _i, out: captured.append(out.detach().clone()))
    try:
        discriminator(x)
    finally:
        handle.remove()
    return captured[0]


@pytest.mark.parametrize("loss", LOSSES)
def test_config_defaults(loss: str) -> None:
    config = GANConfig(loss=loss)  # type: ignore[arg-type]
    assert config.latent_shape == (100, 1, 1)
    assert config.image_shape == (1, 28, 28)
    assert config.d_batch_norm is (loss != "wgan-gp")
    assert config.feature_layer == ("main.7" if loss != "wgan-gp" else "main.5")
    assert config.feature_shape == (256, 4, 4)
    assert GANConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="wgan-gp"):
        GANConfig(loss="wgan-gp", d_batch_norm=True)
    with pytest.raises(ValueError, match="loss"):
        GANConfig(loss="hinge")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="image_size"):
        GANConfig(image_size=32)
    with pytest.raises(ValueError, match="latent_dim"):
        GANConfig(latent_dim=0)
    with pytest.raises(ValueError, match="feature_layer"):
        GANConfig(feature_layer="main.8")
    with pytest.raises(ValueError, match="unknown"):
        GANConfig.from_dict({"latent_dim": 100, "bogus": 1})
    assert GANConfig(feature_layer="main.4").feature_layer == "main.4"


@pytest.mark.parametrize("loss", LOSSES)
def test_shapes_and_ranges(loss: str) -> None:
    config = GANConfig(loss=loss)  # type: ignore[arg-type]
    generator, discriminator = _trained_like(config)
    generator.eval()
    discriminator.eval()
    torch.manual_seed(1)
    z = torch.randn(5, 100, 1, 1)
    with torch.no_grad():
        images = generator(z)
        images_flat = generator(z.flatten(1))
        logits = discriminator(images)
    assert images.shape == (5, 1, 28, 28) and images.dtype == torch.float32
    assert float(images.min()) >= -1.0 and float(images.max()) <= 1.0
    torch.testing.assert_close(images, images_flat, rtol=0, atol=0)
    assert logits.shape == (5,)

    # The feature layer is the last module of D.main, a 4-D hidden activation of 256 x 4 x 4.
    name = config.feature_layer
    assert name == f"main.{len(discriminator.main) - 1}"
    assert isinstance(discriminator.get_submodule(name), torch.nn.LeakyReLU)
    with torch.no_grad():
        hooked = _feature_output(discriminator, images)
        direct = discriminator.features(images)
        manual = discriminator.head(direct).flatten()
    assert hooked.shape == (5, 256, 4, 4) and hooked[0].numel() == 4096
    torch.testing.assert_close(hooked, direct)
    torch.testing.assert_close(manual, logits)


def test_layer_layout_matches_kinds() -> None:
    for batch_norm in (True, False):
        config = GANConfig(loss="dcgan" if batch_norm else "wgan-gp")
        discriminator = DCGANDiscriminator(config)
        kinds = discriminator_layer_kinds(d_batch_norm=batch_norm)
        expected = {"conv": torch.nn.Conv2d, "bn": torch.nn.BatchNorm2d, "lrelu": torch.nn.LeakyReLU}
        assert [type(m) for m in discriminator.main] == [expected[k] for k in kinds]
        has_bn = any(isinstance(m, torch.nn.BatchNorm2d) for m in discriminator.modules())
        assert has_bn is batch_norm


def test_bad_input_shapes() -> None:
    generator, discriminator = build_gan(GANConfig())
    with pytest.raises(ValueError, match="z: expected"):
        generator(torch.randn(2, 99))
    with pytest.raises(ValueError, match="z: expected"):
        generator(torch.randn(2, 100, 2, 1))
    with pytest.raises(ValueError, match="x: expected"):
        discriminator(torch.randn(2, 1, 32, 32))
    with pytest.raises(ValueError, match="config"):
        build_gan({"latent_dim": 100})  # type: ignore[arg-type]


@pytest.mark.parametrize("loss", ["dcgan", "wgan-gp"])
def test_save_load_round_trip_fp32(tmp_path: Path, loss: str) -> None:
    config = GANConfig(loss=loss)  # type: ignore[arg-type]
    generator, discriminator = _trained_like(config)
    extra = {"train_seconds": 1.5, "command": "python x.py", "losses": [{"epoch": 1, "d": 0.5}]}
    save_gan(tmp_path / "ckpt", generator, discriminator, config, extra=extra)
    assert {p.name for p in (tmp_path / "ckpt").iterdir()} == {GENERATOR_FILE, DISCRIMINATOR_FILE, CONFIG_FILE}
    g2, d2, config2, extra2 = load_gan(tmp_path / "ckpt")
    assert config2 == config and extra2 == extra
    assert not g2.training and not d2.training
    for original, loaded in ((generator, g2), (discriminator, d2)):
        a, b = original.state_dict(), loaded.state_dict()
        assert a.keys() == b.keys()
        for key in a:
            assert a[key].dtype == b[key].dtype
            assert torch.equal(a[key], b[key]), key
    generator.eval()
    z = torch.randn(3, 100)
    with torch.no_grad():
        assert torch.equal(generator(z), g2(z))


def test_save_load_half(tmp_path: Path) -> None:
    config = GANConfig()
    generator, discriminator = _trained_like(config)
    save_gan(tmp_path, generator, discriminator, config, half=True)
    stored = load_file(str(tmp_path / GENERATOR_FILE))
    assert stored["main.0.weight"].dtype == torch.float16
    assert stored["main.1.num_batches_tracked"].dtype == torch.int64
    assert json.loads((tmp_path / CONFIG_FILE).read_text())["dtype"] == "float16"
    g2, d2, _, extra = load_gan(tmp_path)
    assert extra == {}
    for original, loaded in ((generator, g2), (discriminator, d2)):
        for key, value in original.state_dict().items():
            restored = loaded.state_dict()[key]
            assert restored.dtype == value.dtype
            if value.is_floating_point():
                torch.testing.assert_close(restored, value, rtol=1e-3, atol=1e-4)
            else:
                assert torch.equal(restored, value)
    generator.eval()
    z = torch.randn(4, 100)
    with torch.no_grad():
        torch.testing.assert_close(g2(z), generator(z), rtol=0, atol=2e-2)
    fp32_dir = tmp_path / "fp32"
    save_gan(fp32_dir, generator, discriminator, config)
    assert (tmp_path / GENERATOR_FILE).stat().st_size < 0.6 * (fp32_dir / GENERATOR_FILE).stat().st_size


def test_load_missing_key_raises(tmp_path: Path) -> None:
    config = GANConfig()
    generator, discriminator = build_gan(config)
    save_gan(tmp_path, generator, discriminator, config)
    tensors = load_file(str(tmp_path / DISCRIMINATOR_FILE))
    del tensors["head.bias"]
    save_file(tensors, str(tmp_path / DISCRIMINATOR_FILE))
    with pytest.raises(ValueError, match="head.bias") as info:
        load_gan(tmp_path)
    assert DISCRIMINATOR_FILE in str(info.value)


def test_load_unexpected_key_and_shape_raise(tmp_path: Path) -> None:
    config = GANConfig()
    generator, discriminator = build_gan(config)
    save_gan(tmp_path, generator, discriminator, config)
    tensors = load_file(str(tmp_path / GENERATOR_FILE))
    tensors["main.99.weight"] = torch.zeros(1)
    save_file(tensors, str(tmp_path / GENERATOR_FILE))
    with pytest.raises(ValueError, match="unexpected keys") as info:
        load_gan(tmp_path)
    assert GENERATOR_FILE in str(info.value)
    del tensors["main.99.weight"]
    tensors["main.0.weight"] = torch.zeros(100, 256, 5, 5)
    save_file(tensors, str(tmp_path / GENERATOR_FILE))
    with pytest.raises(ValueError, match="shape"):
        load_gan(tmp_path)


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_gan(tmp_path)
    config = GANConfig()
    generator, discriminator = build_gan(config)
    save_gan(tmp_path, generator, discriminator, config)
    (tmp_path / GENERATOR_FILE).write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match=GENERATOR_FILE):
        load_gan(tmp_path)
    (tmp_path / CONFIG_FILE).write_text('{"format": "other"}')
    with pytest.raises(ValueError, match="format"):
        load_gan(tmp_path)
    with pytest.raises(ValueError, match="extra"):
        save_gan(tmp_path, generator, discriminator, config, extra={"x": float("nan")})
    with pytest.raises(ValueError, match="extra"):
        save_gan(tmp_path, generator, discriminator, config, extra={"x": object()})


@contextlib.contextmanager
def _data_limit(headroom: int) -> Iterator[None]:
    """Cap this process's data memory at its current size plus ``headroom`` bytes (Linux).

    A config that makes ``load_gan`` allocate the models it describes then fails at
    once with torch's allocation error instead of slowly eating the machine's memory.
    """
    resource = pytest.importorskip("resource")
    status = Path("/proc/self/status")
    if not status.exists():
        pytest.skip("needs /proc/self/status (Linux)")
    data_kb = next(int(line.split()[1]) for line in status.read_text().splitlines() if line.startswith("VmData:"))
    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    limit = data_kb * 1024 + headroom
    resource.setrlimit(resource.RLIMIT_DATA, (limit if hard == resource.RLIM_INFINITY else min(limit, hard), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))


def _set_config(directory: Path, **changes: object) -> None:
    document = json.loads((directory / CONFIG_FILE).read_text())
    document["config"].update(changes)
    (directory / CONFIG_FILE).write_text(json.dumps(document))


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"latent_dim": 20_000}, "(20000, 256, 7, 7)"),  # G's first layer alone: 1 GB
        ({"latent_dim": 10**7}, "(10000000, 256, 7, 7)"),  # 500 GB
        ({"g_width": 10**5}, "(16, 400000, 7, 7)"),  # 1.2 GB
    ],
)
def test_config_that_disagrees_with_the_weights_is_refused_before_building(
    tmp_path: Path, changes: dict[str, int], expected: str
) -> None:
    config = GANConfig(latent_dim=16)
    save_gan(tmp_path, *build_gan(config), config)
    load_gan(tmp_path)  # the valid directory loads (and torch's lazy imports happen before the cap)
    _set_config(tmp_path, **changes)
    with _data_limit(512 * 2**20), pytest.raises(ValueError) as info:
        load_gan(tmp_path)
    message = str(info.value)
    assert message.startswith(f"{tmp_path / GENERATOR_FILE}: tensor 'main.0.weight': expected shape {expected}")
    assert "received (16, 256, 7, 7)" in message and str(tmp_path / CONFIG_FILE) in message


def test_config_with_sizes_torch_cannot_hold_is_refused(tmp_path: Path) -> None:
    config = GANConfig(latent_dim=16, g_width=8, d_width=8)
    save_gan(tmp_path, *build_gan(config), config)
    _set_config(tmp_path, latent_dim=10**30)
    with pytest.raises(ValueError, match="invalid config") as info:
        load_gan(tmp_path)
    assert str(tmp_path / CONFIG_FILE) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000, '{"a": ' * 100 + "1" + "}" * 100, "1" * 5000])
def test_deeply_nested_or_absurd_config_json_names_the_file(tmp_path: Path, text: str) -> None:
    config = GANConfig(latent_dim=16, g_width=8, d_width=8)
    save_gan(tmp_path, *build_gan(config), config)
    (tmp_path / CONFIG_FILE).write_text(text)
    with pytest.raises(ValueError, match="is not (valid|usable) JSON") as info:
        load_gan(tmp_path)
    assert str(info.value).startswith(str(tmp_path / CONFIG_FILE))


def test_train_gan_script_smoke(tmp_path: Path) -> None:
    """Run python -m benchmarks.paper.train_gan for all three losses on 128 fake images (train split only)."""
    root = tmp_path / "data"
    root.mkdir()
    rng = np.random.default_rng(0)
    # Only the train files exist: the script must never read the test split.
    write_idx_gz(root / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (160, 28, 28), dtype=np.uint8))
    write_idx_gz(root / "train-labels-idx1-ubyte.gz", rng.integers(0, 10, (160,), dtype=np.uint8))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH", "")]))
    env.pop("DISCINVERT_FASHION_MNIST", None)
    env["OMP_NUM_THREADS"] = "1"
    procs = {}
    for loss in LOSSES:
        out = tmp_path / loss
        # dcgan asks for 3 epochs with no time for a second one: --max-seconds stops it after the first.
        epochs = ["--epochs", "3", "--max-seconds", "0"] if loss == "dcgan" else ["--epochs", "1"]
        cmd = [sys.executable, "-m", "benchmarks.paper.train_gan", "--loss", loss, *epochs, "--limit", "128", "--device", "cpu",
               "--seed", "0", "--batch-size", "64", "--out", str(out), "--data-root", str(root)]
        procs[loss] = (subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True), out)
    for loss, (proc, out) in procs.items():
        output, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, output
        assert output.count("command: ") == 2, output
        assert {GENERATOR_FILE, DISCRIMINATOR_FILE, CONFIG_FILE, "samples.png"} <= {p.name for p in out.iterdir()}
        png = (out / "samples.png").read_bytes()
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        generator, discriminator, config, extra = load_gan(out)
        assert config.loss == loss
        assert extra["epochs"] == 1 and extra["device"] == "cpu" and extra["n_train"] == 128
        assert (extra["epochs_requested"], extra["stopped_early"]) == ((3, True) if loss == "dcgan" else (1, False))
        assert "--limit 128" in extra["command"]
        assert extra["torch_version"] == torch.__version__
        assert len(extra["losses_per_epoch"]) == 1 and extra["losses_per_epoch"][0]["d_steps"] == 2
        assert extra["train_seconds"] > 0
        with torch.no_grad():
            assert generator(torch.randn(2, 100)).shape == (2, 1, 28, 28)


def test_save_gan_is_all_or_nothing(tmp_path, monkeypatch) -> None:
    """A failure while writing the second weights file leaves the folder's old GAN loadable and whole."""
    import errno

    import discinvert.zoo.architectures as architectures

    G, D = build_gan(GANConfig(g_width=8, d_width=8, latent_dim=16))
    save_gan(tmp_path / "gan", G, D, GANConfig(g_width=8, d_width=8, latent_dim=16))
    before = {p.name: p.read_bytes() for p in (tmp_path / "gan").iterdir()}
    real_save = architectures.save_file
    calls = []

    def full_disk(tensors, path, metadata=None):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(tensors, path, metadata=metadata)

    monkeypatch.setattr(architectures, "save_file", full_disk)
    G2, D2 = build_gan(GANConfig(g_width=16, d_width=8, latent_dim=16))
    with pytest.raises(OSError, match="No space left on device"):
        save_gan(tmp_path / "gan", G2, D2, GANConfig(g_width=16, d_width=8, latent_dim=16))
    assert {p.name: p.read_bytes() for p in (tmp_path / "gan").iterdir()} == before  # no mix, no debris
    load_gan(tmp_path / "gan")
