"""A zoo entry's test images: its own file, or a strict pointer to the entry beside it (issue 34: the StyleGAN2
entry ships the DCGAN entry's 1,000 test images once); the StyleGAN2 build tool's writer; the entries' sizes
(tools/zoo_sizes.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from discinvert import zoo
from discinvert.zoo.datasets import to_model_range
from discinvert.zoo.test_images import POINTER, STORED, images_file, pointer_record, read_test_images

SG2, DCGAN = "stylegan2-fashion-mnist", "dcgan-fashion-mnist"


def _store(folder: Path, images: np.ndarray, labels: np.ndarray, **metadata: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    save_file({"images": torch.from_numpy(images), "labels": torch.from_numpy(labels),
               "indices": torch.arange(len(labels), dtype=torch.int64)}, str(folder / STORED), metadata=metadata)


@pytest.fixture()
def pair(tmp_path) -> dict:
    """``zoo/a`` stores 3 images of 4x4 (no pad record); ``zoo/b`` points to them with pad 1."""
    rng = np.random.default_rng(0)
    images = rng.integers(1, 256, size=(3, 4, 4), dtype=np.uint8)
    labels = np.array([2, 0, 9], dtype=np.int64)
    _store(tmp_path / "zoo" / "a", images, labels)
    b = tmp_path / "zoo" / "b"
    b.mkdir()
    record = pointer_record(tmp_path / "zoo" / "a", pad=1)
    (b / POINTER).write_text(json.dumps(record))
    return {"a": tmp_path / "zoo" / "a", "b": b, "images": images, "labels": labels, "record": record}


def _point(pair: dict, **change) -> None:
    (pair["b"] / POINTER).write_text(json.dumps({**pair["record"], **change}))


# ----------------------------------------------------------------------------------------------- the bundled entries
def test_the_stylegan2_entry_reads_the_dcgan_entry_s_images_padded_by_2() -> None:
    assert not (zoo.path(SG2) / STORED).exists() and (zoo.path(DCGAN) / STORED).is_file()
    assert json.loads((zoo.path(SG2) / POINTER).read_text()) == pointer_record(zoo.path(DCGAN), pad=2)
    assert images_file(zoo.path(SG2)) == zoo.path(DCGAN) / STORED
    images, labels = zoo.load_test_images(SG2)
    dc_images, dc_labels = zoo.load_test_images(DCGAN)
    assert images.dtype == np.uint8 and images.shape == (1000, 32, 32) and dc_images.shape == (1000, 28, 28)
    assert labels.dtype == np.int64 and labels.shape == (1000,) and np.bincount(labels).tolist() == [100] * 10
    assert np.array_equal(images[:, 2:-2, 2:-2], dc_images) and np.array_equal(labels, dc_labels)
    assert not images[:, :2].any() and not images[:, -2:].any() and not images[:, :, :2].any() and not images[:, :, -2:].any()


def test_the_entry_sizes_count_own_files_and_name_the_shared_one() -> None:
    from tools.zoo_sizes import entry_sizes, main

    sizes = main([SG2])[SG2]
    assert sizes == entry_sizes(zoo.path(SG2))
    assert POINTER in sizes["files"] and STORED not in sizes["files"]
    assert sizes["total_bytes"] == sum(p.stat().st_size for p in zoo.path(SG2).rglob("*") if p.is_file())
    assert sizes["shared"] == {"file": f"{DCGAN}/{STORED}", "bytes": (zoo.path(DCGAN) / STORED).stat().st_size}
    assert entry_sizes(zoo.path(DCGAN))["shared"] is None  # docs/results.md quotes the total: tests/test_docs.py


# ----------------------------------------------------------------------------------------------- the pointer
def test_a_pointer_reads_the_other_entry_s_file_with_its_own_pad(pair) -> None:
    images, labels = read_test_images(pair["b"])
    assert images.dtype == np.uint8 and images.shape == (3, 6, 6) and labels.dtype == np.int64
    assert np.array_equal(images[:, 1:-1, 1:-1], pair["images"]) and np.array_equal(labels, pair["labels"])
    assert not images[:, 0].any() and not images[:, -1].any() and not images[:, :, 0].any() and not images[:, :, -1].any()
    assert images_file(pair["b"]) == pair["a"] / STORED
    _point(pair, pad=0)  # the pointer's pad replaces the file's: none
    assert np.array_equal(read_test_images(pair["b"])[0], pair["images"])


@pytest.mark.parametrize(("change", "message"), [
    ({"note": "x"}, r"expected exactly the keys \['same_as', 'pad', 'sha256'\], got \['note', 'pad', 'same_as', 'sha256'\]"),
    ({"same_as": "../a"}, r"expected 'same_as' to name another zoo entry beside this one .*got '../a'"),
    ({"same_as": "b"}, r"expected 'same_as' to name another zoo entry beside this one .*got 'b'"),
    ({"same_as": 3}, r"expected 'same_as' to name another zoo entry .*got 3"),
    ({"pad": -1}, r"expected 'pad' to be an integer >= 0, got -1"),
    ({"pad": "2"}, r"expected 'pad' to be an integer >= 0, got '2'"),
    ({"pad": True}, r"expected 'pad' to be an integer >= 0, got True"),
    ({"pad": 1.0}, r"expected 'pad' to be an integer >= 0, got 1.0"),
    ({"sha256": "ABC"}, r"expected 'sha256' to be 64 lower-case hex digits, got 'ABC'"),
    ({"sha256": "0" * 64}, r"expected .*a[/\\]test_images.safetensors to have the sha256 0{64}, got [0-9a-f]{64}: that "
                           r"entry's test images changed"),
    ({"same_as": "c"}, r"expected the file .*c[/\\]test_images.safetensors it points to, found none\."),
])
def test_a_bad_pointer_is_refused_with_what_was_expected_and_what_came(pair, change, message) -> None:
    _point(pair, **change)
    for read in (read_test_images, images_file):
        with pytest.raises(ValueError, match=message):
            read(pair["b"])


def test_a_pointer_missing_a_key_or_not_an_object_or_not_json_is_refused(pair) -> None:
    (pair["b"] / POINTER).write_text(json.dumps({"same_as": "a", "pad": 1}))
    with pytest.raises(ValueError, match=r"expected exactly the keys \['same_as', 'pad', 'sha256'\], got \['pad', 'same_as'\]"):
        read_test_images(pair["b"])
    (pair["b"] / POINTER).write_text(json.dumps(["a", 1]))
    with pytest.raises(ValueError, match=r"expected exactly the keys .*, got list"):
        read_test_images(pair["b"])
    (pair["b"] / POINTER).write_text("{same_as: a}")
    with pytest.raises(ValueError, match=r"expected a JSON object .*got unreadable JSON"):
        read_test_images(pair["b"])


def test_a_pointer_to_a_pointer_is_refused(pair, tmp_path) -> None:
    c = tmp_path / "zoo" / "c"
    c.mkdir()
    (c / POINTER).write_text(json.dumps({**pair["record"], "same_as": "b"}))
    with pytest.raises(ValueError, match=r"expected the file .*b[/\\]test_images.safetensors it points to, found none "
                                         r"\(a pointer again: pointers are followed once\)"):
        read_test_images(c)


def test_the_referenced_file_changing_after_the_pointer_is_refused(pair) -> None:
    _store(pair["a"], pair["images"][::-1].copy(), pair["labels"])
    with pytest.raises(ValueError, match="that entry's test images changed; write the pointer again"):
        read_test_images(pair["b"])


def test_both_files_or_neither_are_refused(pair) -> None:
    _store(pair["b"], pair["images"], pair["labels"])
    with pytest.raises(ValueError, match=r"expected one of test_images.safetensors and test_images.json, got both"):
        read_test_images(pair["b"])
    (pair["b"] / STORED).unlink()
    (pair["b"] / POINTER).unlink()
    with pytest.raises(FileNotFoundError, match=r"expected test_images.safetensors or test_images.json, found neither"):
        read_test_images(pair["b"])


def test_a_pointer_record_needs_a_stored_file_and_a_good_pad(pair) -> None:
    assert pair["record"]["same_as"] == "a" and pair["record"]["pad"] == 1 and re.fullmatch("[0-9a-f]{64}", pair["record"]["sha256"])
    with pytest.raises(ValueError, match=r"expected a zoo entry folder with its own test_images.safetensors to point to"):
        pointer_record(pair["b"], pad=1)
    with pytest.raises(ValueError, match=r"pad: expected an integer >= 0, got -2"):
        pointer_record(pair["a"], pad=-2)


def test_a_bad_pad_record_of_a_stored_file_is_refused(tmp_path) -> None:
    images, labels = np.zeros((2, 28, 28), dtype=np.uint8), np.zeros(2, dtype=np.int64)
    _store(tmp_path, images, labels, pad="-2")
    with pytest.raises(ValueError, match=r"expected the metadata 'pad' to be a non-negative integer, got '-2'"):
        read_test_images(tmp_path)
    _store(tmp_path, images, labels, pad="2")
    padded, read_labels = read_test_images(tmp_path)
    assert padded.shape == (2, 32, 32) and padded.dtype == np.uint8 and read_labels.shape == (2,)


# ----------------------------------------------------------------------------------------------- the build tool
@pytest.fixture()
def fake_test_split(monkeypatch) -> tuple[np.ndarray, np.ndarray]:
    """30 random 28x28 images, three of each class in a shuffled order, as the build tool's test split."""
    from tools import build_zoo_stylegan2

    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(30, 28, 28), dtype=np.uint8)
    labels = rng.permutation(np.repeat(np.arange(10), 3)).astype(np.uint8)
    monkeypatch.setattr(build_zoo_stylegan2, "load_fashion_mnist",
                        lambda split, root=None: (images, labels) if split == "test" else pytest.fail(split))
    return images, labels


def test_the_builder_writes_a_pointer_where_the_entry_beside_stores_the_same_images(fake_test_split, tmp_path) -> None:
    from tools.build_zoo_stylegan2 import PAD, write_test_images

    images, labels = fake_test_split
    chosen = np.sort(np.concatenate([np.flatnonzero(labels == k)[:2] for k in range(10)]))
    dcgan = tmp_path / "zoo" / "dcgan"  # stores the same images as the DCGAN builder does: no pad record
    dcgan.mkdir(parents=True)
    save_file({"images": torch.from_numpy(images[chosen]), "labels": torch.from_numpy(labels[chosen].astype(np.int64)),
               "indices": torch.from_numpy(chosen.astype(np.int64))}, str(dcgan / STORED), metadata={"source": "x"})
    out = tmp_path / "zoo" / "sg2"
    out.mkdir()
    x = write_test_images(out, per_class=2, data_root=None, command="c", share_from=dcgan)
    assert sorted(p.name for p in out.iterdir()) == [POINTER]
    assert json.loads((out / POINTER).read_text()) == pointer_record(dcgan, pad=PAD)
    read, read_labels = read_test_images(out)
    assert read.shape == (20, 32, 32) and np.array_equal(read[:, PAD:-PAD, PAD:-PAD], images[chosen])
    assert np.array_equal(read_labels, labels[chosen]) and read_labels.dtype == np.int64
    assert torch.equal(x, to_model_range(read)) and x.shape == (20, 1, 32, 32)


@pytest.mark.parametrize("other", ["more images", "other indices", "none"])
def test_the_builder_stores_the_file_where_the_entry_beside_differs_or_is_absent(fake_test_split, tmp_path, other) -> None:
    from tools.build_zoo_stylegan2 import PAD, write_test_images

    images, labels = fake_test_split
    dcgan = tmp_path / "zoo" / "dcgan"
    dcgan.mkdir(parents=True)
    if other != "none":
        per_class = 3 if other == "more images" else 2
        chosen = np.sort(np.concatenate([np.flatnonzero(labels == k)[:per_class] for k in range(10)]))
        indices = chosen + (1 if other == "other indices" else 0)
        save_file({"images": torch.from_numpy(images[chosen]), "labels": torch.from_numpy(labels[chosen].astype(np.int64)),
                   "indices": torch.from_numpy(indices.astype(np.int64))}, str(dcgan / STORED))
    out = tmp_path / "zoo" / "sg2"
    out.mkdir()
    x = write_test_images(out, per_class=2, data_root=None, command="the command", share_from=dcgan)
    assert sorted(p.name for p in out.iterdir()) == [STORED]
    from safetensors import safe_open

    with safe_open(str(out / STORED), framework="np") as handle:
        assert handle.metadata()["pad"] == str(PAD) and handle.metadata()["command"] == "the command"
        assert sorted(handle.keys()) == ["images", "indices", "labels"] and handle.get_tensor("images").shape == (20, 28, 28)
    read, _ = read_test_images(out)
    assert torch.equal(x, to_model_range(read)) and read.shape == (20, 32, 32)
