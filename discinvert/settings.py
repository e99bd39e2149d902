"""Deprecated alias of :mod:`discinvert.fitting.fit_config` (moved there with the fitting package); removed later.

``from discinvert.settings import FitConfig`` keeps working with a ``DeprecationWarning``; import
``FitConfig`` from ``discinvert`` (or ``discinvert.fitting.fit_config``) instead.
"""

import warnings

from discinvert.fitting.fit_config import *  # noqa: F401,F403 - the alias re-exports the module's public names
from discinvert.fitting.fit_config import __all__  # noqa: F401

warnings.warn(
    "discinvert.settings moved to discinvert.fitting.fit_config; import FitConfig from discinvert (the old name will "
    "be removed).",
    DeprecationWarning,
    stacklevel=2,
)
