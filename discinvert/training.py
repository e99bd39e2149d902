"""Deprecated alias of :mod:`discinvert.fitting.self_generated_stage` (moved there with the fitting package, issue 33); removed later.

``from discinvert.training import X`` keeps working with a ``DeprecationWarning``; import ``ValidationPoint`` from ``discinvert`` instead.
"""

import warnings

from discinvert.fitting.self_generated_stage import *  # noqa: F401,F403 - the alias re-exports the module's public names
from discinvert.fitting.self_generated_stage import __all__  # noqa: F401

warnings.warn(
    "discinvert.training moved to discinvert.fitting.self_generated_stage; import it from there (the old name will be removed).",
    DeprecationWarning,
    stacklevel=2,
)
