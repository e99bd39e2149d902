"""Checks of user-given numbers, options and arrays, with messages naming what was expected and what came."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import torch

__all__ = ["holds_data", "is_integer", "native_numpy", "nonnegative_float", "numpy_tensor", "optional_bool",
           "optional_callable", "positive_float", "positive_int"]

_C = TypeVar("_C", bound=Callable[..., Any])

_TORCH_NUMPY_DTYPES = tuple(np.dtype(name) for name in (
    "float16", "float32", "float64", "complex64", "complex128", "int8", "int16", "int32", "int64",
    "uint8", "uint16", "uint32", "uint64", "bool"))
"""The NumPy dtypes ``torch.from_numpy`` takes (not ``longdouble``, ``object``, strings, ...)."""


def positive_int(value: object, name: str, minimum: int = 1) -> int:
    """``value`` as an int if it is an integer (``int``, ``numpy.int64``, any
    ``numbers.Integral``; not a bool) ``>= minimum``, else ``ValueError``."""
    if not is_integer(value) or value < minimum:  # type: ignore[operator]
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value!r}.")
    return int(value)  # type: ignore[call-overload]


def is_integer(value: object) -> bool:
    """``True`` for ints and other ``numbers.Integral`` (NumPy integers), ``False`` for bools."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def positive_float(value: object, name: str) -> float:
    """``value`` as a float if it is a finite number ``> 0``, else ``ValueError``."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name}: expected a positive finite float, got {value!r}.")
    return float(value)


def nonnegative_float(value: object, name: str) -> float:
    """``value`` as a float if it is a finite number ``>= 0``, else ``ValueError``."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name}: expected a finite float >= 0, got {value!r}.")
    return float(value)


def native_numpy(array: np.ndarray) -> np.ndarray:
    """``array`` in native byte order, C-contiguous and writable (a copy only when needed),
    so ``torch.from_numpy`` takes it without an error or a warning."""
    native = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("="))
    return native if native.flags.writeable else native.copy()


def numpy_tensor(array: np.ndarray, name: str) -> torch.Tensor:
    """``array`` as a tensor (through :func:`native_numpy`), or ``ValueError`` for a dtype torch
    has no type for (``numpy.longdouble``, ``object``, strings, datetimes)."""
    if array.dtype.newbyteorder("=") not in _TORCH_NUMPY_DTYPES:
        raise ValueError(
            f"{name}: expected a NumPy array of a dtype torch can take (float16, float32, float64, an integer or "
            f"bool dtype), got dtype {array.dtype}; convert it first, e.g. {name}.astype(np.float64)."
        )
    return torch.from_numpy(native_numpy(array))


def holds_data(tensor: torch.Tensor, name: str) -> torch.Tensor:
    """``tensor`` unless it lives on the ``meta`` device (shapes only, no values), else ``ValueError``."""
    if tensor.is_meta:
        raise ValueError(
            f"{name}: expected a tensor holding data (on the CPU or a GPU), got one on the meta device, which holds "
            "shapes only; create or load it on a real device first."
        )
    return tensor


def optional_bool(value: object, name: str) -> bool | None:
    """``value`` if it is ``None``, ``True`` or ``False`` (not ``1`` or ``"yes"``), else ``ValueError``."""
    if value is not None and not isinstance(value, bool):
        raise ValueError(f"{name}: expected None, True or False, got {value!r}.")
    return value


def optional_callable(value: _C | None, name: str, expected: str) -> _C | None:
    """``value`` if it is ``None`` or callable, else ``ValueError`` naming ``expected`` (a call signature)."""
    if value is not None and not callable(value):
        raise ValueError(f"{name}: expected a callable {expected} or None, got {value!r}.")
    return value
