"""Issue 36's measurement tools: the benchmark classifier (``benchmarks/directions/classifier.py``) trains, saves,
loads and predicts (on fake Fashion-MNIST-format files), and each edit metric (``benchmarks/directions/metrics.py``)
gives the value worked out by hand for a linear decoder and a classifier whose answers the test sets."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.directions import classifier as clf
from benchmarks.directions.metrics import Match, best_matching, class_kept, edit_success, preservation
from tests.conftest import write_idx_gz


# --------------------------------------------------------------------------- the classifier
def _fake_data(root: Path) -> None:
    """Learnable fake Fashion-MNIST: class k is a bright band on rows 2k+4..2k+6 over noise."""
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 260), ("t10k", 40)):
        labels = rng.integers(0, 10, (n,), dtype=np.uint8)
        images = rng.integers(0, 60, (n, 28, 28), dtype=np.uint8)
        for i, label in enumerate(labels):
            images[i, 2 * label + 4: 2 * label + 7] = 230
        write_idx_gz(root / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx_gz(root / f"{prefix}-labels-idx1-ubyte.gz", labels)


TINY = ["--epochs", "4", "--threads", "1", "--holdout", "60", "--batch-size", "16", "--channels", "4,8",
        "--hidden", "16", "--lr", "5e-3"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("classifier")
    (tmp / "data").mkdir()
    _fake_data(tmp / "data")
    assert clf.main(["--out", str(tmp / "out"), "--data-root", str(tmp / "data"), *TINY]) == 0
    return tmp / "out"


def test_the_script_writes_the_weights_and_a_record_with_its_command(trained: Path) -> None:
    record = json.loads((trained / clf.RECORD_FILE).read_text())
    assert record["command"].startswith("python -m benchmarks.directions.classifier --out ")
    assert record["train_images"] == 200 and record["heldout_images"] == 60 and record["test_images"] == 40
    assert len(record["heldout_accuracy_by_epoch"]) == 4 and record["heldout_accuracy"] == record[
        "heldout_accuracy_by_epoch"][-1]
    assert record["heldout_accuracy"] >= 0.8  # the bands are easy; chance is 0.1
    assert 0 <= record["test_accuracy_reported_only"] <= 1 and record["seconds"] > 0
    assert record["channels"] == [4, 8] and record["hidden"] == 16 and record["threads"] == 1
    weights = safetensors.torch.load_file(str(trained / clf.CLASSIFIER_FILE))
    assert weights["conv1.weight"].shape == (4, 1, 3, 3) and weights["fc2.weight"].shape == (10, 16)


def test_training_is_seeded(trained: Path, tmp_path: Path) -> None:
    data = trained.parent / "data"
    clf.main(["--out", str(tmp_path), "--data-root", str(data), *TINY])
    first = safetensors.torch.load_file(str(trained / clf.CLASSIFIER_FILE))
    again = safetensors.torch.load_file(str(tmp_path / clf.CLASSIFIER_FILE))
    assert all(torch.equal(first[k], again[k]) for k in first)


def test_loaded_classifier_predicts_probabilities_and_crops_32x32(trained: Path) -> None:
    model = clf.load_classifier(trained)
    assert isinstance(model, clf.FashionClassifier) and not model.training
    assert model.config == clf.ClassifierConfig(channels=(4, 8), hidden=16)
    images = torch.rand(7, 1, 28, 28) * 2 - 1
    probs = clf.predict_proba(model, images, batch_size=3)
    assert probs.shape == (7, 10) and torch.allclose(probs.sum(1), torch.ones(7), atol=1e-6)
    assert torch.allclose(probs, clf.predict_proba(model, images, batch_size=500), atol=1e-6)
    padded = F.pad(images, (2, 2, 2, 2), value=-1.0)
    assert torch.allclose(clf.predict_proba(model, padded), probs, atol=1e-6)
    assert torch.equal(clf.crop_to_28(padded), images)
    with pytest.raises(ValueError, match=r"expected \(N, 1, 28, 28\) or \(N, 1, 32, 32\).*got shape \(2, 1, 30, 30\)"):
        clf.predict_proba(model, torch.zeros(2, 1, 30, 30))
    model.train()
    clf.predict_proba(model, images)
    assert model.training  # the model's mode comes back as it was


def test_loading_is_strict_and_says_what_is_missing(trained: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no classifier here"):
        clf.load_classifier(tmp_path)
    weights = safetensors.torch.load_file(str(trained / clf.CLASSIFIER_FILE))
    safetensors.torch.save_file(weights, str(tmp_path / clf.CLASSIFIER_FILE), metadata={"format": "other"})
    with pytest.raises(ValueError, match="expected format"):
        clf.load_classifier(tmp_path)
    metadata = {"format": clf.FORMAT, "channels": "4,8", "hidden": "16"}
    del weights["fc2.bias"]
    safetensors.torch.save_file(weights, str(tmp_path / clf.CLASSIFIER_FILE), metadata=metadata)
    with pytest.raises(RuntimeError, match="fc2.bias"):
        clf.load_classifier(tmp_path)


# --------------------------------------------------------------------------- the metrics
def decode(codes: torch.Tensor) -> torch.Tensor:
    """Codes ``(N, 2)`` → images ``(N, 1, 28, 28)``: the top half is ``code[0] / 10``, the bottom ``code[1] / 10``."""
    images = torch.empty(len(codes), 1, 28, 28)
    images[:, :, :14] = (codes[:, 0] / 10).view(-1, 1, 1, 1)
    images[:, :, 14:] = (codes[:, 1] / 10).view(-1, 1, 1, 1)
    return images


class Stub(nn.Module):
    """The class is ``floor(10 * top half's mean)`` with probability 0.5; class ``(k + 5) % 10`` gets
    ``q = bottom half's mean`` (clamped to [0, 0.4]), the other eight ``(0.5 - q) / 8`` each."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        top = images[:, 0, :14].mean((1, 2)).double()
        q = images[:, 0, 14:].mean((1, 2)).double().clamp(0, 0.4)
        k = torch.floor(top * 10).long().clamp(0, 9)
        rows = torch.arange(len(images))
        probs = ((0.5 - q) / 8).unsqueeze(1).repeat(1, 10)
        probs[rows, k] = 0.5
        probs[rows, (k + 5) % 10] = q
        return probs.log().float()


def codes_of(*tops: float, bottom: float = 1.0) -> torch.Tensor:
    return torch.tensor([[top, bottom] for top in tops])


UP = torch.tensor([1.0, 0.0])  # moves the class up by one per unit amount
STYLE = torch.tensor([0.0, 1.0])  # moves q only


def test_edit_success_counts_only_images_not_already_in_the_target() -> None:
    stub = Stub()
    assert edit_success(stub, decode, codes_of(2.5, 2.5, 2.5, 3.5), UP, target_class=3, amount=1) == 1.0
    assert edit_success(stub, decode, codes_of(2.5, 2.5, 2.5, 3.5), UP, target_class=3, amount=-1) == 0.0
    mixed = codes_of(0.5, 1.5, 2.5, 3.5)  # classes 0, 1, 2, 3: of the three others, only 2 reaches 3
    assert edit_success(stub, decode, mixed, UP, target_class=3, amount=1) == pytest.approx(1 / 3)
    assert edit_success(stub, decode, mixed, UP, target_class=3, amount=1, batch_size=1) == pytest.approx(1 / 3)
    assert edit_success(stub, decode, codes_of(0.5, 4.5, 6.5), 2 * UP, target_class=6, amount=1) == 0.5
    with pytest.raises(ValueError, match="already predicted as class 3"):
        edit_success(stub, decode, codes_of(3.5, 3.2), UP, target_class=3, amount=1)
    with pytest.raises(ValueError, match=r"target_class: expected a class in \[0, 9\], got 10"):
        edit_success(stub, decode, codes_of(3.5), UP, target_class=10, amount=1)


def test_class_kept_is_the_fraction_whose_class_stays() -> None:
    stub = Stub()
    assert class_kept(stub, decode, codes_of(0.5, 2.5, 7.5), STYLE, amount=2) == 1.0
    assert class_kept(stub, decode, codes_of(0.5, 2.5, 7.5), UP, amount=1) == 0.0
    assert class_kept(stub, decode, codes_of(0.5, 0.7), UP, amount=0.4) == 0.5
    assert class_kept(stub, decode, codes_of(0.5, 0.7), UP, amount=0.0) == 1.0


def test_preservation_gives_psnr_ssim_and_the_other_classes_change() -> None:
    stub = Stub()
    codes = codes_of(2.5, 2.5)
    # The bottom half moves from 0.1 to 0.3: 0.1 in [0, 1] on half the pixels, MSE 0.005, PSNR 10 log10(200).
    # q goes 0.1 -> 0.3 (class 7 moves 0.2); the eight others go 0.05 -> 0.025.
    kept = preservation(stub, decode, codes, STYLE, amount=2)
    assert kept["psnr"] == pytest.approx(10 * math.log10(200), abs=1e-3)
    assert 0 < kept["ssim"] < 1 and kept["images"] == 2
    assert kept["other_classes_change"] == pytest.approx((0.2 + 8 * 0.025) / 9, abs=1e-6)  # all but the source, 2
    aimed = preservation(stub, decode, codes, STYLE, amount=2, target_class=7)
    assert aimed["other_classes_change"] == pytest.approx(0.025, abs=1e-6)  # neither 2 nor 7
    still = preservation(stub, decode, codes, STYLE, amount=0)
    assert still["psnr"] == math.inf and still["ssim"] == pytest.approx(1.0) and still["other_classes_change"] == 0


def test_best_matching_picks_the_direction_and_the_sign() -> None:
    stub = Stub()
    codes = codes_of(4.7, 4.7, 4.7, 6.7)
    directions = {"style": STYLE, "half": 0.5 * UP, "double": 2 * UP}
    # To class 3: "half" at -2 moves 4.7 to 3.7 (three of four), at -1 to 4.2; "double" at -1 or -2 reaches 2.7, 0.7.
    assert best_matching(stub, decode, codes, directions, amounts=[1, 2], target_class=3) == Match("half", -2.0, 0.75)
    # To class 6: "half" at +2 moves 4.7 to 5.7, "double" at +1 to 6.7: all three of the other class.
    assert best_matching(stub, decode, codes, directions, amounts=[1, 2], target_class=6) == Match("double", 1.0, 1.0)
    # Ties go to the first direction listed, then the first amount, the positive sign first.
    twins = {"first": UP, "second": UP.clone()}
    assert best_matching(stub, decode, codes, twins, amounts=[2, 2, -2], target_class=6) == Match("first", 2.0, 1.0)
    with pytest.raises(ValueError, match="at least one named direction"):
        best_matching(stub, decode, codes, {}, amounts=[1], target_class=3)
    with pytest.raises(ValueError, match="at least one amount"):
        best_matching(stub, decode, codes, directions, amounts=[], target_class=3)


def test_a_direction_of_the_wrong_shape_is_refused_with_both_shapes() -> None:
    stub = Stub()
    codes = codes_of(2.5, 3.5)
    bad = torch.zeros(3)
    expected = r"expected shape \(2,\) \(the codes' latent shape\), got \(3,\)"
    for call in (lambda: edit_success(stub, decode, codes, bad, target_class=3, amount=1),
                 lambda: class_kept(stub, decode, codes, bad, amount=1),
                 lambda: preservation(stub, decode, codes, bad, amount=1)):
        with pytest.raises(ValueError, match=expected):
            call()
    with pytest.raises(ValueError, match=r"direction 'bad': " + expected):
        best_matching(stub, decode, codes, {"good": UP, "bad": bad}, amounts=[1], target_class=3)
    with pytest.raises(ValueError, match=r"decode: expected images \(2, 1, H, W\)"):
        class_kept(stub, lambda z: decode(z)[:, 0], codes, UP, amount=1)
