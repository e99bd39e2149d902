"""A zoo entry's bundled test images: its own ``test_images.safetensors``, or a pointer to another entry's.

An entry folder holds exactly one of:

- ``test_images.safetensors``: the tensors ``images`` (uint8 ``(N, H, W)``), ``labels`` (int64 ``(N,)``) and
  ``indices`` (int64 ``(N,)``, their places in the data set's split); its metadata may say ``"pad"``: the pixels of
  background (0) the images are padded by when read (a non-negative integer, as text; none: 0).
- ``test_images.json``: a pointer to the file of the entry beside it that holds the same images, so that the
  package ships them once (the StyleGAN2 entry shares the DCGAN entry's 1,000 Fashion-MNIST test images)::

      {"same_as": "dcgan-fashion-mnist", "pad": 2, "sha256": "<64 hex digits>"}

  exactly these three keys: ``same_as`` names the entry folder beside this one (``../<same_as>/``) whose
  ``test_images.safetensors`` is read (a file, never another pointer); ``pad`` (an integer >= 0) replaces that
  file's own ``"pad"`` record; ``sha256`` is the digest of that file's bytes, so that rebuilding the other entry's
  images cannot change this entry's without a loud error.

Reading is strict: a pointer with other keys, a bad value, a missing referenced file, a digest that differs, or
both files in one folder are a ``ValueError`` that says what was expected and what came.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import safetensors
import safetensors.torch

__all__ = ["POINTER", "STORED", "images_file", "pointer_record", "read_test_images"]

STORED = "test_images.safetensors"
"""The file name of an entry's own test images."""
POINTER = "test_images.json"
"""The file name of a pointer to another entry's test images."""

_POINTER_KEYS = ("same_as", "pad", "sha256")
_ENTRY_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")
_DIGEST = re.compile(r"[0-9a-f]{64}")


def _sha256(file: Path) -> str:
    return hashlib.sha256(file.read_bytes()).hexdigest()


def _read_pointer(pointer: Path) -> dict[str, Any]:
    """The pointer's record, every key and value checked (not yet the file it names)."""
    try:
        record = json.loads(pointer.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{pointer}: expected a JSON object {{'same_as', 'pad', 'sha256'}}, got unreadable JSON "
                         f"({error}).") from error
    if not isinstance(record, dict) or sorted(record) != sorted(_POINTER_KEYS):
        got = sorted(record) if isinstance(record, dict) else type(record).__name__
        raise ValueError(f"{pointer}: expected exactly the keys {list(_POINTER_KEYS)}, got {got}.")
    same_as, pad, digest = record["same_as"], record["pad"], record["sha256"]
    if not isinstance(same_as, str) or not _ENTRY_NAME.fullmatch(same_as) or same_as == pointer.parent.name:
        raise ValueError(f"{pointer}: expected 'same_as' to name another zoo entry beside this one (lower-case "
                         f"letters, digits, '.', '_', '-'), got {same_as!r}.")
    if isinstance(pad, bool) or not isinstance(pad, int) or pad < 0:
        raise ValueError(f"{pointer}: expected 'pad' to be an integer >= 0, got {pad!r}.")
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        raise ValueError(f"{pointer}: expected 'sha256' to be 64 lower-case hex digits, got {digest!r}.")
    return record


def _resolve(folder: Path) -> tuple[Path, int | None]:
    """The file the folder's test images are read from, and the pointer's pad (``None``: the file's own)."""
    stored, pointer = folder / STORED, folder / POINTER
    if stored.is_file() and pointer.is_file():
        raise ValueError(f"{folder}: expected one of {STORED} and {POINTER}, got both.")
    if stored.is_file():
        return stored, None
    if not pointer.is_file():
        raise FileNotFoundError(f"{folder}: expected {STORED} or {POINTER}, found neither.")
    record = _read_pointer(pointer)
    target = folder.parent / record["same_as"] / STORED
    if not target.is_file():
        other = " (a pointer again: pointers are followed once)" if (target.parent / POINTER).is_file() else ""
        raise ValueError(f"{pointer}: expected the file {target} it points to, found none{other}.")
    digest = _sha256(target)
    if digest != record["sha256"]:
        raise ValueError(f"{pointer}: expected {target} to have the sha256 {record['sha256']}, got {digest}: that "
                         f"entry's test images changed; write the pointer again "
                         f"(discinvert.zoo.test_images.pointer_record) if this entry's images should change with them, "
                         f"else store them here.")
    return target, record["pad"]


def images_file(folder: str | os.PathLike[str]) -> Path:
    """The ``test_images.safetensors`` the entry folder's test images are read from: its own, or the one its
    ``test_images.json`` points to (checked as :func:`read_test_images` checks it).

    Raises:
        ValueError: a bad pointer (see the module's docstring); both files present.
        FileNotFoundError: neither file present.
    """
    return _resolve(Path(folder))[0]


def read_test_images(folder: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """An entry folder's test images: uint8 images ``(N, H, W)`` in [0, 255] and int64 labels ``(N,)``.

    An entry whose images are padded stores them unpadded (28x28) and says by how many pixels of background: its
    file's metadata ``"pad"``, or its pointer's ``pad``; they are padded here with 0, so callers always get G's image
    size.

    Raises:
        ValueError: the file's ``"pad"`` record is not a non-negative integer; a bad pointer (see the module's
            docstring); both files present.
        FileNotFoundError: neither file present.
    """
    file, pointer_pad = _resolve(Path(folder))
    tensors = safetensors.torch.load_file(str(file))
    with safetensors.safe_open(str(file), framework="pt") as handle:
        metadata = handle.metadata() or {}
    images, labels = tensors["images"].numpy(), tensors["labels"].numpy()
    if pointer_pad is None:
        text = metadata.get("pad", "0")
        if not text.isdigit():
            raise ValueError(f"{file}: expected the metadata 'pad' to be a non-negative integer, got {text!r}.")
        pad = int(text)
    else:
        pad = pointer_pad
    if pad:
        images = np.pad(images, ((0, 0), (pad, pad), (pad, pad)))  # background 0
    return images, labels


def pointer_record(source: str | os.PathLike[str], *, pad: int) -> dict[str, Any]:
    """The ``test_images.json`` record of an entry that shares the test images of the entry folder ``source``
    (which must lie beside it): ``{"same_as": source's name, "pad": pad, "sha256": digest of its file}``.

    Raises:
        ValueError: ``source`` holds no ``test_images.safetensors`` of its own; ``pad`` not an integer >= 0.
    """
    source = Path(source)
    if not (source / STORED).is_file():
        raise ValueError(f"{source}: expected a zoo entry folder with its own {STORED} to point to, found none.")
    if isinstance(pad, bool) or not isinstance(pad, int) or pad < 0:
        raise ValueError(f"pad: expected an integer >= 0, got {pad!r}.")
    return {"same_as": source.name, "pad": pad, "sha256": _sha256(source / STORED)}
