"""The single-file inverter format: one ``.safetensors`` file, config in its metadata.

Weights are stored with safetensors only (loading never runs code). The metadata
holds ``format`` (``"discinvert.inverter"``), ``format_version``, ``library_version``,
``config`` (the JSON of :class:`~discinvert.inverter_config.InverterConfig`) and, since format
version 5, ``tensor_digest``: ``"sha256:"`` and 64 hex digits over the stored tensors
exactly as they are in the file (after an int8 or float16 cast), see :func:`tensor_digest`.

On reading, a digest that does not match the tensors is refused (a flipped byte, two
tensors swapped); a file of version 5 or later without one is refused (its digest was
stripped); a file of version 4 or earlier, written before digests existed, loads with an
:class:`UnverifiedWeightsWarning`. The digest detects damage and careless edits, not a
deliberate forgery: whoever changes the tensors can also write a new digest (the
fingerprints of G and D, checked on load, are what tie an inverter to its GAN).

Weights are stored in float32 (the default), float16 or bfloat16, or quantised:
``dtype=torch.int8`` stores every weight matrix (a floating tensor of two or more
dimensions) as int8 with one float32 scale per output row, the tensor
``<name>.int8_scale`` of shape ``(rows,)`` (symmetric, ``weight ≈ int8 * scale``), and
the other floating tensors (biases, BatchNorm) in float32: a quarter of the float32 file
for an MLP. Every file loads back as float32. Int8 files need format version 4.

An inverter fit for a :class:`~discinvert.mapped.MappedGenerator` (format version 6, a
``latent_space`` in its config) also stores its space's Gaussian prior, the tensors
``prior_mean`` ``(d,)`` and ``prior_scale_tril`` ``(d, d)`` (:data:`PRIOR_TENSORS`), always in
float32 whatever ``dtype`` the weights take; a plain G's inverter has neither. An inverter fit for G alone
(format version 7) also stores its pixel network's weights, ``pixels.*`` (:mod:`discinvert.pixel_encoder`),
stored like the CN's.

The file is written atomically (:func:`discinvert.files.atomic_write`) and its config
read with :func:`discinvert.files.parse_json`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import safetensors
import safetensors.torch
import torch

from discinvert._version import __version__
from discinvert.inverter_config import InverterConfig
from discinvert.files import atomic_write, parse_json
from discinvert.mapped import prior_dim
from discinvert.step_networks import StepNetwork
from discinvert.network import ConnectionNetwork
from discinvert.pixel_encoder import PixelEncoder

__all__ = [
    "DIGEST_KEY", "FORMAT_NAME", "INT8_SCALE_SUFFIX", "PRIOR_TENSORS", "UnverifiedWeightsWarning", "check_state_dict",
    "inverter_file_writer", "read_inverter_file", "tensor_digest", "write_inverter_file",
]

logger = logging.getLogger(__name__)

FORMAT_NAME = "discinvert.inverter"

_STORED_FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
_STORAGE_DTYPES = (*_STORED_FLOAT_DTYPES, torch.int8)
INT8_SCALE_SUFFIX = ".int8_scale"
"""Name suffix of the per-row scales of a weight matrix stored as int8."""
_INT8_FIRST_VERSION = 4
_DIGEST_FIRST_VERSION = 5
DIGEST_KEY = "tensor_digest"
"""Metadata key of the digest of the stored tensors (format version 5 and later)."""
_DIGEST_PREFIX = "sha256:"
PRIOR_TENSORS = ("prior_mean", "prior_scale_tril")
"""Names of the Gaussian prior's tensors in the file of an inverter with a ``latent_space`` (always float32)."""


class UnverifiedWeightsWarning(UserWarning):
    """An inverter file written before tensor digests existed (format version 4 or earlier) was loaded.

    Its weights cannot be checked for damage. Saving the inverter again writes a digest;
    ``warnings.filterwarnings("ignore", category=UnverifiedWeightsWarning)`` silences it.
    """


def tensor_digest(tensors: dict[str, torch.Tensor]) -> str:
    """``"sha256:"`` and 64 hex digits over ``tensors`` as stored: names, dtypes, shapes and bytes.

    The tensors are taken in the order of their names; each contributes its name, its
    dtype, its shape and its raw bytes (native byte order, which is little-endian on every
    platform torch supports, as in safetensors files), each part preceded by its length, so
    no two different sets of tensors hash the same bytes.
    """
    digest = hashlib.sha256()

    def part(data: bytes) -> None:
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)

    for name in sorted(tensors):
        tensor = tensors[name].detach().to("cpu").contiguous()
        part(name.encode("utf-8"))
        part(str(tensor.dtype).removeprefix("torch.").encode())
        part(",".join(str(size) for size in tensor.shape).encode())
        part(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return _DIGEST_PREFIX + digest.hexdigest()


def _check_digest(tensors: dict[str, torch.Tensor], metadata: dict[str, str], version: int, source: str) -> None:
    """Compare the file's ``tensor_digest`` with its tensors as read (before any conversion).

    Raises:
        ValueError: a digest that is malformed or does not match, or none in a file of
            format version 5 or later.

    Warns:
        UnverifiedWeightsWarning: no digest in a file of format version 4 or earlier.
    """
    stored = metadata.get(DIGEST_KEY)
    if stored is None:
        if version >= _DIGEST_FIRST_VERSION:
            raise ValueError(
                f"{source}: format version {version} files carry a {DIGEST_KEY!r} of their weights in the metadata, "
                "got none; the digest was stripped, so the weights cannot be trusted. Save the inverter again "
                "from its source."
            )
        warnings.warn(
            f"{source}: format version {version} file without a digest of its weights, so damage to them cannot "
            "be detected; save it again (Inverter.save or save_pretrained) to add one.",
            UnverifiedWeightsWarning, stacklevel=_caller_outside_package(),
        )
        return
    digest = stored[len(_DIGEST_PREFIX):]
    if not stored.startswith(_DIGEST_PREFIX) or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ValueError(f"{source}: expected the metadata's {DIGEST_KEY!r} to be 'sha256:' and 64 hex digits, "
                         f"got {stored[:80]!r}; the file is damaged or altered.")
    if tensor_digest(tensors) != stored:
        raise ValueError(
            f"{source}: the weights do not match the digest stored with them ({DIGEST_KEY}); the file is damaged "
            "or altered (a changed byte, tensors swapped or replaced). Download or copy it again."
        )


def _caller_outside_package() -> int:
    """The ``warnings`` stacklevel of the first frame outside discinvert (the user's ``load`` call)."""
    package = os.path.dirname(os.path.abspath(__file__)) + os.sep
    frame, level = sys._getframe(2), 2
    while frame is not None and frame.f_code.co_filename.startswith(package):
        frame, level = frame.f_back, level + 1
    return level


def _quantise_int8(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Weight matrices to int8 with a float32 scale per output row; other floating tensors to float32."""
    stored: dict[str, torch.Tensor] = {}
    for name, tensor in tensors.items():
        if not tensor.is_floating_point():
            stored[name] = tensor
            continue
        tensor = tensor.float()
        if tensor.ndim < 2:
            stored[name] = tensor
            continue
        rows = tensor.reshape(tensor.shape[0], -1)
        peak = rows.abs().amax(dim=1)
        scale = torch.where(peak > 0, peak / 127.0, torch.ones_like(peak))
        stored[name] = torch.round(rows / scale[:, None]).clamp(-127, 127).to(torch.int8).reshape(tensor.shape)
        stored[name + INT8_SCALE_SUFFIX] = scale
    return stored


def _dequantise_int8(state: dict[str, torch.Tensor], version: int, source: str) -> dict[str, torch.Tensor]:
    """Undo :func:`_quantise_int8`: each int8 tensor with its ``.int8_scale`` back to float32.

    Raises:
        ValueError: scales in a file older than format version 4, a scale without its int8
            tensor (or of the wrong shape or dtype), or an int8 tensor without its scale.
    """
    scales = {name[: -len(INT8_SCALE_SUFFIX)]: t for name, t in state.items() if name.endswith(INT8_SCALE_SUFFIX)}
    if scales and version < _INT8_FIRST_VERSION:
        raise ValueError(f"{source}: format version {version} has no int8 weights, got scales for "
                         f"{sorted(scales)[:3]}; the file was altered.")
    out = {name: t for name, t in state.items() if not name.endswith(INT8_SCALE_SUFFIX)}
    for name, tensor in out.items():
        if tensor.dtype == torch.int8 and name not in scales:
            raise ValueError(f"{source}: tensor {name!r} is int8 but the file has no {name + INT8_SCALE_SUFFIX!r} "
                             "for it; the file is damaged or altered.")
    for name, scale in scales.items():
        tensor = out.get(name)
        if tensor is None or tensor.dtype != torch.int8 or tensor.ndim < 2:
            got = "no such tensor" if tensor is None else f"dtype {tensor.dtype} and shape {tuple(tensor.shape)}"
            raise ValueError(f"{source}: {name + INT8_SCALE_SUFFIX!r} scales an int8 weight matrix {name!r}, "
                             f"got {got}; the file is damaged or altered.")
        if scale.dtype != torch.float32 or tuple(scale.shape) != (tensor.shape[0],):
            raise ValueError(f"{source}: {name + INT8_SCALE_SUFFIX!r}: expected float32 of shape ({tensor.shape[0]},), "
                             f"got {scale.dtype} of shape {tuple(scale.shape)}; the file is damaged or altered.")
        if not bool(torch.isfinite(scale).all()):
            raise ValueError(f"{source}: {name + INT8_SCALE_SUFFIX!r} holds NaN or Inf values; the file is damaged.")
        view = (-1,) + (1,) * (tensor.ndim - 1)
        out[name] = tensor.float() * scale.reshape(view)
    return out


def inverter_file_writer(
    state: dict[str, torch.Tensor],
    config: InverterConfig,
    *,
    dtype: torch.dtype = torch.float32,
) -> Callable[[str], None]:
    """Prepare the file :func:`write_inverter_file` writes; returns ``write(path)``, which writes it.

    Everything that can be refused is checked here, before any file is touched, so a
    caller writing several files together (:func:`discinvert.hub.save_pretrained`)
    fails before it starts. The tensors are copied to the CPU now.

    Raises:
        ValueError: see :func:`write_inverter_file`.
    """
    if dtype not in _STORAGE_DTYPES:
        raise ValueError(f"dtype: expected one of {_STORAGE_DTYPES}, got {dtype}.")
    prior = {name: state[name].detach().to("cpu", torch.float32).contiguous().clone()
             for name in PRIOR_TENSORS if name in state}  # a Cholesky factor must not lose its small diagonal
    weights = {name: tensor for name, tensor in state.items() if name not in prior}
    if dtype == torch.int8:
        tensors = _quantise_int8({name: t.detach().to("cpu").contiguous().clone() for name, t in weights.items()})
    else:
        tensors = {
            name: tensor.detach().to("cpu", dtype=dtype if tensor.is_floating_point() else tensor.dtype).contiguous().clone()
            for name, tensor in weights.items()
        }
    tensors.update(prior)
    overflowed = sorted(n for n, t in tensors.items() if t.is_floating_point() and not bool(torch.isfinite(t).all()))
    if overflowed:
        raise ValueError(
            f"dtype: the weights are not finite when stored as {dtype} ({', '.join(overflowed[:3])}); "
            "save in float32 instead."
        )
    data = config.to_dict()  # FORMAT_VERSION, or 1 for a version-1 config that kept its old fingerprint
    metadata = {
        "format": FORMAT_NAME,
        "format_version": str(data["format_version"]),
        "library_version": __version__,
        "config": json.dumps(data, sort_keys=True),
        DIGEST_KEY: tensor_digest(tensors),
    }

    def write(path: str) -> None:
        safetensors.torch.save_file(tensors, path, metadata=metadata)

    return write


def write_inverter_file(
    path: str | os.PathLike[str],
    state: dict[str, torch.Tensor],
    config: InverterConfig,
    *,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """Write ``state`` (the CN's weights) and ``config`` to one ``.safetensors`` file.

    Floating tensors are stored as ``dtype`` (float32, float16 or bfloat16), or, for
    ``torch.int8``, weight matrices as int8 with a float32 scale per output row and the
    rest in float32 (see the module docstring); they load back as float32. Only float32
    round-trips bit-exactly. The metadata carries the digest of the tensors as stored
    (:func:`tensor_digest`).

    Raises:
        ValueError: ``dtype`` is none of those, or the weights are not finite in it.
        OSError: see :func:`discinvert.files.atomic_write`.
    """
    return atomic_write(path, inverter_file_writer(state, config, dtype=dtype))


def check_state_dict(state: dict[str, torch.Tensor], config: InverterConfig, *, source: str) -> None:
    """Check tensor names, shapes and dtypes against the CN and step networks ``config`` describes.

    Raises:
        ValueError: missing or unexpected tensors, or a shape or dtype that disagrees.
    """
    with torch.device("meta"):
        reference = {f"cn.{k}": v for k, v in ConnectionNetwork(config.cn).state_dict().items()}
        if config.pixel_encoder is not None:
            reference.update({f"pixels.{k}": v for k, v in PixelEncoder(config.pixel_encoder).state_dict().items()})
        if config.step is not None:
            one = StepNetwork(config.step).state_dict()
            for index in range(config.iterations):
                reference.update({f"steps.{index}.{k}": v for k, v in one.items()})
        if config.latent_space is not None:
            d = prior_dim(config.latent_space)
            reference.update({PRIOR_TENSORS[0]: torch.empty(d), PRIOR_TENSORS[1]: torch.empty(d, d)})
    missing = sorted(set(reference) - set(state))
    unexpected = sorted(set(state) - set(reference))
    if missing or unexpected:
        what = "connection network" if config.iterations == 0 else f"connection network and {config.iterations} step network(s)"
        what += "" if config.latent_space is None else " and the latent space's prior"
        what = what if config.pixel_encoder is None else f"pixel network, {what}"
        raise ValueError(
            f"{source}: the weights do not match the config's {what}: "
            f"missing tensors {missing[:5]}, unexpected tensors {unexpected[:5]}."
        )
    for name, expected in reference.items():
        got = state[name]
        # Floating weights may be stored in half precision (save(dtype=...)); they load as float32.
        dtype_ok = got.dtype in _STORED_FLOAT_DTYPES if expected.dtype.is_floating_point else got.dtype == expected.dtype
        if tuple(got.shape) != tuple(expected.shape) or not dtype_ok:
            raise ValueError(
                f"{source}: tensor {name!r}: expected shape {tuple(expected.shape)} and dtype "
                f"{expected.dtype}, got shape {tuple(got.shape)} and dtype {got.dtype}."
            )


def _check_finite(state: dict[str, torch.Tensor], source: str) -> None:
    bad = sorted(n for n, t in state.items() if t.is_floating_point() and not bool(torch.isfinite(t).all()))
    if bad:
        raise ValueError(f"{source}: tensors {', '.join(bad[:5])} hold NaN or Inf values; the file is damaged.")


def read_inverter_file(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], InverterConfig]:
    """Read and validate an inverter file written by :func:`write_inverter_file`.

    Returns:
        ``(state, config)``: CPU tensors keyed as in ``Inverter.state_dict()``, and the
        validated config.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: a path that is not a str or ``os.PathLike`` (bytes), a directory (the
            message points to ``Inverter.from_pretrained``), a truncated or corrupt file, a
            file that is not a discinvert inverter, a config that is not valid JSON or whose
            sizes exceed the bounds of :meth:`InverterConfig.from_dict`, a newer format
            version, weights that do not match their digest (damaged or altered) or a
            version-5 file without one, or weights that disagree with the config. The
            message names the file.

    Warns:
        UnverifiedWeightsWarning: a file of format version 4 or earlier, which has no
            digest of its weights to check.
    """
    if not isinstance(path, (str, os.PathLike)) or isinstance(os.fspath(path), bytes):
        raise ValueError(f"path: expected a str or os.PathLike path of an inverter file, got {type(path).__name__} "
                         f"{path!r}" + (" (decode bytes first: path.decode())." if isinstance(path, bytes) else "."))
    source = str(path)
    if os.path.isdir(path):
        raise ValueError(
            f"{source}: expected an inverter file written by Inverter.save, got a directory; a directory written "
            f"by Inverter.save_pretrained loads with Inverter.from_pretrained({source!r}, generator=G, "
            "discriminator=D)."
        )
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{source}: no such inverter file.")
    try:
        with safetensors.safe_open(source, framework="pt") as handle:
            metadata = handle.metadata() or {}
            state = {name: handle.get_tensor(name) for name in handle.keys()}
    except safetensors.SafetensorError as error:
        raise ValueError(f"{source}: not a readable safetensors file ({error}); it may be truncated or corrupt.") from None
    except (OSError, RuntimeError) as error:
        # safetensors reports some header damage as OSError/RuntimeError instead.
        raise ValueError(f"{source}: not a readable safetensors file ({error}); it may be truncated or corrupt.") from None
    if metadata.get("format") != FORMAT_NAME:
        raise ValueError(
            f"{source}: not a discinvert inverter file (expected metadata format "
            f"{FORMAT_NAME!r}, got {metadata.get('format')!r})."
        )
    try:
        version = int(metadata.get("format_version", ""))
    except ValueError:
        raise ValueError(f"{source}: expected an integer format_version, got {metadata.get('format_version')!r}.") from None
    data = parse_json(metadata.get("config", ""), source=f"{source} (the config in its metadata)")
    if isinstance(data, dict) and data.get("format_version") != version:
        raise ValueError(
            f"{source}: the header says format version {version} but the config says "
            f"{data.get('format_version')!r}; the file was altered."
        )
    config = InverterConfig.from_dict(data, source=source)
    stored = state
    state = _dequantise_int8(stored, version, source)
    check_state_dict(state, config, source=source)
    _check_finite(state, source)
    # After the checks of structure (their messages say what is missing or misshapen), before any value is used.
    _check_digest(stored, metadata, version, source)
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    return state, config
