"""Resumable fits: the CN, the optimiser and every RNG, written atomically, never pickled.

A checkpoint is one ``.safetensors`` file: tensors (weights, Adam moments, RNG states,
the batch pool) as tensors, everything else (step, best error, history, and the fit's
identity: sizes, seed, learning rate, fingerprints) as JSON in the metadata. Resuming
checks that identity, so a checkpoint is never continued with other settings or
another GAN.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import safetensors
import safetensors.torch
import torch

from discinvert.serialization import atomic_write, parse_json

__all__ = ["CHECKPOINT_FORMAT", "read_checkpoint", "write_checkpoint"]

CHECKPOINT_FORMAT = "discinvert.checkpoint"
_VERSION = 1


def write_checkpoint(path: str | os.PathLike[str], tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """Write ``tensors`` and JSON-able ``meta`` to ``path`` atomically (temp file, fsync, rename)."""
    cpu = {name: t.detach().to("cpu").contiguous().clone() for name, t in tensors.items()}
    metadata = {"format": CHECKPOINT_FORMAT, "format_version": str(_VERSION), "state": json.dumps(meta)}
    return atomic_write(path, lambda tmp: safetensors.torch.save_file(cpu, tmp, metadata=metadata))


def read_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint written by :func:`write_checkpoint`.

    Raises:
        ValueError: a damaged file, not a discinvert checkpoint, or a newer version.
    """
    source = str(path)
    try:
        with safetensors.safe_open(source, framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    except (safetensors.SafetensorError, OSError, RuntimeError) as error:
        raise ValueError(f"{source}: not a readable checkpoint ({error}).") from None
    if metadata.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{source}: not a discinvert checkpoint (format {metadata.get('format')!r}).")
    if int(metadata.get("format_version", "0")) > _VERSION:
        raise ValueError(f"{source}: written by a newer discinvert; upgrade to resume it.")
    if "state" not in metadata:
        raise ValueError(f"{source}: the checkpoint's state is missing from its metadata.")
    meta = parse_json(metadata["state"], source=f"{source} (state)")
    if not isinstance(meta, dict):
        raise ValueError(f"{source}: expected the checkpoint's state to be a JSON object, got {type(meta).__name__}.")
    return tensors, meta
