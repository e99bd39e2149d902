"""discinvert: an inverse mapping (image → latent) for any pretrained GAN, from its own discriminator.

>>> from discinvert import fit_inverter, Inverter
>>> inv = fit_inverter(G, D, "main.9", latent_shape=(100, 1, 1))  # doctest: +SKIP
>>> z = inv.encode(images)  # doctest: +SKIP

The public names are re-exported lazily (PEP 562): ``import discinvert`` does not import
torch, so the ``discinvert`` command can answer Ctrl-C during its first second with one
line instead of a traceback from inside torch's import. ``from discinvert import X`` and
``discinvert.X`` work as with eager imports.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

from discinvert._version import __version__

if TYPE_CHECKING:  # what the lazy names are, for type checkers and IDEs
    from discinvert.conditioning import Conditioning
    from discinvert.directions import (DirectionRangeWarning, DirectionSet, find_directions, learn_directions,
                                       learn_directions_from_codes)
    from discinvert.fitting.fit_config import FitConfig
    from discinvert.inverter_config import InverterConfig
    from discinvert.features import LayerNotReachedError
    from discinvert.fitting.fit import UselessInverterWarning, fit_inverter
    from discinvert.hub import HubPushError
    from discinvert.inverter import FingerprintMismatchError, ImageRangeWarning, Inverter
    from discinvert.layers import LayerInfo, list_layers, suggest_feature_layers
    from discinvert.mapped import GaussianPrior, MappedGenerator
    from discinvert.network import CNConfig, ConnectionNetwork
    from discinvert.serialization import UnverifiedWeightsWarning
    from discinvert.fitting.self_generated_stage import ValidationPoint

logging.getLogger(__name__).addHandler(logging.NullHandler())

_EXPORTS = {
    "CNConfig": "discinvert.network",
    "Conditioning": "discinvert.conditioning",
    "ConnectionNetwork": "discinvert.network",
    "DirectionRangeWarning": "discinvert.directions",
    "DirectionSet": "discinvert.directions",
    "FingerprintMismatchError": "discinvert.inverter",
    "FitConfig": "discinvert.fitting.fit_config",
    "GaussianPrior": "discinvert.mapped",
    "HubPushError": "discinvert.hub",
    "ImageRangeWarning": "discinvert.inverter",
    "Inverter": "discinvert.inverter",
    "InverterConfig": "discinvert.inverter_config",
    "LayerInfo": "discinvert.layers",
    "LayerNotReachedError": "discinvert.features",
    "MappedGenerator": "discinvert.mapped",
    "UnverifiedWeightsWarning": "discinvert.serialization",
    "UselessInverterWarning": "discinvert.fitting.fit",
    "ValidationPoint": "discinvert.fitting.self_generated_stage",
    "find_directions": "discinvert.directions",
    "fit_inverter": "discinvert.fitting.fit",
    "learn_directions": "discinvert.directions",
    "learn_directions_from_codes": "discinvert.directions",
    "list_layers": "discinvert.layers",
    "suggest_feature_layers": "discinvert.layers",
}

__all__ = [
    "CNConfig",
    "Conditioning",
    "ConnectionNetwork",
    "DirectionRangeWarning",
    "DirectionSet",
    "FingerprintMismatchError",
    "FitConfig",
    "GaussianPrior",
    "HubPushError",
    "ImageRangeWarning",
    "Inverter",
    "InverterConfig",
    "LayerInfo",
    "LayerNotReachedError",
    "MappedGenerator",
    "UnverifiedWeightsWarning",
    "UselessInverterWarning",
    "ValidationPoint",
    "__version__",
    "find_directions",
    "fit_inverter",
    "learn_directions",
    "learn_directions_from_codes",
    "list_layers",
    "suggest_feature_layers",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    try:  # discinvert.metrics, discinvert.zoo, ... as attributes, as eager imports allowed
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as error:
        if error.name != f"{__name__}.{name}":
            raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
