"""Files written atomically and JSON read defensively: the file handling every part of discinvert shares.

Every file discinvert writes goes through :func:`atomic_write`: a temporary file in
the same folder, fsync, then ``os.replace``, so a crash, a full disk or Ctrl-C leaves
the old file (or none), never a partial one. JSON read from files goes through
:func:`parse_json`, which turns every malformed document into a ``ValueError``
naming the file.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import math
import os
import re
import secrets
import shutil
import socket
import stat
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import safetensors

__all__ = [
    "MAX_JSON_DEPTH",
    "STALE_TEMPORARY_SECONDS",
    "TEMPORARY_SUFFIX",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_many",
    "check_writable",
    "parse_json",
    "write_json",
]

logger = logging.getLogger(__name__)

TEMPORARY_SUFFIX = ".discinvert-tmp"
"""Suffix of :func:`atomic_write`'s temporary files: ``.{name}.{host}-{pid}-{random}.discinvert-tmp``."""

STALE_TEMPORARY_SECONDS = 24 * 3600
"""Age after which another process's temporary file for the same target counts as abandoned."""

MAX_JSON_DEPTH = 64
"""Deepest nesting :func:`parse_json` accepts (discinvert's own configs nest 3 levels)."""

MAX_JSON_BYTES = 16 * 2**20
"""Longest JSON document read (16 MiB): a config, a GAN's config.json or a checkpoint's state takes a few kB to
a few hundred kB (a fit history of thousands of validations included); a longer one is refused before parsing."""

# Which machine made a temporary file: a process id means something only on its own host.
_HOST_TAG = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
_TEMPORARY_TAIL = re.compile(r"([0-9a-f]{8})-([0-9]+)-[0-9a-f]+" + re.escape(TEMPORARY_SUFFIX))
_MAX_STEM_BYTES = 120  # file names are limited to 255 bytes; the tag and suffix take about 50


# ---------------------------------------------------------------------------- atomic files
def _temporary_stem(name: str) -> str:
    """The target's name as it appears in its temporary files (shortened when too long)."""
    encoded = name.encode()
    if len(encoded) <= _MAX_STEM_BYTES:
        return name
    digest = hashlib.sha256(encoded).hexdigest()[:16]
    return encoded[: _MAX_STEM_BYTES - 17].decode(errors="ignore") + "-" + digest


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if os.name == "nt":  # os.kill(pid, 0) would send CTRL_C_EVENT there; rely on the age rule alone
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: the process exists, under another user
        return True
    return True


def _remove_stale_temporaries(directory: Path, stem: str) -> None:
    """Delete abandoned temporary files of the target named ``stem`` in ``directory`` (best effort)."""
    prefix = f".{stem}."
    try:
        names = os.listdir(directory)
    except OSError:
        return
    now = time.time()
    for name in names:
        if not name.startswith(prefix):
            continue
        match = _TEMPORARY_TAIL.fullmatch(name[len(prefix):])
        if match is None:
            continue
        path = directory / name
        try:
            age = now - os.lstat(path).st_mtime
        except OSError:
            continue
        host, pid = match.group(1), int(match.group(2))
        if age > STALE_TEMPORARY_SECONDS or (host == _HOST_TAG and not _pid_alive(pid)):
            with contextlib.suppress(OSError):
                os.unlink(path)
                logger.info("removed %s, a temporary file left by an interrupted write", path)


def _create_temporary(directory: Path, stem: str) -> tuple[Path, int]:
    """An empty new file ``.{stem}.{host}-{pid}-{random}.discinvert-tmp``, and the mode it got.

    The file is created with mode 0o666 and the kernel applies the umask (and any
    default ACL), which is the mode a new file would ordinarily get.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = directory / f".{stem}.{_HOST_TAG}-{os.getpid()}-{secrets.token_hex(6)}{TEMPORARY_SUFFIX}"
        try:
            fd = os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue
        try:
            mode = stat.S_IMODE(os.fstat(fd).st_mode)
        finally:
            os.close(fd)
        return tmp, mode
    raise FileExistsError(errno.EEXIST, f"{directory}: could not create a temporary file")  # pragma: no cover


def _fsync(path: Path, *, directory: bool = False) -> None:
    if directory and os.name == "nt":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:
        if not directory:  # some file systems cannot fsync a folder; the file's data is what matters
            raise
    finally:
        os.close(fd)


def _write_error(path: str | os.PathLike[str], error: BaseException, together: Sequence[Path] = ()) -> OSError:
    """One ``OSError`` naming the file (and the files written with it), whatever layer (Python, numpy,
    safetensors) failed."""
    if isinstance(error, OSError):
        code, detail = error.errno, error.strerror or str(error)
    else:  # safetensors reports I/O failures as SafetensorError("... (os error 28)")
        found = re.search(r"os error (\d+)", str(error))
        code, detail = (int(found.group(1)) if found else None), str(error)
    others = [str(other.name) for other in together if other != Path(path)]
    also = f"; so are {', '.join(others)}, written with it" if others else ""
    message = f"{path}: could not be written ({detail}); any previous file there is unchanged{also}."
    return OSError(code, message) if code else OSError(message)


def atomic_write(path: str | os.PathLike[str], write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` for a temporary file beside ``path``, then move it into place.

    A crash, a full disk or an exception leaves either the old file or none, never a
    partial one. ``write`` must write the whole file at the path it is given and
    raise on failure.

    - A symbolic link at ``path`` is written through: its target is replaced and the
      link stays.
    - An existing file keeps its permission bits (say 0600); a new file gets the
      ordinary mode for the umask (0644 for umask 022).
    - Temporary files are named ``.{name}.{host}-{pid}-{random}.discinvert-tmp`` in the
      target's folder. Before writing, temporary files of the same target that were
      abandoned (a process killed with ``kill -9``, a power cut) are removed: those of
      a process that no longer exists on this host, and any older than
      :data:`STALE_TEMPORARY_SECONDS` (24 hours; this also covers other hosts on a
      shared file system and reused process ids). A write in progress in a live
      process is never touched.

    Returns:
        ``path`` as a :class:`~pathlib.Path` (the link, if it is one).

    Raises:
        OSError: the folder cannot be created, the file cannot be written (full disk,
            file size limit, permissions) or moved into place; the message names the
            file, and any previous file is unchanged. Other exceptions from ``write``
            propagate unchanged.
    """
    return atomic_write_many([(path, write)])[0]


def atomic_write_many(files: Sequence[tuple[str | os.PathLike[str], Callable[[str], None]]]) -> list[Path]:
    """:func:`atomic_write` for several files that belong together, all or nothing (a GAN folder's
    weights and config, an inverter folder's weights, config and model card).

    Every file is written to its temporary file first; only when all are written are they
    moved into place, in the given order. A failure while writing (a full disk, a file
    size limit, a directory where a file should go, an exception from a ``write``) leaves
    every old file as it was, and no temporary file. Before a file is replaced, its old
    version is kept under a temporary name (a hard link, else a copy); if a later rename
    fails, the files already replaced are put back, so the folder again holds exactly its
    old files. Only a crash (power cut, ``kill -9``) between two renames can leave some
    files new and others old; the temporary files it leaves are removed by a later write.

    Returns:
        The paths, as :func:`atomic_write` returns them.

    Raises:
        OSError: as :func:`atomic_write`, naming the file that failed; the old files are
            unchanged (a failure to put one back is logged as an error naming it).
    """
    staged: list[tuple[Path, Path, Path]] = []  # (given, target, temporary)
    handled: list[Path] = []  # the file being staged, then the one being moved into place, last
    try:
        for path, write in files:
            handled.append(Path(path))
            staged.append(_stage(handled[-1], write))
        _swap_in(staged, keep_previous=len(staged) > 1, on_rename=handled.append)
        staged = []
    except BaseException as error:
        current = handled[-1] if handled else None
        for _, _, tmp in staged:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        if isinstance(error, (OSError, safetensors.SafetensorError)) and current is not None:
            raise _write_error(current, error, [Path(path) for path, _ in files]) from error
        raise
    for directory in {Path(os.path.realpath(Path(path))).parent for path, _ in files}:
        with contextlib.suppress(OSError):
            _fsync(directory, directory=True)
    return [Path(path) for path, _ in files]


def _swap_in(staged: list[tuple[Path, Path, Path]], *, keep_previous: bool,
             on_rename: Callable[[Path], None]) -> None:
    """Move each staged temporary file onto its target; with ``keep_previous``, undo all of it on a failure.

    ``on_rename(given)`` is called before each file is moved, so the caller can name the one that failed.

    Raises:
        OSError: the rename that failed, after the targets already replaced got their old
            files back (each temporary file of ``staged`` not yet moved is left to the caller).
    """
    done: list[tuple[Path, Path | None]] = []  # (target, its old version kept, None where there was none)
    backup: Path | None = None
    try:
        for given, target, tmp in staged:
            on_rename(given)
            backup = _keep_previous(target) if keep_previous else None
            os.replace(tmp, target)
            done.append((target, backup))
            backup = None
    except BaseException:
        if backup is not None:  # kept, but its target was not replaced
            with contextlib.suppress(OSError):
                os.unlink(backup)
        for target, kept in reversed(done):
            try:
                if kept is None:
                    os.unlink(target)
                else:
                    os.replace(kept, target)
            except OSError as undo_error:
                logger.error("%s: could not put the previous file back after a failed write of the files that "
                             "belong with it (%s); it holds the new version", target, undo_error)
        raise
    for _target, kept in done:
        if kept is not None:
            with contextlib.suppress(OSError):
                os.unlink(kept)


def _keep_previous(target: Path) -> Path | None:
    """A second name (a temporary file beside it) for ``target``'s current file; None if there is none.

    A hard link where the file system has them (nothing is copied), else a copy.
    """
    if not target.is_file():
        return None
    directory, stem = target.parent, _temporary_stem(target.name)
    for _ in range(100):
        kept = directory / f".{stem}.{_HOST_TAG}-{os.getpid()}-{secrets.token_hex(6)}{TEMPORARY_SUFFIX}"
        try:
            os.link(target, kept)
        except FileExistsError:
            continue
        except OSError:  # no hard links here (some network and FAT file systems): copy it
            kept, _ = _create_temporary(directory, stem)
            try:
                shutil.copy2(target, kept)
                _fsync(kept)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(kept)
                raise
        return kept
    raise FileExistsError(errno.EEXIST, f"{directory}: could not create a temporary file")  # pragma: no cover


def _stage(given: Path, write: Callable[[str], None]) -> tuple[Path, Path, Path]:
    """Write ``given``'s new content to a temporary file beside its target (mode kept, fsynced)."""
    target = Path(os.path.realpath(given))
    directory = target.parent
    stem = _temporary_stem(target.name)
    if target.is_dir():  # found before anything is written, not at the rename after the other files
        raise IsADirectoryError(errno.EISDIR, "expected a file, got a directory")
    directory.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(directory, stem)
    try:
        mode: int | None = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        mode = None
    tmp, default_mode = _create_temporary(directory, stem)
    try:
        if mode is None:
            mode = default_mode
        os.chmod(tmp, mode)  # before the data goes in: a 0600 file's contents are never readable by others
        write(str(tmp))
        os.chmod(tmp, mode)  # again: some writers (safetensors) replace the file with one of their own
        _fsync(tmp)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return given, target, tmp


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` with :func:`atomic_write`; see there for what is raised."""

    def write(tmp: str) -> None:
        with open(tmp, "wb") as handle:
            handle.write(data)

    return atomic_write(path, write)


def _null_for_non_finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _null_for_non_finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_null_for_non_finite(item) for item in value]
    return value


def write_json(path: str | os.PathLike[str], document: Any) -> Path:
    """Write ``document`` as strict, indented JSON with :func:`atomic_write`.

    NaN and infinities (never valid JSON) are written as ``null``.

    Raises:
        TypeError: a value JSON cannot hold.
        OSError: see :func:`atomic_write`.
    """
    text = json.dumps(_null_for_non_finite(document), indent=2, allow_nan=False) + "\n"
    return atomic_write_bytes(path, text.encode("utf-8"))


def check_writable(path: str | os.PathLike[str], *, directory: bool = False) -> Path:
    """Check, before long work, that a file (``directory=False``) or folder can be written at ``path``.

    The folder must exist or be creatable, and be writable: a probe file is created
    and deleted in it (or in its nearest existing parent). Nothing else is created.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: ``path`` is an existing folder where a file is expected, or an
            existing file where a folder is expected.
        OSError: the folder cannot be created (a file is in the way) or is not
            writable (permissions, a read-only file system).
    """
    given = Path(path)
    target = Path(os.path.realpath(given))
    if not directory and target.is_dir():
        raise ValueError(f"{given}: expected a file to write, got an existing directory.")
    if directory and target.exists() and not target.is_dir():
        raise ValueError(f"{given}: expected a directory to write into, got an existing file.")
    folder = target if directory else target.parent
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, f"{given}: cannot create the folder {folder}: {existing} is a file.")
    try:
        probe, _ = _create_temporary(existing, _temporary_stem(target.name or "probe"))
        os.unlink(probe)
    except OSError as error:
        code, detail = error.errno, error.strerror or str(error)
        message = f"{given}: cannot write in {existing} ({detail})."
        raise (OSError(code, message) if code else OSError(message)) from None
    return given


# ---------------------------------------------------------------------------- JSON
def _depth_exceeds(document: Any, limit: int) -> bool:
    """Whether lists/objects nest deeper than ``limit`` (iterative: no recursion to exhaust)."""
    stack = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list)):
            if depth > limit:
                return True
            stack.extend((item, depth + 1) for item in (value.values() if isinstance(value, dict) else value))
    return False


def _too_deep(source: str) -> str:
    return f"{source} is not usable JSON: lists or objects nested deeper than {MAX_JSON_DEPTH} levels."


def parse_json(text: str | bytes, *, source: str) -> Any:
    """Parse a JSON document read from ``source`` (a file, or a file's metadata entry).

    Raises:
        ValueError: starting with ``source``: longer than :data:`MAX_JSON_BYTES`, not UTF-8, not valid JSON, numbers too
            long to convert, or lists/objects nested deeper than :data:`MAX_JSON_DEPTH`
            (which would exhaust Python's recursion limit, while parsing or later).
    """
    if len(text) > MAX_JSON_BYTES:
        raise ValueError(f"{source}: expected a JSON document of at most {MAX_JSON_BYTES:,} bytes, got {len(text):,}; "
                         "no file discinvert writes holds that much.")
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as error:
            raise ValueError(f"{source} is not valid JSON: expected UTF-8 text, got undecodable bytes ({error}).") from None
    try:
        document = json.loads(text)
    except RecursionError:
        raise ValueError(_too_deep(source)) from None
    except ValueError as error:  # JSONDecodeError, and over-long integers
        raise ValueError(f"{source} is not valid JSON ({error}).") from None
    if _depth_exceeds(document, MAX_JSON_DEPTH):
        raise ValueError(_too_deep(source))
    return document


# ---------------------------------------------------------------------------- the inverter file
