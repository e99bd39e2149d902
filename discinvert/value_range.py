"""G's value range: the nominal range of its images, and the check of inputs against it.

The fit records the min/max of G's held-out images (``InverterConfig.image_range``);
:func:`nominal_range` maps that onto the convention G follows (``[0, 1]``, ``[-1, 1]``,
``[0, 255]``), and :func:`range_problem` says when images lie too far outside it to be
G's kind of image (the usual mistake: uint8 pixels handed to a tanh generator).
"""

from __future__ import annotations

__all__ = ["OVERSHOOT", "RANGE_MARGIN", "nominal_range", "range_problem"]

RANGE_MARGIN = 0.25
"""Inputs may exceed G's nominal range by this fraction of its span on either side before
they are taken as out of range: ``[-1.5, 1.5]`` passes for a tanh generator,
``[-0.25, 1.25]`` for a [0, 1] one."""

_NOMINAL_RANGES = ((0.0, 1.0), (-1.0, 1.0), (0.0, 255.0))


OVERSHOOT = 0.75
"""How far, as a fraction of its span on either side, an unclamped generator's images may overshoot a nominal
range and still be read as following it (StyleGAN2's and lucidrains' generators are not clamped)."""


def nominal_range(recorded: tuple[float, float] | None) -> tuple[float, float]:
    """G's nominal value range from the range its images spanned.

    ``(0, 1)`` or ``(0, 255)`` when ``recorded`` lies inside it (1% slack) and covers at
    least half of it; else ``(-1, 1)``, the usual tanh convention, when it lies inside
    that. A barely trained G whose images span a sliver of values is thus taken as a tanh
    generator, not as a [0, 1] one. Else an unclamped G overshooting a convention: of the
    conventions whose span ``recorded`` covers at least half of and exceeds by at most
    :data:`OVERSHOOT` of the span on either side, the one whose centre is nearest (relative
    to its span) to the recorded range's centre, e.g. ``(-2.1, 1.9)`` → ``(-1, 1)``,
    ``(-0.3, 1.3)`` → ``(0, 1)``. Else ``recorded`` itself (widened by 0.5 either side
    when it is a single value). ``(-1, 1)`` when nothing was recorded.
    """
    if recorded is None:
        return (-1.0, 1.0)
    low, high = recorded
    for nominal_low, nominal_high in _NOMINAL_RANGES:
        span = nominal_high - nominal_low
        inside = low >= nominal_low - 0.01 * span and high <= nominal_high + 0.01 * span
        if inside and (nominal_low == -1.0 or high - low >= 0.5 * span):
            return (nominal_low, nominal_high)
    overshooting = [nominal for nominal in _NOMINAL_RANGES if _overshoots(recorded, nominal)]
    if overshooting:
        centre = (low + high) / 2
        return min(overshooting, key=lambda n: abs(centre - (n[0] + n[1]) / 2) / (n[1] - n[0]))
    return (low, high) if high > low else (low - 0.5, high + 0.5)


def _overshoots(recorded: tuple[float, float], nominal: tuple[float, float]) -> bool:
    """Whether ``recorded`` covers at least half of ``nominal`` and exceeds it by at most :data:`OVERSHOOT` of
    its span on either side."""
    (low, high), (nominal_low, nominal_high) = recorded, nominal
    span = nominal_high - nominal_low
    covered = min(high, nominal_high) - max(low, nominal_low)
    return (covered >= 0.5 * span and nominal_low - low <= OVERSHOOT * span
            and high - nominal_high <= OVERSHOOT * span)


def range_problem(found: tuple[float, float], recorded: tuple[float, float], *, name: str = "images") -> str | None:
    """``None`` when values spanning ``found`` fit G's range, else the message saying why not.

    Args:
        found: ``(min, max)`` of the inputs.
        recorded: ``(min, max)`` of G's images at fit time.
        name: what the inputs are called in the message.
    """
    low, high = nominal_range(recorded)
    # G's own images pass: an unclamped G's overshoot (recorded beyond the nominal range) widens the span.
    accepted_low, accepted_high = min(low, recorded[0]), max(high, recorded[1])
    margin = RANGE_MARGIN * (accepted_high - accepted_low)
    found_low, found_high = found
    if found_low >= accepted_low - margin and found_high <= accepted_high + margin:
        return None
    hint = " (uint8 x → x / 127.5 - 1 for [-1, 1], x / 255 for [0, 1])" if found_high > 2.0 else ""
    return (
        f"{name}: expected values in the generator's range [{low:.4g}, {high:.4g}] (its images spanned "
        f"[{recorded[0]:.4g}, {recorded[1]:.4g}]; up to {RANGE_MARGIN:.0%} of the range outside "
        f"is accepted), got values in [{found_low:.4g}, {found_high:.4g}]. Scale the images into G's range "
        f"first{hint}."
    )
