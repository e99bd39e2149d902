"""The page's sliders as direction sets: from a file, from G alone, learned from uploaded labelled pictures.

Through the real app (FastAPI's test client) on the tiny GAN of ``tests/cli_factories.py`` (codes (8, 1, 1),
pictures 1x8x8), and ``discinvert serve`` started as a process for the command's defaults and refusals.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import httpx
import numpy as np
import pytest
import safetensors.torch
import torch
from fastapi.testclient import TestClient
from PIL import Image

from discinvert import fit_inverter
from discinvert.directions import DirectionRangeWarning, DirectionSet, find_directions, learn_directions
from discinvert.inverter import FingerprintMismatchError
from discinvert.web import Limits, WebSession, create_app
from discinvert.web.sources import directions_from_file, directions_from_folders, unsupervised_directions
from tests import cli_factories
from tests.conftest import assert_untouched, snapshot

ROOT = Path(__file__).resolve().parents[1]
LATENT = (cli_factories.LATENT, 1, 1)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """G, D, an inverter fit for them and its directory."""
    G, D = cli_factories.make_generator(), cli_factories.make_discriminator()
    inverter = fit_inverter(G, D, "4", latent_shape=LATENT, steps=40, batch_size=16, validation_size=16, seed=0,
                            progress=False)
    folder = tmp_path_factory.mktemp("tiny") / "inv"
    inverter.save_pretrained(folder)
    return G, D, inverter, folder


def _other_generator() -> torch.nn.Module:
    """G's architecture with other weights."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        return cli_factories.ConvGenerator().eval()


def _png(picture: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, format="PNG")
    return buffer.getvalue()


def _uint8(images: torch.Tensor) -> np.ndarray:
    return np.clip(np.rint((images.detach().numpy() + 1) / 2 * 255), 0, 255).astype(np.uint8)


def _model_range(pictures: np.ndarray) -> torch.Tensor:
    """uint8 pictures as the session maps them onto G's [-1, 1]."""
    return torch.from_numpy(-1.0 + 2.0 * (pictures.astype(np.float32) / 255.0))


def _labelled_pictures(G: torch.nn.Module, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` pictures of G's codes with a large first element, ``n`` with a very negative one (uint8 (n, 1, 8, 8))."""
    rng = torch.Generator().manual_seed(1)
    z = torch.randn(2 * n, *LATENT, generator=rng)
    z[:n, 0] += 3.0
    z[n:, 0] -= 3.0
    with torch.no_grad():
        pictures = _uint8(G(z))
    return pictures[:n], pictures[n:]


def _form(name: str | None, with_label: np.ndarray, without: np.ndarray) -> dict:
    files = [("with", (f"w{i}.png", _png(p[0]), "image/png")) for i, p in enumerate(with_label)]
    files += [("without", (f"o{i}.png", _png(p[0]), "image/png")) for i, p in enumerate(without)]
    return {"files": files, "data": {} if name is None else {"name": name}}


# ----------------------------------------------------------------------------- sliders from a direction set file
def test_sliders_come_from_a_direction_set_file_with_amounts_in_spreads(tiny, tmp_path) -> None:
    G, D, inverter, _ = tiny
    before = snapshot(G, D)
    found = find_directions(G, latent_shape=LATENT, method="sefa", k=3, seed=0)
    found.save(tmp_path / "d.safetensors")
    loaded = directions_from_file(tmp_path / "d.safetensors", inverter)
    assert isinstance(loaded, DirectionSet) and loaded.names == ("sefa-0", "sefa-1", "sefa-2")
    with TestClient(create_app(WebSession(inverter, description="tiny", directions=loaded))) as client:
        info = client.get("/api/info").json()
        assert info["directions"] == ["sefa-0", "sefa-1", "sefa-2"]
        [group] = info["direction_groups"]
        assert group["method"] == "sefa" and group["space"] == "z" and group["amounts"] == "spreads"
        assert not group["learned_here"] and set(group["details"]["sefa-0"]) >= {"image_change", "eigenvalue"}
        assert info["typical_set"]["low"] == loaded.typical[0] and info["typical_set"]["high"] == loaded.typical[1]
        code = torch.randn(1, *LATENT, generator=torch.Generator().manual_seed(3))
        answer = client.post("/api/edit", json={"code": code.reshape(-1).tolist(),
                                                "amounts": {"sefa-1": 1.5, "sefa-2": -0.5}}).json()
    # one spread per unit of amount: the set's own vectors, scale times direction
    expected = code + 1.5 * loaded.scales[1] * loaded.directions[1] - 0.5 * loaded.scales[2] * loaded.directions[2]
    torch.testing.assert_close(torch.tensor(answer["code"]).reshape(expected.shape), expected)
    assert answer["typical"]["norm"] == pytest.approx(float(loaded.mahalanobis(expected)[0]), rel=1e-6)
    assert_untouched(before, G, D)


def test_a_file_of_bare_named_tensors_still_gives_sliders_in_units_of_each_vector(tiny, tmp_path) -> None:
    _, _, inverter, _ = tiny
    safetensors.torch.save_file({"up": torch.ones(8), "down": -torch.ones(8, 1, 1)}, str(tmp_path / "v.safetensors"))
    vectors = directions_from_file(tmp_path / "v.safetensors", inverter)
    assert isinstance(vectors, dict) and set(vectors) == {"up", "down"}
    with TestClient(create_app(WebSession(inverter, description="tiny", directions=vectors))) as client:
        [group] = client.get("/api/info").json()["direction_groups"]
        assert group["method"] == "vectors" and group["amounts"] == "vector lengths"
        answer = client.post("/api/edit", json={"code": [0.0] * 8, "amounts": {"up": 2}}).json()
    assert answer["code"] == [2.0] * 8
    assert answer["typical"] is None and answer["warning"] is None  # no prior comes with bare vectors


def test_groups_of_sliders_are_kept_apart_and_a_name_in_two_is_refused(tiny) -> None:
    G, _, inverter, _ = tiny
    found = find_directions(G, latent_shape=LATENT, method="pca", k=2, seed=0)
    session = WebSession(inverter, description="tiny", directions=[found, {"up": torch.ones(LATENT)}])
    info = session.info()
    assert [g["method"] for g in info["direction_groups"]] == ["pca", "vectors"]
    assert info["directions"] == ["pca-0", "pca-1", "up"]
    with pytest.raises(ValueError, match=r"expected each slider name once, got \['pca-0'\] again"):
        WebSession(inverter, description="tiny", directions=[found, {"pca-0": torch.ones(LATENT)}])


# ----------------------------------------------------------------------------- refused for another G
def test_a_direction_set_of_another_g_is_refused(tiny, tmp_path) -> None:
    _, _, inverter, _ = tiny
    other = _other_generator()
    find_directions(other, latent_shape=LATENT, method="sefa", k=2, seed=0).save(tmp_path / "other.safetensors")
    with pytest.raises(FingerprintMismatchError, match="belong to another G"):
        directions_from_file(tmp_path / "other.safetensors", inverter)
    with pytest.raises(FingerprintMismatchError, match="belong to another G"):
        WebSession(inverter, description="tiny", directions=DirectionSet.load(tmp_path / "other.safetensors"))


# ----------------------------------------------------------------------------- the unsupervised default
def test_a_gan_without_labels_gets_sefa_directions_from_g_alone(tiny) -> None:
    G, D, inverter, _ = tiny
    before = snapshot(G, D)
    default = unsupervised_directions(inverter)
    expected = find_directions(G, latent_shape=LATENT, method="sefa", k=8, seed=0)
    assert default.method == "sefa" and default.names == expected.names
    assert torch.equal(default.directions, expected.directions) and torch.equal(default.scales, expected.scales)
    with TestClient(create_app(WebSession(inverter, description="tiny", directions=default))) as client:
        info = client.get("/api/info").json()
    assert info["directions"] == [f"sefa-{i}" for i in range(8)]
    assert info["direction_groups"][0]["method"] == "sefa"
    assert_untouched(before, G, D)


# ----------------------------------------------------------------------------- the typical set
def test_an_edit_that_leaves_the_typical_set_is_warned_about_exactly_when_the_library_warns(tiny) -> None:
    G, _, inverter, _ = tiny
    found = find_directions(G, latent_shape=LATENT, method="sefa", k=2, seed=0)
    code = torch.randn(1, *LATENT, generator=torch.Generator().manual_seed(5))
    low, high = found.typical
    assert low < float(found.mahalanobis(code)[0]) < high  # a typical code to start from
    warned = set()
    with TestClient(create_app(WebSession(inverter, description="tiny", directions=found))) as client:
        for amount in (-10.0, -4.0, -1.0, 0.5, 2.0, 10.0):
            answer = client.post("/api/edit", json={"code": code.reshape(-1).tolist(),
                                                    "amounts": {"sefa-0": amount}}).json()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                found.edit(code, "sefa-0", amount)
            library = any(issubclass(w.category, DirectionRangeWarning) for w in caught)
            assert (answer["warning"] is not None) == library, (amount, answer["warning"])
            assert answer["typical"]["inside"] == (low <= answer["typical"]["norm"] <= high)
            if library:
                warned.add(amount)
                assert "left the prior's typical set" in answer["warning"] and f"{high:.4g}" in answer["warning"]
        # a code nearer the mean than the typical set (as inverted real images are): never warned about
        near = 0.5 * found.vector("sefa-0")[None]
        assert float(found.mahalanobis(near)[0]) < low
        for amount in (-0.2, 0.2):
            answer = client.post("/api/edit", json={"code": near.reshape(-1).tolist(),
                                                    "amounts": {"sefa-0": amount}}).json()
            assert answer["warning"] is None and not answer["typical"]["inside"]
        # a code already beyond the outer edge that an edit moves further out
        far = code + 10.0 * found.vector("sefa-0")[None]
        assert float(found.mahalanobis(far)[0]) > high
        further = client.post("/api/edit", json={"code": far.reshape(-1).tolist(),
                                                 "amounts": {"sefa-0": 1.0}}).json()
        assert further["warning"].startswith("The code is outside the prior's typical set and this edit moved it "
                                             "further out")
    with pytest.warns(DirectionRangeWarning):  # the library's rule says the same
        found.edit(far, "sefa-0", 1.0)
    assert warned >= {-10.0, 10.0} and not warned & {0.5, -1.0}  # 10 spreads in 8 dimensions is far outside


# ----------------------------------------------------------------------------- learning a slider on the page
def test_a_slider_learned_from_uploaded_labelled_pictures_appears_and_edits(tiny) -> None:
    G, D, inverter, _ = tiny
    before = snapshot(G, D)
    with_label, without = _labelled_pictures(G, 12)
    session = WebSession(inverter, description="tiny", directions=unsupervised_directions(inverter, k=2))
    with TestClient(create_app(session)) as client:
        answer = client.post("/api/directions", **_form("bright", with_label, without))
        assert answer.status_code == 200, answer.text
        learned = answer.json()
        images = _model_range(np.concatenate([with_label, without]))
        labels = torch.tensor([[1]] * 12 + [[0]] * 12)
        expected = learn_directions(inverter, images, labels, names=["bright"], seed=0)
        per = expected.info["per_direction"]["bright"]
        assert learned["name"] == "bright" and learned["directions"] == ["sefa-0", "sefa-1", "bright"]
        assert learned["holdout_balanced_accuracy"] == per["holdout_balanced_accuracy"]
        assert (learned["positives"], learned["negatives"], learned["holdout_positives"],
                learned["holdout_negatives"]) == (12, 12, 3, 3)
        info = client.get("/api/info").json()
        assert info["directions"] == ["sefa-0", "sefa-1", "bright"]
        assert info["direction_groups"][-1]["method"] == "labels" and info["direction_groups"][-1]["learned_here"]
        code = torch.zeros(1, *LATENT)
        edited = client.post("/api/edit", json={"code": [0.0] * 8, "amounts": {"bright": 2.0}}).json()
        torch.testing.assert_close(torch.tensor(edited["code"]).reshape(1, *LATENT),
                                   code + 2.0 * expected.vector("bright"))
        again = client.post("/api/directions", **_form("bright", with_label, without))
        assert again.status_code == 422 and "a slider already" in again.json()["error"]
    assert_untouched(before, G, D)


@pytest.mark.parametrize("name, n_with, n_without, status, words", [
    ("bright", 5, 12, 422, "expected 10 to 30 pictures with the label 'bright' ('with') and 10 to 30 without it "
                           "('without'), got 5 and 12"),
    ("bright", 12, 0, 422, "got 12 and 0"),
    ("bright", 31, 12, 422, "got 31 and 12"),
    (None, 12, 12, 422, "name: expected the label's name"),
    ("  ", 12, 12, 422, "name: expected the label's name"),
    ("x" * 41, 12, 12, 422, "1 to 40 printable characters"),
])
def test_too_few_pictures_or_no_name_are_refused_with_a_clear_4xx(tiny, name, n_with, n_without, status, words) -> None:
    G, _, inverter, _ = tiny
    with_label, without = _labelled_pictures(G, 31)
    session = WebSession(inverter, description="tiny", limits=Limits(max_labelled=30))
    with TestClient(create_app(session)) as client:
        answer = client.post("/api/directions", **_form(name, with_label[:n_with], without[:n_without]))
        assert answer.status_code == status and words in answer.json()["error"], answer.text
        assert client.get("/api/info").json()["directions"] == []  # nothing was added


def test_the_same_pictures_on_both_sides_are_refused_with_a_clear_4xx(tiny) -> None:
    G, _, inverter, _ = tiny
    with_label, _ = _labelled_pictures(G, 12)
    session = WebSession(inverter, description="tiny")
    with TestClient(create_app(session)) as client:
        answer = client.post("/api/directions", **_form("same", with_label, with_label))
        assert answer.status_code == 422 and "cannot be told apart" in answer.json()["error"], answer.text
        assert client.get("/api/info").json()["directions"] == []  # nothing was added


def test_learning_respects_the_upload_limits(tiny) -> None:
    G, _, inverter, _ = tiny
    with_label, without = _labelled_pictures(G, 12)
    session = WebSession(inverter, description="tiny", limits=Limits(max_labelled=12, max_learned=1,
                                                                     max_upload_bytes=20_000))
    with TestClient(create_app(session)) as client:
        too_many = client.post("/api/directions", **_form("a", with_label, np.concatenate([without, without[:1]])))
        assert too_many.status_code == 413 and "at most 12 pictures on each side" in too_many.json()["error"]
        form = _form("a", with_label, without)
        form["files"][3] = ("with", ("note.gif", b"GIF89a" + b"\0" * 20, "image/gif"))
        bad = client.post("/api/directions", **form)
        assert bad.status_code == 415 and bad.json()["error"].startswith("with[3] (note.gif): expected a PNG or JPEG")
        big = _form("a", with_label, without)
        big["files"][0] = ("with", ("big.png", b"\x89PNG\r\n\x1a\n" + os.urandom(80_000), "image/png"))
        assert client.post("/api/directions", **big).status_code == 413  # the whole request is over the limit
        assert client.post("/api/directions", json={"name": "a"}).status_code == 400
        assert client.post("/api/directions", **_form("a", with_label, without)).status_code == 200
        refused = client.post("/api/directions", **_form("b", with_label, without))
        assert refused.status_code == 422 and "at most 1 sliders learned" in refused.json()["error"]


def test_directions_from_labelled_folders_are_a_learned_set(tiny, tmp_path) -> None:
    G, _, inverter, _ = tiny
    with_label, without = _labelled_pictures(G, 4)
    for label, pictures in (("dark", without), ("light", with_label)):
        (tmp_path / label).mkdir()
        for i, p in enumerate(pictures):
            Image.fromarray(p[0]).save(tmp_path / label / f"{i}.png")
    learned = directions_from_folders(tmp_path, inverter)
    images = _model_range(np.concatenate([without, with_label]))
    expected = learn_directions(inverter, images, torch.tensor([0] * 4 + [1] * 4), names=["dark", "light"], seed=0)
    assert learned.method == "labels" and learned.names == ("dark", "light")
    torch.testing.assert_close(learned.directions, expected.directions, atol=1e-5, rtol=0)  # pixels read as the CLI does


# ----------------------------------------------------------------------------- the command
def _serve(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "discinvert", "serve", "--generator",
                             "tests.cli_factories:make_generator", "--discriminator",
                             "tests.cli_factories:make_discriminator", *args, "--port", "0"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_discinvert_serve_finds_sefa_sliders_for_a_gan_without_labels(tiny) -> None:
    process = _serve("--inverter", str(tiny[3]))
    try:
        line = process.stdout.readline()
        match = re.match(r"discinvert serve: (http://127\.0\.0\.1:\d+/)", line)
        assert match, line + (process.stderr.read() if process.poll() is not None else "")
        info = httpx.get(match.group(1) + "api/info", timeout=30).json()
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    assert [g["method"] for g in info["direction_groups"]] == ["sefa"]
    assert info["directions"] == [f"sefa-{i}" for i in range(8)]
    assert "discinvert serve: 8 edit directions from G alone (SeFa) ...\n" in stderr


def test_discinvert_serve_refuses_a_direction_set_of_another_g_in_one_line(tiny, tmp_path) -> None:
    other = _other_generator()
    find_directions(other, latent_shape=LATENT, method="sefa", k=2, seed=0).save(tmp_path / "other.safetensors")
    process = _serve("--inverter", str(tiny[3]), "--directions", str(tmp_path / "other.safetensors"))
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 1
    error = stderr.strip().splitlines()[-1]
    assert error.startswith(f"discinvert serve: error: {tmp_path / 'other.safetensors'}: made for the generator with "
                            "fingerprint sha256:") and "belong to another G" in error
