"""Deprecated alias of :mod:`discinvert.zoo.architectures` (moved there in discinvert 0.1 with the bundled zoo); removed later.

``from discinvert.architectures import X`` keeps working with a ``DeprecationWarning``; import from
``discinvert.zoo.architectures`` instead.
"""

import warnings

from discinvert.zoo.architectures import *  # noqa: F401,F403 - the alias re-exports the module's public names
from discinvert.zoo.architectures import __all__  # noqa: F401

warnings.warn(
    "discinvert.architectures moved to discinvert.zoo.architectures; import it from there (the old name will be removed).",
    DeprecationWarning,
    stacklevel=2,
)
