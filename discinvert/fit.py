"""Deprecated alias of :mod:`discinvert.fitting.fit` (moved there with the fitting package, issue 33); removed later.

``from discinvert.fit import X`` keeps working with a ``DeprecationWarning``; import ``fit_inverter`` from ``discinvert`` instead.
"""

import warnings

from discinvert.fitting.fit import *  # noqa: F401,F403 - the alias re-exports the module's public names
from discinvert.fitting.fit import __all__  # noqa: F401

warnings.warn(
    "discinvert.fit moved to discinvert.fitting.fit; import it from there (the old name will be removed).",
    DeprecationWarning,
    stacklevel=2,
)
