"""Tests for discinvert.zoo.datasets that need no Debian package (tiny fake IDX files)."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from discinvert.zoo.datasets import (
    DEFAULT_FASHION_MNIST_ROOT,
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_ENV_VAR,
    from_model_range,
    load_fashion_mnist,
    read_idx,
    resolve_fashion_mnist_root,
    to_model_range,
)

_TYPE_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int16): 0x0B, np.dtype(np.int32): 0x0C, np.dtype(np.float32): 0x0D}


def idx_bytes(array: np.ndarray) -> bytes:
    code = _TYPE_CODES[array.dtype]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, array: np.ndarray, *, compress: bool) -> Path:
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def write_fake_split(root: Path, prefix: str, n: int, *, compress: bool = True, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=(n,), dtype=np.uint8)
    suffix = ".gz" if compress else ""
    write_idx(root / f"{prefix}-images-idx3-ubyte{suffix}", images, compress=compress)
    write_idx(root / f"{prefix}-labels-idx1-ubyte{suffix}", labels, compress=compress)
    return images, labels


@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int32, np.float32])
def test_read_idx_round_trip(tmp_path: Path, compress: bool, dtype: type) -> None:
    array = (np.arange(2 * 3 * 5) - 7).astype(dtype).reshape(2, 3, 5) if dtype != np.uint8 else (
        np.arange(30, dtype=np.uint8).reshape(2, 3, 5)
    )
    path = write_idx(tmp_path / "a.idx", array, compress=compress)
    out = read_idx(path)
    assert out.dtype == np.dtype(dtype)
    assert out.dtype.isnative
    assert out.shape == (2, 3, 5)
    np.testing.assert_array_equal(out, array)
    assert out.flags.writeable and out.flags.c_contiguous


def test_read_idx_one_dim(tmp_path: Path) -> None:
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "l", labels, compress=True)), labels)


@pytest.mark.parametrize("compress", [True, False])
def test_read_idx_truncated_payload(tmp_path: Path, compress: bool) -> None:
    data = idx_bytes(np.zeros((4, 28, 28), dtype=np.uint8))[:-10]
    path = tmp_path / "trunc.idx"
    path.write_bytes(gzip.compress(data) if compress else data)
    with pytest.raises(ValueError, match="truncated") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_read_idx_oversized_payload(tmp_path: Path) -> None:
    path = tmp_path / "big.idx"
    path.write_bytes(idx_bytes(np.zeros((2, 2), dtype=np.uint8)) + b"\x00")
    with pytest.raises(ValueError, match="oversized"):
        read_idx(path)


def test_read_idx_truncated_header(tmp_path: Path) -> None:
    path = tmp_path / "hdr.idx"
    path.write_bytes(bytes([0, 0, 8, 3]) + b"\x00\x00\x00\x02")
    with pytest.raises(ValueError, match="header"):
        read_idx(path)


def test_read_idx_truncated_gzip_stream(tmp_path: Path) -> None:
    path = tmp_path / "cut.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros((8, 28, 28), dtype=np.uint8)))[:40])
    with pytest.raises(ValueError, match="cut.gz"):
        read_idx(path)


def test_read_idx_bad_magic(tmp_path: Path) -> None:
    path = tmp_path / "bad.idx"
    path.write_bytes(b"\x12\x34\x08\x01" + struct.pack(">I", 1) + b"\x00")
    with pytest.raises(ValueError, match="magic") as info:
        read_idx(path)
    assert "bad.idx" in str(info.value)


def test_read_idx_bad_type_code(tmp_path: Path) -> None:
    path = tmp_path / "type.idx"
    path.write_bytes(bytes([0, 0, 0x42, 1]) + struct.pack(">I", 1) + b"\x00")
    with pytest.raises(ValueError, match="type code"):
        read_idx(path)


def test_read_idx_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "nope.idx")


@pytest.mark.parametrize("compress", [True, False])
def test_load_fashion_mnist_fake_root(tmp_path: Path, compress: bool) -> None:
    train_images, train_labels = write_fake_split(tmp_path, "train", 12, compress=compress, seed=1)
    test_images, test_labels = write_fake_split(tmp_path, "t10k", 5, compress=compress, seed=2)
    images, labels = load_fashion_mnist("train", root=tmp_path)
    assert images.dtype == np.uint8 and images.shape == (12, 28, 28)
    assert labels.dtype == np.int64 and labels.shape == (12,)
    np.testing.assert_array_equal(images, train_images)
    np.testing.assert_array_equal(labels, train_labels)
    images, labels = load_fashion_mnist("test", root=str(tmp_path))
    np.testing.assert_array_equal(images, test_images)
    np.testing.assert_array_equal(labels, test_labels)


def test_load_fashion_mnist_env_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_fake_split(tmp_path, "t10k", 3)
    monkeypatch.setenv(FASHION_MNIST_ENV_VAR, str(tmp_path))
    assert resolve_fashion_mnist_root() == tmp_path
    images, _ = load_fashion_mnist("test")
    assert images.shape == (3, 28, 28)
    assert resolve_fashion_mnist_root(tmp_path / "x") == tmp_path / "x"  # explicit root wins
    monkeypatch.delenv(FASHION_MNIST_ENV_VAR)
    assert resolve_fashion_mnist_root() == DEFAULT_FASHION_MNIST_ROOT == Path("/usr/share/datasets/fashion-mnist")


def test_load_fashion_mnist_missing_folder(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder"
    with pytest.raises(FileNotFoundError) as info:
        load_fashion_mnist("train", root=missing)
    message = str(info.value)
    assert str(missing) in message
    assert "apt-get install dataset-fashion-mnist" in message


def test_load_fashion_mnist_missing_split(tmp_path: Path) -> None:
    write_fake_split(tmp_path, "train", 2)
    with pytest.raises(FileNotFoundError) as info:
        load_fashion_mnist("test", root=tmp_path)
    assert str(tmp_path) in str(info.value)
    assert "apt-get install dataset-fashion-mnist" in str(info.value)


def test_load_fashion_mnist_bad_split(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="split"):
        load_fashion_mnist("validation", root=tmp_path)  # type: ignore[arg-type]


def test_load_fashion_mnist_mismatched_counts(tmp_path: Path) -> None:
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros((4, 28, 28), np.uint8), compress=True)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros((3,), np.uint8), compress=True)
    with pytest.raises(ValueError, match="expected 4 labels"):
        load_fashion_mnist("train", root=tmp_path)


def test_load_fashion_mnist_wrong_image_size(tmp_path: Path) -> None:
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros((2, 32, 32), np.uint8), compress=True)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros((2,), np.uint8), compress=True)
    with pytest.raises(ValueError, match=r"\(N, 28, 28\)"):
        load_fashion_mnist("train", root=tmp_path)


def test_classes() -> None:
    assert len(FASHION_MNIST_CLASSES) == 10
    assert FASHION_MNIST_CLASSES[0] == "T-shirt/top" and FASHION_MNIST_CLASSES[9] == "Ankle boot"


def test_model_range_round_trip_all_values() -> None:
    images = np.arange(256, dtype=np.uint8).reshape(1, 16, 16).repeat(3, axis=0)
    tensor = to_model_range(images)
    assert tensor.dtype == torch.float32 and tensor.shape == (3, 1, 16, 16)
    assert float(tensor.min()) == -1.0 and float(tensor.max()) == 1.0
    back = from_model_range(tensor)
    assert back.dtype == np.uint8 and back.shape == (3, 16, 16)
    np.testing.assert_array_equal(back, images)
    # (N, 1, H, W) uint8 tensors are accepted as well.
    np.testing.assert_array_equal(from_model_range(to_model_range(torch.from_numpy(images[:, None]))), images)


def test_to_model_range_values_and_errors() -> None:
    tensor = to_model_range(np.array([[[0, 255]]], dtype=np.uint8))
    torch.testing.assert_close(tensor, torch.tensor([[[[-1.0, 1.0]]]]))
    with pytest.raises(ValueError, match="uint8"):
        to_model_range(np.zeros((1, 28, 28), dtype=np.float32))
    with pytest.raises(ValueError, match="shape"):
        to_model_range(np.zeros((1, 3, 28, 28), dtype=np.uint8))
    with pytest.raises(ValueError, match="shape"):
        to_model_range(np.zeros((28, 28), dtype=np.uint8))


def test_from_model_range_clamps_and_rejects() -> None:
    out = from_model_range(torch.tensor([[[[-3.0, 0.0, 5.0]]]]))
    np.testing.assert_array_equal(out, np.array([[[0, 128, 255]]], dtype=np.uint8))
    with pytest.raises(ValueError, match="finite"):
        from_model_range(torch.tensor([[[float("nan")]]]))
    with pytest.raises(ValueError, match="floating"):
        from_model_range(torch.zeros(1, 1, 2, 2, dtype=torch.uint8))
    with pytest.raises(ValueError, match="shape"):
        from_model_range(torch.zeros(1, 3, 2, 2))


def test_from_model_range_rounds_as_it_always_did_through_the_one_conversion() -> None:
    """from_model_range now goes through discinvert.pixels.model_to_uint8: still round((x + 1) * 127.5) in float32,
    to the bit, at every half-way point and around it."""
    from discinvert.pixels import model_to_uint8

    halves = ((torch.arange(256, dtype=torch.float64) + 0.5) / 127.5 - 1.0).float()
    bits = halves.view(torch.int32)[:, None] + torch.arange(-200, 201, dtype=torch.int32)[None]
    near = bits.view(torch.float32).reshape(-1)
    near = near[torch.isfinite(near)]  # 0.0's neighbours below are NaN bit patterns
    x = torch.cat([near, torch.rand(100_000) * 2.4 - 1.2]).reshape(-1, 1, 1, 1)
    expected = torch.round((x[:, 0] + 1.0) * 127.5).clamp_(0.0, 255.0).to(torch.uint8).numpy()
    np.testing.assert_array_equal(from_model_range(x), expected)
    np.testing.assert_array_equal(model_to_uint8(x, (-1.0, 1.0))[:, 0], expected)
    with np.errstate(all="raise"):  # huge values clip to 255 without a warning, as torch did
        np.testing.assert_array_equal(from_model_range(torch.tensor([[[3e38, -3e38]]])), [[[255, 0]]])


def test_read_idx_lives_with_image_reading_and_keeps_its_name_here() -> None:
    import discinvert.pixels

    assert read_idx is discinvert.pixels.read_idx


def test_the_pixel_conversions_are_each_other_s_inverses() -> None:
    from discinvert.pixels import model_to_uint8, model_to_unit, uint8_to_unit, unit_to_model, unit_to_uint8

    u8 = np.arange(256, dtype=np.uint8).reshape(1, 1, 16, 16)
    unit = uint8_to_unit(u8)
    assert unit.dtype == np.float32 and unit.min() == 0.0 and unit.max() == 1.0
    np.testing.assert_array_equal(unit_to_uint8(unit), u8)  # exact: float64 products
    for value_range in ((-1.0, 1.0), (0.0, 1.0), (-0.5, 3.0)):
        model = unit_to_model(unit, value_range)
        assert model.dtype == np.float32 and model.shape == u8.shape
        np.testing.assert_allclose(model_to_unit(torch.from_numpy(model), value_range), unit, atol=1e-6)
        np.testing.assert_array_equal(model_to_uint8(model, value_range), u8)
    assert model_to_unit(np.float32([[-5.0, 5.0]]), (-1.0, 1.0)).tolist() == [[0.0, 1.0]]  # clipped
    assert unit_to_uint8(np.float32([-0.5, 0.5, 2.0])).tolist() == [0, 128, 255]  # half to even, clipped


def test_the_image_module_is_core() -> None:
    """discinvert.pixels reads and converts images for the command line, the page and the zoo, and imports none."""
    import ast
    import discinvert.pixels

    tree = ast.parse(Path(discinvert.pixels.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert not {m for m in imported if m.startswith("discinvert")}, imported
