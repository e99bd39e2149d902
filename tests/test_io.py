"""save/load: bit-exact round trips, atomic writes, and clear errors for every bad file."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import safetensors
import safetensors.torch
import torch

from discinvert import FingerprintMismatchError, Inverter, fit_inverter
from discinvert.inverter_config import FORMAT_VERSION, NEWEST_FORMAT_VERSION
from tests.conftest import LATENT, TinyGAN, _build

QUICK = dict(steps=30, batch_size=32, cn_hidden=(64, 32), progress=False, validation_size=64, seed=0)


@pytest.fixture
def fitted(make_gan) -> tuple[TinyGAN, Inverter]:
    gan = make_gan("dcgan")
    return gan, fit_inverter(gan.generator, gan.discriminator, gan.feature_layer, latent_shape=gan.latent_shape, **QUICK)


def _rewrite(path, *, tensors=None, metadata=None) -> None:
    with safetensors.safe_open(str(path), framework="pt") as handle:
        old_meta = handle.metadata()
        old = {k: handle.get_tensor(k) for k in handle.keys()}
    safetensors.torch.save_file(tensors if tensors is not None else old, str(path), metadata=metadata if metadata is not None else old_meta)


def _config(path) -> dict:
    with safetensors.safe_open(str(path), framework="pt") as handle:
        return json.loads(handle.metadata()["config"])


def test_round_trip_is_bit_exact(fitted, tmp_path) -> None:
    gan, inverter = fitted
    path = inverter.save(tmp_path / "inv.safetensors")
    assert os.listdir(tmp_path) == ["inv.safetensors"]  # no temporary file left
    loaded = Inverter.load(path, generator=gan.generator, discriminator=gan.discriminator)
    original, restored = inverter.state_dict(), loaded.state_dict()
    assert original.keys() == restored.keys()
    assert all(torch.equal(original[k], restored[k]) for k in original)
    assert loaded.config == inverter.config
    assert not loaded.training and not loaded.cn.training
    _, x, _ = gan.sample(16)
    assert torch.equal(loaded.encode(x), inverter.encode(x))


def test_file_holds_cn_and_metadata_only(fitted, tmp_path) -> None:
    gan, inverter = fitted
    path = inverter.save(tmp_path / "inv.safetensors")
    with safetensors.safe_open(str(path), framework="pt") as handle:
        keys = list(handle.keys())
        meta = handle.metadata()
    assert keys and all(k.startswith("cn.") for k in keys)
    assert meta["format"] == "discinvert.inverter" and meta["format_version"] == str(FORMAT_VERSION)
    config = json.loads(meta["config"])
    for key in ("feature_layer", "latent_shape", "image_shape", "feature_dim", "cn", "generator_fingerprint",
                "discriminator_fingerprint", "library_version", "format_version"):
        assert key in config
    assert config["latent_shape"] == [LATENT, 1, 1] and config["image_shape"] == [1, 8, 8]


def test_save_is_atomic_when_writing_fails(fitted, tmp_path, monkeypatch) -> None:
    gan, inverter = fitted
    path = inverter.save(tmp_path / "inv.safetensors")
    before = path.read_bytes()

    def broken(*args, **kwargs):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(safetensors.torch, "save_file", broken)
    with pytest.raises(OSError, match="simulated"):
        inverter.save(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["inv.safetensors"]


def test_missing_file(fitted, tmp_path) -> None:
    gan, _ = fitted
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        Inverter.load(tmp_path / "nope.safetensors", generator=gan.generator, discriminator=gan.discriminator)


@pytest.mark.parametrize("cut", [4, 50, -10])
def test_truncated_file_names_the_file(fitted, tmp_path, cut) -> None:
    gan, inverter = fitted
    path = inverter.save(tmp_path / "inv.safetensors")
    data = path.read_bytes()
    path.write_bytes(data[:cut])
    with pytest.raises(ValueError, match="inv.safetensors"):
        Inverter.load(path, generator=gan.generator, discriminator=gan.discriminator)


def test_garbage_file(fitted, tmp_path) -> None:
    gan, _ = fitted
    path = tmp_path / "garbage.safetensors"
    path.write_bytes(os.urandom(2000))
    with pytest.raises(ValueError, match="garbage.safetensors"):
        Inverter.load(path, generator=gan.generator, discriminator=gan.discriminator)


def test_foreign_safetensors_file(fitted, tmp_path) -> None:
    gan, _ = fitted
    path = tmp_path / "model.safetensors"
    safetensors.torch.save_file({"weight": torch.zeros(3)}, str(path))
    with pytest.raises(ValueError, match="not a discinvert inverter"):
        Inverter.load(path, generator=gan.generator, discriminator=gan.discriminator)


def test_newer_format_version_says_upgrade(fitted, tmp_path) -> None:
    gan, inverter = fitted
    path = inverter.save(tmp_path / "inv.safetensors")
    config = _config(path)
    config["format_version"] = NEWEST_FORMAT_VERSION + 1  # the newest this library reads, plus one
    meta = {"format": "discinvert.inverter", "format_version": str(NEWEST_FORMAT_VERSION + 1), "library_version": "9.0", "config": json.dumps(config)}
    _rewrite(path, metadata=meta)
    with pytest.raises(ValueError, match="[Uu]pgrade discinvert"):
        Inverter.load(path, generator=gan.generator, discriminator=gan.discriminator)


@pytest.mark.parametrize(
    "tamper, message",
    [
        (lambda c: c.update(feature_dim="lots"), "feature_dim"),
        (lambda c: c.update(latent_shape=[LATENT, -1]), "latent_shape"),
        (lambda c: c.update(surprise=1), "unknown keys"),
        (lambda c: c.pop("cn"), "missing keys"),
        (lambda c: c.update(generator_fingerprint="md5:abc"), "generator_fingerprint"),
        (lambda c: c["cn"].update(hidden=[64, 33]), "cn.layers"),
        (lambda c: c.update(latent_shape=[LATENT + 1, 1, 1]), "CN maps"),
    ],
)
def test_tampered_config_is_refused(fitted, tmp_path, tamper, message) -> None:
    gan, inverter = fitted
    path = inverter.save(tmp_path / "inv.safetensors")
    config = _config(path)
    tamper(config)
    meta = {"format": "discinvert.inverter", "format_version": str(FORMAT_VERSION), "library_version": "0.1.0", "config": json.dumps(config)}
    _rewrite(path, metadata=meta)
    with pytest.raises(ValueError, match=message):
        Inverter.load(path, generator=gan.generator, discriminator=gan.discriminator)


def test_weights_disagreeing_with_config(fitted, tmp_path) -> None:
    gan, inverter = fitted
    path = inverter.save(tmp_path / "inv.safetensors")
    tensors = {k: v.clone() for k, v in inverter.state_dict().items()}
    tensors["cn.layers.0.weight"] = tensors["cn.layers.0.weight"][:, :-1].contiguous()
    _rewrite(path, tensors=tensors)
    with pytest.raises(ValueError, match="cn.layers.0.weight"):
        Inverter.load(path, generator=gan.generator, discriminator=gan.discriminator)
    tensors = {k: v.clone() for k, v in inverter.state_dict().items()}
    tensors["cn.extra"] = torch.zeros(1)
    _rewrite(path, tensors=tensors)
    with pytest.raises(ValueError, match="unexpected tensors"):
        Inverter.load(path, generator=gan.generator, discriminator=gan.discriminator)


def test_inverter_for_another_gan_raises_or_warns(fitted, make_gan, tmp_path) -> None:
    gan, inverter = fitted
    path = inverter.save(tmp_path / "inv.safetensors")
    other = make_gan("dcgan")
    with torch.no_grad():
        other.generator.main[0].weight.mul_(1.01)
    with pytest.raises(FingerprintMismatchError, match="generator's weights differ"):
        Inverter.load(path, generator=other.generator, discriminator=gan.discriminator)
    with pytest.warns(UserWarning, match="fit for another GAN"):
        loaded = Inverter.load(path, generator=other.generator, discriminator=gan.discriminator, on_mismatch="warn")
    assert torch.equal(loaded.state_dict()["cn.layers.0.weight"], inverter.state_dict()["cn.layers.0.weight"])


def test_d_head_after_the_feature_layer_does_not_count(fitted, tmp_path) -> None:
    gan, inverter = fitted
    path = inverter.save(tmp_path / "inv.safetensors")
    with torch.no_grad():
        gan.discriminator[5].weight.add_(1.0)  # after the feature layer "4"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Inverter.load(path, generator=gan.generator, discriminator=gan.discriminator)
    with torch.no_grad():
        gan.discriminator[3].running_mean.add_(0.5)  # BatchNorm statistics before it do count
    with pytest.raises(FingerprintMismatchError, match="discriminator's weights"):
        Inverter.load(path, generator=gan.generator, discriminator=gan.discriminator)


def test_gan_of_another_shape_is_refused(fitted, make_gan, tmp_path) -> None:
    _, inverter = fitted
    path = inverter.save(tmp_path / "inv.safetensors")
    mlp = make_gan("mlp")
    with pytest.raises(ValueError):
        Inverter.load(path, generator=mlp.generator, discriminator=mlp.discriminator)


def test_half_precision_file_loads_as_float32(fitted, tmp_path) -> None:
    gan, inverter = fitted
    full = inverter.save(tmp_path / "full.safetensors")
    half = inverter.save(tmp_path / "half.safetensors", dtype=torch.float16)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    loaded = Inverter.load(half, generator=gan.generator, discriminator=gan.discriminator)
    assert next(loaded.cn.parameters()).dtype == torch.float32
    _, x, _ = gan.sample(8)
    torch.testing.assert_close(loaded.encode(x), inverter.encode(x), rtol=2e-2, atol=2e-2)
    with pytest.raises(ValueError, match="dtype"):
        inverter.save(tmp_path / "x.safetensors", dtype=torch.int16)
    assert not (tmp_path / "x.safetensors").exists()


def _quantised(weight: torch.Tensor) -> torch.Tensor:
    """What int8 storage should give back: per output row, round(w / s) * s with s = max|w| / 127."""
    scale = weight.abs().amax(dim=1, keepdim=True) / 127
    return torch.round(weight / scale) * scale


def test_int8_file_is_about_a_quarter_and_loads_as_float32(make_gan, tmp_path) -> None:
    gan = make_gan("dcgan")
    inverter = fit_inverter(gan.generator, gan.discriminator, gan.feature_layer, latent_shape=gan.latent_shape,
                            **{**QUICK, "cn_hidden": (256,)})
    full = inverter.save(tmp_path / "full.safetensors")
    small = inverter.save(tmp_path / "int8.safetensors", dtype=torch.int8)
    assert small.stat().st_size < 0.3 * full.stat().st_size
    with safetensors.safe_open(str(small), framework="pt") as handle:
        assert handle.metadata()["format_version"] == str(FORMAT_VERSION) == "5"
        stored = {k: handle.get_tensor(k) for k in handle.keys()}
    weights = [k for k, v in inverter.state_dict().items() if v.ndim == 2]
    assert weights and all(stored[k].dtype == torch.int8 and stored[k + ".int8_scale"].shape == (stored[k].shape[0],)
                           for k in weights)
    assert all(v.dtype in (torch.float32, torch.int64) for k, v in stored.items() if k not in weights)
    loaded = Inverter.load(small, generator=gan.generator, discriminator=gan.discriminator)
    assert all(p.dtype == torch.float32 for p in loaded.cn.parameters())
    for k, v in inverter.state_dict().items():
        expected = _quantised(v) if k in weights else v
        torch.testing.assert_close(loaded.state_dict()[k], expected, rtol=1e-6, atol=1e-7)
        assert k in weights or torch.equal(loaded.state_dict()[k], v)  # biases and BatchNorm exact
    _, x, _ = gan.sample(64)
    error = (loaded.encode(x) - inverter.encode(x)).abs().max()
    assert 0 < error < 0.05 * inverter.encode(x).abs().max()  # quantised, and close
    folder = inverter.save_pretrained(tmp_path / "repo", dtype=torch.int8)
    again = Inverter.from_pretrained(folder, generator=gan.generator, discriminator=gan.discriminator)
    assert torch.equal(again.encode(x), loaded.encode(x))
    assert torch.equal(Inverter.load(again.save(tmp_path / "re.safetensors", dtype=torch.int8), generator=gan.generator,
                                     discriminator=gan.discriminator).encode(x), loaded.encode(x))  # re-quantising is stable


def test_damaged_int8_files_are_refused(fitted, tmp_path) -> None:
    gan, inverter = fitted
    path = inverter.save(tmp_path / "inv.safetensors", dtype=torch.int8)
    with safetensors.safe_open(str(path), framework="pt") as handle:
        meta = handle.metadata()
        good = {k: handle.get_tensor(k) for k in handle.keys()}
    kwargs = dict(generator=gan.generator, discriminator=gan.discriminator)
    name = "cn.layers.0.weight"
    cases = [
        ({k: v for k, v in good.items() if k != name + ".int8_scale"}, meta,
         rf"'{name}' is int8 but the file has no '{name}.int8_scale'"),
        ({**good, name + ".int8_scale": good[name + ".int8_scale"][:-1]}, meta,
         rf"'{name}.int8_scale': expected float32 of shape \({good[name].shape[0]},\)"),
        ({**good, name + ".int8_scale": good[name + ".int8_scale"].half()}, meta, "expected float32 of shape"),
        ({**good, name + ".int8_scale": torch.full_like(good[name + ".int8_scale"], float("nan"))}, meta,
         "holds NaN or Inf values"),
        ({**good, name: good[name].float()}, meta, rf"scales an int8 weight matrix '{name}', got dtype torch.float32"),
        ({**good, "cn.extra.int8_scale": torch.ones(3)}, meta, r"scales an int8 weight matrix 'cn.extra', got no such tensor"),
    ]
    config = json.loads(meta["config"])
    old_config = {k: v for k, v in config.items() if k != "probe"}  # format version 5 added the probe
    old = {**meta, "format_version": "3", "config": json.dumps({**old_config, "format_version": 3})}
    cases.append((good, old, r"format version 3 has no int8 weights"))
    for tensors, metadata, message in cases:
        _rewrite(path, tensors=tensors, metadata=metadata)
        with pytest.raises(ValueError, match=message):
            Inverter.load(path, **kwargs)
        assert "inv.safetensors" in str(pytest.raises(ValueError, Inverter.load, path, **kwargs).value)


def test_a_format_3_file_loads_as_it_is(fitted, tmp_path) -> None:
    """Version 4 only adds int8 storage: a float file written as version 3 loads unchanged."""
    gan, inverter = fitted
    path = inverter.save(tmp_path / "inv.safetensors")
    config = {**{k: v for k, v in _config(path).items() if k != "probe"}, "format_version": 3}
    _rewrite(path, metadata={"format": "discinvert.inverter", "format_version": "3", "library_version": "0.1.0",
                             "config": json.dumps(config)})
    loaded = Inverter.load(path, generator=gan.generator, discriminator=gan.discriminator)
    assert loaded.config == inverter.config
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in inverter.state_dict().items())


def test_negative_batchnorm_variance_in_a_file_is_refused(fitted, tmp_path) -> None:
    from discinvert.serialization import tensor_digest

    gan, inverter = fitted
    path = inverter.save(tmp_path / "inv.safetensors")
    tensors = {k: v.clone() for k, v in inverter.state_dict().items()}
    key = next(k for k in tensors if k.endswith("running_var"))
    tensors[key][0] = -1.0  # finite, so the finite check alone lets it through
    with safetensors.safe_open(str(path), framework="pt") as handle:
        meta = handle.metadata()
    # edited by someone who also wrote a new digest (the digest catches damage, not a deliberate edit)
    _rewrite(path, tensors=tensors, metadata={**meta, "tensor_digest": tensor_digest(tensors)})
    with pytest.raises(ValueError, match=rf"inv.safetensors: expected non-negative BatchNorm variances, got 1 negative value\(s\) in '{key}'"):
        Inverter.load(path, generator=gan.generator, discriminator=gan.discriminator)


def test_config_naming_another_layer_of_the_same_width_is_refused(fitted, tmp_path) -> None:
    gan, inverter = fitted
    path = inverter.save(tmp_path / "inv.safetensors")
    config = _config(path)
    assert config["feature_layer"] == "4"
    config["feature_layer"] = "3"  # the BatchNorm just before: same width, other features
    with safetensors.safe_open(str(path), framework="pt") as handle:
        digest = handle.metadata()["tensor_digest"]  # the weights are unchanged
    meta = {"format": "discinvert.inverter", "format_version": str(FORMAT_VERSION), "library_version": "0.1.0",
            "config": json.dumps(config), "tensor_digest": digest}
    _rewrite(path, metadata=meta)
    with pytest.raises(FingerprintMismatchError, match="feature layer's name"):
        Inverter.load(path, generator=gan.generator, discriminator=gan.discriminator)
    config["discriminator_modules"] = config["discriminator_modules"][:-1]  # edited consistently: still refused
    _rewrite(path, metadata={**meta, "config": json.dumps(config)})
    with pytest.raises(FingerprintMismatchError):
        Inverter.load(path, generator=gan.generator, discriminator=gan.discriminator)


def _as_format_1(path, gan) -> dict:
    """Rewrite a file as discinvert wrote it before format version 2."""
    from discinvert.fingerprint import fingerprint_discriminator

    config = _config(path)
    for key in ("image_range", "iterations", "step", "probe"):  # added in format versions 2, 3 and 5
        config.pop(key)
    config["format_version"] = 1
    config["discriminator_fingerprint"] = fingerprint_discriminator(gan.discriminator, config["discriminator_modules"])
    meta = {"format": "discinvert.inverter", "format_version": "1", "library_version": "0.1.0", "config": json.dumps(config)}
    _rewrite(path, metadata=meta)
    return config


def test_a_format_1_or_2_file_carrying_step_keys_is_refused(fitted, tmp_path) -> None:
    gan, inverter = fitted
    path = inverter.save(tmp_path / "inv.safetensors")
    config = _as_format_1(path, gan)
    for version in (1, 2):
        edited = {**config, "format_version": version, **({"image_range": None} if version == 2 else {}),
                  "iterations": 0, "step": None}
        meta = {"format": "discinvert.inverter", "format_version": str(version), "library_version": "0.1.0",
                "config": json.dumps(edited)}
        _rewrite(path, metadata=meta)
        with pytest.raises(ValueError, match=r"format version 2 has no \['iterations', 'step'\]"):
            Inverter.load(path, generator=gan.generator, discriminator=gan.discriminator)


def test_format_1_files_load_and_are_upgraded(fitted, tmp_path) -> None:
    gan, inverter = fitted
    path = inverter.save(tmp_path / "inv.safetensors")
    _as_format_1(path, gan)
    loaded = Inverter.load(path, generator=gan.generator, discriminator=gan.discriminator)
    assert loaded.config.fingerprint_scheme == 2
    assert loaded.config.discriminator_fingerprint == inverter.config.discriminator_fingerprint
    low, high = loaded.config.image_range  # estimated from G's samples, as the fit records it
    assert -1.0 <= low < high <= 1.0 and loaded.value_range == inverter.value_range
    resaved = Inverter.load(loaded.save(tmp_path / "again.safetensors"), generator=gan.generator,
                            discriminator=gan.discriminator)
    assert _config(tmp_path / "again.safetensors")["format_version"] == FORMAT_VERSION
    assert resaved.config.image_range == loaded.config.image_range
    # A format-1 file whose config names another layer is refused by the module path.
    config = _as_format_1(inverter.save(tmp_path / "inv.safetensors"), gan)
    config["feature_layer"] = "3"
    meta = {"format": "discinvert.inverter", "format_version": "1", "library_version": "0.1.0", "config": json.dumps(config)}
    _rewrite(path, metadata=meta)
    with pytest.raises(FingerprintMismatchError, match="modules D runs up to feature layer '3'"):
        Inverter.load(path, generator=gan.generator, discriminator=gan.discriminator)


def test_image_range_round_trips(fitted, tmp_path) -> None:
    gan, inverter = fitted
    path = inverter.save(tmp_path / "inv.safetensors")
    assert _config(path)["image_range"] == list(inverter.config.image_range)
    loaded = Inverter.load(path, generator=gan.generator, discriminator=gan.discriminator)
    assert loaded.config.image_range == inverter.config.image_range


def test_the_library_never_unpickles() -> None:
    """No code path of the package can run a pickle: no torch.load, pickle/dill/joblib, np.load(allow_pickle=True)."""
    import ast
    from pathlib import Path

    import discinvert

    offenders = []
    for source in Path(discinvert.__file__).parent.rglob("*.py"):
        tree = ast.parse(source.read_text(), filename=str(source))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [alias.name for alias in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
                offenders += [f"{source.name}: import {n}" for n in names if n.split(".")[0] in ("pickle", "dill", "joblib", "cloudpickle")]
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name):
                owner, name = node.func.value.id, node.func.attr
                if owner == "torch" and name == "load":
                    offenders.append(f"{source.name}:{node.lineno}: torch.load")
                if owner in ("np", "numpy") and name == "load" and any(
                    k.arg == "allow_pickle" and not (isinstance(k.value, ast.Constant) and k.value.value is False) for k in node.keywords
                ):
                    offenders.append(f"{source.name}:{node.lineno}: np.load(allow_pickle=...)")
    assert not offenders, offenders


# ----------------------------------------------------------------------------- where and how files are written
def test_load_of_a_directory_points_to_from_pretrained(fitted, tmp_path) -> None:
    gan, inverter = fitted
    inverter.save_pretrained(tmp_path / "repo")
    with pytest.raises(ValueError, match=r"got a directory.*Inverter\.from_pretrained") as info:
        Inverter.load(tmp_path / "repo", generator=gan.generator, discriminator=gan.discriminator)
    assert str(tmp_path / "repo") in str(info.value)


def test_save_writes_through_a_symlink(fitted, tmp_path) -> None:
    gan, inverter = fitted
    real = tmp_path / "store" / "inv.safetensors"
    real.parent.mkdir()
    real.write_bytes(b"old")
    link = tmp_path / "current.safetensors"
    link.symlink_to(real)
    assert inverter.save(link) == link
    assert link.is_symlink() and os.readlink(link) == str(real)  # the link stays, its target is replaced
    assert sorted(os.listdir(real.parent)) == ["inv.safetensors"] and sorted(os.listdir(tmp_path)) == ["current.safetensors", "store"]
    Inverter.load(real, generator=gan.generator, discriminator=gan.discriminator)


def test_save_keeps_the_mode_of_an_existing_file(fitted, tmp_path) -> None:
    _, inverter = fitted
    private = tmp_path / "private.safetensors"
    private.write_bytes(b"old")
    private.chmod(0o600)
    inverter.save(private)
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    umask = os.umask(0o027)
    try:
        inverter.save(tmp_path / "new.safetensors")  # safetensors itself makes 0600 files: we give the usual mode
        inverter.save_pretrained(tmp_path / "repo")
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "new.safetensors").stat().st_mode) == 0o640
    assert {stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "repo").iterdir()} == {0o640}


def _temporary_name(target: str, pid: int, host: str | None = None) -> str:
    from discinvert import files as serialization

    return f".{target}.{host or serialization._HOST_TAG}-{pid}-0123abcd{serialization.TEMPORARY_SUFFIX}"


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_abandoned_temporary_files_are_removed_and_live_ones_kept(fitted, tmp_path) -> None:
    _, inverter = fitted
    old = time.time() - 2 * 24 * 3600
    names = {
        "dead": _temporary_name("inv.safetensors", _dead_pid()),
        "alive": _temporary_name("inv.safetensors", os.getpid()),
        "alive but old": _temporary_name("inv.safetensors", os.getpid()),
        "other host": _temporary_name("inv.safetensors", _dead_pid(), host="ffffffff"),
        "other host, old": _temporary_name("inv.safetensors", 1, host="fffffffe"),
        "other target": _temporary_name("other.safetensors", _dead_pid()),
    }
    names["alive but old"] = names["alive but old"].replace("0123abcd", "0123abce")
    for key, name in names.items():
        (tmp_path / name).write_bytes(b"partial")
        if "old" in key:
            os.utime(tmp_path / name, (old, old))
    inverter.save(tmp_path / "inv.safetensors")
    left = set(os.listdir(tmp_path))
    assert left == {"inv.safetensors", names["alive"], names["other host"], names["other target"]}


_KILLED_WRITER = """
import sys, time
from discinvert.files import atomic_write

def write(tmp):
    with open(tmp, "wb") as handle:
        handle.write(b"half of a file")
    print("writing", flush=True)
    time.sleep(120)

atomic_write(sys.argv[1], write)
"""


def test_kill_9_during_a_save_leaves_no_temporary_file_after_the_next(fitted, tmp_path) -> None:
    gan, inverter = fitted
    path = inverter.save(tmp_path / "inv.safetensors")
    before = path.read_bytes()
    writer = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "writing"
    finally:
        writer.kill()  # SIGKILL: no finally, no cleanup
        writer.wait()
        writer.stdout.close()
    assert len(os.listdir(tmp_path)) == 2 and path.read_bytes() == before  # the partial temporary file, the old file
    assert next(n for n in os.listdir(tmp_path) if n != path.name).endswith(".discinvert-tmp")
    inverter.save(path)
    assert os.listdir(tmp_path) == ["inv.safetensors"]
    Inverter.load(path, generator=gan.generator, discriminator=gan.discriminator)


def test_full_disk_during_save_is_one_oserror_naming_the_file(fitted, tmp_path, monkeypatch) -> None:
    gan, inverter = fitted
    path = inverter.save(tmp_path / "inv.safetensors")
    before = path.read_bytes()

    def full(*args, **kwargs):
        raise safetensors.SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(safetensors.torch, "save_file", full)
    with pytest.raises(OSError) as info:
        inverter.save(path)
    assert info.value.errno == errno.ENOSPC and str(path) in str(info.value) and "unchanged" in str(info.value)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["inv.safetensors"]


@pytest.mark.parametrize(
    "text, message",
    [
        ("[" * 100_000 + "]" * 100_000, "nested deeper than"),  # RecursionError inside json
        ('{"a": ' * 200 + "1" + "}" * 200, "nested deeper than"),  # parses, but would recurse later
        ("9" * 5000, "not valid JSON"),  # over Python's int-string conversion limit
    ],
)
def test_unusable_config_json_in_the_metadata_names_the_file(fitted, tmp_path, text, message) -> None:
    gan, inverter = fitted
    path = inverter.save(tmp_path / "inv.safetensors")
    meta = {"format": "discinvert.inverter", "format_version": str(FORMAT_VERSION), "library_version": "0.1.0", "config": text}
    _rewrite(path, metadata=meta)
    with pytest.raises(ValueError, match=message) as info:
        Inverter.load(path, generator=gan.generator, discriminator=gan.discriminator)
    assert str(path) in str(info.value)


def test_write_json_is_strict_json(tmp_path) -> None:
    from discinvert.files import write_json

    path = write_json(tmp_path / "m.json", {"psnr": float("inf"), "nested": [float("nan"), 1.5, {"x": -float("inf")}]})

    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} is not JSON")

    assert json.loads(path.read_text(), parse_constant=refuse) == {"psnr": None, "nested": [None, 1.5, {"x": None}]}


def test_format_1_file_loaded_for_another_gan_with_warn_saves_as_format_1(fitted, make_gan, tmp_path) -> None:
    gan, inverter = fitted
    path = inverter.save(tmp_path / "inv.safetensors")
    _as_format_1(path, gan)
    other = make_gan("dcgan")
    with torch.no_grad():
        other.generator.main[0].weight.mul_(1.01)
    with pytest.warns(UserWarning, match="fit for another GAN"):
        loaded = Inverter.load(path, generator=other.generator, discriminator=gan.discriminator, on_mismatch="warn")
    assert loaded.config.fingerprint_scheme == 1  # not upgraded: its D fingerprint stays the version-1 kind
    again = loaded.save(tmp_path / "again.safetensors")
    assert _config(again)["format_version"] == 1 and "image_range" not in _config(again)
    reloaded = Inverter.load(again, generator=gan.generator, discriminator=gan.discriminator)  # the original GAN
    assert reloaded.config.fingerprint_scheme == 2


def test_non_finite_weights_are_refused_on_save_and_load(make_gan, tmp_path) -> None:
    import safetensors.torch

    gan = make_gan("dcgan")
    inverter = fit_inverter(gan.generator, gan.discriminator, "4", latent_shape=(LATENT, 1, 1), **QUICK)
    path = inverter.save(tmp_path / "inv.safetensors")
    with torch.no_grad():
        inverter.cn.layers[0].weight[0, 0] = 1e6  # overflows float16
    with pytest.raises(ValueError, match="not finite when stored as torch.float16"):
        inverter.save(tmp_path / "half.safetensors", dtype=torch.float16)
    with safetensors.safe_open(str(path), framework="pt") as handle:
        meta = handle.metadata()
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    tensors["cn.layers.0.bias"][0] = float("nan")
    safetensors.torch.save_file(tensors, str(path), metadata=meta)
    with pytest.raises(ValueError, match="NaN or Inf"):
        Inverter.load(path, generator=gan.generator, discriminator=gan.discriminator)


def test_a_private_key_in_a_files_config_is_refused(fitted, tmp_path) -> None:
    gan, inverter = fitted
    path = inverter.save(tmp_path / "inv.safetensors")
    config = _config(path)
    for value in ("x", 1):
        config["_fingerprint_scheme"] = value  # the file must not choose how it is checked
        meta = {"format": "discinvert.inverter", "format_version": str(FORMAT_VERSION), "library_version": "0.1.0",
                "config": json.dumps(config)}
        _rewrite(path, metadata=meta)
        with pytest.raises(ValueError, match=r"unknown keys \['_fingerprint_scheme'\]"):
            Inverter.load(path, generator=gan.generator, discriminator=gan.discriminator)


# ----------------------------------------------------------------------------- the tensor digest (issue 32, item 3)
@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[TinyGAN, Inverter, dict[str, Path]]:
    """One inverter of the ``dcgan`` TinyGAN, saved in float32, float16 and int8."""
    gan = _build("dcgan")
    inverter = fit_inverter(gan.generator, gan.discriminator, gan.feature_layer, latent_shape=gan.latent_shape, **QUICK)
    folder = tmp_path_factory.mktemp("saved")
    files = {name: inverter.save(folder / f"{name}.safetensors", dtype=getattr(torch, name))
             for name in ("float32", "float16", "int8")}
    return gan, inverter, files


def _read(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    with safetensors.safe_open(str(path), framework="pt") as handle:
        return {k: handle.get_tensor(k) for k in handle.keys()}, dict(handle.metadata())


def _load(path: Path, gan: TinyGAN) -> Inverter:
    return Inverter.load(path, generator=gan.generator, discriminator=gan.discriminator)


def test_the_digest_covers_the_stored_tensors_and_sits_in_the_metadata(saved) -> None:
    """sha256 over name, dtype, shape and bytes of each stored tensor (int8 and float16 as stored), by name."""
    _, _, files = saved
    for path in files.values():
        tensors, meta = _read(path)
        digest = hashlib.sha256()
        for name in sorted(tensors):
            tensor = tensors[name]
            for part in (name.encode(), str(tensor.dtype).removeprefix("torch.").encode(),
                         ",".join(map(str, tensor.shape)).encode(), tensor.reshape(-1).view(torch.uint8).numpy().tobytes()):
                digest.update(len(part).to_bytes(8, "little") + part)
        assert meta["tensor_digest"] == "sha256:" + digest.hexdigest()
        assert "digest" not in meta["config"]  # the config's schema is unchanged


@pytest.mark.parametrize("dtype", ["float32", "float16", "int8"])
def test_single_byte_flips_in_the_tensor_data_are_refused(saved, tmp_path, dtype) -> None:
    gan, _, files = saved
    data = files[dtype].read_bytes()
    start = 8 + int.from_bytes(data[:8], "little")  # the tensor data follows the 8-byte length and the header
    path = tmp_path / "flipped.safetensors"
    for position in (start + (len(data) - 1 - start) * i // 29 for i in range(30)):
        flipped = bytearray(data)
        flipped[position] ^= 0x01
        path.write_bytes(bytes(flipped))
        with pytest.raises(ValueError, match=r"flipped.safetensors: the weights do not match the digest stored with "
                                             r"them \(tensor_digest\); the file is damaged or altered"):
            _load(path, gan)


def test_two_swapped_batchnorm_tensors_are_refused(saved, tmp_path) -> None:
    gan, inverter, files = saved
    tensors, meta = _read(files["float32"])
    a, b = "cn.layers.1.weight", "cn.layers.1.bias"  # the first BatchNorm1d's scale and shift: same shape
    assert isinstance(inverter.cn.layers[1], torch.nn.BatchNorm1d) and tensors[a].shape == tensors[b].shape
    path = tmp_path / "swapped.safetensors"
    safetensors.torch.save_file({**tensors, a: tensors[b], b: tensors[a]}, str(path), metadata=meta)
    with pytest.raises(ValueError, match="swapped.safetensors: the weights do not match the digest"):
        _load(path, gan)


def test_a_stripped_or_malformed_digest_is_refused(saved, tmp_path) -> None:
    gan, _, files = saved
    tensors, meta = _read(files["float32"])
    path = tmp_path / "stripped.safetensors"
    safetensors.torch.save_file(tensors, str(path), metadata={k: v for k, v in meta.items() if k != "tensor_digest"})
    with pytest.raises(ValueError, match=r"stripped.safetensors: format version 5 files carry a 'tensor_digest' of "
                                         r"their weights in the metadata, got none; the digest was stripped"):
        _load(path, gan)
    safetensors.torch.save_file(tensors, str(path), metadata={**meta, "tensor_digest": "md5:0123"})
    with pytest.raises(ValueError, match=r"expected the metadata's 'tensor_digest' to be 'sha256:' and 64 hex digits, "
                                         r"got 'md5:0123'"):
        _load(path, gan)


def test_a_version_4_file_without_a_digest_loads_with_a_warning(saved, tmp_path) -> None:
    """Files written before digests (the zoo's, until it is saved again) load, with a warning one can filter."""
    from discinvert import UnverifiedWeightsWarning

    gan, _, files = saved
    tensors, meta = _read(files["int8"])  # int8 storage came with version 4
    config = {**{k: v for k, v in json.loads(meta["config"]).items() if k != "probe"}, "format_version": 4}  # 5 added it
    old = {**{k: v for k, v in meta.items() if k != "tensor_digest"}, "format_version": "4", "config": json.dumps(config)}
    path = tmp_path / "old.safetensors"
    safetensors.torch.save_file(tensors, str(path), metadata=old)
    with pytest.warns(UnverifiedWeightsWarning, match=r"old.safetensors: format version 4 file without a digest of "
                                                      r"its weights") as record:
        loaded = _load(path, gan)
    assert issubclass(UnverifiedWeightsWarning, UserWarning) and record[0].filename == __file__  # the user's line
    current = _load(files["int8"], gan)
    assert all(torch.equal(v, current.state_dict()[k]) for k, v in loaded.state_dict().items())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", category=UnverifiedWeightsWarning)
        _load(path, gan)
    resaved, _ = _read(loaded.save(tmp_path / "again.safetensors", dtype=torch.int8))
    assert "tensor_digest" in _read(tmp_path / "again.safetensors")[1] and resaved.keys() == tensors.keys()


def test_load_of_a_bytes_path_is_a_value_error(saved) -> None:
    gan, _, files = saved
    with pytest.raises(ValueError, match=r"path: expected a str or os.PathLike path of an inverter file, got bytes "
                                         r"b'.*float32.safetensors' \(decode bytes first"):
        _load(bytes(files["float32"]), gan)


# ----------------------------------------------------------------------------- bounded configs (issue 32, items 9, 10)
def _step(config: dict) -> dict:
    return {"feature_dim": config["feature_dim"], "latent_dim": LATENT, "residual_shape": [1, 8, 8], "hidden": [16],
            "batch_norm": True, "negative_slope": 0.2}


def _with_config(source: Path, target: Path, change) -> Path:
    """``source`` with its config edited by ``change`` (the tensors and their digest unchanged)."""
    tensors, meta = _read(source)
    config = json.loads(meta["config"])
    change(config)
    safetensors.torch.save_file(tensors, str(target), metadata={**meta, "config": json.dumps(config)})
    return target


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda c: c.update(iterations=1_000_000, step=_step(c)),
         r"expected 'iterations' to be an int >= 0 and at most 64, got 1000000"),
        (lambda c: c["cn"].update(hidden=[16] * 10_000), r"cn_hidden: expected at most 64 hidden layers, got 10000"),
        (lambda c: c["cn"].update(hidden=[1e30, 1e30]), r"cn_hidden: expected positive ints as hidden-layer widths"),
        (lambda c: c["cn"].update(hidden=[10**30, 10**30]),
         rf"cn_hidden: expected hidden-layer widths of at most 65536, got {10**30}"),
        (lambda c: c["cn"].update(hidden=[2**40, 2**40]), "cn_hidden: expected hidden-layer widths of at most 65536"),
        (lambda c: c.update(iterations=1, step={**_step(c), "hidden": [16] * 10_000}),
         "StepConfig.hidden: expected at most 64 hidden layers, got 10000"),
        (lambda c: c.update(iterations=1, step={**_step(c), "hidden": [1e30]}), "StepConfig.hidden: expected a sequence"),
        (lambda c: c.update(iterations=1, step={**_step(c), "residual_shape": [10**9, 10**9]}),
         "StepConfig.residual_shape: expected at most 268435456 values"),
        (lambda c: (c.update(feature_dim=10**12), c["cn"].update(in_features=10**12)),
         "expected 'feature_dim' to be at most 134217728, got 1000000000000"),
        (lambda c: (c.update(latent_shape=[10**6, 10**6, 1]), c["cn"].update(out_features=10**12)),
         "expected 'latent_shape' to hold at most 16777216 values"),
        (lambda c: c.update(image_shape=[3, 10**6, 10**6]), "expected 'image_shape' to hold at most 268435456 values"),
        (lambda c: c.update(latent_shape=[1] * 10_000), "expected 'latent_shape' to have at most 16 dimensions, got 10000"),
    ],
    ids=["iterations", "cn-depth", "cn-float-widths", "cn-huge-widths", "cn-2**40", "step-depth", "step-float-width",
         "residual", "feature-dim", "latent-values", "image-values", "latent-dimensions"],
)
def test_a_config_with_absurd_sizes_is_refused_fast_and_builds_nothing(saved, tmp_path, monkeypatch, change,
                                                                        message) -> None:
    """A small file must not make the loader build (even on the meta device) networks of the sizes it names."""
    gan, _, files = saved
    path = _with_config(files["float32"], tmp_path / "absurd.safetensors", change)
    assert path.stat().st_size < 1_000_000  # a small file
    built: list[str] = []
    original = torch.nn.Module.__init__

    def counting(self, *args, **kwargs) -> None:
        built.append(type(self).__name__)
        original(self, *args, **kwargs)

    monkeypatch.setattr(torch.nn.Module, "__init__", counting)
    start = time.perf_counter()
    with pytest.raises(ValueError, match=message) as info:
        _load(path, gan)
    assert time.perf_counter() - start < 0.5
    assert built == []
    assert str(info.value).startswith(f"{path}: ")


@pytest.fixture(scope="module")
def factory_inverter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An inverter file for the command line's factory GAN (tests.cli_factories)."""
    from tests import cli_factories

    inverter = fit_inverter(cli_factories.make_generator(), cli_factories.make_discriminator(), "4",
                            latent_shape=(LATENT, 1, 1), steps=1, batch_size=16, validation_size=32, seed=0,
                            progress=False)
    return inverter.save(tmp_path_factory.mktemp("cli") / "inv.safetensors")


@pytest.mark.parametrize("hidden", [[1e30, 1e30], [10**30, 10**30]], ids=["floats", "huge-ints"])
def test_encode_with_absurd_cn_widths_prints_one_line(factory_inverter, tmp_path, capsys, hidden) -> None:
    from discinvert.cli import main

    bad = _with_config(factory_inverter, tmp_path / "bad.safetensors", lambda c: c["cn"].update(hidden=hidden))
    np.save(tmp_path / "x.npy", np.random.default_rng(0).integers(0, 256, (2, 8, 8), dtype=np.uint8))
    code = main(["encode", "--generator", "tests.cli_factories:make_generator", "--discriminator",
                 "tests.cli_factories:make_discriminator", "--inverter", str(bad), "--images", str(tmp_path / "x.npy"),
                 "--out", str(tmp_path / "codes.npy")])
    err = capsys.readouterr().err
    assert code == 1, err
    assert err.startswith(f"discinvert encode: error: {bad}: cn_hidden: expected") and err.count("\n") == 1, err
    assert not (tmp_path / "codes.npy").exists()


def test_a_file_naming_a_layer_d_lacks_names_the_file_and_long_names_are_bounded(fitted, tmp_path) -> None:
    gan, inverter = fitted
    path = inverter.save(tmp_path / "inv.safetensors")
    for name, message in (("nope", r"inv.safetensors: feature_layer: 'nope' is not a layer"),
                          ("x" * 1_000_001, r"inv.safetensors: expected 'feature_layer' to name at most 64 layers of at "
                                            r"most 1000 characters each, got 1 name\(s\) of up to 1000001 characters")):
        config = {**_config(path), "feature_layer": name}
        with safetensors.safe_open(str(path), framework="pt") as handle:
            metadata = dict(handle.metadata()) | {"config": json.dumps(config)}
        _rewrite(path, metadata=metadata)
        with pytest.raises(ValueError, match=message) as caught:
            Inverter.load(path, generator=gan.generator, discriminator=gan.discriminator)
        assert len(str(caught.value)) < 2000


def test_a_config_of_more_than_16_mib_is_refused_before_parsing(fitted, tmp_path) -> None:
    gan, inverter = fitted
    path = inverter.save(tmp_path / "inv.safetensors")
    config = _config(path)
    config["fit"]["history"] = [[1, 1.0, 1.0, 1.0]] * 1_000_000  # about 20 MB of JSON
    with safetensors.safe_open(str(path), framework="pt") as handle:
        metadata = dict(handle.metadata()) | {"config": json.dumps(config)}
    _rewrite(path, metadata=metadata)
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"inv.safetensors \(the config in its metadata\): expected a JSON document of "
                                         r"at most 16,777,216 bytes"):
        Inverter.load(path, generator=gan.generator, discriminator=gan.discriminator)
    assert time.perf_counter() - start < 5
