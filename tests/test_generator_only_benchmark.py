"""``benchmarks/generator_only/routes.py`` runs end to end on the bundled DCGAN: one row per route (D's, the
generator-only route with step networks, the naive encoder), then the page, its JSON and its picture, whose
figures are the rows'. Tiny fits on fake Fashion-MNIST-format files (the real data set is not needed here)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks.generator_only import routes
from tests.conftest import write_idx_gz

pytestmark = pytest.mark.filterwarnings("ignore::discinvert.UselessInverterWarning")  # 6-step fits


def _fake_data(root: Path) -> None:
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 300), ("t10k", 40)):
        write_idx_gz(root / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx_gz(root / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, (n,), dtype=np.uint8))


TINY = ["--holdout", "50", "--n", "16", "--repeats", "2", "--setting", "steps=6", "--setting", "validation_size=64",
        "--setting", "eval_every=3"]


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("gonly")
    data = tmp / "data"
    data.mkdir()
    _fake_data(data)
    threads = str(torch.get_num_threads())
    common = ["--out", str(tmp / "out"), "--data-root", str(data), "--threads", threads, *TINY]
    routes.main([*common, "--name", "d-images", "--route", "d", "--images", "--setting", "real_steps=4"])
    routes.main([*common, "--name", "g-images-steps", "--route", "g", "--images", "--iterations", "1",
                 "--setting", "real_steps=4", "--setting", "iteration_steps=4"])
    routes.main([*common, "--name", "naive", "--route", "naive"])
    routes.main(["--out", str(tmp / "out"), "--data-root", str(data), "--n", "16", "--repeats", "2",
                 "--page", str(tmp / "page.md"), "--json", str(tmp / "rows.json"),
                 "--picture", str(tmp / "images" / "picture.png"), "--picture-rows", "naive,d-images,g-images-steps"])
    return tmp


def test_every_route_gives_a_row_with_its_figures(bench: Path) -> None:
    rows = json.loads((bench / "rows.json").read_text())["rows"]
    assert set(rows) == {"d-images", "g-images-steps", "naive"}
    assert [rows[n]["route"] for n in ("d-images", "g-images-steps", "naive")] == ["d", "g", "naive"]
    for row in rows.values():
        assert 0 < row["heldout_psnr"] < 60 and 0 < row["psnr_mean"] < 60
        assert -1 <= row["recovery_cosine"] <= 1 and row["recovery_mse"] > 0
        assert row["fit_seconds"] > 0 and row["seconds_per_1k"] > 0
        assert row["protocol"] == "16 test images x 2 draws (seed 0)"
    assert rows["d-images"]["fit_images"] == 250 and rows["naive"]["fit_images"] == 0
    assert set(rows["g-images-steps"]["heldout_by_k"]) == {"0", "1"}  # held-out PSNR at k = 0 and k = 1
    assert rows["g-images-steps"]["heldout_psnr"] == rows["g-images-steps"]["heldout_by_k"]["1"]["psnr"]
    assert "step_network_seconds" in rows["g-images-steps"] and "real_stage_seconds" in rows["d-images"]


def test_the_page_quotes_the_rows_and_the_picture_has_a_strip_per_row(bench: Path) -> None:
    rows = json.loads((bench / "rows.json").read_text())["rows"]
    page = (bench / "page.md").read_text()
    for name, row in rows.items():
        line = next(line for line in page.splitlines() if line.startswith(f"| {name} |"))
        assert f"{row['heldout_psnr']:.2f} / {row['heldout_ssim']:.4f}" in line
        assert f"{row['psnr_mean']:.2f} ± {row['psnr_std']:.2f}" in line
        assert f"`{row['command']}`" in page
    assert "G only, images, 1 step network," in page
    assert "each row's reconstructions: naive, d-images, g-images-steps." in page
    png = (bench / "images" / "picture.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (8 * 28, (1 + len(rows)) * 28)  # originals, then one strip a row


def test_a_stored_row_is_not_fitted_again(bench: Path, capsys: pytest.CaptureFixture[str]) -> None:
    routes.main(["--out", str(bench / "out"), "--name", "naive", "--route", "naive"])
    assert "naive: done already" in capsys.readouterr().out


def test_the_json_alone_rebuilds_the_page_and_the_picture(bench: Path, tmp_path: Path) -> None:
    """A later session without ``runs/`` (the rows' folder) regenerates the same page and picture from the
    committed JSON, which keeps each row's picture codes."""
    record = tmp_path / "rows.json"
    record.write_text((bench / "rows.json").read_text())
    assert all(len(r["picture_codes"]) == 8 for r in json.loads(record.read_text())["rows"].values())
    routes.main(["--out", str(tmp_path / "no-rows"), "--data-root", str(bench / "data"), "--n", "16",
                 "--repeats", "2", "--page", str(tmp_path / "page.md"), "--json", str(record),
                 "--picture", str(tmp_path / "images" / "picture.png"),
                 "--picture-rows", "naive,d-images,g-images-steps"])
    page = (tmp_path / "page.md").read_text()
    first = (bench / "page.md").read_text()
    table = [line for line in first.splitlines() if line.startswith("| ")]
    assert table and all(line in page for line in table)
    redrawn = (tmp_path / "images" / "picture.png").read_bytes()
    assert struct.unpack(">II", redrawn[16:24]) == (8 * 28, 4 * 28)


def test_the_page_compares_the_routes_per_gan_with_the_rows_figures(bench: Path) -> None:
    """Each row keeps what its GAN is (the folder under ``runs/`` may be gone later); the page's per-GAN line
    sets G only against D with images and without, and G only against the naive encoder without, from the rows' own
    figures, and names a GAN whose pair is missing."""
    rows = json.loads((bench / "rows.json").read_text())["rows"]
    assert rows["naive"]["gan_record"]["summary"].startswith("dcgan")

    def row(name: str, gan: str, table: float, held: float) -> dict[str, object]:
        route = name.removesuffix("-images").rsplit("-", 1)[-1]
        return {"name": name, "gan": gan, "psnr_mean": table, "heldout_psnr": held, "route": route,
                "images": name.endswith("-images"), "iterations": 0, "settings": {"seed": 0},
                "gan_record": {"summary": "lsgan, latent 100", "trained": 3, "unit": "epochs",
                               "command": "python -m benchmarks.paper.train_gan --loss lsgan --epochs 3"}}

    lines = routes._gan_lines([
        row("d-images", "zoo:dcgan-fashion-mnist", 19.5, 19.4), row("g-images", "zoo:dcgan-fashion-mnist", 19.0, 19.1),
        row("lsgan-g", "runs/lsgan-cpu", 16.0, 16.2), row("lsgan-naive", "runs/lsgan-cpu", 15.5, 15.9),
        row("lsgan-d", "runs/lsgan-cpu", 16.5, 16.4),
        row("wgan-gp-g", "runs/wgan-gp-cpu", 14.0, 14.0)])
    assert lines[0].startswith("- `runs/lsgan-cpu` (lsgan, latent 100; 3 epochs, trained by `python -m")
    assert ": without images, G only against D: Table 1 16.00 vs 16.50 dB (-0.50), held-out 16.20 vs 16.40 (-0.20); " \
           "without images, G only against the naive encoder: Table 1 16.00 vs 15.50 dB (+0.50), " \
           "held-out 16.20 vs 15.90 (+0.30)." in lines[0]
    assert lines[1] == "- `runs/wgan-gp-cpu` (lsgan, latent 100; 3 epochs, trained by `python -m benchmarks.paper." \
                       "train_gan --loss lsgan --epochs 3`): no pair of rows to compare yet."
    assert "with images, G only against D: Table 1 19.00 vs 19.50 dB (-0.50), held-out 19.10 vs 19.40 (-0.30)." \
           in lines[2]


def test_fits_measured_with_two_seeds_get_their_own_line_and_seed_0_alone_is_paired() -> None:
    """A fit measured again with another seed shows as such (the row names its seed), gets a line with each seed's
    held-out PSNR and the means, and does not replace seed 0's row in the per-GAN comparison."""
    def row(name: str, route: str, seed: int, held: float, table: float, **settings: object) -> dict[str, object]:
        return {"name": name, "gan": "zoo:dcgan-fashion-mnist", "psnr_mean": table, "heldout_psnr": held,
                "route": route, "images": True, "iterations": 0, "settings": {"seed": seed, **settings}}

    rows = [row("d-images", "d", 0, 19.9, 19.9), row("g-images", "g", 0, 20.0, 20.1),
            row("g-images-s1", "g", 1, 19.0, 19.3), row("g-images-pe", "g", 0, 20.2, 20.2, perceptual="encoder")]
    assert routes._describe(rows[2]) == "G only, images, seed 1" and routes._describe(rows[1]) == "G only, images"
    assert routes._seed_lines(rows) == [
        "- `zoo:dcgan-fashion-mnist`, G only, images: held-out 20.00 (seed 0, g-images), 19.00 (seed 1, "
        "g-images-s1); mean 19.50, Table 1 mean 19.70 dB."]
    assert "Table 1 20.10 vs 19.90 dB (+0.20)" in routes._gan_lines(rows)[0]  # seed 0's g-images, not seed 1's


def test_the_timing_script_times_each_route_and_writes_its_page(bench: Path, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """``benchmarks/generator_only/timing.py``: a shortened fit per variant, its seconds per update in each stage,
    the default budget projected from them, encode's seconds per 1,000 images; the page quotes the rows and the
    ratios G alone / D; a stored row is not timed again."""
    from benchmarks.generator_only import timing

    common = ["--out", str(tmp_path / "out"), "--data-root", str(bench / "data"), "--threads", "1", "--holdout", "50",
              "--steps", "6", "--real-steps", "4", "--encode-repeats", "2", "--setting", "validation_size=64",
              "--setting", "eval_every=3", "--setting", "real_held_out=16"]
    timing.main([*common, "--variants", "d,g,g-pe", "--page", str(tmp_path / "page.md"),
                 "--json", str(tmp_path / "timing.json")])
    rows = {r["variant"]: r for r in json.loads((tmp_path / "timing.json").read_text())["rows"]}
    assert set(rows) == {"d", "g", "g-pe"} and rows["g-pe"]["settings"]["perceptual"] == "encoder"
    for r in rows.values():
        assert r["steps"] == 6 and r["real_steps"] == 4 and r["threads"] == 1
        assert r["self_generated_seconds_per_update"] == pytest.approx(r["self_generated_seconds"] / 6, rel=0.01)
        assert r["projected_default_seconds"] == pytest.approx(
            r["setup_seconds"] + 2000 * r["self_generated_seconds_per_update"] + 1500 * r["real_stage_seconds_per_update"],
            abs=0.2)
        assert r["setup_seconds"] > 0
        assert r["fit_wall_seconds"] == pytest.approx(r["setup_seconds"] + r["self_generated_seconds"]
                                                      + r["real_stage_seconds"], abs=0.05)
        assert r["encode_seconds_per_1k"] > 0 and r["parameters"] > 0
    assert rows["g"]["parameters"] != rows["d"]["parameters"]  # the pixel network is counted
    page = (tmp_path / "page.md").read_text()
    d, g = rows["d"], rows["g"]
    line = next(line for line in page.splitlines() if line.startswith("| zoo:dcgan-fashion-mnist | G only, validation"))
    assert f"| {g['self_generated_seconds_per_update']:.4f} | {g['real_stage_seconds_per_update']:.4f} | " in line
    assert f"default fit {g['projected_default_seconds'] / d['projected_default_seconds']:.2f}" in page
    assert "G only, perceptual=encoder, validation_size=64, eval_every=3, real_held_out=16 against none: real-image stage" in page
    capsys.readouterr()
    timing.main([*common, "--variants", "g"])
    assert "g: done already" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="expected some of d, g, g-pe, g-pr, got 'x'"):
        timing.main([*common, "--variants", "x"])


def test_the_timing_page_sets_two_threads_against_one(tmp_path: Path) -> None:
    """Rows of the same fit on one and two threads give the page a line of their ratios, and the routes' ratios are
    taken within one thread count."""
    from benchmarks.generator_only import timing

    def row(variant: str, threads: int, per_update: float, encode: float) -> dict[str, object]:
        return {"gan": "zoo:dcgan-fashion-mnist", "variant": variant, "settings": {}, "threads": threads,
                "device": "CPU", "setup_seconds": 2.0, "self_generated_seconds_per_update": per_update,
                "real_stage_seconds_per_update": per_update, "projected_default_seconds": 3500 * per_update,
                "encode_seconds_per_1k": encode, "parameters": 10, "command": "python -m x"}

    (tmp_path / "rows").mkdir()
    for i, r in enumerate([row("d", 1, 0.3, 0.4), row("g", 1, 0.2, 0.1), row("d", 2, 0.6, 0.2), row("g", 2, 0.3, 0.1)]):
        (tmp_path / "rows" / f"{i}.json").write_text(json.dumps(r))
    timing.main(["--out", str(tmp_path), "--page", str(tmp_path / "page.md")])
    page = (tmp_path / "page.md").read_text()
    assert "- `zoo:dcgan-fashion-mnist`, 1 thread: default fit 0.67 (self-generated stage 0.67" in page
    assert "- `zoo:dcgan-fashion-mnist`, 2 threads: default fit 0.50" in page
    assert "- `zoo:dcgan-fashion-mnist`, D: default fit 2.00, encode 0.50." in page
    assert "- `zoo:dcgan-fashion-mnist`, G only: default fit 1.50, encode 1.00." in page


def test_the_timing_json_alone_rebuilds_the_page_and_a_row_timed_again_replaces_its_record(tmp_path: Path) -> None:
    """The committed ``--json`` counts as stored rows (an earlier session's ``runs/`` may be gone); a row of the same
    (GAN, variant, threads) in ``OUT/rows`` replaces it, and rows of another GAN are added."""
    from benchmarks.generator_only import timing

    def row(gan: str, variant: str, encode: float) -> dict[str, object]:
        return {"gan": gan, "variant": variant, "settings": {}, "threads": 2, "device": "CPU", "setup_seconds": 2.0,
                "self_generated_seconds_per_update": 0.5, "real_stage_seconds_per_update": 0.5,
                "projected_default_seconds": 1750.0, "encode_seconds_per_1k": encode, "parameters": 10,
                "command": "python -m x"}

    dcgan, sg2 = "zoo:dcgan-fashion-mnist", "zoo:stylegan2-fashion-mnist"
    record = tmp_path / "timing.json"
    record.write_text(json.dumps({"command": "python -m x", "rows": [row(dcgan, "d", 0.4), row(dcgan, "g", 0.1)]}))
    out = tmp_path / "out"
    timing.main(["--out", str(out), "--page", str(tmp_path / "page.md"), "--json", str(record)])
    assert "- `zoo:dcgan-fashion-mnist`, 2 threads: default fit 1.00 (self-generated stage 1.00, real-image stage " \
           "1.00); encode 0.25." in (tmp_path / "page.md").read_text()
    (out / "rows").mkdir(parents=True)
    (out / "rows" / "a.json").write_text(json.dumps(row(dcgan, "g", 0.2)))
    (out / "rows" / "b.json").write_text(json.dumps(row(sg2, "d", 1.0)))
    timing.main(["--out", str(out), "--page", str(tmp_path / "page.md"), "--json", str(record)])
    rows = json.loads(record.read_text())["rows"]
    assert sorted((r["gan"], r["variant"], r["encode_seconds_per_1k"]) for r in rows) == [
        (dcgan, "d", 0.4), (dcgan, "g", 0.2), (sg2, "d", 1.0)]
    assert "encode 0.50." in (tmp_path / "page.md").read_text()
    with pytest.raises(SystemExit, match="expected rows in"):
        timing.main(["--out", str(tmp_path / "empty"), "--page", str(tmp_path / "p.md")])


def test_a_malformed_setting_stops_the_run_naming_what_it_expects() -> None:
    """``--setting KEY=JSON``, shared by routes.py and timing.py: a value that is not JSON (a bare word) or an item
    without ``=`` stops the run with the option, what it expects and what came."""
    from benchmarks.common import parse_settings

    assert parse_settings(['perceptual="encoder"', "steps=6", "lr=1e-3"]) == {
        "perceptual": "encoder", "steps": 6, "lr": 0.001}
    with pytest.raises(SystemExit, match=r"--setting: the value of 'perceptual' must be JSON .*got 'encoder'"):
        parse_settings(["perceptual=encoder"])
    with pytest.raises(SystemExit, match=r"--setting: expected KEY=JSON, got 'steps'"):
        parse_settings(["steps"])


def test_the_picture_rows_are_grouped_by_gan_with_a_file_each(tmp_path: Path) -> None:
    """``--picture-rows`` naming rows of two GANs gives a picture per GAN: the first GAN's at ``--picture``, the
    other's beside it named after its zoo entry or folder; rows without picture codes are left out."""
    rows = [{"name": "a", "gan": "zoo:dcgan-fashion-mnist", "picture_codes": []},
            {"name": "b", "gan": "zoo:stylegan2-fashion-mnist", "picture_codes": []},
            {"name": "c", "gan": "zoo:dcgan-fashion-mnist", "picture_codes": []},
            {"name": "d", "gan": "runs/lsgan-cpu"}]
    args = routes.parse_args(["--picture", str(tmp_path / "images" / "pic.png"), "--picture-rows", "b,a,d,c"])
    groups = routes.picture_rows(args, rows)
    assert [[r["name"] for r in g] for g in groups] == [["b"], ["a", "c"]]
    assert routes.picture_path(args, 0, "zoo:stylegan2-fashion-mnist") == tmp_path / "images" / "pic.png"
    assert routes.picture_path(args, 1, "zoo:dcgan-fashion-mnist") == tmp_path / "images" / "pic-dcgan-fashion-mnist.png"
    assert routes.picture_path(args, 1, "runs/lsgan-cpu").name == "pic-lsgan-cpu.png"
