"""The bundled zoo loads offline and encodes real images; the demo runs end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from discinvert import Inverter, zoo
from discinvert.cli import main
from discinvert.cli.demo_picture import START_COLOUR, EditBlock, EditPanel, Row, draw_picture
from discinvert.zoo.datasets import to_model_range
from discinvert.metrics import image_quality

ENTRY = "dcgan-fashion-mnist"


def test_zoo_lists_and_loads_and_encodes() -> None:
    assert ENTRY in zoo.available()
    G, D, inverter = zoo.load(ENTRY)
    images, labels = zoo.load_test_images(ENTRY)
    assert images.shape == (1000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [100] * 10
    x = to_model_range(images[:64])
    codes = inverter.encode(x)
    assert codes.shape == (64, 100, 1, 1)
    psnr, ssim = image_quality(x, inverter.reconstruct(x))
    # The model card reports 17.19 dB on all 1,000; a working inverter is far above chance (~8 dB for z = 0).
    assert psnr.mean() > 15.0 and ssim.mean() > 0.55
    assert inverter.check_fingerprints()


def test_zoo_inverter_is_a_hub_layout() -> None:
    folder = zoo.path(ENTRY) / "inverter"
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    card = (folder / "README.md").read_text()
    assert "library_name: discinvert" in card and "PSNR" in card
    G, D, _ = zoo.load(ENTRY)
    assert isinstance(Inverter.from_pretrained(folder, generator=G, discriminator=D), Inverter)


def test_zoo_bundles_a_real_image_stage_inverter_that_reconstructs_better() -> None:
    assert zoo.inverters(ENTRY) == ["paper", "real-images"]
    G, D, paper = zoo.load(ENTRY)
    _, _, real = zoo.load(ENTRY, inverter="real-images")
    assert real.check_fingerprints() and "real_images" in real.config.fit
    assert real.iterations == 2 and real.config.fit["iterative"]["trained_on"] == "self-generated pairs and images"
    x = to_model_range(zoo.load_test_images(ENTRY)[0][::10])  # 100 images, 10 of each class
    paper_psnr = image_quality(x, paper.reconstruct(x))[0].mean()
    real_psnr = image_quality(x, real.reconstruct(x))[0].mean()
    assert real_psnr > paper_psnr + 1.0, (paper_psnr, real_psnr)
    card = (zoo.path(ENTRY) / "inverter-real-images" / "README.md").read_text()
    assert "Then the real-image stage" in card and "step network(s) of iterative refinement" in card and "PSNR" in card
    with pytest.raises(ValueError, match=r"expected one of \['paper', 'real-images'\]"):
        zoo.load(ENTRY, inverter="vae")


def test_the_zoo_real_images_inverter_is_stored_in_int8_under_2_mb() -> None:
    """Issue 18: the zoo's real-images inverter file is at most 2 MB (int8 weight matrices), and loads as float32."""
    import safetensors

    weights = zoo.path(ENTRY) / "inverter-real-images" / "model.safetensors"
    assert weights.stat().st_size <= 2_000_000
    with safetensors.safe_open(str(weights), framework="pt") as handle:
        dtypes = {k: handle.get_slice(k).get_dtype() for k in handle.keys()}
    matrices = [k for k in dtypes if k.endswith(".weight") and k + ".int8_scale" in dtypes]
    assert len(matrices) == 2 + 2 * 2 and all(dtypes[k] == "I8" for k in matrices)  # CN and two step networks
    _, _, real = zoo.load(ENTRY, inverter="real-images")
    assert all(p.dtype == torch.float32 for p in [*real.cn.parameters(), *real.steps.parameters()])
    card = (weights.parent / "README.md").read_text()
    assert "| weights stored as | int8 weight matrices with a float32 scale per output row" in card


def test_zoo_fits_the_size_budget() -> None:
    total = sum(p.stat().st_size for p in zoo.path(ENTRY).rglob("*") if p.is_file())
    assert total <= 20_000_000


def test_unknown_zoo_entry() -> None:
    with pytest.raises(ValueError, match="dcgan-fashion-mnist"):
        zoo.load("stylegan-cats")


def test_demo_end_to_end(tmp_path, capsys) -> None:
    code = main(["demo", "--out", str(tmp_path), "--n-images", "30", "--refine-images", "10", "--refine-steps", "5"])
    assert code == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["n_images"] == 30 and set(metrics["methods"]) >= {"encode", "refine"}
    for key in ("psnr_mean", "psnr_std", "ssim_mean", "ssim_std", "seconds"):
        assert key in metrics["methods"]["encode"] and key in metrics["methods"]["refine"]
    assert metrics["methods"]["refine"]["psnr_mean"] > metrics["methods"]["encode_on_refined_subset"]["psnr_mean"]
    assert metrics["methods"]["encode_real_images"]["psnr_mean"] > metrics["methods"]["encode"]["psnr_mean"]
    from skimage.io import imread

    picture = imread(tmp_path / "reconstructions.png")
    assert picture.ndim == 3 and picture.shape[2] == 3 and picture.shape[0] > 200
    assert (np.abs(picture.astype(int) - START_COLOUR).sum(axis=2) == 0).any()  # the edits' framed start images
    captured = capsys.readouterr()
    assert "encode" in captured.out
    # Issue 32 item 17: the demo's stages and its refinement show in a pipe (capsys is no terminal)
    stages = [line.split(": ", 1)[1] for line in captured.err.splitlines()]
    assert stages[:3] == ["loading the bundled GAN dcgan-fashion-mnist and its paper inverter",
                          "encoding 30 test images with the paper inverter",
                          "encoding 30 test images with the real-images inverter (2 step networks)"]
    assert stages[3] == "refining 10 of them, 5 steps each" and stages[-3].startswith("refine 10 images x 5 steps: done in ")
    assert stages[-2:] == ["editing two sneakers toward ankle boots",
                           f"writing {tmp_path / 'reconstructions.png'} and {tmp_path / 'metrics.json'}"]


def _bands(mask: np.ndarray) -> list[tuple[int, int]]:
    """Runs of True along a 1-D mask, as (first, last + 1)."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return list(zip(edges[::2], edges[1::2]))


def test_demo_picture_has_a_header_row_row_labels_and_an_edit_panel_of_its_own() -> None:
    """Issue 32 item 19: class names over the columns, a label beside every row, and the edits in a panel with its
    own header (start image framed, then one column per strength), not under the class columns."""
    tile = np.full((4, 28, 28), 7, dtype=np.uint8)  # darker than any text (anti-aliased from 20 to 255)
    rows = [Row(name, detail, tile) for name, detail in (("original", "real test image"), ("encode", "paper CN, 17 dB"))]
    blocks = tuple(EditBlock(f"sneaker {k}", tile[0], (Row("edit, paper CN", "", tile[:3]),)) for k in "AB")
    picture = draw_picture("Reconstructions", "PSNR", ["T-shirt/top", "Trouser", "Sneaker", "Ankle boot"], rows,
                           EditPanel("Edit", "start, then s", (0.0, 1.0, 2.0), blocks))
    assert picture.dtype == np.uint8 and picture.ndim == 3 and picture.shape[2] == 3
    grey = (picture == 7).all(axis=2)
    text = ((picture.max(axis=2) < 110) & ~grey) | (np.abs(picture.astype(int) - START_COLOUR).sum(axis=2) == 0)
    row_bands = _bands(grey.any(axis=1))
    assert len(row_bands) == 2 + 2  # two reconstruction rows, then one edit row per start image
    tiles_per_row = [len(_bands(grey[(top + bottom) // 2])) for top, bottom in row_bands]
    assert tiles_per_row == [4, 4, 4, 4]  # the edit rows: start + 3 strengths
    first_tile = _bands(grey[sum(row_bands[0]) // 2])[0][0]
    above = [row_bands[0][0] - 40, row_bands[0][0]]
    for left, right in _bands(grey[sum(row_bands[0]) // 2]):  # a header over each class column
        assert text[above[0]:above[1], left:right].any()
    for (top, bottom), (next_top, _) in zip(row_bands[2:], row_bands[3:] + [(len(picture), 0)]):
        assert text[top:bottom, :first_tile].any()  # the row's label
        assert text[top - 30:top, first_tile:].any()  # the edit block's own header ("start", "s = 0", ...)
        start_left = _bands(grey[(top + bottom) // 2])[0][0]
        frame = picture[top - 2, start_left]  # the start image is framed
        assert tuple(frame) == START_COLOUR
    for top, bottom in row_bands[:2]:
        assert text[top:bottom, :first_tile].any()
    with pytest.raises(ValueError, match="expected 4 tiles"):
        draw_picture("t", "s", ["a", "b", "c", "d"], [Row("x", "", tile[:3])])


def test_demo_with_fit_and_console_script(tmp_path) -> None:
    script = Path(sys.executable).with_name("discinvert")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "discinvert"]
    result = subprocess.run(
        [*command, "demo", "--fit", "--steps", "3", "--out", str(tmp_path), "--n-images", "12", "--refine-steps", "0"],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["inverter"] == "fitted now" and "refine" not in metrics["methods"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--n-images", "-3"], "argument --n-images: expected an integer from 1 to 1000 (the bundled test images), got '-3'"),
        (["--n-images", "0"], "argument --n-images: expected an integer from 1 to 1000 (the bundled test images), got '0'"),
        (["--n-images", "1001"], "argument --n-images: expected an integer from 1 to 1000 (the bundled test images), got '1001'"),
        (["--fit", "--steps", "0"], "argument --steps: expected an integer >= 1, got '0'"),
        (["--seed", "abc"], "argument --seed: expected an integer in [0, 2**62), got 'abc'"),
        (["--seed", str(2**70)], "argument --seed: expected an integer in [0, 2**62)"),
    ],
)
def test_demo_usage_error_exit_code(argv, message, tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as info:  # a short demo if the option slipped through
        main(["demo", "--out", str(tmp_path), "--n-images", "4", "--refine-steps", "0", *argv])
    assert info.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith(f"discinvert demo: error: {message}") and "invalid" not in last
    assert not any(tmp_path.iterdir())


def test_demo_metrics_json_is_strict_json(tmp_path, monkeypatch) -> None:
    import discinvert.cli.demo

    def undefined_quality(x, y):  # e.g. a metric over no images: NaN, which json.dumps writes as NaN
        nan = np.full(len(x), np.nan)
        return nan, nan

    monkeypatch.setattr(discinvert.cli.demo, "image_quality", undefined_quality)
    discinvert.cli.demo.run_demo(discinvert.cli.demo.DemoOptions(out=tmp_path, n_images=4, refine_steps=0))

    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} is not JSON")

    metrics = json.loads((tmp_path / "metrics.json").read_text(), parse_constant=refuse)
    assert metrics["methods"]["encode"]["psnr_mean"] is None and metrics["n_images"] == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json", "reconstructions.png"]
