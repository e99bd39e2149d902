"""Hub I/O without a network: a hand-laid Hub cache, a local stand-in Hub server, push_to_hub, every refusal.

The stand-in (``StandInHub``) is a ``http.server`` on 127.0.0.1 that answers what
``huggingface_hub`` sends: ``HEAD``/``GET /{repo}/resolve/{revision}/{file}`` (downloads),
``GET /api/models/{repo}/tree/{revision}`` (file listing), ``POST /api/repos/create``,
``POST /api/validate-yaml`` (the model card), ``POST /api/models/{repo}/preupload/{revision}`` and
``POST /api/models/{repo}/commit/{revision}`` (uploads). ``huggingface_hub.constants`` is patched so
the real client code talks to it; a test without the stand-in runs offline against a discard port.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import pickle
import shutil
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import huggingface_hub
import huggingface_hub.constants as hf_constants
import pytest
import torch

from discinvert import FingerprintMismatchError, Inverter, fit_inverter
from discinvert.config import FORMAT_VERSION
from tests.conftest import TinyGAN, _build, assert_untouched, snapshot

QUICK = dict(steps=20, batch_size=16, cn_hidden=(32,), progress=False, validation_size=32, seed=0)
REPO = "org/tiny-inverter"
FILES = ("README.md", "config.json", "model.safetensors")


# ----------------------------------------------------------------------------- the stand-in Hub
@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]


class StandInHub:
    """Repos kept in memory; every request is logged in ``requests``."""

    def __init__(self) -> None:
        self.repos: dict[str, dict[str, bytes]] = {}
        self.created: list[dict[str, Any]] = []
        self.commits: list[dict[str, Any]] = []
        self.validated: list[dict[str, Any]] = []
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self.url = ""

    def add(self, repo_id: str, files: dict[str, bytes]) -> str:
        with self._lock:
            self.repos[repo_id] = dict(files)
        return self.commit_of(repo_id)

    def add_folder(self, repo_id: str, folder: Path) -> str:
        return self.add(repo_id, {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()})

    def commit_of(self, repo_id: str) -> str:
        digest = hashlib.sha1()
        for name, data in sorted(self.repos[repo_id].items()):
            digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
        return digest.hexdigest()

    def calls(self, method: str | None = None) -> list[str]:
        return [f"{r.method} {r.path}" for r in self.requests if method is None or r.method == method]


def _handler(hub: StandInHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        timeout = 10  # a stuck connection fails the test instead of hanging it

        def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
            pass

        # -- helpers
        def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
            self._send(status, json.dumps(payload).encode(), {"Content-Type": "application/json", **(headers or {})})

        def _error(self, code: str, headers: dict[str, str] | None = None) -> None:
            self._send(404, json.dumps({"error": code}).encode(), {"X-Error-Code": code, **(headers or {})})

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length", "0")))

        def _repo(self, repo_id: str, revision: str) -> dict[str, bytes] | None:
            if repo_id not in hub.repos:
                self._error("RepoNotFound")
                return None
            if revision not in ("main", hub.commit_of(repo_id)):
                self._error("RevisionNotFound")
                return None
            return hub.repos[repo_id]

        def _route(self) -> None:
            path = unquote(urlsplit(self.path).path)
            if path == "/api/agent-harnesses":  # the client's own once-per-process lookup, not part of the I/O
                self._send(404)
                return
            with hub._lock:
                hub.requests.append(Request(self.command, self.path, dict(self.headers.items())))
            parts = path.strip("/").split("/")
            if len(parts) >= 5 and parts[2] == "resolve" and self.command in ("HEAD", "GET"):
                self._resolve("/".join(parts[:2]), parts[3], "/".join(parts[4:]))
            elif parts[:3] == ["api", "repos", "create"] and self.command == "POST":
                self._create()
            elif parts[:2] == ["api", "validate-yaml"] and self.command == "POST":
                hub.validated.append(json.loads(self._body()))
                self._json(200, {"errors": [], "warnings": []})
            elif len(parts) >= 6 and parts[:2] == ["api", "models"]:
                repo_id, action, revision = "/".join(parts[2:4]), parts[4], parts[5]
                if action == "tree" and self.command == "GET":
                    self._tree(repo_id, revision)
                elif action == "preupload" and self.command == "POST":
                    self._preupload(repo_id)
                elif action == "commit" and self.command == "POST":
                    self._commit(repo_id, revision)
                else:
                    self._send(404)
            else:
                self._send(404)

        do_HEAD = do_GET = do_POST = _route

        # -- downloads
        def _resolve(self, repo_id: str, revision: str, filename: str) -> None:
            files = self._repo(repo_id, revision)
            if files is None:
                return
            commit = {"X-Repo-Commit": hub.commit_of(repo_id)}
            if filename not in files:
                self._error("EntryNotFound", commit)
                return
            data = files[filename]
            self._send(200, data, {**commit, "ETag": f'"{hashlib.sha256(data).hexdigest()}"',
                                   "Content-Type": "application/octet-stream"})

        def _tree(self, repo_id: str, revision: str) -> None:
            files = self._repo(repo_id, revision)
            if files is not None:
                self._json(200, [
                    {"type": "file", "path": name, "size": len(data), "oid": hashlib.sha1(data).hexdigest()}
                    for name, data in sorted(files.items())
                ])

        # -- uploads
        def _create(self) -> None:
            payload = json.loads(self._body())
            hub.created.append(payload)
            repo_id = "/".join(filter(None, (payload.get("organization"), payload["name"])))
            with hub._lock:
                hub.repos.setdefault(repo_id, {})
            self._json(200, {"url": f"{hub.url}/{repo_id}", "name": repo_id})

        def _preupload(self, repo_id: str) -> None:
            if repo_id not in hub.repos:
                self._error("RepoNotFound")
                return
            payload = json.loads(self._body())
            self._json(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                       for f in payload["files"]]})

        def _commit(self, repo_id: str, revision: str) -> None:
            if repo_id not in hub.repos:
                self._error("RepoNotFound")
                return
            lines = [json.loads(line) for line in self._body().decode().splitlines() if line.strip()]
            header = next(line["value"] for line in lines if line["key"] == "header")
            files = {}
            for line in lines:
                if line["key"] == "file":
                    assert line["value"]["encoding"] == "base64", line["value"]
                    files[line["value"]["path"]] = base64.b64decode(line["value"]["content"])
                elif line["key"] != "header":
                    raise AssertionError(f"the stand-in does not handle {line['key']!r} commit operations")
            with hub._lock:
                hub.repos[repo_id].update(files)
                hub.commits.append({"repo_id": repo_id, "revision": revision, "summary": header.get("summary"),
                                    "files": sorted(files)})
            oid = hub.commit_of(repo_id)
            self._json(200, {"commitUrl": f"{hub.url}/{repo_id}/commit/{oid}", "commitOid": oid,
                             "pullRequestUrl": None})

    return Handler


def point_client_at(monkeypatch: pytest.MonkeyPatch, url: str, *, offline: bool = False) -> None:
    """What HF_ENDPOINT=url and HF_HUB_OFFLINE do, at call time.

    huggingface_hub reads both variables once, at import, into ``constants``: ``hf_hub_download`` formats
    ``HUGGINGFACE_CO_URL_TEMPLATE`` and each new ``HfApi()`` takes ``ENDPOINT``, so both are patched.
    """
    monkeypatch.setattr(hf_constants, "ENDPOINT", url)
    monkeypatch.setattr(hf_constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", offline)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("no_proxy", "127.0.0.1")


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[StandInHub]:
    """A stand-in Hub on 127.0.0.1 (free port), with huggingface_hub pointed at it; shut down afterwards."""
    state = StandInHub()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    point_client_at(monkeypatch, state.url)
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(autouse=True)
def unpickled(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    """Nothing reaches the real Hub or the user's cache; every attempt to unpickle is recorded (and fails)."""
    point_client_at(monkeypatch, "http://127.0.0.1:9", offline=True)  # offline, and the discard port besides
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "default-cache"))
    monkeypatch.setattr(hf_constants, "AGENT_HARNESSES_PATH", str(tmp_path / "agent-harnesses.json"))

    attempts: list[str] = []

    def refuse(name: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            attempts.append(name)
            raise AssertionError(f"{name} was called: something tried to unpickle a file")
        return call

    for module, name in ((torch, "load"), (pickle, "load"), (pickle, "loads"), (pickle, "Unpickler")):
        monkeypatch.setattr(module, name, refuse(f"{module.__name__}.{name}"))
    return attempts


# ----------------------------------------------------------------------------- an inverter and its repo
@pytest.fixture(scope="module")
def fitted() -> tuple[Inverter, torch.Tensor]:
    """A tiny inverter for the ``dcgan`` TinyGAN (rebuilt identically by ``_build``), and images to encode."""
    gan = _build("dcgan")
    inverter = fit_inverter(gan.generator, gan.discriminator, gan.feature_layer, latent_shape=gan.latent_shape,
                            **QUICK)
    _, images, _ = gan.sample(16)
    return inverter, images


@pytest.fixture(scope="module")
def repo_folder(fitted: tuple[Inverter, torch.Tensor], tmp_path_factory: pytest.TempPathFactory) -> Path:
    inverter, _ = fitted
    return inverter.save_pretrained(tmp_path_factory.mktemp("repo"), gan="the tiny DCGAN of tests/conftest.py",
                                    metrics={"latent_mse": 0.5}, repo_id=REPO)


@pytest.fixture
def gan(make_gan: Callable[[str], TinyGAN]) -> TinyGAN:
    return make_gan("dcgan")


def lay_out_cache(cache: Path, repo_id: str, files: dict[str, bytes], *, ref: str = "main") -> str:
    """Write a Hub cache entry as huggingface_hub lays it out: snapshots/<40-hex>/... and refs/<ref>."""
    sha = hashlib.sha1(b"".join(sorted(files.values()))).hexdigest()
    storage = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot_dir = storage / "snapshots" / sha
    snapshot_dir.mkdir(parents=True)
    for name, data in files.items():
        (snapshot_dir / name).write_bytes(data)
    (storage / "refs").mkdir()
    (storage / "refs" / ref).write_text(sha)  # exactly 40 hex characters, no newline
    return sha


def repo_files(folder: Path) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in FILES}


def assert_same_inverter(loaded: Inverter, fitted: tuple[Inverter, torch.Tensor]) -> None:
    inverter, images = fitted
    original, restored = inverter.state_dict(), loaded.state_dict()
    assert original.keys() == restored.keys()
    assert all(torch.equal(original[k], restored[k]) for k in original)
    assert loaded.config == inverter.config
    assert not loaded.training
    assert torch.equal(loaded.encode(images), inverter.encode(images))


def load(source: str | Path, gan: TinyGAN, **kwargs: Any) -> Inverter:
    return Inverter.from_pretrained(source, generator=gan.generator, discriminator=gan.discriminator, **kwargs)


def refused(source: str | Path, gan: TinyGAN, match: str, error: type[Exception] = ValueError, **kwargs: Any) -> str:
    """Loading fails with ``error`` matching ``match``, and G and D come back untouched."""
    before = snapshot(gan.generator, gan.discriminator)
    with pytest.raises(error, match=match) as info:
        load(source, gan, **kwargs)
    assert_untouched(before, gan.generator, gan.discriminator)
    return str(info.value)


# ----------------------------------------------------------------------------- save_pretrained
def test_save_pretrained_writes_a_hub_repo(repo_folder, fitted, gan) -> None:
    assert sorted(p.name for p in repo_folder.iterdir()) == list(FILES)  # no temporary file left
    card = (repo_folder / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: discinvert\n")
    assert f'Inverter.from_pretrained("{REPO}"' in card and "latent_mse" in card
    config = json.loads((repo_folder / "config.json").read_text())
    assert config["format_version"] == FORMAT_VERSION and config == fitted[0].config.to_dict()
    assert_same_inverter(load(repo_folder, gan), fitted)


# ----------------------------------------------------------------------------- offline, from a hand-laid cache
def test_offline_cache_loads_bit_identically(repo_folder, fitted, gan, tmp_path) -> None:
    cache = tmp_path / "cache"
    sha = lay_out_cache(cache, REPO, repo_files(repo_folder))
    before = snapshot(gan.generator, gan.discriminator)
    assert_same_inverter(load(REPO, gan, cache_dir=cache), fitted)  # HF_HUB_OFFLINE is on (autouse fixture)
    assert_same_inverter(load(REPO, gan, cache_dir=str(cache), revision=sha), fitted)
    assert_untouched(before, gan.generator, gan.discriminator)


def test_cache_through_hf_hub_cache_and_local_files_only(repo_folder, fitted, gan, tmp_path, monkeypatch) -> None:
    cache = tmp_path / "hub-cache"
    lay_out_cache(cache, REPO, repo_files(repo_folder))
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(cache))  # what HF_HUB_CACHE sets at import
    assert_same_inverter(load(REPO, gan), fitted)
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)  # online mode, but told not to download
    assert_same_inverter(load(REPO, gan, local_files_only=True), fitted)


def test_ref_with_trailing_newline_is_not_found(repo_folder, gan, tmp_path) -> None:
    """The client reads refs/main verbatim: the cache must be laid out exactly (this pins that fact)."""
    cache = tmp_path / "cache"
    sha = lay_out_cache(cache, REPO, repo_files(repo_folder))
    (cache / f"models--{REPO.replace('/', '--')}" / "refs" / "main").write_text(sha + "\n")
    refused(REPO, gan, "not in the local cache", cache_dir=cache)


# ----------------------------------------------------------------------------- online, from the stand-in
def test_download_from_local_hub_is_bit_identical(hub, repo_folder, fitted, gan, tmp_path, monkeypatch) -> None:
    hub.add_folder(REPO, repo_folder)
    cache = tmp_path / "cache"
    assert_same_inverter(load(REPO, gan, cache_dir=cache, token="hf_reader"), fitted)
    # What the client sends: a HEAD for each file's metadata (X-Repo-Commit, ETag, Content-Length),
    # then a GET of its content; config.json first. README.md is never fetched.
    assert hub.calls() == [
        f"HEAD /{REPO}/resolve/main/config.json",
        f"GET /{REPO}/resolve/main/config.json",
        f"HEAD /{REPO}/resolve/main/model.safetensors",
        f"GET /{REPO}/resolve/main/model.safetensors",
    ]
    assert all(r.headers.get("authorization") == "Bearer hf_reader" for r in hub.requests)
    storage = cache / f"models--{REPO.replace('/', '--')}"
    assert (storage / "refs" / "main").read_text() == hub.commit_of(REPO)
    # A second load revalidates with HEADs only; then the same cache serves offline, without requests.
    hub.requests.clear()
    assert_same_inverter(load(REPO, gan, cache_dir=cache), fitted)
    assert hub.calls("GET") == [] and len(hub.calls("HEAD")) == 2
    hub.requests.clear()
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    assert_same_inverter(load(REPO, gan, cache_dir=cache), fitted)
    assert_same_inverter(load(REPO, gan, cache_dir=cache, revision=hub.commit_of(REPO)), fitted)
    assert hub.requests == []


def test_download_at_a_commit_hash(hub, repo_folder, fitted, gan, tmp_path) -> None:
    sha = hub.add_folder(REPO, repo_folder)
    assert_same_inverter(load(REPO, gan, cache_dir=tmp_path / "cache", revision=sha), fitted)
    assert hub.calls("GET") == [f"GET /{REPO}/resolve/{sha}/{name}" for name in ("config.json", "model.safetensors")]
    hub.requests.clear()  # a commit hash already cached is served without asking the Hub anything
    assert_same_inverter(load(REPO, gan, cache_dir=tmp_path / "cache", revision=sha), fitted)
    assert hub.requests == []


# ----------------------------------------------------------------------------- push_to_hub
def test_push_to_hub_uploads_a_loadable_repo(hub, fitted, gan, tmp_path, monkeypatch) -> None:
    inverter, _ = fitted
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # push_to_hub's staging folder lands here
    (tmp_path / "tmp").mkdir()
    url = inverter.push_to_hub("org/pushed", private=True, token="hf_writer", commit_message="First inverter",
                               gan="the tiny DCGAN", metrics={"latent_mse": 0.5})
    assert url == f"{hub.url}/org/pushed/commit/{hub.commit_of('org/pushed')}"
    assert list((tmp_path / "tmp").iterdir()) == []  # the staging folder is removed
    # What the client sends to publish: create the repo, validate the card, ask how to upload, commit.
    assert hub.calls() == [
        "POST /api/repos/create",
        "POST /api/validate-yaml",  # the model card's YAML front matter
        "POST /api/models/org/pushed/preupload/main",  # answered: every file "regular" (inline, no LFS)
        "POST /api/models/org/pushed/commit/main",
    ]
    assert hub.validated[0]["content"] == hub.repos["org/pushed"]["README.md"].decode()
    [created] = hub.created
    assert (created["organization"], created["name"]) == ("org", "pushed")
    assert created.get("visibility") == "private" or created.get("private") is True  # 2.x sends visibility
    assert hub.commits == [
        {"repo_id": "org/pushed", "revision": "main", "summary": "First inverter", "files": list(FILES)}
    ]
    assert all(r.headers.get("authorization") == "Bearer hf_writer" for r in hub.requests)
    uploaded = tmp_path / "uploaded"
    uploaded.mkdir()
    for name, data in hub.repos["org/pushed"].items():
        (uploaded / name).write_bytes(data)
    card = (uploaded / "README.md").read_text()
    assert "library_name: discinvert" in card and 'Inverter.from_pretrained("org/pushed"' in card
    assert "the tiny DCGAN" in card and "latent_mse" in card
    assert_same_inverter(load(uploaded, gan), fitted)
    assert_same_inverter(load("org/pushed", gan, cache_dir=tmp_path / "cache"), fitted)


def test_push_to_hub_with_the_client_patched(fitted, gan, tmp_path, monkeypatch) -> None:
    """The same contract with HfApi's two calls replaced: what is created, and which folder is uploaded."""
    inverter, _ = fitted
    calls: list[tuple[str, dict[str, Any]]] = []
    uploaded = tmp_path / "uploaded"

    def create_repo(self: huggingface_hub.HfApi, repo_id: str, **kwargs: Any) -> str:
        calls.append(("create_repo", {"repo_id": repo_id, "token": self.token, **kwargs}))
        return f"https://hub.example/{repo_id}"

    def upload_folder(self: huggingface_hub.HfApi, **kwargs: Any) -> str:
        calls.append(("upload_folder", kwargs))
        shutil.copytree(kwargs["folder_path"], uploaded)
        return f"https://hub.example/{kwargs['repo_id']}/commit/abc"

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    assert inverter.push_to_hub("org/patched", token="hf_writer") == "https://hub.example/org/patched/commit/abc"
    assert [name for name, _ in calls] == ["create_repo", "upload_folder"]
    assert calls[0][1] == {"repo_id": "org/patched", "token": "hf_writer", "private": None, "exist_ok": True,
                           "repo_type": "model"}
    assert calls[1][1]["repo_id"] == "org/patched" and calls[1][1]["repo_type"] == "model"
    assert calls[1][1]["commit_message"] == "Upload discinvert inverter"
    assert not Path(calls[1][1]["folder_path"]).exists()  # staging folder removed
    assert sorted(p.name for p in uploaded.iterdir()) == list(FILES)
    assert "library_name: discinvert" in (uploaded / "README.md").read_text()
    assert_same_inverter(load(uploaded, gan), fitted)


def test_push_to_hub_failure_leaves_no_staging_folder(fitted, tmp_path, monkeypatch) -> None:
    inverter, _ = fitted
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", lambda self, repo_id, **kwargs: repo_id)

    def upload_folder(self: huggingface_hub.HfApi, **kwargs: Any) -> str:
        assert sorted(p.name for p in Path(kwargs["folder_path"]).iterdir()) == list(FILES)
        raise OSError("connection reset (simulated)")

    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    with pytest.raises(OSError, match="simulated"):
        inverter.push_to_hub("org/pushed")
    assert list(tmp_path.iterdir()) == []


def test_zoo_inverter_folder_is_a_hub_repo(hub, tmp_path) -> None:
    """docs/hub.md: publishing the bundled inverter is one upload_folder call; it loads back by repo id."""
    from discinvert import zoo

    G, D, bundled = zoo.load("dcgan-fashion-mnist")
    folder = zoo.path("dcgan-fashion-mnist") / "inverter"
    assert sorted(p.name for p in folder.iterdir()) == list(FILES)
    api = huggingface_hub.HfApi(endpoint=hub.url, token="hf_writer")
    api.create_repo("org/dcgan-fashion-mnist-inverter", exist_ok=True)
    api.upload_folder(repo_id="org/dcgan-fashion-mnist-inverter", folder_path=folder)
    assert hub.repos["org/dcgan-fashion-mnist-inverter"] == {p.name: p.read_bytes() for p in folder.iterdir()}
    loaded = Inverter.from_pretrained("org/dcgan-fashion-mnist-inverter", generator=G, discriminator=D,
                                      cache_dir=tmp_path / "cache")
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in bundled.state_dict().items())


# ----------------------------------------------------------------------------- refusals
def _tampered(repo_folder: Path, change: Callable[[dict[str, Any]], Any]) -> dict[str, bytes]:
    files = repo_files(repo_folder)
    config = json.loads(files["config.json"])
    change(config)
    files["config.json"] = json.dumps(config).encode()
    return files


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda c: c.update(feature_dim="lots"), "expected 'feature_dim' to be a positive int, got 'lots'"),
        (lambda c: c.update(latent_shape=[8, -1]), "latent_shape"),
        (lambda c: c.update(conditional="no"), "expected 'conditional' to be a bool"),
        (lambda c: c.update(surprise=1), r"unknown keys \['surprise'\]"),
        (lambda c: c.pop("cn"), r"missing keys \['cn'\]"),
        (lambda c: c.update(format_version=FORMAT_VERSION + 1), r"Upgrade discinvert \(pip install -U discinvert\)"),
        (lambda c: c.update(format_version="1"), "expected an integer 'format_version'"),
        (lambda c: c["fit"].update(seed=12345), r"config.json and the config stored with .* disagree \(in fit\)"),
    ],
)
def test_tampered_config_json_is_refused(repo_folder, gan, tmp_path, change, message) -> None:
    cache = tmp_path / "cache"
    lay_out_cache(cache, REPO, _tampered(repo_folder, change))
    text = refused(REPO, gan, message, cache_dir=cache)
    assert f"Hub repo {REPO!r}" in text


def test_config_json_that_is_not_json(repo_folder, gan, tmp_path) -> None:
    files = repo_files(repo_folder)
    files["config.json"] = b"{not json"
    (tmp_path / "dir").mkdir()
    for name, data in files.items():
        (tmp_path / "dir" / name).write_bytes(data)
    refused(tmp_path / "dir", gan, "config.json is not valid JSON")


@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000, '{"fit": ' * 200 + "{}" + "}" * 200])
def test_deeply_nested_config_json_names_the_file(repo_folder, gan, tmp_path, text) -> None:
    files = repo_files(repo_folder)
    files["config.json"] = text.encode()
    (tmp_path / "dir").mkdir()
    for name, data in files.items():
        (tmp_path / "dir" / name).write_bytes(data)
    message = refused(tmp_path / "dir", gan, "config.json is not usable JSON: lists or objects nested deeper than")
    assert message.startswith(str(tmp_path / "dir"))


def test_weights_of_another_inverter_are_refused(repo_folder, fitted, gan, tmp_path) -> None:
    """config.json of one inverter beside the model.safetensors of another (its CN has other sizes)."""
    inverter, _ = fitted
    narrower = dataclasses.replace(inverter.config, cn=dataclasses.replace(inverter.config.cn, hidden=(16,)))
    Inverter(narrower, generator=gan.generator, discriminator=gan.discriminator).save_pretrained(tmp_path / "other")
    files = repo_files(repo_folder)
    files["model.safetensors"] = (tmp_path / "other" / "model.safetensors").read_bytes()
    lay_out_cache(tmp_path / "cache", REPO, files)
    refused(REPO, gan, r"disagree \(in cn\); the repo was altered or mixes files of two inverters",
            cache_dir=tmp_path / "cache")


@pytest.mark.parametrize(
    "files, named",
    [
        ({"pytorch_model.bin": b"pickle"}, "pytorch_model.bin"),
        ({"config.json": None, "model.pt": b"pickle", "README.md": b"# card"}, "model.pt"),
        ({"config.json": None, "weights.ckpt": b"pickle", "extra.pth": b"pickle"}, "extra.pth, weights.ckpt"),
    ],
)
def test_pickle_only_repo_is_refused_without_unpickling(hub, repo_folder, gan, tmp_path, unpickled, files, named):
    contents = {name: data if data is not None else (repo_folder / name).read_bytes() for name, data in files.items()}
    hub.add(REPO, contents)
    text = refused(REPO, gan, "never unpickles", cache_dir=tmp_path / "cache")
    assert f"holds only pickle-based weights ({named})" in text and "no model.safetensors" in text
    # The missing model.safetensors (or config.json) is answered 404 with X-Error-Code: EntryNotFound; one
    # listing of the repo then names the pickles. No pickle file is ever requested.
    fetched = [f"HEAD /{REPO}/resolve/main/config.json"]
    if "config.json" in files:
        fetched += [f"GET /{REPO}/resolve/main/config.json", f"HEAD /{REPO}/resolve/main/model.safetensors"]
    assert hub.calls() == [*fetched, f"GET /api/models/{REPO}/tree/main?recursive=true&expand=false"]
    assert unpickled == []


def test_pickle_only_repo_is_refused_offline_and_locally(repo_folder, gan, tmp_path, unpickled) -> None:
    files = {"config.json": (repo_folder / "config.json").read_bytes(), "pytorch_model.bin": b"pickle"}
    lay_out_cache(tmp_path / "cache", REPO, files)
    refused(REPO, gan, r"only pickle-based weights \(pytorch_model.bin\).*never unpickles",
            cache_dir=tmp_path / "cache")
    (tmp_path / "local").mkdir()
    (tmp_path / "local" / "pytorch_model.bin").write_bytes(b"pickle")
    refused(tmp_path / "local", gan, r"local: no model.safetensors found; it holds only pickle-based weights")
    assert unpickled == []


def test_local_directory_without_weights_or_config(repo_folder, gan, tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    text = refused(tmp_path / "empty", gan, "empty: no model.safetensors found; expected the files written by")
    assert "pickle" not in text
    (tmp_path / "weights-only").mkdir()
    shutil.copy(repo_folder / "model.safetensors", tmp_path / "weights-only")
    refused(tmp_path / "weights-only", gan, "no config.json found")


def test_inverter_for_another_gan_raises_or_warns(hub, repo_folder, fitted, tmp_path) -> None:
    hub.add_folder(REPO, repo_folder)
    other = _build("dcgan")
    with torch.no_grad():
        other.generator.main[0].weight.mul_(1.01)
    refused(REPO, other, "fit for another GAN.*generator's weights differ", FingerprintMismatchError,
            cache_dir=tmp_path / "cache")
    before = snapshot(other.generator, other.discriminator)
    with pytest.warns(UserWarning, match="fit for another GAN"):
        loaded = load(REPO, other, cache_dir=tmp_path / "cache", on_mismatch="warn")
    assert_untouched(before, other.generator, other.discriminator)
    assert torch.equal(loaded.state_dict()["cn.layers.0.weight"], fitted[0].state_dict()["cn.layers.0.weight"])
    mlp = _build("mlp")
    refused(REPO, mlp, "'4' is not a layer of the discriminator", cache_dir=tmp_path / "cache")


def test_missing_repo_and_revision(hub, gan, tmp_path, repo_folder) -> None:
    text = refused("org/nothing-here", gan, r"Hub repo 'org/nothing-here': not found", cache_dir=tmp_path / "cache")
    assert "token=" in text and "Check the name" in text
    assert hub.calls() == ["HEAD /org/nothing-here/resolve/main/config.json"]
    hub.add_folder(REPO, repo_folder)
    refused(REPO, gan, r"no revision 'v9'; expected a branch, tag or commit hash", cache_dir=tmp_path / "cache",
            revision="v9")


def test_repo_without_config_json(hub, repo_folder, gan, tmp_path) -> None:
    hub.add(REPO, {"model.safetensors": (repo_folder / "model.safetensors").read_bytes()})
    refused(REPO, gan, "no config.json; expected a repo written by Inverter.save_pretrained",
            cache_dir=tmp_path / "cache")


def test_offline_with_nothing_cached(gan, tmp_path, monkeypatch) -> None:
    text = refused(REPO, gan, rf"Hub repo {REPO!r}: not in the local cache", cache_dir=tmp_path / "empty-cache")
    assert "HF_HUB_OFFLINE=1" in text and "snapshot_download" in text
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    text = refused(REPO, gan, "downloading is off", cache_dir=tmp_path / "empty-cache", local_files_only=True)
    assert "local_files_only=True" in text
    refused(REPO, gan, "not in the local cache", revision="0" * 40, local_files_only=True)


def test_endpoint_that_is_not_a_hub(gan, tmp_path, monkeypatch) -> None:
    """A server that answers without the Hub's headers: the error names the endpoint and the repo."""

    class Plain(BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Plain)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        point_client_at(monkeypatch, url)
        text = refused(REPO, gan, rf"Hub repo {REPO!r}: not in the local cache", cache_dir=tmp_path / "cache")
        assert url in text and "X-Repo-Commit" in text
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_bad_repo_ids(gan) -> None:
    refused("a/b/c", gan, "expected an existing local directory or a Hub repo id 'org/name'")
    refused("./not-here", gan, "expected an existing local directory")


def test_no_warnings_on_a_clean_load(hub, repo_folder, gan, tmp_path) -> None:
    hub.add_folder(REPO, repo_folder)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load(REPO, gan, cache_dir=tmp_path / "cache")
