"""``discinvert directions find|learn|apply|list`` on the bundled zoo:dcgan-fashion-mnist (small), through
``main([...])``: the examples of docs/cli.md ("Editing directions") run as written, the files agree with the
Python API, and mistakes end with one line (exit 1) or a usage error (exit 2)."""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import huggingface_hub.constants as hf_constants
from discinvert import DirectionSet, find_directions, zoo
from discinvert.cli import main
from discinvert.cli.sources import inverter_name, load_gan_source, load_inverter
from discinvert.pixels import model_to_uint8, prepare_images
from discinvert.zoo import read_image_source
from tests.test_hub import hub as stand_in_hub  # noqa: F401  (the stand-in Hub fixture of tests/test_hub.py)

ROOT = Path(__file__).resolve().parents[1]
ENTRY = "dcgan-fashion-mnist"
PER_LABEL = 20
LABELS = ("Ankle boot", "Sandal", "Trouser")


def section_commands() -> tuple[list[str], list[str]]:
    """The ``discinvert directions`` lines of docs/cli.md's "Editing directions" block, and its printed output."""
    text = (ROOT / "docs" / "cli.md").read_text()
    section = text[text.index("## Editing directions"):text.index("## Checked options")]
    block = re.search(r"```bash\n(.*?)```", section, flags=re.S).group(1)
    commands = [line for line in block.splitlines() if line.startswith("discinvert directions ")]
    output = re.search(r"```text\n(.*?)```", section, flags=re.S).group(1)
    return commands, [line.strip() for line in output.splitlines() if line.strip()]


def run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exit_:  # argparse's usage errors
            code = int(exit_.code or 0)
    return code, out.getvalue(), err.getvalue()


def one_line_error(err: str, what: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("discinvert directions: error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert what in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    """The docs' examples (those that need no Hub), run in a folder holding ``labelled/``: the first 20 bundled
    test pictures of each of three classes, one sub-folder per class."""
    root = tmp_path_factory.mktemp("directions")
    pictures, labels = zoo.load_test_images(ENTRY)
    names = zoo.label_names(ENTRY)
    for label in LABELS:
        folder = root / "labelled" / label
        folder.mkdir(parents=True)
        for i in np.nonzero(labels == names.index(label))[0][:PER_LABEL]:
            Image.fromarray(pictures[i]).save(folder / f"{i:04d}.png")
    commands, printed = section_commands()
    results = {}
    cwd = os.getcwd()
    os.chdir(root)
    try:
        for line in commands:
            if "hub:" in line:
                continue
            results[line] = run(shlex.split(line)[1:])
    finally:
        os.chdir(cwd)
    yield {"root": root, "results": results, "printed": printed, "commands": commands}


def zoo_models() -> tuple[object, object]:
    gan = load_gan_source(gan=f"zoo:{ENTRY}")
    inverter = load_inverter(inverter_name(f"zoo:{ENTRY}"), gan.generator, gan.discriminator)
    return gan, inverter


# ----------------------------------------------------------------------------- the documented examples
def test_the_documented_examples_run_and_print_what_the_docs_show(ran) -> None:
    results, root = ran["results"], ran["root"]
    assert len(results) == 4 and len(ran["commands"]) == 6  # find, list, learn, apply here; the hub two below
    for line, (code, out, err) in results.items():
        assert code == 0, (line, out, err)
    find, listing, learn, apply = results.values()
    assert "found: 5 sefa directions in z, codes (100, 1, 1)" in find[1] and "wrote sefa.safetensors" in find[1]
    assert [line.split()[0] for line in listing[1].splitlines()[3:]] == [f"sefa-{i}" for i in range(5)]
    assert "name" in listing[1] and "eigenvalue" in listing[1] and "image_change" in listing[1]
    # learn prints what the docs show, label by label
    printed = [line.strip() for line in learn[1].splitlines() if "held-out balanced accuracy" in line]
    assert printed == ran["printed"]
    labels = DirectionSet.load(root / "labels.safetensors")
    assert labels.names == LABELS and labels.method == "labels"
    assert labels.info["per_direction"]["Ankle boot"]["conditional_on"] == ["Sandal"]
    assert labels.info["per_direction"]["Trouser"]["positives"] == PER_LABEL
    # apply: one PNG per picture and amount, one grid
    written = sorted(p.name for p in (root / "edits").iterdir())
    stems = sorted(p.stem for p in (root / "labelled" / "Sandal").iterdir())
    assert written == sorted(["edits_000.png", *(f"{s}.Trouser.{a}.png" for s in stems for a in ("+2", "-2"))])
    grid = np.asarray(Image.open(root / "edits" / "edits_000.png"))
    assert grid.shape == (4 + PER_LABEL * 32, 4 + 4 * 32)  # rows of original | reconstruction | -2 | +2
    assert "discinvert directions: inverter zoo:dcgan-fashion-mnist/real-images" in apply[2]


def test_find_is_deterministic_and_is_the_python_api(ran, tmp_path) -> None:
    code, _, err = run(["directions", "find", "--gan", f"zoo:{ENTRY}", "--method", "sefa", "--k", "5", "--samples",
                        "500", "--out", str(tmp_path / "again.safetensors")])
    assert code == 0, err
    first, again = (DirectionSet.load(p) for p in (ran["root"] / "sefa.safetensors", tmp_path / "again.safetensors"))
    gan, _ = zoo_models()
    direct = find_directions(gan.generator, latent_shape=gan.latent_shape, method="sefa", k=5, samples=500)
    for ds in (again, direct):
        assert torch.equal(ds.directions, first.directions) and torch.equal(ds.scales, first.scales)
        assert ds.info == first.info and ds.generator_fingerprint == first.generator_fingerprint
    code, out, err = run(["directions", "find", "--gan", f"zoo:{ENTRY}", "--method", "pca", "--k", "2",
                          "--samples", "64", "--seed", "3", "--out", str(tmp_path / "pca.safetensors")])
    assert code == 0, err
    pca = DirectionSet.load(tmp_path / "pca.safetensors", generator=gan.generator)
    assert pca.names == ("pca-0", "pca-1") and pca.info["settings"]["seed"] == 3 and "explained_variance_ratio" in out


@pytest.mark.filterwarnings("ignore::discinvert.DirectionRangeWarning")  # the CLI's line: test_far_edits_warn
def test_apply_writes_the_decoded_edits(ran, tmp_path) -> None:
    root = ran["root"]
    source = root / "labelled" / "Trouser"
    code, out, err = run(["directions", "apply", "--gan", f"zoo:{ENTRY}", "--directions",
                          str(root / "labels.safetensors"), "--name", "Sandal", "--images", str(source),
                          "--amount", "0", "--amount", "1.5", "--out", str(tmp_path / "edits")])
    assert code == 0, err
    assert "by +0, +1.5" in out
    gan, inverter = zoo_models()
    labels = DirectionSet.load(root / "labels.safetensors", generator=gan.generator)
    x = prepare_images(read_image_source(source), inverter.image_shape, inverter.value_range)
    codes = inverter.encode(x)
    stems = [p.stem for p in sorted(source.iterdir())]
    found = {}
    for amount, text in ((0.0, "+0"), (1.5, "+1.5")):
        expected = model_to_uint8(inverter.decode(labels.edit(codes, "Sandal", amount)), inverter.value_range)[:, 0]
        found[text] = np.stack([np.asarray(Image.open(tmp_path / "edits" / f"{s}.Sandal.{text}.png")) for s in stems])
        assert np.array_equal(found[text], expected), text
    reconstruction = model_to_uint8(inverter.decode(codes), inverter.value_range)[:, 0]
    assert np.array_equal(found["+0"], reconstruction) and not np.array_equal(found["+1.5"], reconstruction)


def test_far_edits_warn_in_one_line(ran, tmp_path) -> None:
    picture = sorted((ran["root"] / "labelled" / "Sandal").iterdir())[0]
    code, _, err = run(["directions", "apply", "--gan", f"zoo:{ENTRY}", "--directions",
                        str(ran["root"] / "sefa.safetensors"), "--name", "sefa-0", "--images", str(picture),
                        "--amount", "40", "--out", str(tmp_path / "far")])
    assert code == 0, err
    [warning] = [line for line in err.splitlines() if "warning" in line]
    assert warning.startswith("discinvert directions: warning: 1 of 1 codes edited along 'sefa-0' left the prior's "
                              "typical set")
    assert (tmp_path / "far" / f"{picture.stem}.sefa-0.+40.png").is_file()
    code, _, err = run(["directions", "apply", "--gan", f"zoo:{ENTRY}", "--directions",
                        str(ran["root"] / "labels.safetensors"), "--name", "Ankle boot", "--images", str(picture),
                        "--amount", "-1", "--out", str(tmp_path / "spaced")])
    assert code == 0, err
    assert [p.name for p in (tmp_path / "spaced").iterdir() if "Ankle" in p.name] == [f"{picture.stem}.Ankle_boot.-1.png"]


# ----------------------------------------------------------------------------- refusals
def test_a_set_for_another_generator_is_refused_in_one_line(ran, tmp_path) -> None:
    other = tmp_path / "other.safetensors"
    code, _, err = run(["directions", "find", "--generator", "tests.cli_factories:make_generator", "--latent-shape",
                        "8,1,1", "--k", "2", "--samples", "64", "--out", str(other)])
    assert code == 0, err
    code, _, err = run(["directions", "apply", "--gan", f"zoo:{ENTRY}", "--directions", str(other), "--name",
                        "sefa-0", "--images", str(ran["root"] / "labelled" / "Sandal"), "--amount", "1", "--out",
                        str(tmp_path / "edits")])
    assert code == 1
    one_line_error(err, "these directions belong to another G (find or learn them again for this one)")
    assert not (tmp_path / "edits").exists() or not any((tmp_path / "edits").iterdir())


def test_mistakes_are_one_line_or_usage_errors(ran, tmp_path) -> None:
    root = ran["root"]
    apply = ["directions", "apply", "--gan", f"zoo:{ENTRY}", "--directions", str(root / "labels.safetensors"),
             "--images", str(root / "labelled" / "Sandal"), "--out", str(tmp_path / "e")]
    code, _, err = run([*apply, "--name", "Trousr", "--amount", "1"])
    assert code == 1 and "Close matches: 'Trouser'" in one_line_error(err, "expected one of the set's names")
    code, _, err = run([*apply, "--name", "Trouser", "--amount", "nan"])
    assert code == 2 and "expected a finite number" in err
    code, _, err = run(["directions", "find", "--gan", f"zoo:{ENTRY}", "--out", str(tmp_path / "x.npy")])
    assert code == 2 and "expected a .safetensors file for the direction set" in err
    code, _, err = run(["directions", "find", "--gan", f"zoo:{ENTRY}", "--layer", "main.O", "--samples", "64",
                        "--out", str(tmp_path / "x.safetensors")])
    one_line_error(err, "layer: 'main.O' is not a module of the generator")
    assert code == 1
    learn = ["directions", "learn", "--gan", f"zoo:{ENTRY}", "--out", str(tmp_path / "l.safetensors")]
    code, _, err = run([*learn, "--labelled", str(root / "labelled"), "--conditional", "Trouser"])
    assert code == 2 and "expected LABEL:OTHER[,OTHER...]" in err
    code, _, err = run([*learn, "--labelled", str(root / "labelled"), "--conditional", "Trouser:Coat"])
    assert code == 1 and "unknown ['Coat']" in one_line_error(err, "conditional_on: expected names among")
    code, _, err = run([*learn, "--labelled", str(root / "labelled" / "Sandal")])
    assert code == 1
    one_line_error(err, "expected at least two sub-folders of pictures, one per label, got 0")
    code, _, err = run(["directions", "list", str(tmp_path / "missing.safetensors")])
    assert code == 1 and "no such direction set file" in err
    assert not (tmp_path / "l.safetensors").exists() and not (tmp_path / "x.safetensors").exists()


# ----------------------------------------------------------------------------- sets beside an inverter
@pytest.fixture
def hub_repo(stand_in_hub, ran, monkeypatch, tmp_path):  # noqa: F811
    """The zoo inverter's folder with both sets as ``directions/``, on the stand-in Hub as ``org/dcgan`` and as a
    local directory; the client's cache in ``tmp_path`` (never the user's)."""
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    monkeypatch.setattr(hf_constants, "AGENT_HARNESSES_PATH", str(tmp_path / "agent-harnesses.json"))
    folder = zoo.path(ENTRY) / zoo.INVERTERS[zoo.default_inverter(ENTRY)]
    files = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    for name in ("sefa", "labels"):
        files[f"directions/{name}.safetensors"] = (ran["root"] / f"{name}.safetensors").read_bytes()
    stand_in_hub.add("org/dcgan", files)
    local = tmp_path / "local"
    for name, data in files.items():
        (local / name).parent.mkdir(parents=True, exist_ok=True)
        (local / name).write_bytes(data)
    return stand_in_hub, local


def test_list_names_the_sets_beside_an_inverter(hub_repo, ran, tmp_path) -> None:
    _, local = hub_repo
    for source in ("hub:org/dcgan", str(local)):
        code, out, err = run(["directions", "list", source])
        assert code == 0, err
        assert out.startswith(f"{source}: 2 direction set(s): labels, sefa\n")
        assert f"{source}:labels: 3 label directions in z" in out and f"{source}:sefa: 5 sefa directions in z" in out
        assert "holdout_balanced_accuracy" in out and "eigenvalue" in out
    code, _, err = run(["directions", "list", "hub:org/dcgan:nope"])
    assert code == 1
    one_line_error(err, "no direction set 'nope'; expected one of the sets it has ['labels', 'sefa']")
    code, out, err = run(["directions", "list", "hub:org/dcgan:sefa"])
    assert code == 0 and out.startswith("hub:org/dcgan:sefa: 5 sefa directions"), err


def test_apply_a_set_from_the_hub(hub_repo, ran, tmp_path) -> None:
    picture = sorted((ran["root"] / "labelled" / "Sandal").iterdir())[0]
    code, out, err = run(["directions", "apply", "--gan", f"zoo:{ENTRY}", "--directions", "hub:org/dcgan:sefa",
                          "--name", "sefa-1", "--images", str(picture), "--amount", "3", "--out", str(tmp_path / "e")])
    assert code == 0, err
    assert (tmp_path / "e" / f"{picture.stem}.sefa-1.+3.png").is_file()
    code, _, err = run(["directions", "apply", "--gan", f"zoo:{ENTRY}", "--directions", "hub:org/dcgan",
                        "--name", "sefa-1", "--images", str(picture), "--amount", "3", "--out", str(tmp_path / "f")])
    assert code == 1
    one_line_error(err, "expected hub:org/dcgan:SET naming one of its direction sets ['labels', 'sefa']")
