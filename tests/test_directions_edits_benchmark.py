"""``benchmarks/directions/edits.py`` runs end to end on the bundled DCGAN: label directions from a few labelled
images, SeFa and PCA directions, their edits judged by a classifier, then the page, its JSON and its pictures, whose
figures are the record's. Tiny settings on fake Fashion-MNIST-format files (the real data set is not needed)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks.directions import classifier as clf
from benchmarks.directions import edits, estimators
from discinvert.zoo import load
from tests.test_directions_benchmark_tools import _fake_data

pytestmark = pytest.mark.filterwarnings("ignore::discinvert.DirectionRangeWarning")


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("edits")
    (tmp / "data").mkdir()
    _fake_data(tmp / "data")  # 260 train images, 40 test images
    assert clf.main(["--out", str(tmp / "classifier"), "--data-root", str(tmp / "data"), "--epochs", "4",
                     "--holdout", "60", "--channels", "4,8", "--hidden", "16"]) == 0
    edits.main(["--out", str(tmp / "out"), "--classifier", str(tmp / "classifier"), "--data-root", str(tmp / "data"),
                "--gan", "dcgan-fashion-mnist", "--n-test", "30", "--per-class", "3,6", "--amounts", "1,3",
                "--k", "2", "--samples", "64", "--pool", "200", "--selection", "60"])
    edits.main(["--out", str(tmp / "out"), "--page", str(tmp / "page.md"), "--json", str(tmp / "record.json"),
                "--pictures", str(tmp / "images"), "--looks", str(_looks(tmp))])
    return tmp


def _looks(tmp: Path) -> Path:
    path = tmp / "looks.json"
    path.write_text(json.dumps({"dcgan-fashion-mnist": {"sefa-0": "LOOKED-AT-BY-HAND"}}))
    return path


def _record(bench: Path) -> dict:
    return json.loads((bench / "record.json").read_text())["records"]["dcgan-fashion-mnist"]


def test_the_record_holds_every_measure(bench: Path) -> None:
    r = _record(bench)
    assert r["n_test"] == 30 and r["amounts"] == [1.0, 3.0] and r["inverter"] == "real-images"
    budgets = r["labels"]["budgets"]
    assert set(budgets) == {"3", "6"} and budgets["3"]["images"] == 30 and budgets["6"]["images"] == 60
    for b in budgets.values():
        assert set(b["success"]) == {"1.0", "3.0"}
        for point in b["success"].values():
            assert len(point["per_class"]) == 10 and 0 <= point["mean"] <= 1
            measured = [v for v in point["per_class"].values() if v is not None]
            assert measured and point["mean"] == pytest.approx(np.mean(measured))
        assert 0 < b["preservation"]["ssim"] <= 1 and b["preservation"]["other_classes_change"] >= 0
    curve = r["labels"]["selection_curve_largest"]
    reaching = [a for a in (1.0, 3.0) if curve[str(a)] >= 0.5]
    assert r["labels"]["headline_amount"] == (min(reaching) if reaching else 3.0)  # chosen on the train slice
    head = str(r["labels"]["headline_amount"])
    assert r["labels"]["ratio_smallest_to_largest"]["3"] == pytest.approx(
        budgets["3"]["success"][head]["mean"] / budgets["6"]["success"][head]["mean"])
    for method in ("sefa", "pca"):
        rows = r["unsupervised"][method]["directions"]
        assert list(rows) == [f"{method}-0", f"{method}-1"]
        assert all(set(v["class_kept"]) == {"0.5", "1.0"} for v in rows.values())
    assert 1 <= len(r["unsupervised"]["best_matching"]) <= 10
    assert all(m["direction"].split("-")[0] in ("sefa", "pca") for m in r["unsupervised"]["best_matching"].values())


def test_the_page_quotes_the_record_and_the_hand_written_looks(bench: Path) -> None:
    r = _record(bench)
    page = (bench / "page.md").read_text()
    assert f"`{r['command']}`" in page
    for p, b in r["labels"]["budgets"].items():
        line = next(line for line in page.splitlines() if line.startswith(f"| {p} |"))
        assert f"| {b['success']['3.0']['mean']:.3f} |" in line and f"{b['preservation']['psnr']:.2f}" in line
    sefa0 = next(line for line in page.splitlines() if line.startswith("| sefa-0 |"))
    assert sefa0.endswith("| LOOKED-AT-BY-HAND |")
    assert next(line for line in page.splitlines() if line.startswith("| pca-0 |")).endswith("|  |")


def test_the_pictures_have_a_row_per_direction(bench: Path) -> None:
    for name, rows, width in (("sefa", 2, 15), ("pca", 2, 15), ("labels", 6, 11)):
        png = (bench / "images" / f"directions-dcgan-fashion-mnist-{name}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        assert struct.unpack(">II", png[16:24]) == (width * 28 * edits.ZOOM, rows * 28 * edits.ZOOM)


def test_decoding_leaves_the_generator_as_it_was() -> None:
    """The benchmark's G calls (MemoDecode) run G in eval without grad and hand it back bit-identical."""
    G, _, _ = load("dcgan-fashion-mnist")
    G.train()
    before = {k: v.clone() for k, v in G.state_dict().items()}
    decode = edits.MemoDecode(G)
    codes = torch.randn(4, 100, 1, 1, generator=torch.Generator().manual_seed(0))
    first = decode(codes)
    assert decode(codes.clone()) is first and decode.calls == 1  # the same codes: G ran once
    assert not first.requires_grad and G.training
    assert all(torch.equal(before[k], v) for k, v in G.state_dict().items())
    assert all(p.requires_grad for p in G.parameters())


def test_the_ridge_ablation_scores_each_estimator_on_the_selection_slice_and_writes_its_page(bench: Path) -> None:
    out = bench / "estimators"
    record = estimators.main(["--out", str(out), "--classifier", str(bench / "classifier"), "--data-root",
                              str(bench / "data"), "--per-class", "3,6", "--amounts", "1,3", "--ridges", "0.01,1",
                              "--pool", "200", "--selection", "60"])
    assert set(record["rows"]) == {"logistic-0.01", "logistic-1", "mean-difference"}
    assert record["selection_images"] == 60 and record["amounts"] == [1.0, 3.0]
    for rows in record["rows"].values():
        assert set(rows) == {"3", "6"}
        assert all(0 <= v <= 1 for row in rows.values() for v in row["selection_success"].values())
    assert all(row["mean_cosine_with_library"] == pytest.approx(1.0) for row in record["rows"]["logistic-0.01"].values())
    page, copy = bench / "ridge.md", bench / "ridge.json"
    estimators.main(["--out", str(out), "--page", str(page), "--json", str(copy)])
    text = page.read_text()
    line = next(line for line in text.splitlines() if line.startswith("| logistic-1 |"))
    cells = [f"{record['rows']['logistic-1'][b]['selection_success'][a]:.3f}" for b in ("3", "6") for a in ("1.0", "3.0")]
    assert line == "| logistic-1 | " + " | ".join(cells) + " |"
    assert json.loads(copy.read_text())["records"]["dcgan-fashion-mnist"] == record
    (out / "dcgan-fashion-mnist.json").unlink()  # a checkout without runs/: the page comes from the committed JSON
    estimators.main(["--out", str(out), "--page", str(bench / "again.md"), "--json", str(copy)])
    assert (bench / "again.md").read_text().split("\n", 3)[3] == text.split("\n", 3)[3]
