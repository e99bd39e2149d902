"""Deprecated alias of :mod:`discinvert.zoo.datasets` (moved there in discinvert 0.1 with the bundled zoo); removed later.

``from discinvert.datasets import X`` keeps working with a ``DeprecationWarning``; import from
``discinvert.zoo.datasets`` instead.
"""

import warnings

from discinvert.zoo.datasets import *  # noqa: F401,F403 - the alias re-exports the module's public names
from discinvert.zoo.datasets import __all__  # noqa: F401

warnings.warn(
    "discinvert.datasets moved to discinvert.zoo.datasets; import it from there (the old name will be removed).",
    DeprecationWarning,
    stacklevel=2,
)
