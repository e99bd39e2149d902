"""The single-file inverter format: one ``.safetensors`` file, config in its metadata.

Weights are stored with safetensors only (loading never runs code). The metadata
holds ``format`` (``"discinvert.inverter"``), ``format_version``, ``library_version``
and ``config`` (the JSON of :class:`~discinvert.config.InverterConfig`).

Weights are stored in float32 (the default), float16 or bfloat16, or quantised:
``dtype=torch.int8`` stores every weight matrix (a floating tensor of two or more
dimensions) as int8 with one float32 scale per output row, the tensor
``<name>.int8_scale`` of shape ``(rows,)`` (symmetric, ``weight ≈ int8 * scale``), and
the other floating tensors (biases, BatchNorm) in float32: a quarter of the float32 file
for an MLP. Every file loads back as float32. Int8 files need format version 4.

The file is written atomically (:func:`discinvert.files.atomic_write`) and its config
read with :func:`discinvert.files.parse_json`.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import safetensors
import safetensors.torch
import torch

from discinvert._version import __version__
from discinvert.config import InverterConfig
from discinvert.files import atomic_write, parse_json
from discinvert.iterative import StepNetwork
from discinvert.network import ConnectionNetwork

__all__ = ["FORMAT_NAME", "INT8_SCALE_SUFFIX", "check_state_dict", "read_inverter_file", "write_inverter_file"]

logger = logging.getLogger(__name__)

FORMAT_NAME = "discinvert.inverter"

_STORED_FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
_STORAGE_DTYPES = (*_STORED_FLOAT_DTYPES, torch.int8)
INT8_SCALE_SUFFIX = ".int8_scale"
"""Name suffix of the per-row scales of a weight matrix stored as int8."""
_INT8_FIRST_VERSION = 4


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
    round-trips bit-exactly.

    Raises:
        ValueError: ``dtype`` is none of those, or the weights are not finite in it.
    """
    if dtype not in _STORAGE_DTYPES:
        raise ValueError(f"dtype: expected one of {_STORAGE_DTYPES}, got {dtype}.")
    if dtype == torch.int8:
        tensors = _quantise_int8({name: t.detach().to("cpu").contiguous().clone() for name, t in state.items()})
    else:
        tensors = {
            name: tensor.detach().to("cpu", dtype=dtype if tensor.is_floating_point() else tensor.dtype).contiguous().clone()
            for name, tensor in state.items()
        }
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
    }
    return atomic_write(path, lambda tmp: safetensors.torch.save_file(tensors, tmp, metadata=metadata))


def check_state_dict(state: dict[str, torch.Tensor], config: InverterConfig, *, source: str) -> None:
    """Check tensor names, shapes and dtypes against the CN and step networks ``config`` describes.

    Raises:
        ValueError: missing or unexpected tensors, or a shape or dtype that disagrees.
    """
    with torch.device("meta"):
        reference = {f"cn.{k}": v for k, v in ConnectionNetwork(config.cn).state_dict().items()}
        if config.step is not None:
            one = StepNetwork(config.step).state_dict()
            for index in range(config.iterations):
                reference.update({f"steps.{index}.{k}": v for k, v in one.items()})
    missing = sorted(set(reference) - set(state))
    unexpected = sorted(set(state) - set(reference))
    if missing or unexpected:
        what = "connection network" if config.iterations == 0 else f"connection network and {config.iterations} step network(s)"
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
        ValueError: a directory (the message points to ``Inverter.from_pretrained``),
            a truncated or corrupt file, a file that is not a discinvert inverter, a
            config that is not valid JSON, a newer format version, or weights that
            disagree with the config. The message names the file.
    """
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
    state = _dequantise_int8(state, version, source)
    check_state_dict(state, config, source=source)
    _check_finite(state, source)
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    return state, config
