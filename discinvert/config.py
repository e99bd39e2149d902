"""Deprecated alias of :mod:`discinvert.inverter_config` (moved there with the fitting package, issue 33); removed later.

``from discinvert.config import X`` keeps working with a ``DeprecationWarning``; import ``InverterConfig`` from ``discinvert`` instead.
"""

import warnings

from discinvert.inverter_config import *  # noqa: F401,F403 - the alias re-exports the module's public names
from discinvert.inverter_config import __all__  # noqa: F401

warnings.warn(
    "discinvert.config moved to discinvert.inverter_config; import it from there (the old name will be removed).",
    DeprecationWarning,
    stacklevel=2,
)
