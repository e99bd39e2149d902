"""Fitting an inverter: everything :func:`discinvert.fit_inverter` runs, and nothing a loaded inverter needs.

The front door is :mod:`~discinvert.fitting.fit` (``fit_inverter``); :mod:`~discinvert.fitting.fit_config`
holds :class:`FitConfig`, the one definition of every fit setting. The stages, in the order a fit runs
them: :mod:`~discinvert.fitting.self_generated_stage` (the paper's regression on self-generated pairs
from :mod:`~discinvert.fitting.pairs`), :mod:`~discinvert.fitting.real_image_stage` (with ``images=``) and
:mod:`~discinvert.fitting.step_network_stage` (with ``iterations=``). Each keeps only its loss, its batches
and its validation: :mod:`~discinvert.fitting.loop` runs the updates and validations of all three, with the
optimiser and loss terms of :mod:`~discinvert.fitting.optimisation`; :mod:`~discinvert.fitting.run` holds
what one fit carries through its stages (:class:`~discinvert.fitting.run.FitRun`) and the seed of each random
stream. The core modules (``discinvert/*.py``) never import from this package.
"""

from discinvert.fitting.fit import UselessInverterWarning, fit_inverter
from discinvert.fitting.fit_config import FitConfig

__all__ = ["FitConfig", "UselessInverterWarning", "fit_inverter"]
