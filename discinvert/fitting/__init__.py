"""Fitting an inverter: everything :func:`discinvert.fit_inverter` runs, and nothing a loaded inverter needs.

The front door is :mod:`~discinvert.fitting.fit` (``fit_inverter``); :mod:`~discinvert.fitting.fit_config`
holds :class:`FitConfig`, the one definition of every fit setting; :mod:`~discinvert.fitting.run` the one
object a fit builds and hands to its stages, :mod:`~discinvert.fitting.loop` the one training loop they
all run. The stages, in the order a fit runs them: :mod:`~discinvert.fitting.self_generated_stage` (the
paper's regression on self-generated pairs from :mod:`~discinvert.fitting.pairs`),
:mod:`~discinvert.fitting.real_image_stage` (with ``images=``) and
:mod:`~discinvert.fitting.step_network_stage` (with ``iterations=``). No core module
(``discinvert/*.py``, other than the package's lazy re-exports and deprecated aliases) imports from here.

The names below are re-exported lazily (PEP 562), so importing one module of the package, e.g.
``discinvert.fitting.fit_config`` for the command line's flags, does not import the whole fit.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from discinvert.fitting.fit import UselessInverterWarning, fit_inverter
    from discinvert.fitting.fit_config import FitConfig

_EXPORTS = {
    "FitConfig": "discinvert.fitting.fit_config",
    "UselessInverterWarning": "discinvert.fitting.fit",
    "fit_inverter": "discinvert.fitting.fit",
}

__all__ = ["FitConfig", "UselessInverterWarning", "fit_inverter"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
