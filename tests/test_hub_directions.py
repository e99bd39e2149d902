"""Direction sets beside their inverter on the Hub, without a network: the stand-in Hub and hand-laid cache of
tests/test_hub.py (nothing reaches the real Hub or the user's cache: its autouse fixture points the client at a
discard port, offline, and records any attempt to unpickle)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from discinvert import DirectionSet, FingerprintMismatchError, Inverter, find_directions, fit_inverter, hub
from discinvert.hub import HubPushError, directions_file, list_directions
from tests.conftest import TinyGAN, _build, assert_untouched, snapshot
from tests.test_hub import QUICK, Failure, hub as hub_fixture, unpickled  # noqa: F401  (fixtures used by name)

REPO = "org/tiny-inverter"
SAMPLES = 64


@pytest.fixture
def stand_in(hub_fixture):  # noqa: F811 - the stand-in Hub of tests/test_hub.py under a clearer name
    return hub_fixture


@pytest.fixture(scope="module")
def fitted() -> tuple[Inverter, DirectionSet, DirectionSet]:
    """A tiny inverter for the ``dcgan`` TinyGAN, a SeFa set and a PCA set of its G."""
    gan = _build("dcgan")
    inverter = fit_inverter(gan.generator, gan.discriminator, gan.feature_layer, latent_shape=gan.latent_shape,
                            **QUICK)
    sefa = find_directions(gan.generator, latent_shape=gan.latent_shape, method="sefa", k=3, samples=SAMPLES)
    pca = find_directions(gan.generator, latent_shape=gan.latent_shape, method="pca", k=2, samples=SAMPLES)
    return inverter, sefa, pca


@pytest.fixture
def gan(make_gan: Callable[[str], TinyGAN]) -> TinyGAN:
    return make_gan("dcgan")


def assert_same_set(loaded: DirectionSet, original: DirectionSet) -> None:
    assert loaded.names == original.names and loaded.method == original.method and loaded.space == original.space
    assert torch.equal(loaded.directions, original.directions) and torch.equal(loaded.scales, original.scales)
    assert loaded.generator_fingerprint == original.generator_fingerprint and loaded.info == original.info


def uploaded_folder(stand_in, repo_id: str, folder: Path) -> Path:
    for name, data in stand_in.repos[repo_id].items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return folder


# ----------------------------------------------------------------------------- a folder, and the cache
def test_save_pretrained_writes_the_sets_and_lists_them_on_the_card(fitted, gan, tmp_path) -> None:
    inverter, sefa, pca = fitted
    folder = inverter.save_pretrained(tmp_path / "repo", repo_id=REPO, directions={"sefa": sefa, "pca": pca})
    assert sorted(p.name for p in (folder / "directions").iterdir()) == ["pca.safetensors", "sefa.safetensors"]
    card = (folder / "README.md").read_text()
    assert "## Direction sets" in card and "| `sefa` | sefa | z | `sefa-0`, `sefa-1`, `sefa-2` |" in card
    assert "| `pca` | pca | z | `pca-0`, `pca-1` |" in card
    assert f'DirectionSet.from_pretrained("{REPO}", name="pca", generator=G)' in card
    assert list_directions(folder) == ["pca", "sefa"]
    before = snapshot(gan.generator)
    assert_same_set(DirectionSet.from_pretrained(folder, name="sefa", generator=gan.generator), sefa)
    assert_untouched(before, gan.generator)
    with pytest.raises(ValueError, match=r"no direction set 'labels'; expected one of its sets \['pca', 'sefa'\]"):
        DirectionSet.from_pretrained(folder, name="labels", generator=gan.generator)


def test_sets_of_another_generator_or_bad_names_are_refused_before_writing(fitted, tmp_path) -> None:
    inverter, sefa, _ = fitted
    other = _build("dcgan")
    with torch.no_grad():
        next(other.generator.parameters()).add_(0.01)
    foreign = find_directions(other.generator, latent_shape=other.latent_shape, k=2, samples=SAMPLES)
    with pytest.raises(ValueError, match=r"directions\['mine'\]: made for the generator with fingerprint"):
        inverter.save_pretrained(tmp_path / "a", directions={"mine": foreign})
    for bad in ("../up", "a/b", "", "-x", "x.safetensors", "x\n", "a" * 65):
        with pytest.raises(ValueError, match="direction set name: expected"):
            inverter.save_pretrained(tmp_path / "b", directions={bad: sefa})
    with pytest.raises(ValueError, match="directions: expected a non-empty dict"):
        inverter.save_pretrained(tmp_path / "c", directions=[sefa])
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists() and not (tmp_path / "c").exists()


def lay_out_cache(cache: Path, repo_id: str, folder: Path) -> str:
    """A Hub cache entry as huggingface_hub lays it out (nested paths too): snapshots/<40-hex>/... and refs/main."""
    files = {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
    sha = hashlib.sha1(b"".join(sorted(files.values()))).hexdigest()
    storage = cache / f"models--{repo_id.replace('/', '--')}"
    for name, data in files.items():
        (storage / "snapshots" / sha / name).parent.mkdir(parents=True, exist_ok=True)
        (storage / "snapshots" / sha / name).write_bytes(data)
    (storage / "refs").mkdir()
    (storage / "refs" / "main").write_text(sha)
    return sha


def test_offline_cache_lists_and_loads_the_sets(fitted, gan, tmp_path) -> None:
    inverter, sefa, pca = fitted
    folder = inverter.save_pretrained(tmp_path / "repo", directions={"sefa": sefa, "pca": pca})
    cache = tmp_path / "cache"
    sha = lay_out_cache(cache, REPO, folder)
    # HF_HUB_OFFLINE is on (tests/test_hub.py's autouse fixture): the cached snapshot is all there is
    assert list_directions(REPO, cache_dir=cache) == ["pca", "sefa"]
    assert list_directions(REPO, cache_dir=cache, revision=sha) == ["pca", "sefa"]
    assert_same_set(DirectionSet.from_pretrained(REPO, name="pca", generator=gan.generator, cache_dir=cache), pca)
    with pytest.raises(ValueError, match=r"direction set 'labels' is not in the local cache .* holds the sets "
                                         r"\['pca', 'sefa'\]"):
        DirectionSet.from_pretrained(REPO, name="labels", generator=gan.generator, cache_dir=cache)
    with pytest.raises(ValueError, match="not in the local cache .* downloading is off"):
        list_directions("org/elsewhere", cache_dir=cache)


def test_a_set_for_another_generator_is_refused_on_load(fitted, tmp_path) -> None:
    inverter, sefa, _ = fitted
    folder = inverter.save_pretrained(tmp_path / "repo", directions={"sefa": sefa})
    other = _build("dcgan")
    with torch.no_grad():
        next(other.generator.parameters()).add_(0.01)
    with pytest.raises(FingerprintMismatchError, match=r"sefa.safetensors: made for the generator"):
        DirectionSet.from_pretrained(folder, name="sefa", generator=other.generator)
    with pytest.raises(ValueError, match="direction set name: expected"):
        DirectionSet.from_pretrained(folder, name="../config", generator=other.generator)
    with pytest.raises(ValueError, match="expected an existing local directory or a Hub repo id"):
        list_directions("not/a/repo/id")


# ----------------------------------------------------------------------------- the stand-in Hub
def test_push_to_hub_with_directions_is_one_commit_and_loads_back(stand_in, fitted, gan, tmp_path) -> None:
    inverter, sefa, pca = fitted
    inverter.push_to_hub("org/pushed", token="hf_writer", directions={"sefa": sefa, "pca": pca})
    assert [c["files"] for c in stand_in.commits] == [
        ["README.md", "config.json", "directions/pca.safetensors", "directions/sefa.safetensors", "model.safetensors"]]
    card = stand_in.repos["org/pushed"]["README.md"].decode()
    assert "| `sefa` | sefa | z |" in card and "| `pca` | pca | z |" in card
    assert list_directions("org/pushed") == ["pca", "sefa"]
    stand_in.requests.clear()
    loaded = DirectionSet.from_pretrained("org/pushed", name="sefa", generator=gan.generator,
                                          cache_dir=tmp_path / "cache", token="hf_reader")
    assert_same_set(loaded, sefa)
    assert stand_in.calls("GET") == ["GET /org/pushed/resolve/main/directions/sefa.safetensors"]
    assert all(r.headers.get("authorization") == "Bearer hf_reader" for r in stand_in.requests)
    with pytest.raises(ValueError, match=r"Hub repo 'org/pushed': no direction set 'labels'; expected one of the "
                                         r"sets it has \['pca', 'sefa'\]"):
        DirectionSet.from_pretrained("org/pushed", name="labels", generator=gan.generator, cache_dir=tmp_path / "c")
    with pytest.raises(ValueError, match="Hub repo 'org/missing': not found"):
        list_directions("org/missing")
    with pytest.raises(ValueError, match="Hub repo 'org/missing': not found"):
        DirectionSet.from_pretrained("org/missing", name="sefa", generator=gan.generator, cache_dir=tmp_path / "c")


def test_push_directions_adds_a_set_beside_the_inverter_and_keeps_the_card(stand_in, fitted, gan, tmp_path) -> None:
    inverter, sefa, pca = fitted
    inverter.push_to_hub("org/inv", token="hf_writer", gan="the tiny DCGAN", metrics={"latent_mse": 0.5},
                         directions={"sefa": sefa})
    before = dict(stand_in.repos["org/inv"])
    url = pca.push_to_hub("org/inv", name="pca", token="hf_writer")
    assert url == f"{stand_in.url}/org/inv/commit/{stand_in.commit_of('org/inv')}"
    assert stand_in.commits[-1] == {"repo_id": "org/inv", "revision": "main", "files": ["README.md", "directions/pca.safetensors"],
                                    "summary": "Upload discinvert direction set 'pca'"}
    assert stand_in.created == [stand_in.created[0]] and stand_in.deleted == []  # no repo created or deleted
    files = stand_in.repos["org/inv"]
    assert all(files[name] == before[name] for name in ("config.json", "model.safetensors",
                                                        "directions/sefa.safetensors"))
    card = files["README.md"].decode()
    assert card.count("## Direction sets") == 1 and "| `sefa` | sefa | z |" in card and "| `pca` | pca | z |" in card
    assert "the tiny DCGAN" in card and "latent_mse" in card  # the rest of the card is kept
    # replacing a set keeps one row for it
    sefa.push_to_hub("org/inv", name="pca", token="hf_writer", commit_message="sefa as pca")
    card = stand_in.repos["org/inv"]["README.md"].decode()
    assert card.count("| `pca` |") == 1 and "| `pca` | sefa | z |" in card
    folder = uploaded_folder(stand_in, "org/inv", tmp_path / "uploaded")
    assert list_directions(folder) == ["pca", "sefa"]
    assert_same_set(DirectionSet.from_pretrained(folder, name="pca", generator=gan.generator), sefa)
    assert Inverter.from_pretrained(folder, generator=gan.generator, discriminator=gan.discriminator) is not None


def test_push_directions_refuses_a_repo_without_its_inverter(stand_in, fitted) -> None:
    inverter, sefa, _ = fitted
    with pytest.raises(HubPushError, match="'org/none': not found .* Push the inverter first") as info:
        sefa.push_to_hub("org/none", name="sefa", token="hf_writer")
    assert info.value.outcome == "not-created"
    stand_in.add("org/empty", {"README.md": b"# nothing"})
    with pytest.raises(HubPushError, match=r"'org/empty': holds no inverter \(config.json\)"):
        sefa.push_to_hub("org/empty", name="sefa", token="hf_writer")
    other = _build("dcgan")
    with torch.no_grad():
        next(other.generator.parameters()).add_(0.01)
    foreign = find_directions(other.generator, latent_shape=other.latent_shape, k=2, samples=SAMPLES)
    inverter.push_to_hub("org/inv", token="hf_writer")
    with pytest.raises(ValueError, match=r"made for the generator with fingerprint .* a repo holds only"):
        foreign.push_to_hub("org/inv", name="foreign", token="hf_writer")
    assert stand_in.calls("POST")[-1] == "POST /api/models/org/inv/commit/main"  # the inverter's commit, no other
    assert len(stand_in.commits) == 1


def test_refused_commit_of_a_set_leaves_the_repo_unchanged(stand_in, fitted) -> None:
    inverter, sefa, _ = fitted
    inverter.push_to_hub("org/inv", token="hf_writer")
    before = dict(stand_in.repos["org/inv"])
    stand_in.failures["commit"] = Failure(422, "commit refused (simulated)")
    with pytest.raises(HubPushError, match=r"\(it existed\): push failed .* nothing was changed in it") as info:
        sefa.push_to_hub("org/inv", name="sefa", token="hf_writer")
    assert info.value.outcome == "unchanged" and stand_in.repos["org/inv"] == before and stand_in.deleted == []


def test_no_unpickling_anywhere(unpickled, fitted, gan, tmp_path) -> None:  # noqa: F811
    inverter, sefa, _ = fitted
    folder = inverter.save_pretrained(tmp_path / "repo", directions={"sefa": sefa})
    DirectionSet.from_pretrained(folder, name="sefa", generator=gan.generator)
    path, source = directions_file(folder, "sefa")
    assert path == folder / "directions" / "sefa.safetensors" and "sefa.safetensors" in source
    assert hub.DIRECTIONS_FOLDER == "directions" and unpickled == []


@pytest.mark.parametrize("where", ["connection-refused", "offline"])
def test_push_directions_without_a_hub_sends_nothing_and_says_why(fitted, monkeypatch, where) -> None:
    _, sefa, _ = fitted
    from tests.test_hub import closed_port, point_client_at

    point_client_at(monkeypatch, closed_port(), offline=where == "offline")
    with pytest.raises(HubPushError, match="'org/inv': push failed, the repo's config.json could not be read") as info:
        sefa.push_to_hub("org/inv", name="sefa", token="hf_writer")
    assert info.value.outcome == "not-created"
    assert ("Unset HF_HUB_OFFLINE" in str(info.value)) == (where == "offline")
