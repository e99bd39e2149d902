"""The command line and the page with a generator alone (issue 35): GAN folders without D, ``--generator``
without ``--discriminator``, ``--no-discriminator``, and inverters fit for G alone in every command.

One tiny zoo-format GAN (the reference 28x28 architecture at widths 8), saved twice: whole and without D.
Its generator-only inverter is fitted once, by ``discinvert fit --no-discriminator`` on the whole folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import safetensors
import torch

from discinvert import Inverter, fit_inverter, zoo
from discinvert.cli import main
from discinvert.pixels import prepare_images
from discinvert.zoo import read_image_source
from discinvert.zoo.architectures import DISCRIMINATOR_FILE, GENERATOR_FILE, GANConfig, build_gan, load_gan, save_gan
from tests import cli_factories

GEN = "tests.cli_factories:make_generator"
DISC = "tests.cli_factories:make_discriminator"
FAST_FIT = ["--steps", "3", "--batch-size", "16", "--validation-size", "32", "--pixel-width", "4", "--no-progress"]


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The GAN whole (``full``) and without D (``gonly``), a D-route inverter, a generator-only inverter fitted by
    the command line, and 12 real test pictures."""
    root = tmp_path_factory.mktemp("cli-g-only")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        config = GANConfig(g_width=8, d_width=8, latent_dim=16)
        G, D = build_gan(config)
    save_gan(root / "full", G, D, config)
    save_gan(root / "gonly", G, None, config)
    G, D, config, _ = load_gan(root / "full")
    fit_inverter(G, D, config.feature_layer, latent_shape=config.latent_shape, steps=1, batch_size=16,
                 validation_size=32, seed=0, progress=False).save(root / "d-inv.safetensors")
    assert main(["fit", "--gan", str(root / "full"), "--no-discriminator", *FAST_FIT, "--out", str(root / "g-inv")]) == 0
    real, _ = zoo.load_test_images("dcgan-fashion-mnist")
    np.save(root / "u8.npy", real[:12])
    return {"root": root, "full": root / "full", "gonly": root / "gonly", "d_inv": root / "d-inv.safetensors",
            "g_inv": root / "g-inv", "images": root / "u8.npy"}


def _err_lines(capsys: pytest.CaptureFixture[str]) -> tuple[str, list[str]]:
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err, captured.err
    return captured.out, captured.err.splitlines()


def _usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith(f"discinvert {argv[0]}: error: "), last
    return last


def _failure(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"discinvert {argv[0]}: error: ") and "Traceback" not in err, err
    return err


# ----------------------------------------------------------------------------- GAN folders without D
def test_a_gan_folder_saved_without_d_loads_with_d_none(tmp_path: Path) -> None:
    config = GANConfig(g_width=8, d_width=8, latent_dim=16)
    G, D = build_gan(config)
    save_gan(tmp_path, G, D, config)
    assert (tmp_path / DISCRIMINATOR_FILE).is_file()
    loaded_g, loaded_d, _, _ = load_gan(tmp_path, read_discriminator=False)  # D there, left unread
    assert loaded_d is None and all(torch.equal(a, b) for a, b in zip(loaded_g.state_dict().values(),
                                                                       G.state_dict().values()))
    save_gan(tmp_path, G, None, config)  # over the whole GAN: the old D does not belong to this G
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", GENERATOR_FILE]
    loaded_g, loaded_d, loaded_config, _ = load_gan(tmp_path)
    assert loaded_d is None and loaded_config == config and not loaded_g.training
    (tmp_path / GENERATOR_FILE).unlink()
    with pytest.raises(FileNotFoundError, match=GENERATOR_FILE):
        load_gan(tmp_path)


def test_a_stylegan2_folder_without_d_loads_with_d_none(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from discinvert.mapped import MappedGenerator
    from discinvert.zoo.gans import load_zoo_gan
    from discinvert.zoo.stylegan2 import StyleGAN2Config, save_stylegan2
    from tests.stylegan2_models import tiny_stylegan2

    config = StyleGAN2Config(z_dim=8, w_dim=8, mapping_layers=2, channels=(16, 16, 8, 8))
    with torch.random.fork_rng(devices=[]):
        G, D = tiny_stylegan2(config)
    save_stylegan2(tmp_path, G, D, config)
    whole, alone = load_zoo_gan(tmp_path), load_zoo_gan(tmp_path, read_discriminator=False)
    assert whole.discriminator is not None and alone.discriminator is None
    save_stylegan2(tmp_path, G, None, config)  # over the whole GAN: the old D goes
    assert not (tmp_path / DISCRIMINATOR_FILE).exists()
    loaded = load_zoo_gan(tmp_path)
    assert loaded.discriminator is None and isinstance(loaded.generator, MappedGenerator)
    assert loaded.latent_shape == whole.latent_shape
    assert all(torch.equal(a, b) for a, b in zip(loaded.generator.state_dict().values(),
                                                 whole.generator.state_dict().values()))
    err = _failure(["layers", "--gan", str(tmp_path)], capsys)
    assert f"got none ({tmp_path} holds no discriminator.safetensors)" in err


# ----------------------------------------------------------------------------- fit
def test_fit_with_no_discriminator_writes_a_generator_only_inverter(ws: dict[str, Path]) -> None:
    G, D, _, _ = load_gan(ws["full"])
    inverter = Inverter.from_pretrained(ws["g_inv"], generator=G)
    assert inverter.feature_source == "pixels" and inverter.discriminator is None and inverter.feature_layer is None
    assert inverter.config.pixel_encoder.base_width == 4  # --pixel-width
    card = (ws["g_inv"] / "README.md").read_text()
    assert "generator only" in card and f"{ws['full']} (dcgan, latent 16); generator only" in card
    with pytest.raises(ValueError, match="fit for the generator alone"):  # the library's rule, unchanged
        Inverter.from_pretrained(ws["g_inv"], generator=G, discriminator=D)


def test_fit_on_a_folder_without_d_and_on_a_generator_factory(ws: dict[str, Path], tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fit", "--gan", str(ws["gonly"]), *FAST_FIT, "--out", str(tmp_path / "a.safetensors")]) == 0
    out, _ = _err_lines(capsys)
    assert out.startswith(f"fitting an inverter for {ws['gonly']} (dcgan, latent 16); generator only: no "
                          "discriminator, an inverter reading pixels, latents (16, 1, 1), 3 steps of 16")
    G, _, _, _ = load_gan(ws["gonly"])
    assert Inverter.load(tmp_path / "a.safetensors", generator=G).feature_source == "pixels"
    assert main(["fit", "--generator", GEN, "--latent-shape", "8,1,1", *FAST_FIT, "--out",
                 str(tmp_path / "b.safetensors")]) == 0
    out, _ = _err_lines(capsys)
    assert out.startswith(f"fitting an inverter for generator {GEN}, generator only: no discriminator")
    inverter = Inverter.load(tmp_path / "b.safetensors", generator=cli_factories.make_generator())
    assert inverter.feature_source == "pixels" and inverter.latent_shape == (8, 1, 1)


@pytest.mark.parametrize(("argv", "fragment"), [
    (["--gan", "{full}", "--no-discriminator", "--feature-layer", "main.7"],
     "--feature-layer main.7 names a layer of the discriminator, but there is no discriminator (--no-discriminator)"),
    (["--generator", GEN, "--latent-shape", "8,1,1", "--feature-layer", "4"],
     "--feature-layer 4 names a layer of the discriminator, but there is no discriminator (--generator without "
     "--discriminator)"),
    (["--gan", "{gonly}", "--feature-layer", "main.7"],
     "--feature-layer main.7 names a layer of the discriminator, but there is no discriminator ({gonly} holds no "
     "discriminator.safetensors)"),
    (["--gan", "{gonly}", "--images", "{images}", "--feature-weight", "0.5"], "--feature-weight 0.5: the real-image "
     "stage's D-feature term compares the discriminator's features, and there is no discriminator"),
    (["--gan", "{full}", "--no-discriminator", "--allow-batch-dependent-features"],
     "--allow-batch-dependent-features lets the discriminator's feature layer depend on the rest of the batch, and "
     "there is no discriminator (--no-discriminator)"),
    (["--generator", GEN, "--discriminator", DISC, "--no-discriminator", "--latent-shape", "8,1,1",
      "--feature-layer", "4"], "give either --discriminator or --no-discriminator, not both"),
])
def test_fit_without_d_refuses_the_options_of_d(argv: list[str], fragment: str, ws: dict[str, Path], tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    filled = [a.format(**{k: str(v) for k, v in ws.items()}) for a in argv]
    last = _usage_error(["fit", *filled, *FAST_FIT, "--out", str(tmp_path / "x.safetensors")], capsys)
    assert fragment.format(**{k: str(v) for k, v in ws.items()}) in last
    assert not (tmp_path / "x.safetensors").exists()


def test_layers_needs_d(ws: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    last = _usage_error(["layers", "--generator", GEN, "--latent-shape", "8,1,1"], capsys)
    assert "--discriminator package.module:factory is needed: `discinvert layers` reads D" in last
    err = _failure(["layers", "--gan", str(ws["gonly"])], capsys)
    assert f"expected a GAN with its discriminator, got none ({ws['gonly']} holds no discriminator.safetensors)" in err
    with pytest.raises(SystemExit) as info:  # no such option for layers
        main(["layers", "--gan", str(ws["full"]), "--no-discriminator"])
    assert info.value.code == 2 and "unrecognized arguments: --no-discriminator" in capsys.readouterr().err


# ----------------------------------------------------------------------------- commands that load an inverter
@pytest.mark.parametrize("gan", [["--gan", "{gonly}"], ["--gan", "{full}"], ["--gan", "{full}", "--no-discriminator"]])
def test_encode_and_reconstruct_with_a_generator_only_inverter(gan: list[str], ws: dict[str, Path], tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """The same codes whichever way G comes; a D that is there is not read, and the command says so."""
    gan = [a.format(**{k: str(v) for k, v in ws.items()}) for a in gan]
    argv = ["encode", *gan, "--inverter", str(ws["g_inv"]), "--images", str(ws["images"])]
    assert main([*argv, "--out", str(tmp_path / "c.safetensors")]) == 0
    out, err = _err_lines(capsys)
    d_there = gan[-1] == str(ws["full"])
    assert err == [f"discinvert encode: inverter {ws['g_inv']}: fitted on self-generated pairs (the paper's method); "
                   "generator only: reads its own pixel network, no D; codes (16, 1, 1)"
                   + ("; the GAN's discriminator is not used" if d_there else "")]
    with safetensors.safe_open(str(tmp_path / "c.safetensors"), framework="pt") as handle:
        codes, metadata = handle.get_tensor("codes"), handle.metadata()
    assert metadata["feature_source"] == "pixels" and metadata["feature_layer"] == ""
    G, _, _, _ = load_gan(ws["gonly"])
    inverter = Inverter.from_pretrained(ws["g_inv"], generator=G)
    x = prepare_images(read_image_source(str(ws["images"])), (1, 28, 28), (-1.0, 1.0), None)  # as the CLI reads them
    assert torch.equal(codes, inverter.encode(x))
    assert main(["reconstruct", *gan, "--inverter", str(ws["g_inv"]), "--images", str(ws["images"]),
                 "--refine-steps", "2", "--no-progress", "--out", str(tmp_path / "r")]) == 0
    out, _ = _err_lines(capsys)
    assert out.startswith("reconstructed 12 images") and (tmp_path / "r" / "reconstructions_000.png").is_file()


def test_evaluate_and_push_with_a_generator_only_inverter(ws: dict[str, Path], tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", "--model", f"g={ws['gonly']}:{ws['g_inv']}", "--model", f"d={ws['full']}:{ws['d_inv']}",
                 "--gan", str(ws["full"]), "--no-discriminator", "--inverter", str(ws["g_inv"]), "--name", "nod",
                 "--images", str(ws["images"]), "--n", "4", "--repeats", "2", "--refine-steps", "1",
                 "--json", str(tmp_path / "scores.json")]) == 0
    _err_lines(capsys)
    results = {r["name"]: r for r in json.loads((tmp_path / "scores.json").read_text())["results"]}
    assert results["g"]["feature_source"] == results["nod"]["feature_source"] == "pixels"
    assert results["g"]["feature_layer"] is None and results["d"]["feature_layer"] == "main.7"
    assert "feature_source" not in results["d"]  # D's route: its record as before
    assert results["g"]["psnr_mean"] == results["nod"]["psnr_mean"]  # the same G and inverter, with or without D
    calls: list[Any] = []
    monkeypatch.setattr(Inverter, "push_to_hub", lambda inverter, repo_id, **kw: calls.append(inverter) or "url")
    assert main(["push", "--gan", str(ws["gonly"]), "--inverter", str(ws["g_inv"]), "--repo-id", "me/g"]) == 0
    out, _ = _err_lines(capsys)
    assert "pushing the inverter (pixels -> (16, 1, 1)) to me/g" in out and calls[0].feature_source == "pixels"


def test_a_d_route_inverter_without_d_is_a_clear_error(ws: dict[str, Path], tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    for gan, why in ((["--gan", str(ws["gonly"])], f"{ws['gonly']} holds no discriminator.safetensors"),
                     (["--gan", str(ws["full"]), "--no-discriminator"], "--no-discriminator")):
        err = _failure(["encode", *gan, "--inverter", str(ws["d_inv"]), "--images", str(ws["images"]),
                        "--out", str(tmp_path / "c.npy")], capsys)
        assert (f"inverter {ws['d_inv']} reads the discriminator's features (layer main.7); expected the GAN with its "
                f"discriminator, got none ({why})") in err
    err = _failure(["encode", "--gan", "zoo:dcgan-fashion-mnist", "--no-discriminator", "--images", str(ws["images"]),
                    "--out", str(tmp_path / "c.npy")], capsys)  # the entry's own inverter reads D
    assert "reads the discriminator's features (layer main.7)" in err and "(--no-discriminator)" in err
    assert _usage_error(["evaluate", "--model", f"{ws['gonly']}:{ws['g_inv']}", "--no-discriminator", "--images",
                         str(ws["images"])], capsys).endswith("--inverter/--name/--no-discriminator describe a model "
                                                              "given with --gan or --generator/--discriminator")
    assert not (tmp_path / "c.npy").exists()


# ----------------------------------------------------------------------------- the page
def test_serve_a_generator_only_inverter(ws: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """``discinvert serve`` with G alone: the page's facts say "generator only"; encode, refine and edit work."""
    from fastapi.testclient import TestClient
    from PIL import Image

    from discinvert.web import server

    apps: list[Any] = []
    monkeypatch.setattr(server, "serve", lambda app, sock: (apps.append(app), sock.close()))
    pictures = np.load(ws["images"])
    folder = ws["root"] / "labelled"
    for label, rows in (("left", range(0, 6)), ("right", range(6, 12))):
        (folder / label).mkdir(parents=True, exist_ok=True)
        for i in rows:
            Image.fromarray(pictures[i]).save(folder / label / f"{i}.png")
    assert main(["serve", "--gan", str(ws["full"]), "--inverter", str(ws["g_inv"]), "--examples", str(ws["images"]),
                 "--labelled", str(folder), "--port", "0"]) == 0
    _, err = _err_lines(capsys)
    assert any(line.endswith("generator only: reads its own pixel network, no D; codes (16, 1, 1); the GAN's "
                             "discriminator is not used") for line in err), err
    with TestClient(apps[0]) as client:
        info = client.get("/api/info").json()
        assert info["feature_source"] == "pixels" and info["feature_layer"] is None
        assert info["examples"] == 12 and info["directions"] == ["left", "right"]
        answer = client.post("/api/reconstruct", data={"example": "3"}).json()
        assert len(answer["code"]) == 16 and answer["psnr"] is not None
        events = [json.loads(line) for line in client.post("/api/refine", data={"example": "3", "steps": "4", "every": "2"})
                  .text.splitlines() if line.strip()]
        assert events[-1].get("done") and not any("error" in e for e in events), events
        edited = client.post("/api/edit", json={"code": events[-1]["code"], "amounts": {"right": 1.0}}).json()
        assert len(edited["code"]) == 16 and edited["image"].startswith("data:image/png;base64,")
    page = (Path(__file__).resolve().parents[1] / "discinvert" / "web" / "static" / "app.js").read_text()
    assert 'info.feature_source === "pixels" ? "generator only (no D)"' in page
