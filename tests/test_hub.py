"""Hub I/O without a network: a hand-laid Hub cache, a local stand-in Hub server, push_to_hub, every refusal.

The stand-in (``StandInHub``) is a ``http.server`` on 127.0.0.1 that answers what
``huggingface_hub`` sends: ``HEAD``/``GET /{repo}/resolve/{revision}/{file}`` (downloads),
``GET /api/models/{repo}/tree/{revision}`` (file listing), ``POST /api/repos/create``,
``POST /api/validate-yaml`` (the model card), ``POST /api/models/{repo}/preupload/{revision}`` and
``POST /api/models/{repo}/commit/{revision}`` (uploads), ``GET /api/models/{repo}`` (repo info) and
``DELETE /api/repos/delete``. ``StandInHub.failures`` makes an endpoint answer an error status or drop the
connection (optionally after doing its work, as when an answer is lost on the way back).
``huggingface_hub.constants`` is patched so the real client code talks to it; a test without the
stand-in runs offline against a discard port.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
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
from discinvert.cli import main
from discinvert.inverter_config import FORMAT_VERSION, NEWEST_FORMAT_VERSION
from tests.conftest import TinyGAN, _build, assert_untouched, snapshot

QUICK = dict(steps=20, batch_size=16, cn_hidden=(32,), progress=False, validation_size=32, seed=0)
REPO = "org/tiny-inverter"
ROOT = Path(__file__).resolve().parents[1]
FILES = ("README.md", "config.json", "model.safetensors")


# ----------------------------------------------------------------------------- the stand-in Hub
@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]


@dataclass(frozen=True)
class Failure:
    """How the stand-in fails one endpoint: answer ``status`` with ``message``, or (``status=None``) close
    the connection without an answer, after doing the request's work if ``applied`` (the answer is lost).
    With ``interrupt``, it first presses Ctrl-C in the client (a SIGINT sent to the client's main thread)."""

    status: int | None = None
    message: str = "refused (simulated)"
    applied: bool = False
    interrupt: bool = False


class StandInHub:
    """Repos kept in memory; every request is logged in ``requests``.

    ``failures`` maps an endpoint (``"create"``, ``"commit"``, ``"delete"``) to the :class:`Failure` it
    answers with instead of doing its work.
    """

    def __init__(self) -> None:
        self.repos: dict[str, dict[str, bytes]] = {}
        self.failures: dict[str, Failure] = {}
        self.created: list[dict[str, Any]] = []
        self.deleted: list[str] = []
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

        def _failed(self, endpoint: str) -> bool:
            """Answer as ``hub.failures[endpoint]`` says (its request body already read); False when the
            endpoint should do its work.

            A failure that is ``applied`` returns False too: the endpoint does its work, then ``_answer``
            drops the connection instead of answering.
            """
            failure = hub.failures.get(endpoint)
            if failure is None or failure.applied:
                return False
            if failure.interrupt:
                # A real SIGINT aimed at the client's main thread: its blocking read (or wait) returns
                # with EINTR and raises KeyboardInterrupt there and then, before this handler closes
                # the connection (the test installs Python's handler: see python_ctrl_c).
                signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
            if failure.status is None:
                self.close_connection = True  # nothing written: the client sees the connection close
            else:
                self._send(failure.status, json.dumps({"error": failure.message}).encode(),
                           {"Content-Type": "application/json", "X-Error-Message": failure.message})
            return True

        def _answer(self, endpoint: str, status: int, payload: Any) -> None:
            failure = hub.failures.get(endpoint)
            if failure is not None and failure.applied:
                self.close_connection = True  # the work is done, the answer is lost
                return
            self._json(status, payload)

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
            elif parts[:3] == ["api", "repos", "delete"] and self.command == "DELETE":
                self._delete()
            elif len(parts) == 4 and parts[:2] == ["api", "models"] and self.command == "GET":
                self._info("/".join(parts[2:4]))
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

        do_HEAD = do_GET = do_POST = do_DELETE = _route

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

        def _info(self, repo_id: str) -> None:
            files = self._repo(repo_id, "main")
            if files is not None:
                self._json(200, {"id": repo_id, "sha": hub.commit_of(repo_id), "private": False,
                                 "siblings": [{"rfilename": name} for name in sorted(files)]})

        def _tree(self, repo_id: str, revision: str) -> None:
            files = self._repo(repo_id, revision)
            if files is not None:
                self._json(200, [
                    {"type": "file", "path": name, "size": len(data), "oid": hashlib.sha1(data).hexdigest()}
                    for name, data in sorted(files.items())
                ])

        # -- uploads
        def _create(self) -> None:
            body = self._body()
            if self._failed("create"):
                return
            payload = json.loads(body)
            repo_id = "/".join(filter(None, (payload.get("organization"), payload["name"])))
            with hub._lock:
                if repo_id in hub.repos:  # the Hub's answer, with the url that create_repo(exist_ok=True) returns
                    self._json(409, {"error": "You already created this model repo", "url": f"{hub.url}/{repo_id}"},
                               {"X-Error-Message": "You already created this model repo"})
                    return
                hub.created.append(payload)
                hub.repos[repo_id] = {}
            self._answer("create", 200, {"url": f"{hub.url}/{repo_id}", "name": repo_id})

        def _delete(self) -> None:
            body = self._body()
            if self._failed("delete"):
                return
            payload = json.loads(body)
            repo_id = "/".join(filter(None, (payload.get("organization"), payload["name"])))
            with hub._lock:
                if hub.repos.pop(repo_id, None) is None:
                    self._error("RepoNotFound")
                    return
                hub.deleted.append(repo_id)
            self._answer("delete", 200, {})

        def _preupload(self, repo_id: str) -> None:
            if repo_id not in hub.repos:
                self._error("RepoNotFound")
                return
            payload = json.loads(self._body())
            self._json(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                       for f in payload["files"]]})

        def _commit(self, repo_id: str, revision: str) -> None:
            body = self._body()
            if repo_id not in hub.repos:
                self._error("RepoNotFound")
                return
            if self._failed("commit"):
                return
            lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
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
            self._answer("commit", 200, {"commitUrl": f"{hub.url}/{repo_id}/commit/{oid}", "commitOid": oid,
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

    # torch imports torch._dynamo lazily (building on the meta device can), and it subclasses pickle.Unpickler:
    # imported before that is replaced, or a test run alone fails with "function() argument 'code' must be code".
    import torch._dynamo  # noqa: F401

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


# ----------------------------------------------------------------------------- save_pretrained: all or nothing
@pytest.fixture(scope="module")
def second() -> Inverter:
    """Another inverter for the same GAN (another seed): what a new save would put in place of the first."""
    gan = _build("dcgan")
    return fit_inverter(gan.generator, gan.discriminator, gan.feature_layer, latent_shape=gan.latent_shape,
                        **{**QUICK, "seed": 1})


def previous(repo_folder: Path, folder: Path, blocked: str | None = None) -> dict[str, bytes]:
    """A copy of the first inverter's folder at ``folder``, with a directory in place of the file ``blocked``;
    returns its files' bytes."""
    shutil.copytree(repo_folder, folder)
    if blocked is not None:
        (folder / blocked).unlink()
        (folder / blocked).mkdir()
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def assert_unchanged(folder: Path, before: dict[str, bytes]) -> None:
    """The same files with the same bytes, and nothing else (no temporary file) besides a blocking directory."""
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} == before
    assert sorted(p.name for p in folder.iterdir()) == list(FILES)


def test_save_pretrained_that_cannot_write_the_model_card_keeps_the_previous_inverter(repo_folder, fitted, second,
                                                                                      gan, tmp_path) -> None:
    folder = tmp_path / "inverter"
    before = previous(repo_folder, folder, blocked="README.md")
    with pytest.raises(OSError) as info:
        second.save_pretrained(folder)
    assert_unchanged(folder, before)
    assert_same_inverter(load(folder, gan), fitted)
    assert info.match(r"README.md: could not be written \(expected a file, got a directory\); any previous file "
                      r"there is unchanged; so are model.safetensors, config.json, written with it")


def test_save_pretrained_with_a_directory_at_config_json_keeps_the_previous_weights(repo_folder, fitted, second, gan,
                                                                                   tmp_path) -> None:
    folder = tmp_path / "inverter"
    before = previous(repo_folder, folder, blocked="config.json")
    with pytest.raises(OSError) as info:
        second.save_pretrained(folder)
    assert_unchanged(folder, before)
    assert info.match(r"config.json: could not be written \(expected a file, got a directory\)")
    old = Inverter.load(folder / "model.safetensors", generator=gan.generator, discriminator=gan.discriminator)
    assert_same_inverter(old, fitted)
    # and loading the folder says what is wrong with it (issue 32 item 12: a ValueError, not IsADirectoryError)
    refused(folder, gan, r"inverter/config.json: expected the file written by Inverter.save_pretrained, got a directory")


_FULL_DISK_CHILD = """
import resource, sys
from discinvert import Inverter
from tests.conftest import _build

gan = _build("dcgan")
inverter = Inverter.load(sys.argv[1], generator=gan.generator, discriminator=gan.discriminator)
limit = int(sys.argv[3])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))  # `ulimit -f`: no file may grow past `limit` bytes
try:
    inverter.save_pretrained(sys.argv[2], metrics={f"metric_{i:05d}": i / 7 for i in range(4000)})
except OSError as error:
    print(error)
    sys.exit(3)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
def test_save_pretrained_that_hits_a_file_size_limit_keeps_the_previous_inverter(repo_folder, fitted, second, gan,
                                                                                 tmp_path) -> None:
    """A full disk after model.safetensors and config.json were written, while the model card is written."""
    folder = tmp_path / "inverter"
    before = previous(repo_folder, folder)
    source = second.save(tmp_path / "second.safetensors")
    sizes = {p.name: p.stat().st_size for p in second.save_pretrained(
        tmp_path / "scratch", metrics={f"metric_{i:05d}": i / 7 for i in range(4000)}).iterdir()}
    limit = max(sizes["model.safetensors"], sizes["config.json"]) + 1024
    assert limit < sizes["README.md"]  # only the model card, written last, is too large
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    child = subprocess.run([sys.executable, "-c", _FULL_DISK_CHILD, str(source), str(folder), str(limit)],
                           capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert child.returncode == 3, child.stderr
    assert "README.md: could not be written" in child.stdout and "File too large" in child.stdout, child.stdout
    assert_unchanged(folder, before)
    assert_same_inverter(load(folder, gan), fitted)


def test_save_pretrained_refuses_metrics_that_are_not_a_dict_before_writing(repo_folder, second, tmp_path) -> None:
    folder = tmp_path / "inverter"
    before = previous(repo_folder, folder)
    for metrics, message in (([1], r"metrics: expected a dict of metric names to values, such as \{'psnr': 17.2\}, "
                                   r"got list \[1\]"),
                             ({1: 0.5}, "metrics: expected metric names as strings, got int 1"),
                             ({"psnr": [17.2]}, r"metrics\['psnr'\]: expected a number or a string, got list")):
        with pytest.raises(ValueError, match=message):
            second.save_pretrained(folder, metrics=metrics)
        assert_unchanged(folder, before)
        with pytest.raises(ValueError, match=message):
            second.save_pretrained(tmp_path / "new", metrics=metrics)
        assert not (tmp_path / "new").exists()
    with pytest.raises(ValueError, match="gan: expected a string or None, got int 5"):
        second.save_pretrained(folder, gan=5)


def test_cli_fit_into_a_folder_with_a_blocked_file_keeps_the_previous_inverter(tmp_path, capsys) -> None:
    """``discinvert fit --out DIR`` replaces DIR's three files together; a blocked one is reported before fitting."""
    folder = tmp_path / "inverter"
    argv = ["fit", "--generator", "tests.cli_factories:make_generator", "--discriminator",
            "tests.cli_factories:make_discriminator", "--latent-shape", "8,1,1", "--feature-layer", "4", "--steps", "2",
            "--batch-size", "16", "--validation-size", "32", "--no-progress", "--out", str(folder)]
    assert main(argv) == 0
    (folder / "README.md").unlink()
    (folder / "README.md").mkdir()
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    capsys.readouterr()
    assert main([*argv, "--seed", "1"]) == 1
    assert_unchanged(folder, before)
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "README.md: expected a file to write, got an existing directory" in \
        captured.err, captured.err
    assert "fitting" not in captured.out  # refused before the fit, not after it


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


def test_push_to_hub_in_int8_uploads_a_quarter_size_loadable_repo(hub, fitted, gan, tmp_path) -> None:
    inverter, _ = fitted
    inverter.push_to_hub("org/small", token="hf_writer", dtype=torch.int8)
    inverter.push_to_hub("org/full", token="hf_writer")
    small, full = hub.repos["org/small"]["model.safetensors"], hub.repos["org/full"]["model.safetensors"]
    assert len(small) < 0.5 * len(full)
    loaded = load("org/small", gan, cache_dir=tmp_path / "cache")
    assert all(p.dtype == torch.float32 for p in loaded.cn.parameters())
    weight = inverter.cn.state_dict()["layers.0.weight"]
    step = weight.abs().amax(dim=1, keepdim=True) / 127
    assert ((loaded.cn.state_dict()["layers.0.weight"] - weight).abs() <= step / 2 + 1e-7).all()


def test_push_to_hub_with_the_client_patched(fitted, gan, tmp_path, monkeypatch) -> None:
    """The same contract with HfApi's two calls replaced: what is created, and which files make the one commit."""
    inverter, _ = fitted
    calls: list[tuple[str, dict[str, Any]]] = []
    uploaded = tmp_path / "uploaded"
    uploaded.mkdir()

    def create_repo(self: huggingface_hub.HfApi, repo_id: str, **kwargs: Any) -> str:
        calls.append(("create_repo", {"repo_id": repo_id, "token": self.token, **kwargs}))
        return f"https://hub.example/{repo_id}"

    def create_commit(self: huggingface_hub.HfApi, **kwargs: Any) -> str:
        calls.append(("create_commit", kwargs))
        for operation in kwargs["operations"]:
            shutil.copy(operation.path_or_fileobj, uploaded / operation.path_in_repo)
        return f"https://hub.example/{kwargs['repo_id']}/commit/abc"

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "create_commit", create_commit)
    assert inverter.push_to_hub("org/patched", token="hf_writer") == "https://hub.example/org/patched/commit/abc"
    assert [name for name, _ in calls] == ["create_repo", "create_commit"]
    # exist_ok=False: the Hub's 409 is how push_to_hub knows that the repo existed (and must never be deleted)
    assert calls[0][1] == {"repo_id": "org/patched", "token": "hf_writer", "private": None, "exist_ok": False,
                           "repo_type": "model"}
    assert calls[1][1]["repo_id"] == "org/patched" and calls[1][1]["repo_type"] == "model"
    assert calls[1][1]["commit_message"] == "Upload discinvert inverter"
    operations = calls[1][1]["operations"]
    assert [op.path_in_repo for op in operations] == list(FILES)  # all three files in one commit
    assert not Path(operations[0].path_or_fileobj).parent.exists()  # staging folder removed
    assert "library_name: discinvert" in (uploaded / "README.md").read_text()
    assert_same_inverter(load(uploaded, gan), fitted)


# ----------------------------------------------------------------------------- push_to_hub failures
NEW = "org/new-inverter"
REFUSED = Failure(422, "commit refused (simulated)")


@pytest.fixture
def staging(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The folder where push_to_hub's temporary staging folders land (it must be empty afterwards)."""
    folder = tmp_path / "staging"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def failed_push(inverter: Inverter, repo_id: str, **kwargs: Any) -> Any:
    """push_to_hub raises a HubPushError (a ValueError) that names the repo and chains the client's error."""
    with pytest.raises(ValueError) as info:
        inverter.push_to_hub(repo_id, **kwargs)
    from discinvert.hub import HubPushError

    error = info.value
    assert isinstance(error, HubPushError), repr(error)
    assert error.repo_id == repo_id and f"Hub repo {repo_id!r}" in str(error)
    assert error.__cause__ is not None
    return error


def push_calls(repo_id: str) -> list[str]:
    return ["POST /api/repos/create", "POST /api/validate-yaml", f"POST /api/models/{repo_id}/preupload/main",
            f"POST /api/models/{repo_id}/commit/main"]


def test_push_to_an_existing_repo_adds_one_commit(hub, fitted, staging) -> None:
    """The Hub answers 409 to the create: the repo is used as it is, with one more commit."""
    hub.add(REPO, {"notes.txt": b"kept"})
    url = fitted[0].push_to_hub(REPO, commit_message="Second inverter")
    assert url == f"{hub.url}/{REPO}/commit/{hub.commit_of(REPO)}"
    assert hub.calls() == push_calls(REPO)
    assert hub.created == [] and hub.deleted == []
    assert hub.commits == [{"repo_id": REPO, "revision": "main", "summary": "Second inverter", "files": list(FILES)}]
    assert hub.repos[REPO]["notes.txt"] == b"kept"
    assert list(staging.iterdir()) == []


@pytest.mark.parametrize(
    "failure", [REFUSED, Failure(None), Failure(None, applied=True)],
    ids=["commit-refused", "connection-dropped", "answer-lost"],
)
def test_failed_upload_to_a_new_repo_deletes_it(hub, fitted, staging, failure) -> None:
    hub.failures["commit"] = failure
    error = failed_push(fitted[0], NEW)
    assert hub.repos == {} and hub.deleted == [NEW]  # nothing left, even when the commit went through unseen
    assert hub.calls() == [*push_calls(NEW), "DELETE /api/repos/delete"]
    assert error.outcome == "deleted"
    assert "the repo created for it was deleted again; nothing was left on the Hub" in str(error)
    if failure.status is not None:
        assert "commit refused (simulated)" in str(error)  # the Hub's reason
    assert list(staging.iterdir()) == []  # the staging folder is removed too


def test_refused_upload_leaves_an_existing_repo_untouched(hub, fitted, staging) -> None:
    old = {"README.md": b"# an older card\n", "notes.txt": b"kept"}
    commit = hub.add(REPO, old)
    hub.failures["commit"] = Failure(403, "storage quota exceeded (simulated)")
    error = failed_push(fitted[0], REPO)
    assert hub.repos[REPO] == old and hub.commit_of(REPO) == commit and hub.commits == []
    assert hub.calls() == push_calls(REPO)  # never deleted
    assert error.outcome == "unchanged"
    text = str(error)
    assert "nothing was changed in it" in text and "storage quota exceeded (simulated)" in text
    assert "token" in text  # a 403: the token is what to check
    assert list(staging.iterdir()) == []


@pytest.mark.parametrize("applied", [False, True], ids=["lost-before-commit", "lost-after-commit"])
def test_unconfirmed_commit_to_an_existing_repo_is_reported(hub, fitted, staging, applied) -> None:
    """The connection drops after the commit was sent: the repo holds its old files or all new ones, never a mix."""
    old = {"README.md": b"# an older card\n", "notes.txt": b"kept"}
    hub.add(REPO, old)
    hub.failures["commit"] = Failure(None, applied=applied)
    error = failed_push(fitted[0], REPO)
    assert hub.calls() == push_calls(REPO) and hub.deleted == []
    assert error.outcome == "unconfirmed"
    text = str(error)
    assert "did not confirm the commit" in text and "either its previous files or all of the new ones" in text
    assert f"{hub.url}/{REPO}/commits/main" in text
    if applied:
        assert hub.repos[REPO]["notes.txt"] == b"kept" and hub.repos[REPO]["README.md"] != old["README.md"]
        assert hub.commits[0]["files"] == list(FILES)
    else:
        assert hub.repos[REPO] == old


def closed_port() -> str:
    with socket.socket() as sock:  # bound, never listening, closed: connecting to it is refused
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.mark.parametrize("where", ["connection-refused", "offline"])
def test_unreachable_hub_names_the_repo(fitted, staging, monkeypatch, where) -> None:
    if where == "connection-refused":
        url = closed_port()
        point_client_at(monkeypatch, url)
    else:
        url = "http://127.0.0.1:9"  # HF_HUB_OFFLINE is on (autouse fixture)
    error = failed_push(fitted[0], NEW)
    assert error.outcome == "not-created"
    text = str(error)
    assert "nothing was created or changed on the Hub" in text and url in text
    cause = "ConnectError" if where == "connection-refused" else "OfflineModeIsEnabled"
    assert type(error.__cause__).__name__ == cause
    if where == "offline":
        assert "HF_HUB_OFFLINE" in text
    assert list(staging.iterdir()) == []


@pytest.mark.parametrize(
    "commit_failure, delete_failure, left",
    [
        (REFUSED, Failure(500, "delete failed (simulated)"), "an empty repo {repo!r} was left behind at {url}/{repo}"),
        (REFUSED, Failure(None), "an empty repo {repo!r} was left behind at {url}/{repo}"),
        (Failure(None), Failure(500, "delete failed (simulated)"),
         "the repo {repo!r} created for it was left behind at {url}/{repo}, empty or holding this whole upload "
         "(its commit was not confirmed)"),
    ],
    ids=["delete-refused", "delete-connection-dropped", "commit-unconfirmed"],
)
def test_failed_delete_after_a_failed_upload_says_what_was_left(hub, fitted, staging, commit_failure, delete_failure,
                                                                left) -> None:
    hub.failures["commit"] = commit_failure
    hub.failures["delete"] = delete_failure
    error = failed_push(fitted[0], NEW)
    assert hub.repos == {NEW: {}} and hub.deleted == []  # the empty repo is still there ...
    assert error.outcome == "left-behind"
    text = str(error)  # ... and the message says so, and how to remove it
    assert left.format(repo=NEW, url=hub.url) in text
    assert f"hf repos delete {NEW}" in text and "deleting the repo created for it failed too" in text
    if commit_failure is REFUSED:
        assert "commit refused (simulated)" in text


def test_token_that_cannot_create_repos_pushes_to_an_existing_one(hub, fitted, staging) -> None:
    """create_repo answered 403 (no right to create): as with exist_ok=True, an existing repo still takes the push."""
    hub.add("org/existing", {"notes.txt": b"kept"})
    hub.failures["create"] = Failure(403, "You don't have the rights to create a model under this namespace")
    url = fitted[0].push_to_hub("org/existing")
    assert url == f"{hub.url}/org/existing/commit/{hub.commit_of('org/existing')}"
    assert sorted(hub.repos["org/existing"]) == sorted([*FILES, "notes.txt"])
    assert hub.calls()[:2] == ["POST /api/repos/create", "GET /api/models/org/existing"]
    hub.requests.clear()
    error = failed_push(fitted[0], NEW)  # the same token, a repo that does not exist
    assert error.outcome == "not-created" and NEW not in hub.repos
    assert "don't have the rights" in str(error) and "token" in str(error)


@pytest.fixture
def python_ctrl_c() -> Iterator[None]:
    """Python's own Ctrl-C handler for the test, also when the suite runs as a background job: a shell
    starts those with SIGINT ignored, and Python then leaves it ignored, so no KeyboardInterrupt."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("case", ["new-repo", "new-repo-delete-fails", "existing-repo"])
def test_interrupted_push_deletes_only_a_new_repo(hub, fitted, staging, caplog, case, python_ctrl_c) -> None:
    """Ctrl-C while the commit is on its way: a repo the push created is deleted, an existing one is left alone.

    KeyboardInterrupt goes on unchanged; what no error can carry then is logged."""
    old = {"notes.txt": b"kept"}
    if case == "existing-repo":
        hub.add(NEW, old)
    if case == "new-repo-delete-fails":
        hub.failures["delete"] = Failure(500, "delete failed (simulated)")
    hub.failures["commit"] = Failure(None, interrupt=True)
    with pytest.raises(KeyboardInterrupt):
        fitted[0].push_to_hub(NEW)
    assert list(staging.iterdir()) == []
    if case == "new-repo":
        assert hub.repos == {} and hub.deleted == [NEW]
    elif case == "new-repo-delete-fails":
        assert hub.repos == {NEW: {}} and hub.deleted == []
        assert f"was left behind at {hub.url}/{NEW}" in caplog.text and f"hf repos delete {NEW}" in caplog.text
    else:
        assert hub.repos == {NEW: old} and hub.deleted == []
        assert "did not confirm the commit" in caplog.text and "never a mix" in caplog.text


@pytest.mark.parametrize("applied", [False, True], ids=["not-created", "created"])
def test_unanswered_create_is_reported_and_nothing_is_deleted(hub, fitted, staging, applied) -> None:
    """The request to create the repo gets no answer: the push cannot know whether the repo is its own."""
    hub.failures["create"] = Failure(None, applied=applied)
    error = failed_push(fitted[0], NEW)
    assert hub.calls() == ["POST /api/repos/create"] and hub.deleted == []  # not deleted: it may not be ours
    assert hub.repos == ({NEW: {}} if applied else {})
    assert error.outcome == "unconfirmed"
    text = str(error)
    assert "the request to create the repo was not answered" in text and "it may exist now, empty" in text
    assert f"{hub.url}/{NEW}" in text and f"hf repos delete {NEW}" in text


def test_push_that_cannot_stage_its_files_sends_nothing(hub, fitted, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "missing"))  # mkdtemp fails there
    error = failed_push(fitted[0], NEW)
    assert error.outcome == "not-created" and hub.requests == []
    assert "nothing was created or changed on the Hub" in str(error)


@pytest.mark.parametrize("delete_fails", [False, True], ids=["repo-deleted", "repo-left-behind"])
def test_cli_push_failure_is_one_line(hub, staging, capsys, delete_fails) -> None:
    hub.failures["commit"] = REFUSED
    if delete_fails:
        hub.failures["delete"] = Failure(500, "delete failed (simulated)")
    assert main(["push", "--gan", "zoo:dcgan-fashion-mnist", "--repo-id", NEW]) == 1
    named, err = capsys.readouterr().err.splitlines(keepends=True)  # the line naming the inverter, then the error
    assert named.startswith("discinvert push: inverter zoo:dcgan-fashion-mnist/real-images (the GAN's default")
    assert err.count("\n") == 1 and err.startswith("discinvert push: error: ") and "Traceback" not in err
    assert f"Hub repo {NEW!r}" in err and "commit refused (simulated)" in err
    if delete_fails:
        assert hub.repos == {NEW: {}} and f"an empty repo {NEW!r} was left behind" in err
    else:
        assert hub.repos == {} and "deleted again" in err


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
        (lambda c: c.update(format_version=NEWEST_FORMAT_VERSION + 1), r"Upgrade discinvert \(pip install -U discinvert\)"),
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
