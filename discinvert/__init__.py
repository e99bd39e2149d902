"""discinvert: an inverse mapping (image → latent) for any pretrained GAN, from its own discriminator.

>>> from discinvert import fit_inverter, Inverter
>>> inv = fit_inverter(G, D, "main.9", latent_shape=(100, 1, 1))  # doctest: +SKIP
>>> z = inv.encode(images)  # doctest: +SKIP
"""

import logging

from discinvert._version import __version__
from discinvert.conditioning import Conditioning
from discinvert.config import InverterConfig
from discinvert.features import LayerNotReachedError
from discinvert.fit import fit_inverter
from discinvert.inverter import FingerprintMismatchError, Inverter
from discinvert.layers import LayerInfo, list_layers
from discinvert.network import CNConfig, ConnectionNetwork

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "CNConfig",
    "Conditioning",
    "ConnectionNetwork",
    "FingerprintMismatchError",
    "Inverter",
    "InverterConfig",
    "LayerInfo",
    "LayerNotReachedError",
    "__version__",
    "fit_inverter",
    "list_layers",
]
