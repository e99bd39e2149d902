"""Opt-in levers that make generating training pairs ``(z, D_f(G(z)))`` cheaper.

Generating pairs is most of a fit's cost (see ``docs/speed.md``). Two levers act on
it, chosen once per fit:

* **autocast**: G and D, and the CN's training forward pass, run under ``torch.autocast``
  in bfloat16 or float16 (CUDA, and CPUs with bf16 matrix units). Features then carry
  about 1% relative error; the validation set is still generated and scored in full
  precision, so the reported error is the one :meth:`Inverter.encode` sees.
* **channels_last**: G and D run as *copies* whose 4-D weights are stored channels-last,
  the layout oneDNN and cuDNN convolutions prefer. The user's models are never
  converted; the copies cost one extra set of their weights in memory.

``docs/speed.md`` says what each lever pays on the reference DCGAN.
"""

from __future__ import annotations

import contextlib
import copy
import warnings

import torch
from torch import nn

from discinvert.conditioning import Conditioning
from discinvert.features import FeatureTap
from discinvert.gan import generate

__all__ = ["AUTO", "AUTOCAST_DTYPES", "autocast_context", "channels_last_copy", "check_autocast_dtype", "native_bf16",
           "probe_levers", "resolve_channels_last"]

AUTO = "auto"
"""The setting value that lets the fit choose a lever by the device (and drop it if G or D fail under it)."""

AUTOCAST_DTYPES = (torch.bfloat16, torch.float16)
"""The dtypes accepted for ``autocast_dtype``."""


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` runs bfloat16 matrix products natively (CUDA with bf16, CPUs with bf16 instructions)."""
    try:
        if device.type == "cuda":  # is_bf16_supported() also says yes where bf16 is emulated
            return torch.cuda.get_device_capability(device)[0] >= 8
        if device.type == "cpu":
            # bf16 instructions (AVX512-BF16 or AMX); oneDNN's own query also says yes where it only
            # emulates bf16, which can be slower than float32
            queries = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
            if all(query is None for query in queries):
                return False
            return any(bool(query()) for query in queries if query is not None)
    except (RuntimeError, AttributeError):  # a build without the query
        return False
    return False


def resolve_channels_last(setting: object, device: torch.device) -> bool:
    """``channels_last`` as a bool: ``'auto'`` is on for the CPU only (the only device it was measured on)."""
    return device.type == "cpu" if setting == AUTO else bool(setting)


def check_autocast_dtype(dtype: object, device: torch.device) -> torch.dtype | None:
    """``dtype`` if it is ``None`` or a supported autocast dtype on ``device``, else ``ValueError``.

    ``'auto'`` gives ``torch.bfloat16`` where :func:`native_bf16` and autocast support it, else ``None``.
    """
    if dtype is None:
        return None
    if dtype == AUTO:
        if not native_bf16(device):
            return None
        try:
            return check_autocast_dtype(torch.bfloat16, device)
        except ValueError:
            return None
    if not isinstance(dtype, torch.dtype) or dtype not in AUTOCAST_DTYPES:
        raise ValueError(
            f"autocast_dtype: expected None (full precision), torch.bfloat16 or torch.float16, got {dtype!r}."
        )
    try:
        with warnings.catch_warnings():
            # For combinations it does not support, torch warns and silently runs in full
            # precision; ask whether autocast is really on instead.
            warnings.simplefilter("ignore", UserWarning)
            with torch.autocast(device_type=device.type, dtype=dtype):
                enabled = _autocast_enabled(device)
    except RuntimeError as error:
        raise ValueError(f"autocast_dtype: {dtype} autocast is not available on {device}: {error}") from None
    if not enabled:
        raise ValueError(f"autocast_dtype: {dtype} autocast is not available on {device} with torch {torch.__version__}.")
    return dtype


def _autocast_enabled(device: torch.device) -> bool:
    try:
        return bool(torch.is_autocast_enabled(device.type))
    except TypeError:  # torch < 2.4: no device argument
        if device.type == "cpu":
            return bool(torch.is_autocast_cpu_enabled())
        return bool(torch.is_autocast_enabled())


def autocast_context(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager[None]:
    """``torch.autocast`` on ``device`` in ``dtype``, or a null context for ``None``."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def channels_last_copy(module: nn.Module, name: str) -> nn.Module:
    """A deep copy of ``module`` with its 4-D parameters and buffers stored channels-last.

    The copy keeps the original's ``training`` flags and ``requires_grad`` (call it inside
    :func:`discinvert.guard.frozen` to get a frozen copy) and its values bit for bit.

    Raises:
        ValueError: the module cannot be deep-copied (it holds an uncopyable object).
    """
    try:
        duplicate = copy.deepcopy(module)
    except Exception as error:  # the user's module: anything may refuse to be copied
        raise ValueError(
            f"channels_last: could not copy the {name} ({type(error).__name__}: {error}); "
            "fit with channels_last=False."
        ) from error
    # 4-D tensors only: ``.to(memory_format=...)`` also takes 5-D ones and fails on them (rosinality's modulated
    # convolutions keep a (1, out, in, k, k) weight).
    return duplicate._apply(lambda t: t.to(memory_format=torch.channels_last) if t.dim() == 4 else t)


def probe_levers(
    generator: nn.Module,
    tap: FeatureTap,
    latents: torch.Tensor,
    conditions: torch.Tensor | None,
    conditioning: Conditioning | None,
    device: torch.device,
    autocast_dtype: torch.dtype | None,
    channels_last: bool,
    feature_dim: int,
) -> None:
    """Run G and D once as the training pairs will be made, so that a lever they do not support fails now.

    Call it under :func:`discinvert.guard.frozen`, with the (copied) G and D the fit will use.

    Raises:
        ValueError: G or D fails under the levers, or gives another number of features.
    """
    levers = ", ".join(([f"autocast_dtype={autocast_dtype}"] if autocast_dtype is not None else [])
                       + (["channels_last=True"] if channels_last else []))
    try:
        with torch.no_grad(), autocast_context(device, autocast_dtype):
            features = tap(generate(generator, latents, conditions, conditioning), conditions)
    except Exception as error:  # the user's G and D under a layout or precision they may not support
        raise ValueError(
            f"{levers}: G and D failed on a probe batch with this setting ({type(error).__name__}: {error}); "
            "fit without it."
        ) from error
    if features.shape[1] != feature_dim:
        raise ValueError(f"{levers}: expected {feature_dim} features per image as in full precision, got {features.shape[1]}.")
