"""Checks of user-given numbers, with messages naming what was expected and what came."""

from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = ["is_integer", "native_numpy", "nonnegative_float", "positive_float", "positive_int"]


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
