"""Checks of user-given numbers, with messages naming what was expected and what came."""

from __future__ import annotations

import math

__all__ = ["nonnegative_float", "positive_float", "positive_int"]


def positive_int(value: object, name: str, minimum: int = 1) -> int:
    """``value`` if it is an int (not a bool) ``>= minimum``, else ``ValueError``."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value!r}.")
    return value


def positive_float(value: object, name: str) -> float:
    """``value`` as a float if it is a finite number ``> 0``, else ``ValueError``."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name}: expected a positive finite float, got {value!r}.")
    return float(value)


def nonnegative_float(value: object, name: str) -> float:
    """``value`` as a float if it is a finite number ``>= 0``, else ``ValueError``."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name}: expected a finite float >= 0, got {value!r}.")
    return float(value)
