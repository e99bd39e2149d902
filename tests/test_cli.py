"""The command line: every subcommand on tiny GANs, through ``main([...])`` and once as the console script.

Two tiny GANs: the reference 28x28 architecture at widths 8 written to a zoo-format
directory, and the 8x8 conftest-style GAN from factory strings (``tests.cli_factories``).
User mistakes must end with exit code 1 (or 2 for usage errors) and one line on stderr.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from discinvert import Inverter, fit_inverter, zoo
from discinvert.zoo.architectures import GANConfig, build_gan, load_gan, save_gan
from discinvert.zoo.datasets import to_model_range
from discinvert.cli import main
from tests import cli_factories
from tests.conftest import write_idx_gz

REPO = Path(__file__).resolve().parents[1]
GEN = "tests.cli_factories:make_generator"
DISC = "tests.cli_factories:make_discriminator"
FACTORIES = ["--generator", GEN, "--discriminator", DISC]
FAST_FIT = ["--steps", "2", "--batch-size", "16", "--validation-size", "32", "--no-progress"]
COMMANDS = ["layers", "fit", "encode", "reconstruct", "evaluate", "push", "directions", "demo", "serve"]


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny zoo-format GAN with a fitted inverter, a factory GAN with one, and image files."""
    root = tmp_path_factory.mktemp("cli")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        config = GANConfig(g_width=8, d_width=8, latent_dim=16)
        G, D = build_gan(config)
    save_gan(root / "gan", G, D, config)
    G, D, config, _ = load_gan(root / "gan")
    fit_inverter(G, D, config.feature_layer, latent_shape=config.latent_shape, steps=1, batch_size=16,
                 validation_size=32, seed=0, progress=False).save(root / "inv.safetensors")
    g, d = cli_factories.make_generator(), cli_factories.make_discriminator()
    fit_inverter(g, d, "4", latent_shape=(cli_factories.LATENT, 1, 1), steps=1, batch_size=16,
                 validation_size=32, seed=0, progress=False).save_pretrained(root / "inv-factories")

    from skimage.io import imsave

    real, _ = zoo.load_test_images("dcgan-fashion-mnist")
    real = real[:20]
    np.save(root / "u8.npy", real)
    np.save(root / "float.npy", real.astype(np.float32) / 127.5 - 1)
    np.save(root / "unit.npy", real.astype(np.float32) / 255)
    np.save(root / "small.npy", real[:3, :20, :20])
    np.save(root / "tiny8.npy", np.random.default_rng(0).integers(0, 256, (5, 8, 8), dtype=np.uint8))
    for name, pixels in (("png", real[:4]), ("png16", real[:4].astype(np.uint16) * 257)):
        (root / name).mkdir()
        for i, image in enumerate(pixels):
            imsave(root / name / f"img{i}.png", image, check_contrast=False)
    (root / "rgb").mkdir()
    imsave(root / "rgb" / "colour.png", np.stack([real[0]] * 3, axis=-1), check_contrast=False)
    imsave(root / "one.jpg", real[0], check_contrast=False)
    (root / "dir.safetensors").mkdir()
    # GAN directories whose config.json cannot be trusted: sizes the weights do not have, absurd nesting
    for name, change in (("gan-huge-latent", lambda d: d["config"].update(latent_dim=10**8)),
                         ("gan-deep-config", None)):
        shutil.copytree(root / "gan", root / name)
        document = json.loads((root / name / "config.json").read_text())
        if change is None:
            (root / name / "config.json").write_text("[" * 100_000 + "]" * 100_000)
        else:
            change(document)
            (root / name / "config.json").write_text(json.dumps(document))
    return {"root": root, "gan": root / "gan", "inv": root / "inv.safetensors", "inv_factories": root / "inv-factories"}


def _inverter(ws: dict[str, Path]) -> Inverter:
    G, D, _, _ = load_gan(ws["gan"])
    return Inverter.load(ws["inv"], generator=G, discriminator=D)


def _codes(path: Path) -> np.ndarray:
    if path.suffix == ".npy":
        return np.load(path)
    with safe_open(str(path), framework="np") as handle:
        return handle.get_tensor("codes")


def _last_line(err: str, command: str) -> str:
    """The last line of a command's stderr, after checking the lines before it are progress, not errors or tracebacks.

    Commands say which inverter they use and how long work goes before they fail; the error itself is one line.
    """
    lines = err.splitlines()
    assert lines and "Traceback" not in err, err
    for line in lines[:-1]:
        assert line.startswith(f"discinvert {command}: ") and not line.startswith(f"discinvert {command}: error"), err
    return lines[-1] + "\n"


def _warning_lines(err: str, command: str) -> list[str]:
    """The warning lines of a command that succeeded, after checking its other lines are the line naming the
    inverter or progress (never an error or a traceback)."""
    lines = err.splitlines()
    assert "Traceback" not in err, err
    for line in lines:
        assert line.startswith(f"discinvert {command}: ") and not line.startswith(f"discinvert {command}: error"), err
    return [line for line in lines if line.startswith(f"discinvert {command}: warning: ")]


# ----------------------------------------------------------------------------- help and usage
@pytest.mark.parametrize("command", COMMANDS)
def test_every_subcommand_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    assert f"usage: discinvert {command}" in capsys.readouterr().out


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    out = capsys.readouterr().out
    assert all(command in out for command in COMMANDS)


# ----------------------------------------------------------------------------- layers
def test_layers_of_a_gan_directory(ws: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["layers", "--gan", str(ws["gan"])]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if " main.7 " in line)
    assert line.startswith("*") and "LeakyReLU" in line and "(2, 32, 4, 4)" in line and "512" in line
    assert "G(z) of shape (2, 1, 28, 28)" in out
    assert "suggested (D's last hidden layer, the paper's choice): --feature-layer main.7" in out
    assert "two depths (docs/byo_gan.md): --feature-layer main.4,main.7" in out


def test_layers_from_factories(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["layers", *FACTORIES, "--latent-shape", "8,1,1"]) == 0
    out = capsys.readouterr().out
    assert any(line.split()[:4] == ["4", "LeakyReLU", "(2,", "64,"] for line in out.splitlines())
    assert out.splitlines()[2].split()[-1] == "calls" and "calls > 1" not in out  # every layer of this D runs once
    assert main(["layers", "--discriminator", "tests.cli_factories:make_shared_activation_discriminator",
                 "--image-shape", "1,8,8"]) == 0
    shared = capsys.readouterr().out
    assert any(line.split()[0] == "act" and line.split()[-1] == "2" for line in shared.splitlines()[3:] if line.strip())
    assert "calls > 1: a module D runs several times" in shared
    assert main(["layers", "--discriminator", DISC, "--image-shape", "1,8,8"]) == 0
    assert "(2, 64, 4, 4)" in capsys.readouterr().out


# ----------------------------------------------------------------------------- fit
def test_fit_a_gan_directory_to_a_file(ws: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "fitted.safetensors"
    assert main(["fit", "--gan", str(ws["gan"]), *FAST_FIT, "--seed", "3", "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    G, D, _, _ = load_gan(ws["gan"])
    inverter = Inverter.load(out, generator=G, discriminator=D)
    assert inverter.feature_layer == "main.7" and inverter.latent_shape == (16, 1, 1)
    assert inverter.config.fit["steps"] == 2 and inverter.config.fit["seed"] == 3
    assert inverter.config.fit["autocast_dtype"] == "auto" and inverter.config.fit["reuse"] == 1


def test_fit_stores_the_weights_in_the_dtype_asked(ws: dict[str, Path], tmp_path: Path) -> None:
    import safetensors

    G, D, _, _ = load_gan(ws["gan"])
    sizes = {}
    for dtype, stored in (("float32", "F32"), ("int8", "I8")):
        out = tmp_path / f"{dtype}.safetensors"
        assert main(["fit", "--gan", str(ws["gan"]), *FAST_FIT, "--weights-dtype", dtype, "--out", str(out)]) == 0
        with safetensors.safe_open(str(out), framework="pt") as handle:
            assert handle.get_slice("cn.layers.0.weight").get_dtype() == stored
        assert Inverter.load(out, generator=G, discriminator=D).feature_layer == "main.7"
        sizes[dtype] = out.stat().st_size
    assert sizes["int8"] < 0.5 * sizes["float32"]
    folder = tmp_path / "repo"
    assert main(["fit", "--gan", str(ws["gan"]), *FAST_FIT, "--weights-dtype", "float16", "--out", str(folder)]) == 0
    with safetensors.safe_open(str(folder / "model.safetensors"), framework="pt") as handle:
        assert handle.get_slice("cn.layers.0.weight").get_dtype() == "F16"
    with pytest.raises(SystemExit):
        main(["fit", "--gan", str(ws["gan"]), *FAST_FIT, "--weights-dtype", "int4", "--out", str(folder)])


def test_fit_reads_several_layers_given_with_commas(ws: dict[str, Path], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "multi"
    assert main(["fit", "--gan", str(ws["gan"]), *FAST_FIT, "--feature-layer", "main.4,main.7", "--out", str(out)]) == 0
    assert "layer main.4,main.7" in capsys.readouterr().out
    G, D, _, _ = load_gan(ws["gan"])
    inverter = Inverter.from_pretrained(out, generator=G, discriminator=D)
    assert inverter.feature_layer == ("main.4", "main.7")
    codes = tmp_path / "codes.safetensors"
    assert main(["encode", "--gan", str(ws["gan"]), "--inverter", str(out), "--images", str(ws["root"] / "u8.npy"),
                 "--out", str(codes)]) == 0
    from safetensors import safe_open

    with safe_open(str(codes), "pt") as handle:
        assert handle.metadata()["feature_layer"] == "main.4,main.7"
    assert main(["fit", "--gan", str(ws["gan"]), *FAST_FIT, "--feature-layer", "main.4,mian.7", "--out",
                 str(tmp_path / "bad")]) == 1
    assert "'mian.7' is not a layer" in capsys.readouterr().err


def test_fit_with_real_images_from_npy_and_idx(ws: dict[str, Path], tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    real = np.load(ws["root"] / "u8.npy")
    write_idx_gz(tmp_path / "train-images-idx3-ubyte.gz", real)
    stage = ["--real-steps", "3", "--real-batch-size", "4", "--feature-weight", "0.25", "--prior-weight", "0"]
    outs = []
    for source in (ws["root"] / "u8.npy", tmp_path / "train-images-idx3-ubyte.gz"):
        out = tmp_path / f"{source.name}.safetensors"
        assert main(["fit", "--gan", str(ws["gan"]), *FAST_FIT, "--images", str(source), *stage, "--out", str(out)]) == 0
        printed = capsys.readouterr().out
        assert f"real-image stage on 20 images from {source}, mapped to G's range [-1, 1]" in printed
        assert "real-image stage: held-out pixel MSE" in printed
        outs.append(out)
    G, D, _, _ = load_gan(ws["gan"])
    a, b = (Inverter.load(out, generator=G, discriminator=D) for out in outs)
    real_record = a.config.fit["real_images"]
    assert (real_record["images"], real_record["held_out"], real_record["real_steps"]) == (16, 4, 3)
    assert (real_record["feature_weight"], real_record["prior_weight"]) == (0.25, 0.0)
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())  # same pixels, same fit


def test_fit_with_too_few_or_bad_real_images(ws: dict[str, Path], tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "x.safetensors"
    assert main(["fit", "--gan", str(ws["gan"]), *FAST_FIT, "--images", str(ws["root"] / "png"), "--out", str(out)]) == 1
    assert "expected at least 8 real images, got 4" in capsys.readouterr().err
    assert main(["fit", "--gan", str(ws["gan"]), *FAST_FIT, "--images", str(ws["root"] / "small.npy"), "--out", str(out)]) == 1
    assert "small.npy" in (err := capsys.readouterr().err) and "expected images of shape (N, 1, 28, 28)" in err
    with pytest.raises(SystemExit) as exit_info:  # the stage's flags without --images
        main(["fit", "--gan", str(ws["gan"]), *FAST_FIT, "--real-steps", "3", "--range", "0,1", "--out", str(out)])
    assert exit_info.value.code == 2 and "--range, --real-steps: only with --images" in capsys.readouterr().err
    for flag, value in (("--real-steps", "0"), ("--feature-weight", "-1"), ("--real-lr", "nan")):
        with pytest.raises(SystemExit) as exit_info:
            main(["fit", "--gan", str(ws["gan"]), *FAST_FIT, "--images", str(ws["root"] / "u8.npy"), flag, value, "--out", str(out)])
        assert exit_info.value.code == 2
    assert not out.exists()


def test_fit_with_iterations_then_encode_and_reconstruct_any_k(ws: dict[str, Path], tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "iter.safetensors"
    steps = ["--iterations", "2", "--iteration-steps", "3", "--iteration-batch-size", "4", "--iteration-lr", "0.001"]
    assert main(["fit", "--gan", str(ws["gan"]), *FAST_FIT, *steps, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "step network 1: latent MSE" in printed and "step network 2: latent MSE" in printed
    G, D, _, _ = load_gan(ws["gan"])
    inverter = Inverter.load(out, generator=G, discriminator=D)
    assert inverter.iterations == 2 and inverter.config.fit["iterative"]["iteration_steps"] == 3
    codes = {}
    for k in (None, "0", "1", "2"):
        target = tmp_path / f"codes{k}.npy"
        extra = [] if k is None else ["--iterations", k]
        assert main(["encode", "--gan", str(ws["gan"]), "--inverter", str(out), "--images", str(ws["root"] / "u8.npy"),
                     *extra, "--out", str(target)]) == 0
        codes[k] = np.load(target)
    x = torch.from_numpy(np.load(ws["root"] / "float.npy"))[:, None]
    for k in ("0", "1", "2"):
        np.testing.assert_allclose(codes[k], inverter.encode(x, iterations=int(k)).numpy(), atol=1e-5)
    np.testing.assert_array_equal(codes[None], codes["2"])
    assert main(["reconstruct", "--gan", str(ws["gan"]), "--inverter", str(out), "--images", str(ws["root"] / "u8.npy"),
                 "--iterations", "1", "--out", str(tmp_path / "grids")]) == 0
    assert main(["encode", "--gan", str(ws["gan"]), "--inverter", str(out), "--images", str(ws["root"] / "u8.npy"),
                 "--iterations", "3", "--out", str(tmp_path / "bad.npy")]) == 1
    assert "iterations: expected an int from 0" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:  # the steps' flags without --iterations
        main(["fit", "--gan", str(ws["gan"]), *FAST_FIT, "--iteration-steps", "3", "--out", str(tmp_path / "x.safetensors")])
    assert exit_info.value.code == 2 and "--iteration-steps: only with --iterations K, K > 0" in capsys.readouterr().err


def test_the_zoo_real_images_inverter_by_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``zoo:NAME/paper`` and ``zoo:NAME/real-images`` pick either bundled inverter; ``zoo:NAME`` alone is the default."""
    outs = {}
    for spec in ("zoo:dcgan-fashion-mnist/paper", "zoo:dcgan-fashion-mnist/real-images", "zoo:dcgan-fashion-mnist"):
        out = tmp_path / f"{spec.replace(':', '_').replace('/', '_')}.npy"
        assert main(["encode", "--gan", "zoo:dcgan-fashion-mnist", "--inverter", spec, "--images",
                     "zoo:dcgan-fashion-mnist", "--out", str(out)]) == 0
        outs[spec] = np.load(out)
    paper, real, bare = outs.values()
    assert paper.shape == real.shape == (1000, 100, 1, 1)
    assert not np.array_equal(paper, real) and np.array_equal(bare, real)
    G, D, inverter = zoo.load("dcgan-fashion-mnist")  # Python's zoo.load keeps the paper CN as its default
    np.testing.assert_allclose(paper[:8], inverter.encode(to_model_range(zoo.load_test_images()[0][:8])).numpy(), atol=1e-5)
    capsys.readouterr()
    assert main(["encode", "--gan", "zoo:dcgan-fashion-mnist", "--inverter", "zoo:dcgan-fashion-mnist/vae",
                 "--images", "zoo:dcgan-fashion-mnist", "--out", str(tmp_path / "x.npy")]) == 1
    assert "KIND one of paper, real-images, got 'vae'" in capsys.readouterr().err


def test_fit_with_the_levers(ws: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "fast.safetensors"
    assert main(["fit", "--gan", str(ws["gan"]), *FAST_FIT, "--reuse", "2", "--autocast", "bf16", "--channels-last",
                 "--out", str(out)]) == 0
    G, D, _, _ = load_gan(ws["gan"])
    fit = Inverter.load(out, generator=G, discriminator=D).config.fit
    assert (fit["reuse"], fit["autocast_dtype"], fit["channels_last"]) == (2, "torch.bfloat16", True)
    assert fit["levers"] == {"autocast_dtype": "torch.bfloat16", "channels_last": True}
    assert main(["fit", "--gan", str(ws["gan"]), *FAST_FIT, "--autocast", "off", "--out", str(out)]) == 0
    fit = Inverter.load(out, generator=G, discriminator=D).config.fit
    assert fit["autocast_dtype"] is None and fit["levers"]["autocast_dtype"] is None
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--gan", str(ws["gan"]), *FAST_FIT, "--autocast", "fp64", "--out", str(out)])
    assert exit_info.value.code == 2


def test_fit_factories_to_a_directory(tmp_path: Path) -> None:
    out = tmp_path / "hub-layout"
    assert main(["fit", *FACTORIES, "--latent-shape", "8,1,1", "--feature-layer", "4", *FAST_FIT, "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    inverter = Inverter.from_pretrained(out, generator=cli_factories.make_generator(),
                                        discriminator=cli_factories.make_discriminator())
    assert inverter.image_shape == (1, 8, 8)


# ----------------------------------------------------------------------------- encode
def test_encode_folders_and_arrays(ws: dict[str, Path], tmp_path: Path) -> None:
    common = ["encode", "--gan", str(ws["gan"]), "--inverter", str(ws["inv"])]
    expected = _inverter(ws).encode((torch.from_numpy(np.load(ws["root"] / "u8.npy")).float() / 127.5 - 1)[:, None]).numpy()
    runs = {
        "png.npy": ["--images", str(ws["root"] / "png")],
        "png16.npy": ["--images", str(ws["root"] / "png16")],
        "u8.safetensors": ["--images", str(ws["root"] / "u8.npy")],
        "float.npy": ["--images", str(ws["root"] / "float.npy")],
        "unit.npy": ["--images", str(ws["root"] / "unit.npy"), "--input-range", "0,1"],
        "jpg.npy": ["--images", str(ws["root"] / "one.jpg")],
    }
    for out, extra in runs.items():
        assert main([*common, *extra, "--out", str(tmp_path / out)]) == 0, out
    for out in ("png.npy", "png16.npy"):
        np.testing.assert_allclose(_codes(tmp_path / out), expected[:4], atol=1e-5)
    for out in ("u8.safetensors", "float.npy", "unit.npy"):
        np.testing.assert_allclose(_codes(tmp_path / out), expected, atol=1e-5)
    assert _codes(tmp_path / "jpg.npy").shape == (1, 16, 1, 1)
    with safe_open(str(tmp_path / "u8.safetensors"), framework="np") as handle:
        assert json.loads(handle.metadata()["names"])[:2] == ["u8.npy[0]", "u8.npy[1]"]


def test_encode_with_factories_and_refinement(ws: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "codes.npy"
    argv = ["encode", *FACTORIES, "--inverter", str(ws["inv_factories"]), "--images", str(ws["root"] / "tiny8.npy"),
            "--refine-steps", "2", "--no-progress", "--out", str(out)]
    assert main(argv) == 0
    assert np.load(out).shape == (5, 8, 1, 1) and np.isfinite(np.load(out)).all()


def test_encode_defaults_to_the_zoo_entrys_inverter(ws: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "codes.npy"
    assert main(["encode", "--gan", "zoo:dcgan-fashion-mnist", "--images", str(ws["root"] / "png"), "--out", str(out)]) == 0
    assert np.load(out).shape == (4, 100, 1, 1)


def test_the_command_line_and_the_page_default_to_the_same_zoo_inverter(ws: dict[str, Path], tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 32 item 16: one default for --gan zoo:NAME everywhere, the real-images inverter, and the command says it."""
    from discinvert.cli.sources import resolve_gan_directory

    assert zoo.default_inverter("dcgan-fashion-mnist") == "real-images"
    assert resolve_gan_directory("zoo:dcgan-fashion-mnist")[1] == "zoo:dcgan-fashion-mnist/real-images"
    out = tmp_path / "codes.npy"
    assert main(["encode", "--gan", "zoo:dcgan-fashion-mnist", "--images", str(ws["root"] / "u8.npy"), "--out", str(out)]) == 0
    _, _, real = zoo.load("dcgan-fashion-mnist", inverter="real-images")  # what discinvert serve loads
    np.testing.assert_allclose(np.load(out), real.encode(to_model_range(np.load(ws["root"] / "u8.npy"))).numpy(), atol=1e-5)
    assert capsys.readouterr().err == (
        "discinvert encode: inverter zoo:dcgan-fashion-mnist/real-images (the GAN's default; --inverter "
        "zoo:dcgan-fashion-mnist/paper for the other): fitted on real images, 2 step networks; reads D's main.7, "
        "codes (100, 1, 1)\n")
    # a folder laid out like a zoo entry makes the same choice
    folder = tmp_path / "entry"
    shutil.copytree(zoo.path("dcgan-fashion-mnist"), folder)
    assert resolve_gan_directory(str(folder))[1] == str(folder / "inverter-real-images")
    shutil.rmtree(folder / "inverter-real-images")
    assert resolve_gan_directory(str(folder))[1] == str(folder / "inverter")


@pytest.mark.parametrize("command", ["encode", "reconstruct", "evaluate", "push"])
def test_every_command_that_uses_an_inverter_names_it_in_one_stderr_line(command: str, ws: dict[str, Path], tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 32 item 16: which inverter ran (the path given, or the GAN's default) and what kind it is."""
    monkeypatch.setattr(Inverter, "push_to_hub", lambda *args, **kwargs: "https://huggingface.co/me/x/commit/abc")
    common = ["--gan", str(ws["gan"]), "--inverter", str(ws["inv"])]
    images = ["--images", str(ws["root"] / "u8.npy")]
    argv = {"encode": [*common, *images, "--out", str(tmp_path / "c.npy")],
            "reconstruct": [*common, *images, "--out", str(tmp_path / "r")],
            "evaluate": [*common, *images, "--n", "4", "--repeats", "1"],
            "push": [*common, "--repo-id", "me/x"]}[command]
    assert main([command, *argv]) == 0
    lines = capsys.readouterr().err.splitlines()
    assert lines == [f"discinvert {command}: inverter {ws['inv']}: fitted on self-generated pairs (the paper's method); "
                     "reads D's main.7, codes (16, 1, 1)"]


# ----------------------------------------------------------------------------- reconstruct
def test_reconstruct_writes_grids_of_pairs(ws: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from skimage.io import imread

    argv = ["reconstruct", "--gan", str(ws["gan"]), "--inverter", str(ws["inv"]), "--images", str(ws["root"] / "png"),
            "--out", str(tmp_path), "--per-grid", "3", "--columns", "2", "--scale", "2"]
    assert main(argv) == 0
    assert "PSNR" in capsys.readouterr().out
    grids = sorted(tmp_path.glob("reconstructions_*.png"))
    assert [p.name for p in grids] == ["reconstructions_000.png", "reconstructions_001.png"]
    first = imread(grids[0])
    pad, cell = 4, 2 * 28 + 1  # two rows of two pairs (3 pairs), tiles 28 px, upscaled x2
    assert first.shape == (2 * (pad + 2 * (28 + pad)), 2 * (pad + 2 * (cell + pad)))
    original = imread(ws["root"] / "png" / "img0.png")
    np.testing.assert_array_equal(first[2 * pad : 2 * (pad + 28) : 2, 2 * pad : 2 * (pad + 28) : 2], original)


# ----------------------------------------------------------------------------- evaluate
def test_evaluate_ranks_several_models(ws: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "scores.json"
    argv = ["evaluate", "--model", f"tiny={ws['gan']}:{ws['inv']}", "--model", "zoo:dcgan-fashion-mnist",
            "--images", str(ws["root"] / "u8.npy"), "--n", "8", "--repeats", "2", "--json", str(report)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    document = json.loads(report.read_text())
    names = [r["name"] for r in document["results"]]
    assert names == ["dcgan-fashion-mnist", "tiny"]  # the trained GAN reconstructs far better than an untrained one
    assert [r["rank"] for r in document["results"]] == [1, 2]
    assert document["protocol"] == {"n": 8, "repeats": 2, "seed": 0, "refine_steps": 0, "value_range": None,
                                    "sort_by": "psnr"}  # no --range: each model's recorded range
    assert [r["value_range"] for r in document["results"]] == [[-1.0, 1.0], [-1.0, 1.0]]
    best = document["results"][0]
    assert best["psnr_mean"] > 14 and 0 < best["ssim_mean"] < 1 and best["repeats"] == 2
    assert out.index("dcgan-fashion-mnist", out.index("rank")) < out.index("tiny", out.index("rank"))


def test_evaluate_fashion_mnist_test_split_and_a_factory_model(ws: dict[str, Path], tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    real, labels = zoo.load_test_images("dcgan-fashion-mnist")
    data = tmp_path / "fmnist"
    data.mkdir()
    images, labels = real[:12], labels[:12].astype(np.uint8)
    (data / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(bytes([0, 0, 8, 3]) + np.array(images.shape, ">u4").tobytes() + images.tobytes()))
    (data / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(bytes([0, 0, 8, 1]) + np.array(labels.shape, ">u4").tobytes() + labels.tobytes()))
    argv = ["evaluate", "--gan", str(ws["gan"]), "--inverter", str(ws["inv"]), "--name", "mine",
            "--fashion-mnist-test", "--data-root", str(data), "--n", "5", "--repeats", "2", "--refine-steps", "1"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "Fashion-MNIST test split" in out and "mine" in out

    argv = ["evaluate", *FACTORIES, "--inverter", str(ws["inv_factories"]), "--images", str(ws["root"] / "tiny8.npy"),
            "--n", "4", "--repeats", "1", "--json", str(tmp_path / "f.json")]
    assert main(argv) == 0
    assert json.loads((tmp_path / "f.json").read_text())["results"][0]["name"] == GEN


# ----------------------------------------------------------------------------- progress
def test_progress_is_a_line_every_few_seconds_off_a_terminal_and_a_bar_on_one() -> None:
    """Issue 32 item 17: tqdm's bar hides itself in a pipe; the counter writes plain lines there instead."""
    import io

    from discinvert.cli.progress import Progress, refine_callback

    log = io.StringIO()
    progress = Progress("evaluate", interval=0.0, stream=log)  # a StringIO is no terminal
    assert not progress.on_terminal
    with progress.counter("refine", 0, "image-step") as counter:
        callback = refine_callback(counter, images=5, steps=4)  # two batches: images 0-2, then 3-4
        for start, size in ((0, 3), (3, 2)):
            for step in range(5):
                callback(start, step, torch.zeros(size, 2))
    lines = log.getvalue().splitlines()
    assert lines[0] == "discinvert evaluate: refine: 3/20 image-steps (15%), 0 s, about 0 s left"
    assert "discinvert evaluate: refine: 12/20 image-steps (60%)" in lines[3]
    assert lines[-1].startswith("discinvert evaluate: refine: done in ") and len(lines) == 8  # 20/20 is the done line
    quiet = io.StringIO()
    with Progress("encode", counters=False, interval=0.0, stream=quiet).counter("refine", 10) as counter:
        counter.update_to(5)
    assert quiet.getvalue() == ""  # --no-progress
    seldom = io.StringIO()
    with Progress("demo", stream=seldom).counter("refine", 10) as counter:  # the default: a line every few seconds
        for done in range(11):
            counter.update_to(done)
    assert seldom.getvalue().count("\n") == 1  # only the done line
    bar = io.StringIO()
    with Progress("demo", bar=True, stream=bar).counter("refine", 10) as counter:
        counter.update_to(10)
    assert "10/10" in bar.getvalue() and "discinvert demo:" not in bar.getvalue()  # tqdm's bar


def test_fit_shows_its_stages_and_validations_when_piped_unless_told_not_to(ws: dict[str, Path], tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """Off a terminal the library's tqdm bar hides itself: ``discinvert fit`` then writes the fit's stages and a
    validation line every few seconds; ``--no-progress`` keeps it quiet; discinvert's logger is put back."""
    import logging

    logger = logging.getLogger("discinvert")
    before = (logger.level, logger.propagate, list(logger.handlers))
    base = ["fit", "--gan", str(ws["gan"]), "--steps", "2", "--batch-size", "16", "--validation-size", "32",
            "--out", str(tmp_path / "inv.safetensors")]
    assert main(base) == 0
    lines = capsys.readouterr().err.splitlines()
    assert any(line.startswith("discinvert fit: fitting CN ") for line in lines), lines
    assert any(line.startswith("discinvert fit: fit CN step 2: train ") and "validation" in line for line in lines), lines
    assert any(line.startswith("discinvert fit: fit done in ") for line in lines), lines
    assert all(line.startswith("discinvert fit: ") for line in lines), lines
    assert (logger.level, logger.propagate, list(logger.handlers)) == before
    assert main([*base, "--no-progress"]) == 0
    assert not any("fit CN step" in line for line in capsys.readouterr().err.splitlines())


def test_evaluate_with_refinement_shows_progress_when_piped(ws: dict[str, Path]) -> None:
    """Issue 32 item 17: ``discinvert evaluate --refine-steps`` in a pipe says what it does and when it is done."""
    argv = ["evaluate", "--model", f"tiny={ws['gan']}:{ws['inv']}", "--images", str(ws["root"] / "u8.npy"), "--n", "6",
            "--repeats", "2", "--refine-steps", "3"]
    done = subprocess.run([sys.executable, "-m", "discinvert", *argv], capture_output=True, text=True, timeout=300,
                          cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert lines[0] == f"discinvert evaluate: inverter {ws['inv']}: fitted on self-generated pairs (the paper's method); " \
                       "reads D's main.7, codes (16, 1, 1)"
    assert lines[-1].startswith("discinvert evaluate: tiny: refine 3 steps: done in ") and len(lines) == 2, lines


def test_encode_with_refinement_shows_progress_when_piped_unless_told_not_to(ws: dict[str, Path], tmp_path: Path,
                                                                               capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["encode", "--gan", str(ws["gan"]), "--inverter", str(ws["inv"]), "--images", str(ws["root"] / "u8.npy"),
            "--refine-steps", "2", "--out", str(tmp_path / "c.npy")]
    assert main(argv) == 0
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2 and lines[1].startswith("discinvert encode: refine 20 images x 2 steps: done in ")
    assert main([*argv, "--no-progress"]) == 0
    assert len(capsys.readouterr().err.splitlines()) == 1  # the inverter line only


# ----------------------------------------------------------------------------- push
def test_push_calls_the_hub(ws: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    calls = []

    def fake_push(inverter, repo_id, **kwargs):
        calls.append((inverter, repo_id, kwargs))
        return f"https://huggingface.co/{repo_id}/commit/abc"

    monkeypatch.setattr(Inverter, "push_to_hub", fake_push)  # the method (bound from discinvert.hub.push_to_hub)
    argv = ["push", "--gan", str(ws["gan"]), "--inverter", str(ws["inv"]), "--repo-id", "me/tiny-inverter",
            "--private", "--token", "hf_x", "--message", "first"]
    assert main(argv) == 0
    (inverter, repo_id, kwargs), = calls
    assert isinstance(inverter, Inverter) and repo_id == "me/tiny-inverter"
    assert kwargs["private"] is True and kwargs["token"] == "hf_x" and kwargs["commit_message"] == "first"
    assert str(ws["gan"]) in kwargs["gan"] and kwargs["dtype"] == torch.float32
    assert "commit/abc" in capsys.readouterr().out
    assert main([*argv, "--weights-dtype", "int8"]) == 0
    assert calls[-1][2]["dtype"] == torch.int8


def test_push_without_network_is_one_line(ws: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    from huggingface_hub.errors import OfflineModeIsEnabled

    def offline(*args, **kwargs):
        raise OfflineModeIsEnabled("Cannot reach https://huggingface.co/api/repos/create: offline mode is enabled.")

    monkeypatch.setattr(Inverter, "push_to_hub", offline)
    assert main(["push", "--gan", str(ws["gan"]), "--inverter", str(ws["inv"]), "--repo-id", "me/x"]) == 1
    err = _last_line(capsys.readouterr().err, "push")
    assert err.startswith("discinvert push: error: ") and "me/x" in err and "offline mode" in err


# ----------------------------------------------------------------------------- user mistakes
FAILURES = [  # (argv with {placeholders}, message fragment): exit code 1, one line
    (["layers", "--gan", "{root}/missing"], "no such GAN directory"),
    (["layers", "--gan", "{root}/u8.npy"], "got a file"),
    (["layers", "--discriminator", "no_such_module_xyz:make"], "cannot import 'no_such_module_xyz'"),
    (["layers", "--discriminator", "tests.cli_factories:no_such_factory"], "has no attribute"),
    (["layers", "--discriminator", "tests.cli_factories:not_a_module"], "expected it to return a torch.nn.Module"),
    (["layers", "--gan", "zoo:stylegan-cats"], "unknown zoo entry"),
    (["fit", "--gan", "{gan}", "--feature-layer", "main.70", "--out", "{root}/x.safetensors"], "'main.70' is not a layer"),
    (["fit", "--gan", "{gan}", "--device", "tpu-ish", "--out", "{root}/x.safetensors"], "device"),
    (["encode", "--gan", "{gan}", "--inverter", "{inv}", "--images", "{root}/rgb", "--out", "{root}/c.npy"],
     "3 channels (RGB), but the inverter expects 1 channel (grayscale)"),
    (["encode", "--gan", "{gan}", "--inverter", "{inv}", "--images", "{root}/small.npy", "--out", "{root}/c.npy"],
     "expected images of shape (N, 1, 28, 28)"),
    (["encode", "--gan", "{gan}", "--inverter", "{inv}", "--images", "{root}/missing", "--out", "{root}/c.npy"],
     "no such image folder or file"),
    (["encode", "--gan", "{gan}", "--inverter", "{root}/missing.safetensors", "--images", "{root}/png", "--out", "{root}/c.npy"],
     "no such inverter file"),
    (["encode", "--gan", "zoo:dcgan-fashion-mnist", "--inverter", "{inv}", "--images", "{root}/png", "--out", "{root}/c.npy"],
     "does not fit this GAN"),
    (["reconstruct", "--gan", "zoo:stylegan-cats", "--images", "{root}/png", "--out", "{root}/r"], "unknown zoo entry"),
    (["evaluate", "--model", "zoo:stylegan-cats", "--images", "{root}/u8.npy"], "unknown zoo entry"),
    (["evaluate", "--model", "zoo:dcgan-fashion-mnist", "--images", "{root}/u8.npy", "--n", "50"], "only 20 images"),
    (["push", "--gan", "{gan}", "--inverter", "{root}/missing.safetensors", "--repo-id", "me/x"], "no such inverter file"),
    (["layers", "--gan", "{gan}", "--device", "meta"], "expected a device that holds data, such as 'cpu' or 'cuda:0', got 'meta'"),
    # config.json checked against the weights' headers before anything is built (here, 627 GB for G)
    (["layers", "--gan", "{root}/gan-huge-latent"], "tensor 'main.0.weight': expected shape (100000000, 32, 7, 7)"),
    (["layers", "--gan", "{root}/gan-deep-config"], "config.json is not usable JSON: lists or objects nested deeper"),
    (["reconstruct", "--gan", "{gan}", "--inverter", "{inv}", "--images", "{root}/png", "--out", "{root}/r", "--scale", "10000"],
     "expected a picture of at most 89478485 pixels, got 360000x2480000"),
]

USAGE_ERRORS = [  # exit code 2 (argparse), message fragment on the last line
    (["layers", "--discriminator", "not a factory"], "package.module:callable"),
    (["layers", "--gan", "{gan}", "--generator", GEN], "either --gan or --generator/--discriminator"),
    (["layers"], "a GAN is needed"),
    (["fit", *FACTORIES, "--feature-layer", "4", "--out", "{root}/x.safetensors"], "--latent-shape"),
    (["fit", "--gan", "{gan}", "--steps", "0", "--out", "{root}/x.safetensors"], "argument --steps: expected an integer >= 1, got '0'"),
    (["fit", "--gan", "{gan}", "--seed", "abc", "--out", "{root}/x.safetensors"],
     "argument --seed: expected an integer in [0, 2**62), got 'abc'"),
    (["fit", "--gan", "{gan}", *FAST_FIT, "--seed", str(2**70), "--out", "{root}/x.safetensors"],
     "argument --seed: expected an integer in [0, 2**62), got '1180591620717411303424'"),
    (["fit", "--gan", "{gan}", "--steps", "2", "--batch-size", "1", "--validation-size", "32", "--no-progress", "--out",
      "{root}/x.safetensors"], "argument --batch-size: expected an integer >= 2, got '1'"),
    (["fit", "--gan", "{gan}", *FAST_FIT, "--out", "{root}/dir.safetensors"], "got an existing directory"),
    (["evaluate", "--model", "zoo:dcgan-fashion-mnist", "--images", "{root}/u8.npy", "--seed", "x"],
     "argument --seed: expected an integer in [0, 2**62), got 'x'"),
    (["encode", "--gan", "{gan}", "--inverter", "{inv}", "--images", "{root}/png", "--out", "{root}/c.txt"], ".npy or .safetensors"),
    (["encode", "--gan", "{gan}", "--images", "{root}/png", "--out", "{root}/c.npy"], "--inverter"),
    (["encode", "--gan", "{gan}", "--inverter", "{inv}", "--images", "{root}/png", "--out", "{root}/c.npy", "--range", "1,-1"],
     "LOW < HIGH"),
    (["evaluate", "--images", "{root}/u8.npy"], "no model to evaluate"),
    (["evaluate", "--model", "zoo:dcgan-fashion-mnist"], "--images"),
    (["evaluate", "--model", "zoo:dcgan-fashion-mnist", "--model", "zoo:dcgan-fashion-mnist", "--images", "{root}/u8.npy"],
     "given twice"),
    (["push", "--gan", "{gan}", "--inverter", "{inv}"], "--repo-id"),
]


def _fill(argv: list[str], ws: dict[str, Path]) -> list[str]:
    return [a.format(root=ws["root"], gan=ws["gan"], inv=ws["inv"]) for a in argv]


@pytest.mark.parametrize(("argv", "message"), FAILURES, ids=[" ".join(a[:3]) + f" #{i}" for i, (a, _) in enumerate(FAILURES)])
def test_user_mistakes_fail_with_one_line(argv: list[str], message: str, ws: dict[str, Path],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_fill(argv, ws)) == 1
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1, captured.err
    assert captured.err.startswith(f"discinvert {argv[0]}: error: ") and message in captured.err
    assert "Traceback" not in captured.err


@pytest.mark.parametrize(("argv", "message"), USAGE_ERRORS, ids=[" ".join(a[:3]) + f" #{i}" for i, (a, _) in enumerate(USAGE_ERRORS)])
def test_usage_errors_exit_2(argv: list[str], message: str, ws: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(_fill(argv, ws))
    assert info.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith(f"discinvert {argv[0]}: error: ") and message in last


# ----------------------------------------------------------------------------- output files
_FULL_DISK = """
import contextlib, io, json, resource, signal, sys
from discinvert.cli import main

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG, as on a full disk
limit, runs = int(sys.argv[1]), json.loads(sys.argv[2])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
results = []
for argv in runs:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except BaseException as error:  # what the console script would show as a traceback
            code = f"{type(error).__name__}: {error}"
    results.append([code, err.getvalue()])
print(json.dumps(results))
"""


def test_every_output_survives_a_full_disk(ws: dict[str, Path], tmp_path: Path) -> None:
    """Under a 256-byte file size limit every write fails: one line, exit 1, the old files intact, no debris."""
    gan, inv, images = str(ws["gan"]), str(ws["inv"]), str(ws["root"] / "u8.npy")
    runs = {  # command line -> the file it fails to replace
        "codes.npy": ["encode", "--gan", gan, "--inverter", inv, "--images", images, "--out", "codes.npy"],
        "codes.safetensors": ["encode", "--gan", gan, "--inverter", inv, "--images", images, "--out", "codes.safetensors"],
        "grids/reconstructions_000.png": ["reconstruct", "--gan", gan, "--inverter", inv, "--images", images,
                                          "--out", "grids"],
        "scores.json": ["evaluate", "--model", f"tiny={gan}:{inv}", "--images", images, "--n", "4", "--repeats", "1",
                        "--json", "scores.json"],
        "inv.safetensors": ["fit", "--gan", gan, *FAST_FIT, "--out", "inv.safetensors"],
        "repo/model.safetensors": ["fit", "--gan", gan, *FAST_FIT, "--out", "repo"],
        "demo/reconstructions.png": ["demo", "--out", "demo", "--n-images", "4", "--refine-steps", "0"],
    }
    old = {name: f"previous {name}".encode() for name in [*runs, "demo/metrics.json"]}
    for name, data in old.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
        (tmp_path / name).chmod(0o640)
    child = subprocess.run([sys.executable, "-c", _FULL_DISK, "256", json.dumps(list(runs.values()))],
                           capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert child.returncode == 0, child.stderr
    for (name, argv), (code, err) in zip(runs.items(), json.loads(child.stdout.splitlines()[-1])):
        assert code == 1, (name, code, err)
        err = _last_line(err, argv[0])
        assert err.startswith(f"discinvert {argv[0]}: error: {name}: could not be written"), err
        assert "File too large" in err and "unchanged" in err
    for name, data in old.items():
        assert (tmp_path / name).read_bytes() == data, name
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o640, name
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and p.relative_to(tmp_path).as_posix() not in old]


def _writable(folder: Path) -> bool:
    try:
        (folder / "probe").touch()
    except OSError:
        return False
    (folder / "probe").unlink()
    return True


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A folder nothing can be written in; as root (which ignores permission bits), an immutable one."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    immutable = False
    if _writable(folder) and shutil.which("chattr"):
        immutable = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, check=False).returncode == 0
    if _writable(folder):
        folder.chmod(0o755)
        pytest.skip("cannot make a read-only folder here (root, without chattr +i)")
    yield folder
    if immutable:
        subprocess.run(["chattr", "-i", str(folder)], check=True)
    folder.chmod(0o755)


@pytest.mark.parametrize("where", ["read-only folder", "below a file"])
def test_fit_checks_out_is_writable_before_fitting(where: str, ws: dict[str, Path], request: pytest.FixtureRequest,
                                                  monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import discinvert.fitting.fit

    def must_not_run(*args, **kwargs):
        raise AssertionError("fit_inverter ran before --out was checked")

    monkeypatch.setattr(discinvert.fitting.fit, "fit_inverter", must_not_run)
    parent = request.getfixturevalue("read_only_dir") if where == "read-only folder" else ws["root"] / "u8.npy"
    for out in (parent / "inv.safetensors", parent / "repo", parent / "deeper" / "inv.safetensors"):
        assert main(["fit", "--gan", str(ws["gan"]), *FAST_FIT, "--out", str(out)]) == 1
        captured = capsys.readouterr()
        assert "fitting" not in captured.out
        assert captured.err.count("\n") == 1 and captured.err.startswith(f"discinvert fit: error: {out}: cannot")
    if parent.is_dir():
        assert os.listdir(parent) == []  # no folder made, no probe file left


def test_outputs_are_checked_before_reading_images(ws: dict[str, Path], read_only_dir: Path,
                                                   monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import discinvert.zoo

    def must_not_run(*args, **kwargs):
        raise AssertionError("images were read before the output was checked")

    monkeypatch.setattr(discinvert.zoo, "read_image_source", must_not_run)
    common = ["--gan", str(ws["gan"]), "--inverter", str(ws["inv"]), "--images", str(ws["root"] / "u8.npy")]
    for argv in (["encode", *common, "--out", str(read_only_dir / "codes.npy")],
                 ["reconstruct", *common, "--out", str(read_only_dir / "grids")],
                 ["evaluate", *common, "--json", str(read_only_dir / "scores.json")]):
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"cannot write in {read_only_dir}" in err


class _InterruptImport:
    """A meta-path finder that raises KeyboardInterrupt on importing ``name``: Ctrl-C while torch loads."""

    def __init__(self, name: str) -> None:
        self.name = name

    def find_spec(self, fullname: str, path: object, target: object = None) -> None:
        if fullname == self.name:
            raise KeyboardInterrupt
        return None


@pytest.mark.parametrize(
    ("module", "argv", "line"),
    [
        ("discinvert.cli.sources", ["layers", "--discriminator", DISC, "--image-shape", "1,8,8"], "discinvert: interrupted"),
        ("discinvert.fitting.fit", ["demo", "--n-images", "1"], "discinvert demo: interrupted"),
    ],
)
def test_ctrl_c_during_imports_exits_130(module: str, argv: list[str], line: str, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delitem(sys.modules, module, raising=False)
    monkeypatch.setattr(sys, "meta_path", [_InterruptImport(module), *sys.meta_path])
    try:
        code = main(argv)
    except KeyboardInterrupt:
        pytest.fail("KeyboardInterrupt escaped main (a traceback for the user)")
    assert code == 130 and capsys.readouterr().err == line + "\n"


@pytest.mark.parametrize("error", [MemoryError("Unable to allocate 936. GiB for an array with shape (360000, 2480000)"),
                                   RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 9 bytes")])
def test_out_of_memory_is_one_line(error: Exception, ws: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    import discinvert.cli.images

    def exhausted(*args, **kwargs):
        raise error

    monkeypatch.setattr(discinvert.cli.images, "pair_grid", exhausted)
    argv = ["reconstruct", "--gan", str(ws["gan"]), "--inverter", str(ws["inv"]), "--images", str(ws["root"] / "png"),
            "--out", str(tmp_path)]
    assert main(argv) == 1
    err = _last_line(capsys.readouterr().err, "reconstruct")
    assert err.startswith("discinvert reconstruct: error: out of memory (") and str(error) in err


# ----------------------------------------------------------------------------- the installed command
def _command() -> list[str]:
    script = Path(sys.executable).with_name("discinvert")
    return [str(script)] if script.exists() else [sys.executable, "-m", "discinvert"]


def test_console_script(ws: dict[str, Path]) -> None:
    ok = subprocess.run([*_command(), "layers", *FACTORIES, "--latent-shape", "8,1,1"],
                        check=False, capture_output=True, text=True, timeout=300, cwd=REPO)  # factories import from the cwd
    assert ok.returncode == 0, ok.stderr
    assert "LeakyReLU" in ok.stdout and "(2, 64, 4, 4)" in ok.stdout

    bad = subprocess.run([*_command(), "encode", "--gan", "zoo:stylegan-cats", "--images", str(ws["root"] / "png"),
                          "--out", str(ws["root"] / "c.npy")], check=False, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert bad.returncode == 1
    assert bad.stderr.count("\n") == 1 and "unknown zoo entry" in bad.stderr and "Traceback" not in bad.stderr

    usage = subprocess.run([*_command(), "fit", "--gan", str(ws["gan"])], check=False, capture_output=True, text=True, timeout=300)
    assert usage.returncode == 2 and "--out" in usage.stderr and "Traceback" not in usage.stderr


def test_the_command_imports_torch_only_inside_main() -> None:
    """``import discinvert.cli`` (what the console script runs before main) stays off torch, so a Ctrl-C
    during torch's import lands inside main, which answers it with one line and exit 130."""
    code = "import sys, discinvert, discinvert.cli; print(sorted(m for m in ('torch', 'numpy', 'safetensors') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True).stdout
    assert out.strip() == "[]"


def test_images_outside_g_range_warn_in_one_line_or_fail_with_strict_range(ws: dict[str, Path], tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    base = ["encode", "--gan", "zoo:dcgan-fashion-mnist", "--images", str(ws["root"] / "png"), "--out", str(tmp_path / "c.npy")]
    assert main(base) == 0  # the default --range is the inverter's recorded one: no warning
    assert "warning" not in capsys.readouterr().err
    assert main([*base, "--range", "0,255"]) == 0  # a wrong --range for this tanh G: 0..255 values
    lines = capsys.readouterr().err.splitlines()  # the warning and the line naming the inverter
    warned = [line for line in lines if line.startswith("discinvert encode: warning: ")]
    assert len(warned) == 1 and len(lines) == 2 and "Traceback" not in "".join(lines), lines
    assert warned[0].startswith("discinvert encode: warning: images: expected values in the generator's range [-1, 1]")
    assert main([*base, "--range", "0,255", "--strict-range"]) == 1
    err = _last_line(capsys.readouterr().err, "encode")
    assert err.startswith("discinvert encode: error: images: expected values in the generator's")


def test_evaluate_a_generator_of_flat_vectors_with_image_shape(ws: dict[str, Path], tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    from discinvert import fit_inverter

    G, D = cli_factories.make_flat_generator(), cli_factories.make_flat_discriminator()
    fit_inverter(G, D, "body.4", latent_shape=(cli_factories.LATENT, 1, 1), steps=1, batch_size=16,
                 validation_size=32, seed=0, progress=False).save(tmp_path / "flat.safetensors")
    argv = ["evaluate", "--generator", "tests.cli_factories:make_flat_generator", "--discriminator",
            "tests.cli_factories:make_flat_discriminator", "--inverter",
            str(tmp_path / "flat.safetensors"), "--images", str(ws["root"] / "tiny8.npy"), "--n", "5", "--repeats", "1",
            "--json", str(tmp_path / "r.json")]
    assert main(argv) == 1
    assert "images have shape (64,); for a generator of flat vectors give --image-shape C,H,W" in capsys.readouterr().err
    assert main([*argv, "--image-shape", "1,8,7"]) == 1
    assert "--image-shape 1,8,7: expected C,H,W holding 64 values" in capsys.readouterr().err
    assert main([*argv, "--image-shape", "1,8,8"]) == 0
    result = json.loads((tmp_path / "r.json").read_text())["results"][0]
    assert result["n"] == 5 and math.isfinite(result["psnr_mean"]) and 0 < result["ssim_mean"] <= 1


# ----------------------------------------------------------------------------- how images are read (issue 32)
def _one_bit_pictures(ws: dict[str, Path], tmp_path: Path) -> tuple[np.ndarray, Path]:
    """Four black-and-white 28x28 pictures (from the bundled test images) as 1-bit PNGs in a folder."""
    from PIL import Image

    pictures = np.load(ws["root"] / "u8.npy")[:4] > 100
    folder = tmp_path / "one-bit"
    folder.mkdir()
    for i, picture in enumerate(pictures):
        Image.fromarray(picture).save(folder / f"img{i}.png")
        assert Image.open(folder / f"img{i}.png").mode == "1"
    return pictures, folder


def test_one_bit_pngs_and_bool_npy_are_read_as_black_and_white_pixels(ws: dict[str, Path], tmp_path: Path) -> None:
    """A 1-bit PNG (a file or a folder of them) and a bool .npy mean 0 and 255, not G-range 0.0 and 1.0."""
    pictures, folder = _one_bit_pictures(ws, tmp_path)
    np.save(tmp_path / "bool.npy", pictures)
    expected = _inverter(ws).encode(torch.from_numpy(pictures[:, None]).float() * 2 - 1).numpy()
    common = ["encode", "--gan", str(ws["gan"]), "--inverter", str(ws["inv"])]
    for name, source in (("folder", folder), ("file", folder / "img0.png"), ("npy", tmp_path / "bool.npy")):
        assert main([*common, "--images", str(source), "--out", str(tmp_path / f"{name}.npy")]) == 0, name
        codes = _codes(tmp_path / f"{name}.npy")
        np.testing.assert_allclose(codes, expected[: len(codes)], atol=1e-5, err_msg=name)


def test_input_range_with_integer_images_is_refused(ws: dict[str, Path], tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """``--input-range`` describes float arrays; integer pixels have a known scale, so it is refused, saying why."""
    common = ["encode", "--gan", str(ws["gan"]), "--inverter", str(ws["inv"]), "--input-range", "0,1"]
    np.save(tmp_path / "bool.npy", np.load(ws["root"] / "u8.npy") > 100)
    for source, kind in ((ws["root"] / "u8.npy", "uint8"), (ws["root"] / "png", "uint8"), (ws["root"] / "png16", "uint16"),
                         (tmp_path / "bool.npy", "bool")):
        assert main([*common, "--images", str(source), "--out", str(tmp_path / "c.npy")]) == 1, source
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "--input-range 0,1" in err and kind in err and "float" in err, err
    assert not (tmp_path / "c.npy").exists()
    real = ["fit", "--gan", str(ws["gan"]), *FAST_FIT, "--images", str(ws["root"] / "u8.npy"), "--input-range", "0,1",
            "--out", str(tmp_path / "x.safetensors")]
    assert main(real) == 1 and "--input-range 0,1" in capsys.readouterr().err


def test_float_npy_in_unit_range_for_a_tanh_g_warns_naming_input_range(ws: dict[str, Path], tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    base = ["encode", "--gan", str(ws["gan"]), "--inverter", str(ws["inv"]), "--images", str(ws["root"] / "unit.npy"),
            "--out", str(tmp_path / "c.npy")]
    assert main(base) == 0
    warned = _warning_lines(capsys.readouterr().err, "encode")
    assert len(warned) == 1 and "--input-range 0,1" in warned[0], warned
    assert main([*base, "--input-range", "0,1"]) == 0
    assert _warning_lines(capsys.readouterr().err, "encode") == []
    assert main(["encode", "--gan", str(ws["gan"]), "--inverter", str(ws["inv"]), "--images", str(ws["root"] / "float.npy"),
                 "--out", str(tmp_path / "c.npy")]) == 0
    assert _warning_lines(capsys.readouterr().err, "encode") == []  # images in [-1, 1]: nothing to say


def test_float_npy_of_0_to_255_values_warns_naming_the_command_line_flag(ws: dict[str, Path], tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    np.save(tmp_path / "u8-as-float.npy", np.load(ws["root"] / "u8.npy").astype(np.float32))
    base = ["encode", "--gan", str(ws["gan"]), "--inverter", str(ws["inv"]), "--images", str(tmp_path / "u8-as-float.npy"),
            "--out", str(tmp_path / "c.npy")]
    assert main(base) == 0
    warned = _warning_lines(capsys.readouterr().err, "encode")
    assert len(warned) == 1 and warned[0].startswith("discinvert encode: warning: images: expected values in the generator's")
    err = warned[0]
    assert "--input-range 0,255" in err and "--strict-range" in err and "range_check" not in err, err
    assert main([*base, "--strict-range"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("discinvert encode: error: ") and "--input-range 0,255" in err and "range_check" not in err
    assert main([*base, "--input-range", "0,255"]) == 0 and _warning_lines(capsys.readouterr().err, "encode") == []


def test_fit_with_unit_range_float_images_warns_naming_input_range(ws: dict[str, Path], tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "x.safetensors"
    assert main(["fit", "--gan", str(ws["gan"]), *FAST_FIT, "--images", str(ws["root"] / "unit.npy"), "--real-steps", "1",
                 "--out", str(out)]) == 0
    warned = [line for line in _warning_lines(capsys.readouterr().err, "fit") if "images" in line]
    assert len(warned) == 1 and "--input-range 0,1" in warned[0] and "x * 2 - 1" not in warned[0], warned
    np.save(tmp_path / "u8-as-float.npy", np.load(ws["root"] / "u8.npy").astype(np.float32))
    assert main(["fit", "--gan", str(ws["gan"]), *FAST_FIT, "--images", str(tmp_path / "u8-as-float.npy"),
                 "--out", str(out)]) == 1  # far outside G's range: the fit refuses it, naming the flag
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--input-range 0,255" in err and "x / 127.5" not in err, err


def test_an_animated_png_in_a_folder_is_refused_as_animated(ws: dict[str, Path], tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    folder = tmp_path / "frames"
    folder.mkdir()
    frames = [Image.fromarray(image) for image in np.load(ws["root"] / "u8.npy")]
    frames[0].save(folder / "moving.png", save_all=True, append_images=frames[1:])
    assert main(["encode", "--gan", str(ws["gan"]), "--inverter", str(ws["inv"]), "--images", str(folder),
                 "--out", str(tmp_path / "c.npy")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "moving.png" in err and "animated PNG with 20 frames" in err and "channels" not in err


@pytest.mark.parametrize("layers", ["main.4,,main.7", "main.7,", ""])
def test_an_empty_feature_layer_name_is_refused(layers: str, ws: dict[str, Path], tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """An empty name would select D itself (its output) as a layer."""
    with pytest.raises(SystemExit) as info:
        main(["fit", "--gan", str(ws["gan"]), *FAST_FIT, "--feature-layer", layers, "--out", str(tmp_path / "x.safetensors")])
    assert info.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "argument --feature-layer: expected layer names separated by commas" in last and "empty" in last, last
    assert not (tmp_path / "x.safetensors").exists()


def test_fit_with_an_unknown_feature_layer_fails_before_the_banner_and_names_discinvert_layers(
        ws: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fit", "--gan", str(ws["gan"]), *FAST_FIT, "--feature-layer", "main.99",
                 "--out", str(tmp_path / "x.safetensors")]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""  # no "fitting ..." line for a fit that never starts
    assert captured.err.count("\n") == 1 and "'main.99' is not a layer" in captured.err
    assert f"discinvert layers --gan {ws['gan']}" in captured.err, captured.err


def test_demo_n_images_above_the_bundled_1000_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["demo", "--n-images", "1001", "--out", str(tmp_path / "demo")])
    assert info.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "argument --n-images: expected an integer from 1 to 1000" in last and "'1001'" in last, last
    assert not (tmp_path / "demo").exists()
    assert len(zoo.load_test_images("dcgan-fashion-mnist")[0]) == 1000  # the bound is the bundled images' count
    from discinvert.cli.demo import DemoOptions, run_demo

    with pytest.raises(ValueError, match=r"n_images: expected at most 1000 \(the bundled test images\), got 1001"):
        run_demo(DemoOptions(out=tmp_path / "demo", n_images=1001))


def test_an_output_that_is_an_input_is_refused(ws: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """``--out``/``--json`` naming a file the command reads (also through a symlink or a relative path) is
    refused before anything is read or written; the input stays as it was."""
    images = tmp_path / "x.npy"
    shutil.copy(ws["root"] / "u8.npy", images)
    (tmp_path / "link.npy").symlink_to(images)
    inverter = tmp_path / "inv.safetensors"
    shutil.copy(ws["inv"], inverter)
    gan = tmp_path / "gan"
    shutil.copytree(ws["gan"], gan)
    before = {p: p.read_bytes() for p in (images, inverter, gan / "config.json")}
    monkeypatch.chdir(tmp_path)
    encode = ["encode", "--gan", str(gan), "--inverter", str(inverter), "--images", str(images)]
    runs = [
        ([*encode, "--out", str(images)], "--out", "--images"),
        ([*encode, "--out", "link.npy"], "--out", "--images"),
        ([*encode, "--out", "./sub/../x.npy"], "--out", "--images"),
        ([*encode, "--out", "inv.safetensors"], "--out", "--inverter"),
        (["evaluate", "--gan", str(gan), "--inverter", str(inverter), "--images", "x.npy", "--n", "4", "--repeats", "1",
          "--json", str(images)], "--json", "--images"),
        (["fit", "--gan", str(gan), *FAST_FIT, "--out", "gan"], "--out", "--gan"),
    ]
    (tmp_path / "sub").mkdir()
    for argv, output, source in runs:
        assert main(argv) == 1, argv
        captured = capsys.readouterr()
        assert captured.err.count("\n") == 1 and f"{output} " in captured.err and source in captured.err, captured.err
        assert "is also an input" in captured.err and captured.out == "", captured
    assert all(p.read_bytes() == data for p, data in before.items())
    folder = tmp_path / "pictures"
    shutil.copytree(ws["root"] / "png", folder)
    shutil.copy(folder / "img0.png", folder / "reconstructions_000.png")
    assert main(["reconstruct", "--gan", str(gan), "--inverter", str(inverter), "--images", str(folder),
                 "--out", str(folder)]) == 1
    err = capsys.readouterr().err
    assert "reconstructions_000.png" in err and "is also an input" in err, err


def test_fit_may_write_again_into_a_zoo_entry_folder_s_inverter(ws: dict[str, Path], tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """``fit --gan ENTRY --out ENTRY/inverter`` reads only ENTRY's GAN, so a rerun is not refused as overwriting
    an input; a command that loads ENTRY's bundled inverter still refuses to write over it."""
    entry = tmp_path / "entry"
    shutil.copytree(ws["gan"], entry / "gan")
    for _ in range(2):
        assert main(["fit", "--gan", str(entry), *FAST_FIT, "--out", str(entry / "inverter")]) == 0
        capsys.readouterr()
    assert main(["encode", "--gan", str(entry), "--images", str(ws["root"] / "u8.npy"),
                 "--out", str(entry / "inverter" / "model.safetensors")]) == 1
    assert "is also an input" in capsys.readouterr().err


def test_evaluate_scores_images_smaller_than_ssim_s_7x7_window(ws: dict[str, Path], tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """4x16 pictures get SSIM over 3x3 windows; 2x32 pictures are too small for SSIM: NaN, PSNR still given."""
    from discinvert import fit_inverter

    G, D = cli_factories.make_flat_generator(), cli_factories.make_flat_discriminator()
    fit_inverter(G, D, "body.4", latent_shape=(cli_factories.LATENT, 1, 1), steps=1, batch_size=16,
                 validation_size=32, seed=0, progress=False).save(tmp_path / "flat.safetensors")
    tiny = np.load(ws["root"] / "tiny8.npy")
    for h, w in ((4, 16), (2, 32)):
        np.save(tmp_path / f"{h}x{w}.npy", tiny.reshape(len(tiny), h, w))
    argv = ["evaluate", "--generator", "tests.cli_factories:make_flat_generator", "--discriminator",
            "tests.cli_factories:make_flat_discriminator", "--inverter", str(tmp_path / "flat.safetensors"),
            "--n", "5", "--repeats", "1", "--json", str(tmp_path / "r.json")]
    assert main([*argv, "--images", str(tmp_path / "4x16.npy"), "--image-shape", "1,4,16"]) == 0
    result = json.loads((tmp_path / "r.json").read_text())["results"][0]
    assert math.isfinite(result["psnr_mean"]) and 0 < result["ssim_mean"] <= 1
    capsys.readouterr()
    assert main([*argv, "--images", str(tmp_path / "2x32.npy"), "--image-shape", "1,2,32"]) == 0
    result = json.loads((tmp_path / "r.json").read_text())["results"][0]
    assert math.isfinite(result["psnr_mean"]) and result["ssim_mean"] is None
    warned = _warning_lines(capsys.readouterr().err, "evaluate")
    assert len(warned) == 1 and "SSIM" in warned[0] and "2x32" in warned[0] and "at least 3x3" in warned[0], warned


def test_an_output_into_the_installed_zoo_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """``zoo:`` sources are files of the installed package: writing codes over the bundled inverter or test
    images is refused before anything is read or written, like any other output that is an input."""
    from discinvert import zoo

    entry = zoo.path("dcgan-fashion-mnist")
    targets = [entry / "inverter-real-images" / "model.safetensors", entry / "test_images.safetensors"]
    before = {p: p.read_bytes() for p in targets}
    images = tmp_path / "x.npy"
    np.save(images, np.zeros((2, 1, 28, 28), dtype=np.uint8))
    for target, source in ((targets[0], str(images)), (targets[1], "zoo:dcgan-fashion-mnist")):
        assert main(["encode", "--gan", "zoo:dcgan-fashion-mnist", "--images", source, "--out", str(target)]) == 1
        err = capsys.readouterr().err
        assert "is also an input" in err and err.count("\n") == 1, err
    assert all(p.read_bytes() == data for p, data in before.items())
    # the StyleGAN2 entry's test images are the DCGAN entry's file (its test_images.json points to it): an input too
    shared = zoo.path("stylegan2-fashion-mnist")
    assert (shared / "test_images.json").is_file() and not (shared / "test_images.safetensors").exists()
    assert main(["encode", "--gan", "zoo:stylegan2-fashion-mnist", "--images", "zoo:stylegan2-fashion-mnist",
                 "--out", str(targets[1])]) == 1
    err = capsys.readouterr().err
    assert "is also an input (--images zoo:stylegan2-fashion-mnist, file test_images.safetensors)" in err, err
    assert all(p.read_bytes() == data for p, data in before.items())
