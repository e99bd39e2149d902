"""The zoo entries' shipped label directions (``discinvert/zoo/<name>/directions/labels.safetensors``), the tool that
makes them (``tools/build_zoo_directions.py``), and ``discinvert serve`` using them instead of learning at start."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch

from discinvert import zoo
from discinvert.cli import commands
from discinvert.cli.progress import Progress
from discinvert.directions import DirectionSet
from discinvert.web import sources
from tests.conftest import write_idx_gz
from tools import build_zoo_directions

ENTRIES = zoo.available()


@pytest.fixture(scope="module")
def loaded() -> dict[str, tuple[torch.nn.Module, object]]:
    """Each entry's G and default inverter."""
    out = {}
    for entry in ENTRIES:
        G, _, inverter = zoo.load(entry, inverter=zoo.default_inverter(entry))
        out[entry] = (G, inverter)
    return out


@pytest.mark.parametrize("entry", ENTRIES)
def test_each_entry_ships_one_label_direction_per_class_made_by_the_tool(entry: str, loaded) -> None:
    G, _ = loaded[entry]
    ds = zoo.load_directions(entry, generator=G)
    assert isinstance(ds, DirectionSet)
    assert ds.names == zoo.label_names(entry) and ds.method == "labels"
    assert ds.info["command"].startswith(f"python -m tools.build_zoo_directions --name {entry}")
    assert "train split" in ds.info["images"] and ds.info["inverter"] == zoo.default_inverter(entry)
    accuracy = [ds.info["per_direction"][n]["holdout_balanced_accuracy"] for n in ds.names]
    assert all(a > 0.75 for a in accuracy), accuracy  # each class separable from the rest in the entry's codes
    assert ds.space == {"dcgan-fashion-mnist": "z", "stylegan2-fashion-mnist": "w+"}[entry]


def test_an_entrys_directions_are_refused_for_the_other_entrys_g(loaded) -> None:
    (first, (g_first, _)), (second, (g_second, _)) = list(loaded.items())[:2]
    with pytest.raises(ValueError, match="made for"):
        zoo.load_directions(first, generator=g_second)
    with pytest.raises(ValueError, match="made for"):
        zoo.load_directions(second, generator=g_first)


def test_labelled_images_are_the_first_per_class_before_the_held_out_tail() -> None:
    labels = np.array([0, 1, 0, 1, 0, 1, 0, 1] * 3 + [0, 1] * 500)  # the last 1,000 are the held-out tail
    idx = build_zoo_directions.labelled_images(labels, 3)
    np.testing.assert_array_equal(idx, [0, 1, 2, 3, 4, 5])
    assert idx.max() < len(labels) - build_zoo_directions.HELD_OUT
    with pytest.raises(ValueError, match="class 0: expected 13 train images, found 12"):
        build_zoo_directions.labelled_images(labels, 13)


def test_the_tool_writes_a_set_learned_from_train_images(tmp_path: Path, loaded,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """Fake Fashion-MNIST-format files: class k is a bright band on rows 2k+4..2k+6; 1,100 train images."""
    rng = np.random.default_rng(0)
    n = 1100
    labels = np.tile(np.arange(10, dtype=np.uint8), n // 10)
    images = rng.integers(0, 60, (n, 28, 28), dtype=np.uint8)
    for i, label in enumerate(labels):
        images[i, 2 * label + 4: 2 * label + 7] = 230
    write_idx_gz(tmp_path / "train-images-idx3-ubyte.gz", images)
    write_idx_gz(tmp_path / "train-labels-idx1-ubyte.gz", labels)
    out = tmp_path / "labels.safetensors"
    entry = "dcgan-fashion-mnist"
    build_zoo_directions.main(["--name", entry, "--per-class", "8", "--data-root", str(tmp_path), "--out", str(out)])
    assert capsys.readouterr().out.startswith(f"python -m tools.build_zoo_directions --name {entry} --per-class 8")
    G, inverter = loaded[entry]
    ds = DirectionSet.load(out, generator=G)
    assert ds.names == zoo.label_names(entry)
    assert ds.info["images"].startswith("the first 8 of each class among the Fashion-MNIST train split's first 100 ")
    assert all((ds.info["per_direction"][name]["positives"], ds.info["per_direction"][name]["negatives"]) == (8, 72)
               for name in ds.names)  # 8 of each class: each class against the other nine


class _Recorder(Progress):
    def __init__(self) -> None:
        super().__init__("serve", stream=io.StringIO())

    @property
    def said(self) -> str:
        return self._stream.getvalue()


@pytest.mark.parametrize("entry", ENTRIES)
def test_serve_takes_the_shipped_directions_without_learning(entry: str, loaded, monkeypatch) -> None:
    _, inverter = loaded[entry]
    monkeypatch.setattr("discinvert.directions.learn_directions",
                        lambda *a, **k: pytest.fail("learned although the entry ships its directions"))
    progress = _Recorder()
    _, images, labels, names = sources.zoo_examples(entry, inverter)
    got = commands._zoo_label_directions(entry, inverter, (images, labels, names), progress)
    shipped = zoo.load_directions(entry)
    assert torch.equal(got.directions, shipped.directions) and got.names == shipped.names
    assert "as the entry ships them" in progress.said


def test_serve_learns_the_sliders_when_the_shipped_ones_do_not_fit_g(monkeypatch) -> None:
    """The StyleGAN2 entry's set is in W+; for a G in another space (here a plain G in Z; ``--latent-space w`` on the
    page) the sliders are learned from the test pictures, as before sets were shipped."""
    learned = object()
    calls = []
    monkeypatch.setattr("discinvert.directions.learn_directions", lambda *a, **k: calls.append(k) or learned)

    class _OtherG:
        generator = torch.nn.Linear(1, 1)  # a plain G in Z: not the entry's W+ G

    progress = _Recorder()
    got = commands._zoo_label_directions("stylegan2-fashion-mnist", _OtherG(),
                                         (torch.zeros(2, 1, 32, 32), np.array([0, 1]), ("a", "b")), progress)
    assert got is learned and calls == [{"names": ("a", "b"), "seed": 0}]
    assert "shipped directions could not be used" in progress.said and "made for latent space 'w+'" in progress.said
