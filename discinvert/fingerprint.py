"""Fingerprints that tie an inverter to the GAN it was fit for.

A fingerprint is a SHA-256 over the names, dtypes, shapes and bytes of a model's
``state_dict`` entries (parameters and persistent buffers, BatchNorm statistics
included). For D only the entries of the modules that run before the feature layer
count, so a change to D's head after the feature layer does not invalidate an
inverter, while any change that alters the features does. D's fingerprint also covers
the feature layer's name and the ordered list of those modules (format version 2), so a
config edited to name another layer of the same width is refused as well.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence

import torch
from torch import nn

__all__ = ["fingerprint_discriminator", "fingerprint_generator"]


def _owner(key: str) -> str:
    return key.rpartition(".")[0]


def _digest(items: Iterable[tuple[str, torch.Tensor]], header: str = "") -> str:
    hasher = hashlib.sha256()
    if header:
        hasher.update(header.encode())
    for name, tensor in items:
        data = tensor.detach().to("cpu").contiguous().reshape(-1)
        hasher.update(f"{name}|{data.dtype}|{tuple(tensor.shape)}|".encode())
        if data.numel():
            hasher.update(data.view(torch.uint8).numpy().tobytes())
    return "sha256:" + hasher.hexdigest()


def fingerprint_generator(generator: nn.Module) -> str:
    """Fingerprint of all of G's parameters and persistent buffers."""
    return _digest(sorted(generator.state_dict(keep_vars=True).items()))


def fingerprint_discriminator(
    discriminator: nn.Module, modules: Sequence[str], feature_layer: str | Sequence[str] | None = None
) -> str:
    """Fingerprint of the parameters and persistent buffers that ``modules`` hold directly.

    Args:
        discriminator: D.
        modules: names of D's submodules that run up to the feature layer, in the order
            they run (recorded when the inverter was fit).
        feature_layer: the feature layer's dotted name (a sequence of names for several
            layers). Given (format version 2), the digest also covers the name(s) and the
            ordered module list; ``None`` gives the
            version-1 digest of the weights alone (kept to check older files).

    Raises:
        ValueError: a name is not a submodule of ``discriminator`` (D's structure
            differs from the one the inverter was fit for).
    """
    wanted = set(modules)
    known = {name for name, _ in discriminator.named_modules(remove_duplicate=False)}
    missing = sorted(wanted - known)
    if missing:
        raise ValueError(
            "discriminator: expected the layers the inverter was fit with, but D has no "
            f"submodule(s) {', '.join(repr(m) for m in missing[:5])}; this is not the "
            "discriminator the inverter was fit for."
        )
    state = discriminator.state_dict(keep_vars=True)
    header = "" if feature_layer is None else json.dumps({"feature_layer": feature_layer if isinstance(feature_layer, str) else list(feature_layer), "modules": list(modules)}) + "|"
    return _digest(sorted((k, v) for k, v in state.items() if _owner(k) in wanted), header)
