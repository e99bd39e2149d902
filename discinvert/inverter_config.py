"""An inverter's configuration: what it was fit for, stored beside its weights.

The same JSON object goes into a ``.safetensors`` file's metadata (:meth:`Inverter.save`)
and, later, into a Hub repo's ``config.json``. It carries a format version; configs
of older versions are upgraded by :func:`migrate`, newer ones are refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from discinvert.behaviour import Behaviour
from discinvert.mapped import check_space_record, space_latent_shape
from discinvert.step_networks import MAX_ITERATIONS, StepConfig, residual_shape
from discinvert.network import MAX_FEATURES, MAX_LATENT_VALUES, CNConfig
from discinvert.pixel_encoder import PixelEncoderConfig

__all__ = ["FEATURE_SOURCES", "FORMAT_VERSION", "GENERATOR_ONLY_FORMAT_VERSION", "LATENT_SPACE_FORMAT_VERSION",
           "MAX_IMAGE_VALUES", "MAX_SHAPE_DIMENSIONS", "NEWEST_FORMAT_VERSION", "InverterConfig", "migrate"]

MAX_NAME_LENGTH = 1000
"""Longest layer name in a stored config (a dotted path in ``named_modules()``)."""
MAX_FEATURE_LAYERS = 64
"""Most feature layers a stored config may list."""
MAX_SHAPE_DIMENSIONS = 16
"""Most dimensions of ``latent_shape`` or ``image_shape`` in a stored config."""
MAX_IMAGE_VALUES = 2**28
"""Most values of one image in a stored config (268,435,456: an RGB image of 8192 x 8192 has 201,326,592)."""

FORMAT_VERSION = 5
"""Version of the on-disk format this library writes for an inverter of a plain G.

Files of an inverter fit for a :class:`~discinvert.mapped.MappedGenerator` are written in
:data:`LATENT_SPACE_FORMAT_VERSION` (6); a plain G's file is unchanged by version 6, so it is
still written as version 5, which older discinvert reads.

Version 5 (2026-12): the file's metadata carries a digest of its tensor bytes
(``tensor_digest``, see :mod:`discinvert.serialization`), and the config adds ``probe``, the
behavioural fingerprint of G and D (:mod:`discinvert.behaviour`: summaries of G's images and
D's features on fixed probe inputs, checked with a tolerance on load). A version-4 config
migrates with ``probe: null`` (the loader then records the probe from the GAN it was loaded
with, once the tensor fingerprints have matched), and a version-4 file (no digest) loads
with a warning.

Version 4 (2026-12) lets a file store its weight matrices as int8 with one float32 scale
per output row (``save(dtype=torch.int8)``; the scales are the tensors ``<name>.int8_scale``,
see :mod:`discinvert.serialization`); the config is unchanged, so a version-3 config
migrates as it is. Version 3 (2026-12) added ``iterations`` and ``step``, the step networks of iterative
refinement (:mod:`discinvert.step_networks`), whose weights are stored as ``steps.<t>.*``.
Version 2 added ``image_range`` and made the discriminator fingerprint cover the feature
layer's name and the module path up to it. Version 1 to 4 files still load (see
:func:`migrate`); version 1 and 2 files have no step networks."""

LATENT_SPACE_FORMAT_VERSION = 6
"""Version of the format of an inverter fit for a :class:`~discinvert.mapped.MappedGenerator` from D's features.

Version 6 (2026-12) adds ``latent_space`` to the config, the record of the generator's latent space (Z, W or
W+ of a mapping network, :meth:`~discinvert.mapped.MappedGenerator.space_record`), and the tensors
``prior_mean`` and ``prior_scale_tril`` of that space's Gaussian prior beside the weights; ``latent_prior``
is then ``"mapped"`` (codes drawn by the space's own sampler) or ``"custom"``. Only such inverters are
written as version 6; a version-5 config reads as one with ``latent_space: null`` (a plain G, no prior
tensors)."""

GENERATOR_ONLY_FORMAT_VERSION = 7
"""Version of the format of an inverter fit for G alone (no discriminator), the newest this library reads.

Version 7 (2026-12) adds ``feature_source`` to the config (``"discriminator"``: the CN reads D's features at
``feature_layer``; ``"pixels"``: it reads the features of its own pixel network, :mod:`discinvert.pixel_encoder`)
and ``pixel_encoder``, that network's config (``null`` for D's route); a generator-only inverter has
``feature_layer``, ``discriminator_fingerprint`` ``null`` and ``discriminator_modules`` empty, and stores the pixel
network's weights as ``pixels.*`` beside the CN's. Only such inverters are written as version 7; a D-route
inverter's file is unchanged (version 5, or 6 with a ``latent_space``), and a version-5 or -6 config reads as
one with ``feature_source: "discriminator"``."""

NEWEST_FORMAT_VERSION = GENERATOR_ONLY_FORMAT_VERSION
"""The newest format version this library reads; newer files are refused with a request to upgrade."""

FEATURE_SOURCES = ("discriminator", "pixels")
"""What an inverter's CN reads: D's features at a layer, or its own pixel network's."""

_FINGERPRINT_PREFIX = "sha256:"


def migrate(data: dict[str, Any], *, source: str) -> dict[str, Any]:
    """Bring a stored config to the newest version, :data:`NEWEST_FORMAT_VERSION` (a plain G's with ``latent_space:
    null``, a D-route inverter's with ``feature_source: "discriminator"`` and ``pixel_encoder: null``).

    Raises:
        ValueError: the version is missing, malformed, or newer than this library reads.
    """
    version = data.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValueError(f"{source}: expected an integer 'format_version' >= 1, got {version!r}.")
    if version > NEWEST_FORMAT_VERSION:
        raise ValueError(
            f"{source}: written in discinvert format version {version}, but this discinvert "
            f"reads versions up to {NEWEST_FORMAT_VERSION}. Upgrade discinvert "
            "(pip install -U discinvert) to load it."
        )
    if version == 1:
        # No recorded image range. The fingerprint stays the version-1 kind: from_dict
        # records that (fingerprint_scheme=1), the loader checks it the version-1 way and
        # then re-computes it the version-2 way.
        data = {**data, "format_version": 2, "image_range": None}
    if data["format_version"] == 2:
        stray = sorted({"iterations", "step"} & set(data))
        if stray:
            raise ValueError(f"{source}: format version 2 has no {stray}; got them in the config (the file was altered).")
        data = {**data, "format_version": 3, "iterations": 0, "step": None}  # no step networks
    if data["format_version"] == 3:
        data = {**data, "format_version": 4}  # version 4 adds int8 weight storage, nothing to the config
    if data["format_version"] == 4:
        if "probe" in data:
            raise ValueError(f"{source}: format version 4 has no 'probe'; got one in the config (the file was altered).")
        # version 5 adds the tensor digest to the metadata and the behavioural fingerprint (none recorded here)
        data = {**data, "format_version": 5, "probe": None}
    if data["format_version"] == 5:
        if "latent_space" in data:
            raise ValueError(f"{source}: format version 5 has no 'latent_space'; got one in the config (the file was "
                             "altered).")
        data = {**data, "format_version": 6, "latent_space": None}  # a plain G's inverter
    elif version == 6 and data.get("latent_space") is None:
        raise ValueError(f"{source}: format version 6 is written for a generator's latent space, expected a "
                         f"'latent_space' record, got {data.get('latent_space', 'none')!r}; the file was altered.")
    if data["format_version"] == 6:
        stray = sorted({"feature_source", "pixel_encoder"} & set(data))
        if stray:
            raise ValueError(f"{source}: format version {version} has no {stray}; got them in the config (the file "
                             "was altered).")
        data = {**data, "format_version": 7, "feature_source": "discriminator", "pixel_encoder": None}
    elif data.get("feature_source") != "pixels":
        raise ValueError(f"{source}: format version 7 is written for a generator-only inverter, expected "
                         f"'feature_source' 'pixels', got {data.get('feature_source', 'none')!r}; the file was altered.")
    return data


def _shape(value: Any, key: str, source: str, most: int) -> tuple[int, ...]:
    """A stored shape: 1 to :data:`MAX_SHAPE_DIMENSIONS` positive ints whose product is at most ``most``."""
    if isinstance(value, list) and len(value) > MAX_SHAPE_DIMENSIONS:
        raise ValueError(f"{source}: expected '{key}' to have at most {MAX_SHAPE_DIMENSIONS} dimensions, "
                         f"got {len(value)}.")
    if (
        not isinstance(value, list)
        or not value
        or any(not isinstance(d, int) or isinstance(d, bool) or d < 1 for d in value)
    ):
        raise ValueError(f"{source}: expected '{key}' to be a non-empty list of positive ints, got {value!r}.")
    if math.prod(value) > most:
        raise ValueError(f"{source}: expected '{key}' to hold at most {most} values, got {value!r}.")
    return tuple(value)


def _str(value: Any, key: str, source: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{source}: expected '{key}' to be a string, got {value!r}.")
    return value


def _feature_layer(value: Any, source: str) -> str | tuple[str, ...]:
    """One layer name, or a list of at least two distinct names (several depths of D), each at most
    :data:`MAX_NAME_LENGTH` characters and at most :data:`MAX_FEATURE_LAYERS` of them."""
    names = [value] if isinstance(value, str) else value
    if isinstance(names, list) and (len(names) > MAX_FEATURE_LAYERS
                                    or any(isinstance(v, str) and len(v) > MAX_NAME_LENGTH for v in names)):
        raise ValueError(f"{source}: expected 'feature_layer' to name at most {MAX_FEATURE_LAYERS} layers of at most "
                         f"{MAX_NAME_LENGTH} characters each, got {len(names)} name(s) of up to "
                         f"{max(len(v) if isinstance(v, str) else 0 for v in names)} characters.")
    if isinstance(value, str):
        return value
    if (not isinstance(value, list) or len(value) < 2 or any(not isinstance(v, str) for v in value)
            or len(set(value)) != len(value)):
        raise ValueError(f"{source}: expected 'feature_layer' to be a string or a list of at least two distinct "
                         f"strings, got {value!r:.200}.")
    return tuple(value)


def _fingerprint(value: Any, key: str, source: str) -> str:
    text = _str(value, key, source)
    digest = text[len(_FINGERPRINT_PREFIX):]
    if not text.startswith(_FINGERPRINT_PREFIX) or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ValueError(f"{source}: expected '{key}' to be 'sha256:' and 64 hex digits, got {value!r}.")
    return text


def _check_source(feature_source: Any, pixel_encoder: PixelEncoderConfig | None, feature_layer: Any,
                  discriminator_fingerprint: Any, modules: tuple[str, ...], image_shape: tuple[int, ...],
                  feature_dim: int, source: str) -> None:
    """What the CN reads agrees with the rest: a pixel network (of the config's image shape, giving
    ``feature_dim`` features) and no D entries exactly when ``feature_source`` is ``"pixels"``."""
    if feature_source not in FEATURE_SOURCES:
        raise ValueError(f"{source}: expected 'feature_source' one of {list(FEATURE_SOURCES)}, got {feature_source!r:.200}.")
    if feature_source == "discriminator":
        if pixel_encoder is not None:
            raise ValueError(f"{source}: an inverter reading D's features has no pixel network; expected "
                             "'pixel_encoder' null, got one.")
        if feature_layer is None or discriminator_fingerprint is None:
            raise ValueError(f"{source}: an inverter reading D's features records D's feature layer and "
                             f"fingerprint; got feature_layer={feature_layer!r}, "
                             f"discriminator_fingerprint={discriminator_fingerprint!r}.")
        return
    if pixel_encoder is None:
        raise ValueError(f"{source}: expected the 'pixel_encoder' config of an inverter fit for G alone, got null.")
    if feature_layer is not None or discriminator_fingerprint is not None or modules:
        raise ValueError(f"{source}: an inverter fit for G alone has no discriminator; expected 'feature_layer' and "
                         "'discriminator_fingerprint' null and 'discriminator_modules' empty, got "
                         f"{feature_layer!r:.100}, {discriminator_fingerprint!r:.100} and {list(modules)!r:.100}.")
    if pixel_encoder.image_shape != image_shape or pixel_encoder.out_features != feature_dim:
        raise ValueError(f"{source}: the pixel network reads images of shape {list(pixel_encoder.image_shape)} and "
                         f"gives {pixel_encoder.out_features} features, but the config says image_shape="
                         f"{list(image_shape)} and feature_dim={feature_dim}.")


def _stored_source(data: dict[str, Any], modules: tuple[str, ...], image_shape: tuple[int, ...], feature_dim: int,
                   source: str) -> PixelEncoderConfig | None:
    """A stored config's pixel network (``None`` for D's route), checked against its other entries."""
    pixels = data["feature_source"] == "pixels"
    try:
        encoder = None if data["pixel_encoder"] is None else PixelEncoderConfig.from_dict(data["pixel_encoder"])
    except ValueError as error:
        raise ValueError(f"{source}: {error}") from None
    # D's route: its layer and fingerprint are checked by their own readers, so "" stands in for them here
    _check_source(data["feature_source"], encoder, data["feature_layer"] if pixels else "",
                  data["discriminator_fingerprint"] if pixels else "", modules, image_shape, feature_dim, source)
    return encoder


def _range(value: Any, source: str) -> tuple[float, float] | None:
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or len(value) != 2
        or any(not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) for v in value)
        or value[0] > value[1]
    ):
        raise ValueError(f"{source}: expected 'image_range' to be null or [min, max] with finite min <= max, got {value!r}.")
    return float(value[0]), float(value[1])


def _check_space(latent_space: dict[str, Any] | None, latent_shape: tuple[int, ...], latent_prior: str,
                 source: str) -> None:
    """A recorded latent space is valid and fits ``latent_shape``; ``latent_prior`` is ``"mapped"`` or
    ``"custom"`` with one, ``"normal"`` or ``"custom"`` without."""
    if latent_space is not None:
        check_space_record(latent_space, f"{source}: latent_space")
        expected = space_latent_shape(latent_space)
        if latent_shape != expected:
            raise ValueError(f"{source}: expected latent_shape {list(expected)} for latent space "
                             f"{latent_space['space']!r}, got {list(latent_shape)}.")
    allowed = ("normal", "custom") if latent_space is None else ("mapped", "custom")
    if latent_prior not in allowed:
        raise ValueError(f"{source}: expected latent_prior {' or '.join(map(repr, allowed))} "
                         f"{'without' if latent_space is None else 'with'} a latent_space, got {latent_prior!r}.")


def _latent_space(value: Any, latent_shape: tuple[int, ...], latent_prior: str, source: str) -> dict[str, Any] | None:
    """A stored ``latent_space``: null or a space record that fits ``latent_shape`` and ``latent_prior``."""
    if value is not None and not isinstance(value, dict):
        raise ValueError(f"{source}: expected 'latent_space' to be null or an object, got {value!r:.200}.")
    _check_space(value, latent_shape, latent_prior, source)
    return None if value is None else check_space_record(value, source)


@dataclass(frozen=True)
class InverterConfig:
    """Everything an inverter needs besides its weights.

    Attributes:
        feature_layer: dotted name of D's layer whose output the CN reads, or a tuple of
            names whose outputs it reads concatenated (several depths of D); ``None`` for an
            inverter fit for G alone (``feature_source="pixels"``).
        latent_shape: shape of one latent code, e.g. ``(100, 1, 1)``.
        image_shape: shape of one image as G produces it, e.g. ``(1, 28, 28)``.
        feature_dim: flattened size of the feature layer's output (of the pixel network's, for G alone).
        cn: the connection network's architecture.
        generator_fingerprint: SHA-256 of G's weights and buffers.
        discriminator_fingerprint: SHA-256 of D's weights and buffers up to the feature layer; ``None``
            for G alone.
        discriminator_modules: D's submodules that run up to the feature layer (empty for G alone).
        conditional: fit with a :class:`~discinvert.Conditioning` (encode needs conditions).
        latent_prior: ``"normal"`` for N(0, I), ``"custom"`` for a user's sampler, ``"mapped"`` for the
            sampler of G's latent space (a :class:`~discinvert.mapped.MappedGenerator`'s ``sample``).
        fit: how it was fit (steps, batch size, lr, seed, best validation MSE, seconds);
            informative only.
        image_range: ``(min, max)`` of G's images seen at fit time (the held-out
            validation samples), used to warn about inputs outside G's range and as
            the metric's default value range; ``None`` when unknown.
        iterations: number of step networks (iterative refinement), ``0`` for the CN alone.
        step: the step networks' architecture, ``None`` exactly when ``iterations`` is 0.
        probe: the behavioural fingerprint (G's images and D's features on fixed probe
            inputs, :mod:`discinvert.behaviour`); ``None`` for a file written before format
            version 5 (the loader then records it from the GAN it was loaded with).
        latent_space: the :meth:`~discinvert.mapped.MappedGenerator.space_record` of the
            :class:`~discinvert.mapped.MappedGenerator` it was fit for (``space``, ``z_dim``,
            ``w_dim``, ``num_ws``, ``truncation_psi``, ``mixing``, ``convention``), ``None`` for a
            plain G.
        feature_source: what the CN reads (:data:`FEATURE_SOURCES`): ``"discriminator"``, D's features at
            ``feature_layer``; ``"pixels"``, the features of the inverter's own pixel network, fit with G alone
            (format version :data:`GENERATOR_ONLY_FORMAT_VERSION`).
        pixel_encoder: the pixel network's architecture (:class:`~discinvert.pixel_encoder.PixelEncoderConfig`)
            exactly when ``feature_source`` is ``"pixels"``.
        fingerprint_scheme: ``2`` when ``discriminator_fingerprint`` covers the feature
            layer's name and module path (written since format version 2), ``1`` for a
            version-1 file (weights only); not stored, files are always written as 2.
    """

    feature_layer: str | tuple[str, ...] | None
    latent_shape: tuple[int, ...]
    image_shape: tuple[int, ...]
    feature_dim: int
    cn: CNConfig
    generator_fingerprint: str
    discriminator_fingerprint: str | None
    discriminator_modules: tuple[str, ...]
    conditional: bool = False
    latent_prior: str = "normal"
    fit: dict[str, Any] = field(default_factory=dict)
    image_range: tuple[float, float] | None = None
    iterations: int = 0
    step: StepConfig | None = None
    probe: Behaviour | None = None
    latent_space: dict[str, Any] | None = None
    feature_source: str = "discriminator"
    pixel_encoder: PixelEncoderConfig | None = None
    fingerprint_scheme: int = 2

    def __post_init__(self) -> None:
        _check_source(self.feature_source, self.pixel_encoder, self.feature_layer, self.discriminator_fingerprint,
                      tuple(self.discriminator_modules), tuple(self.image_shape), self.feature_dim, "InverterConfig")
        if (self.step is None) != (self.iterations == 0):
            raise ValueError(f"InverterConfig: expected a step config exactly when iterations > 0, got iterations="
                             f"{self.iterations} and step={self.step!r}.")
        _check_space(self.latent_space, tuple(self.latent_shape), self.latent_prior, "InverterConfig")
        if self.iterations and self.fingerprint_scheme < 2:
            raise ValueError("InverterConfig: a version-1 fingerprint scheme has no step networks; got iterations="
                             f"{self.iterations}.")

    @property
    def latent_dim(self) -> int:
        """Number of values in one latent code."""
        return math.prod(self.latent_shape)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, with ``format_version`` (:data:`FORMAT_VERSION`, :data:`LATENT_SPACE_FORMAT_VERSION`
        with a ``latent_space``, :data:`GENERATOR_ONLY_FORMAT_VERSION` for G alone) and ``library_version``."""
        if self.fingerprint_scheme < 2:
            # A version-1 config loaded with on_mismatch="warn" and a mismatch: its D
            # fingerprint is still the version-1 kind, so it is written as version 1.
            legacy = {k: v for k, v in self._dict(FORMAT_VERSION).items()
                      if k not in ("image_range", "iterations", "step", "probe", "latent_space")}
            return {**legacy, "format_version": 1}
        if self.feature_source == "pixels":  # G alone: version 7, the only kind written so
            return {**self._dict(GENERATOR_ONLY_FORMAT_VERSION), "feature_source": self.feature_source,
                    "pixel_encoder": None if self.pixel_encoder is None else self.pixel_encoder.to_dict()}
        if self.latent_space is None:  # a plain G's inverter: exactly the version-5 config
            return {k: v for k, v in self._dict(FORMAT_VERSION).items() if k != "latent_space"}
        return self._dict(LATENT_SPACE_FORMAT_VERSION)

    def _dict(self, version: int) -> dict[str, Any]:
        from discinvert._version import __version__

        return {
            "format_version": version,
            "library_version": __version__,
            "feature_layer": (self.feature_layer if self.feature_layer is None or isinstance(self.feature_layer, str)
                              else list(self.feature_layer)),
            "latent_shape": list(self.latent_shape),
            "image_shape": list(self.image_shape),
            "feature_dim": self.feature_dim,
            "cn": self.cn.to_dict(),
            "generator_fingerprint": self.generator_fingerprint,
            "discriminator_fingerprint": self.discriminator_fingerprint,
            "discriminator_modules": list(self.discriminator_modules),
            "conditional": self.conditional,
            "latent_prior": self.latent_prior,
            "fit": dict(self.fit),
            "image_range": None if self.image_range is None else list(self.image_range),
            "iterations": self.iterations,
            "step": None if self.step is None else self.step.to_dict(),
            "probe": None if self.probe is None else self.probe.to_dict(),
            "latent_space": None if self.latent_space is None else dict(self.latent_space),
        }

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "config") -> "InverterConfig":
        """Validate and build a config; ``source`` names the file in error messages.

        Every size is bounded here, before anything is built from the config (the loader
        builds the networks on the meta device to check the weights' shapes), so a small
        hostile file cannot make loading slow or memory-hungry. The bounds, generous for
        real GANs: at most :data:`~discinvert.step_networks.MAX_ITERATIONS` (64) step networks;
        at most :data:`~discinvert.network.MAX_HIDDEN_LAYERS` (64) hidden layers, each at
        most :data:`~discinvert.network.MAX_WIDTH` (65,536) wide, in the CN and the step
        networks; ``feature_dim`` at most :data:`~discinvert.network.MAX_FEATURES` (2**27);
        ``latent_shape`` at most :data:`~discinvert.network.MAX_LATENT_VALUES` (2**24)
        values, ``image_shape`` at most :data:`MAX_IMAGE_VALUES` (2**28), each at most
        :data:`MAX_SHAPE_DIMENSIONS` (16) dimensions. Sizes must be JSON integers:
        ``1e30`` (a float) is refused like ``"1024"``.

        Raises:
            ValueError: not an object, unknown or missing keys, wrong types or ranges,
                a size beyond its bound, a newer format version, or a CN whose sizes
                disagree with the config. The message starts with ``source``.
        """
        if not isinstance(data, dict):
            raise ValueError(f"{source}: expected a JSON object, got {type(data).__name__}.")
        scheme = 1 if data.get("format_version") == 1 else 2  # read before migrate() upgrades it
        data = dict(migrate(data, source=source))
        required = {"format_version", "library_version", "feature_layer", "latent_shape", "image_shape",
            "feature_dim", "cn", "generator_fingerprint", "discriminator_fingerprint",
            "discriminator_modules", "conditional", "latent_prior", "fit", "image_range", "iterations", "step",
            "probe", "latent_space", "feature_source", "pixel_encoder"}
        missing = sorted(required - set(data))
        unknown = sorted(set(data) - required)
        if missing or unknown:
            raise ValueError(f"{source}: missing keys {missing}, unknown keys {unknown}.")
        _str(data["library_version"], "library_version", source)
        iterations = data["iterations"]
        if not isinstance(iterations, int) or isinstance(iterations, bool) or not 0 <= iterations <= MAX_ITERATIONS:
            raise ValueError(f"{source}: expected 'iterations' to be an int >= 0 and at most {MAX_ITERATIONS}, "
                             f"got {iterations!r}.")
        feature_dim = data["feature_dim"]
        if not isinstance(feature_dim, int) or isinstance(feature_dim, bool) or feature_dim < 1:
            raise ValueError(f"{source}: expected 'feature_dim' to be a positive int, got {feature_dim!r}.")
        if feature_dim > MAX_FEATURES:
            raise ValueError(f"{source}: expected 'feature_dim' to be at most {MAX_FEATURES}, got {feature_dim}.")
        latent_shape = _shape(data["latent_shape"], "latent_shape", source, MAX_LATENT_VALUES)
        image_shape = _shape(data["image_shape"], "image_shape", source, MAX_IMAGE_VALUES)
        modules = data["discriminator_modules"]
        if not isinstance(modules, list) or any(not isinstance(m, str) for m in modules):
            raise ValueError(f"{source}: expected 'discriminator_modules' to be a list of strings, got {modules!r}.")
        if not isinstance(data["conditional"], bool):
            raise ValueError(f"{source}: expected 'conditional' to be a bool, got {data['conditional']!r}.")
        if data["latent_prior"] not in ("normal", "custom", "mapped"):
            raise ValueError(f"{source}: expected 'latent_prior' 'normal', 'custom' or 'mapped', got {data['latent_prior']!r}.")
        latent_space = _latent_space(data["latent_space"], latent_shape, data["latent_prior"], source)
        if not isinstance(data["fit"], dict):
            raise ValueError(f"{source}: expected 'fit' to be an object, got {data['fit']!r}.")
        try:
            cn = CNConfig.from_dict(data["cn"])
            step = None if data["step"] is None else StepConfig.from_dict(data["step"])
        except ValueError as error:
            raise ValueError(f"{source}: {error}") from None
        if (step is None) != (iterations == 0):
            raise ValueError(f"{source}: expected a 'step' config exactly when 'iterations' > 0, got iterations="
                             f"{iterations} and step={data['step']!r}.")
        probe = None if data["probe"] is None else Behaviour.from_dict(
            data["probe"], source=source, image_size=math.prod(image_shape), feature_dim=feature_dim)
        encoder = _stored_source(data, tuple(modules), image_shape, feature_dim, source)
        pixels = encoder is not None
        config = cls(
            feature_layer=None if pixels else _feature_layer(data["feature_layer"], source),
            latent_shape=latent_shape, image_shape=image_shape, feature_dim=feature_dim, cn=cn,
            generator_fingerprint=_fingerprint(data["generator_fingerprint"], "generator_fingerprint", source),
            discriminator_fingerprint=None if pixels else _fingerprint(
                data["discriminator_fingerprint"], "discriminator_fingerprint", source
            ),
            discriminator_modules=tuple(modules),
            conditional=data["conditional"], latent_prior=data["latent_prior"], fit=dict(data["fit"]),
            image_range=_range(data["image_range"], source),
            iterations=iterations, step=step, probe=probe, latent_space=latent_space,
            feature_source=data["feature_source"], pixel_encoder=encoder, fingerprint_scheme=scheme,
        )
        if cn.in_features != feature_dim or cn.out_features != config.latent_dim:
            raise ValueError(
                f"{source}: the CN maps {cn.in_features} → {cn.out_features} values, but the "
                f"config says feature_dim={feature_dim} and latent_shape={list(config.latent_shape)}."
            )
        if step is not None and (step.feature_dim, step.latent_dim, step.residual_shape) != (
                feature_dim, config.latent_dim, residual_shape(config.image_shape)):
            raise ValueError(
                f"{source}: the step networks read {step.feature_dim} features, a residual of shape "
                f"{list(step.residual_shape)} and {step.latent_dim} latent values, but the config says "
                f"feature_dim={feature_dim}, image_shape={list(config.image_shape)} and "
                f"latent_shape={list(config.latent_shape)}."
            )
        return config
