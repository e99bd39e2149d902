"""Fitting an inverter: everything :func:`discinvert.fit_inverter` runs, and nothing a loaded inverter needs.

The front door is :mod:`~discinvert.fitting.fit` (``fit_inverter``); :mod:`~discinvert.fitting.fit_config`
holds :class:`FitConfig`, the one definition of every fit setting. The stages, in the order a fit runs
them: :mod:`~discinvert.fitting.self_generated_stage` (the paper's regression on self-generated pairs
from :mod:`~discinvert.fitting.pairs`), :mod:`~discinvert.fitting.real_image_stage` (with ``images=``) and
:mod:`~discinvert.fitting.step_network_stage` (with ``iterations=``). The core modules
(``discinvert/*.py``) never import from this package.
"""

from discinvert.fitting.fit import UselessInverterWarning, fit_inverter
from discinvert.fitting.fit_config import FitConfig

__all__ = ["FitConfig", "UselessInverterWarning", "fit_inverter"]
