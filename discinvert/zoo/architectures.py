"""Reference DCGAN-style generator and discriminator for 28x28 images.

The pair is sized for Fashion-MNIST (``1 x 28 x 28``, values in ``[-1, 1]``)
with latent codes ``z ~ N(0, I)`` of shape ``(latent_dim, 1, 1)``
(``latent_dim = 100`` by default).

Generator (``G.main``), widths for ``g_width = 64``::

    z (100, 1, 1)
    ConvT k7 s1 p0 -> 256 x 7 x 7,   BatchNorm, ReLU
    ConvT k4 s2 p1 -> 128 x 14 x 14, BatchNorm, ReLU
    ConvT k4 s2 p1 ->  64 x 28 x 28, BatchNorm, ReLU
    ConvT k3 s1 p1 ->   1 x 28 x 28, Tanh

Discriminator / critic (``D.main`` then ``D.head``), widths for ``d_width = 64``::

    x (1, 28, 28)
    Conv k4 s2 p1 ->  64 x 14 x 14,              LeakyReLU(0.2)
    Conv k4 s2 p1 -> 128 x 7 x 7,   [BatchNorm], LeakyReLU(0.2)
    Conv k3 s2 p1 -> 256 x 4 x 4,   [BatchNorm], LeakyReLU(0.2)   <- feature layer
    head: Conv k4 s1 p0 -> 1 x 1 x 1, flattened to a logit of shape (N,)

``D.main`` ends at the last hidden activation, whose dotted module name is
:attr:`GANConfig.feature_layer` (``"main.7"`` with BatchNorm, ``"main.5"``
without), giving ``4 * d_width * 4 * 4 = 4096`` features by default.
BatchNorm is used in the discriminator for the ``dcgan`` and ``lsgan`` losses
and never for ``wgan-gp`` (a gradient-penalty critic must not normalise across
the batch).

Checkpoints are a directory holding ``generator.safetensors``,
``discriminator.safetensors`` and ``config.json`` (see :func:`save_gan` and
:func:`load_gan`); nothing is pickled. A directory of G alone (many published GANs ship no D) has no
``discriminator.safetensors``: ``save_gan(directory, G, None, config)`` writes one, and :func:`load_gan`
gives ``None`` for its D.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from discinvert.files import atomic_write_many, parse_json

__all__ = [
    "CONFIG_FILE",
    "DISCRIMINATOR_FILE",
    "GANConfig",
    "GENERATOR_FILE",
    "DCGANDiscriminator",
    "DCGANGenerator",
    "GANLoss",
    "build_gan",
    "discriminator_layer_kinds",
    "init_dcgan_weights",
    "load_gan",
    "parameter_count",
    "save_gan",
]

logger = logging.getLogger(__name__)

GANLoss = Literal["dcgan", "lsgan", "wgan-gp"]
_LOSSES: Final[tuple[str, ...]] = ("dcgan", "lsgan", "wgan-gp")

#: Only image size the fixed stride pattern supports (28 -> 14 -> 7 -> 4 -> 1).
_IMAGE_SIZE: Final[int] = 28

GENERATOR_FILE: Final[str] = "generator.safetensors"
DISCRIMINATOR_FILE: Final[str] = "discriminator.safetensors"
CONFIG_FILE: Final[str] = "config.json"
_FORMAT: Final[str] = "discinvert.gan"
_FORMAT_VERSION: Final[int] = 1

_LEAK: Final[float] = 0.2


def discriminator_layer_kinds(*, d_batch_norm: bool) -> tuple[str, ...]:
    """Return the kinds of the modules in ``DCGANDiscriminator.main``, in order.

    Each entry is ``"conv"``, ``"bn"`` or ``"lrelu"``. This is the single source of
    truth for the layout of ``main``: :class:`DCGANDiscriminator` builds its layers
    from it and :class:`GANConfig` derives its default ``feature_layer`` from it.
    """
    kinds: list[str] = ["conv", "lrelu"]  # no normalisation on the input block (DCGAN)
    for _ in range(2):
        kinds.append("conv")
        if d_batch_norm:
            kinds.append("bn")
        kinds.append("lrelu")
    return tuple(kinds)


def _default_feature_layer(*, d_batch_norm: bool) -> str:
    return f"main.{len(discriminator_layer_kinds(d_batch_norm=d_batch_norm)) - 1}"


def _positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name}: expected a positive int, received {value!r}")


@dataclass
class GANConfig:
    """Hyper-parameters of the reference GAN.

    Attributes:
        latent_dim: Size of ``z``; the generator takes ``(N, latent_dim, 1, 1)`` or
            ``(N, latent_dim)``.
        image_channels: Channels of the ``image_size x image_size`` images.
        image_size: Must be 28 (the stride pattern is fixed).
        g_width: Base width of the generator (its last hidden layer has this many
            channels; the first has ``4 * g_width``).
        d_width: Base width of the discriminator (its first layer has this many
            channels; the feature layer has ``4 * d_width``).
        loss: ``"dcgan"`` (BCE), ``"lsgan"`` (least squares) or ``"wgan-gp"``.
        d_batch_norm: BatchNorm in the discriminator. ``None`` (default) resolves
            to ``True`` for ``dcgan``/``lsgan`` and ``False`` for ``wgan-gp``.
        feature_layer: Dotted name (relative to the discriminator) of the module
            whose output is used as the feature representation. ``None`` resolves
            to the last hidden activation of ``D.main`` (``"main.7"`` with
            BatchNorm, ``"main.5"`` without).

    Raises:
        ValueError: from ``__post_init__`` for non-positive sizes, an image size
            other than 28, an unknown loss, BatchNorm with ``wgan-gp``, or a
            ``feature_layer`` that is not ``"main.<i>"`` for a module of ``D.main``.
    """

    latent_dim: int = 100
    image_channels: int = 1
    image_size: int = _IMAGE_SIZE
    g_width: int = 64
    d_width: int = 64
    loss: GANLoss = "dcgan"
    d_batch_norm: bool | None = None
    feature_layer: str | None = None

    def __post_init__(self) -> None:
        for name in ("latent_dim", "image_channels", "image_size", "g_width", "d_width"):
            _positive_int(name, getattr(self, name))
        if self.image_size != _IMAGE_SIZE:
            raise ValueError(f"image_size: expected {_IMAGE_SIZE}, received {self.image_size}")
        if self.loss not in _LOSSES:
            raise ValueError(f"loss: expected one of {_LOSSES}, received {self.loss!r}")
        if self.d_batch_norm is None:
            self.d_batch_norm = self.loss != "wgan-gp"
        if not isinstance(self.d_batch_norm, bool):
            raise ValueError(f"d_batch_norm: expected a bool or None, received {self.d_batch_norm!r}")
        if self.d_batch_norm and self.loss == "wgan-gp":
            raise ValueError(
                "d_batch_norm: expected False for loss 'wgan-gp' (BatchNorm breaks the per-sample "
                "gradient penalty), received True"
            )
        n_layers = len(discriminator_layer_kinds(d_batch_norm=self.d_batch_norm))
        if self.feature_layer is None:
            self.feature_layer = _default_feature_layer(d_batch_norm=self.d_batch_norm)
        valid = {f"main.{i}" for i in range(n_layers)}
        if self.feature_layer not in valid:
            raise ValueError(
                f"feature_layer: expected one of main.0 .. main.{n_layers - 1}, "
                f"received {self.feature_layer!r}"
            )

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        """Shape of one latent code, ``(latent_dim, 1, 1)``."""
        return (self.latent_dim, 1, 1)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """Shape of one image, ``(image_channels, image_size, image_size)``."""
        return (self.image_channels, self.image_size, self.image_size)

    @property
    def feature_shape(self) -> tuple[int, int, int]:
        """Shape of one sample's output at the default feature layer: ``(4 * d_width, 4, 4)``.

        Raises:
            ValueError: if ``feature_layer`` is not the default (last hidden) layer.
        """
        default = _default_feature_layer(d_batch_norm=bool(self.d_batch_norm))
        if self.feature_layer != default:
            raise ValueError(
                f"feature_shape: only known for the default feature layer {default!r}, "
                f"received {self.feature_layer!r}"
            )
        return (4 * self.d_width, 4, 4)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict of all (resolved) fields."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GANConfig:
        """Build a config from :meth:`to_dict` output.

        Raises:
            ValueError: ``data`` is not a dict, has unknown keys, or holds invalid values.
        """
        if not isinstance(data, dict):
            raise ValueError(f"GANConfig: expected a dict, received {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"GANConfig: expected keys among {sorted(known)}, received unknown {unknown}")
        return cls(**data)


def init_dcgan_weights(module: nn.Module) -> None:
    """DCGAN initialisation: conv weights ~ N(0, 0.02), BatchNorm weights ~ N(1, 0.02), biases 0.

    Apply with ``model.apply(init_dcgan_weights)``; uses the global torch RNG.
    """
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class DCGANGenerator(nn.Module):
    """DCGAN generator ``z -> image`` for 28x28 images.

    ``forward(z)``: ``z`` of shape ``(N, latent_dim, 1, 1)`` or ``(N, latent_dim)``
    (any float dtype/device matching the module), nominally ``N(0, I)``; returns
    images of shape ``(N, image_channels, 28, 28)`` in ``[-1, 1]`` (Tanh).
    Raises ``ValueError`` for any other input shape.
    """

    def __init__(self, config: GANConfig) -> None:
        super().__init__()
        self.config = config
        w = config.g_width
        self.main = nn.Sequential(
            nn.ConvTranspose2d(config.latent_dim, 4 * w, kernel_size=7, stride=1, padding=0, bias=False),
            nn.BatchNorm2d(4 * w),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(4 * w, 2 * w, kernel_size=4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(2 * w),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(2 * w, w, kernel_size=4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(w),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(w, config.image_channels, kernel_size=3, stride=1, padding=1, bias=True),
            nn.Tanh(),
        )
        self.apply(init_dcgan_weights)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        latent_dim = self.config.latent_dim
        if z.dim() == 2 and z.shape[1] == latent_dim:
            z = z.reshape(z.shape[0], latent_dim, 1, 1)
        elif not (z.dim() == 4 and tuple(z.shape[1:]) == (latent_dim, 1, 1)):
            raise ValueError(
                f"z: expected shape (N, {latent_dim}, 1, 1) or (N, {latent_dim}), received {tuple(z.shape)}"
            )
        return self.main(z)


class DCGANDiscriminator(nn.Module):
    """DCGAN discriminator / WGAN critic for 28x28 images.

    ``forward(x)``: ``x`` of shape ``(N, image_channels, 28, 28)``, nominally in
    ``[-1, 1]``; returns raw scores of shape ``(N,)`` (logits for ``dcgan``,
    unbounded scores for ``lsgan``/``wgan-gp``). Raises ``ValueError`` for any
    other input shape.

    ``main`` ends at the last hidden activation (``config.feature_layer`` by
    default, output ``(N, 4 * d_width, 4, 4)``); ``head`` maps it to one score.
    """

    def __init__(self, config: GANConfig) -> None:
        super().__init__()
        self.config = config
        self.feature_layer: str = str(config.feature_layer)
        w = config.d_width
        channels = [config.image_channels, w, 2 * w, 4 * w]
        # (kernel, stride, padding) per conv: 28 -> 14 -> 7 -> 4.
        geometry = [(4, 2, 1), (4, 2, 1), (3, 2, 1)]
        use_bn = bool(config.d_batch_norm)
        layers: list[nn.Module] = []
        conv_index = 0
        for kind in discriminator_layer_kinds(d_batch_norm=use_bn):
            if kind == "conv":
                k, s, p = geometry[conv_index]
                # The input block has no BatchNorm, so it keeps its bias.
                has_bn = use_bn and conv_index > 0
                layers.append(
                    nn.Conv2d(channels[conv_index], channels[conv_index + 1], k, s, p, bias=not has_bn)
                )
                conv_index += 1
            elif kind == "bn":
                layers.append(nn.BatchNorm2d(channels[conv_index]))
            else:
                layers.append(nn.LeakyReLU(_LEAK, inplace=True))
        self.main = nn.Sequential(*layers)
        self.head = nn.Conv2d(4 * w, 1, kernel_size=4, stride=1, padding=0, bias=True)
        self.apply(init_dcgan_weights)

    def _check_input(self, x: torch.Tensor) -> None:
        expected = self.config.image_shape
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"x: expected shape (N, {', '.join(map(str, expected))}), received {tuple(x.shape)}")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Output of ``self.feature_layer`` for images ``x`` of shape ``(N, C, 28, 28)``.

        Returns ``(N, 4 * d_width, 4, 4)`` for the default feature layer.
        """
        self._check_input(x)
        index = int(self.feature_layer.split(".")[1])
        return self.main[: index + 1](x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        return self.head(self.main(x)).flatten()


def build_gan(config: GANConfig) -> tuple[DCGANGenerator, DCGANDiscriminator]:
    """Build a freshly initialised ``(G, D)`` pair (in train mode, on CPU, float32).

    Initialisation draws from the global torch RNG; call ``torch.manual_seed`` first
    for reproducibility.
    """
    if not isinstance(config, GANConfig):
        raise ValueError(f"config: expected a GANConfig, received {type(config).__name__}")
    return DCGANGenerator(config), DCGANDiscriminator(config)


def _state_tensors(module: nn.Module, *, half: bool) -> dict[str, torch.Tensor]:
    tensors: dict[str, torch.Tensor] = {}
    for name, tensor in module.state_dict().items():
        tensor = tensor.detach().to("cpu")
        if half and tensor.is_floating_point():
            tensor = tensor.to(torch.float16)
        tensors[name] = tensor.contiguous().clone()
    return tensors


def save_gan(
    directory: str | os.PathLike[str],
    generator: nn.Module,
    discriminator: nn.Module | None,
    config: GANConfig,
    *,
    extra: dict[str, Any] | None = None,
    half: bool = False,
) -> Path:
    """Save a GAN as ``generator.safetensors``, ``discriminator.safetensors`` and ``config.json``.

    Args:
        directory: Created (with parents) if missing; existing files are overwritten.
        generator, discriminator: Modules whose ``state_dict`` is saved (any device).
            ``discriminator=None`` saves G alone: no ``discriminator.safetensors`` is written, and one
            left in ``directory`` by an earlier save is removed once the new files are in place (it
            does not belong to this G).
        config: The :class:`GANConfig` they were built from.
        extra: JSON-serialisable metadata stored under ``"extra"`` in ``config.json``
            (e.g. training seconds, command line, epochs, losses).
        half: Store floating tensors as float16 (halves the files);
            :func:`load_gan` converts them back to float32. Integer buffers
            (BatchNorm's ``num_batches_tracked``) are kept as they are.

    Returns:
        The directory as a :class:`~pathlib.Path`.

    Raises:
        ValueError: ``config`` is not a :class:`GANConfig` or ``extra`` is not a
            JSON-serialisable dict (NaN and infinity are rejected).
    """
    if not isinstance(config, GANConfig):
        raise ValueError(f"config: expected a GANConfig, received {type(config).__name__}")
    if extra is not None and not isinstance(extra, dict):
        raise ValueError(f"extra: expected a dict or None, received {type(extra).__name__}")
    dtype = "float16" if half else "float32"
    document = {
        "format": _FORMAT,
        "format_version": _FORMAT_VERSION,
        "dtype": dtype,
        "config": config.to_dict(),
        "extra": extra if extra is not None else {},
    }
    try:
        text = json.dumps(document, indent=2, sort_keys=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"extra: expected JSON-serialisable values without NaN/inf ({exc})") from exc

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    metadata = {"format": "pt", "discinvert_format": _FORMAT, "dtype": dtype}
    tensors = {name: _state_tensors(module, half=half)
               for module, name in ((generator, GENERATOR_FILE), (discriminator, DISCRIMINATOR_FILE))
               if module is not None}
    # The three files belong together: all are written before any replaces its old version.
    atomic_write_many([
        *((directory / name, lambda tmp, t=t: save_file(t, tmp, metadata=metadata)) for name, t in tensors.items()),
        (directory / CONFIG_FILE, lambda tmp: Path(tmp).write_text(text + "\n", encoding="utf-8")),
    ])
    if discriminator is None:  # G alone: an older save's D is not this G's
        (directory / DISCRIMINATOR_FILE).unlink(missing_ok=True)
    logger.info("saved GAN (%s%s) to %s", dtype, "" if discriminator is not None else ", generator only", directory)
    return directory


def _check_keys(path: Path, module: nn.Module, expected: Mapping[str, object], stored: Mapping[str, object]) -> None:
    """The stored tensor names must be exactly the module's state-dict keys."""
    missing = sorted(set(expected) - set(stored))
    unexpected = sorted(set(stored) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"{path}: state dict does not match {type(module).__name__}: "
            f"missing keys {missing}, unexpected keys {unexpected}"
        )


def _load_state(module: nn.Module, path: Path) -> None:
    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable safetensors file ({exc})") from exc
    expected = module.state_dict()
    _check_keys(path, module, expected, tensors)
    converted: dict[str, torch.Tensor] = {}
    for name, reference in expected.items():
        tensor = tensors[name]
        if tuple(tensor.shape) != tuple(reference.shape):
            raise ValueError(
                f"{path}: tensor {name!r}: expected shape {tuple(reference.shape)}, "
                f"received {tuple(tensor.shape)}"
            )
        if tensor.is_floating_point() != reference.is_floating_point():
            raise ValueError(f"{path}: tensor {name!r}: expected dtype {reference.dtype}, received {tensor.dtype}")
        converted[name] = tensor.to(reference.dtype)
    module.load_state_dict(converted, strict=True)


def _shape_models(config: GANConfig, config_path: Path) -> tuple[nn.Module, nn.Module]:
    """G and D as ``config`` describes them, on the meta device (shapes only, no memory)."""
    try:
        with torch.device("meta"):
            return build_gan(config)
    except (RuntimeError, ValueError, OverflowError, TypeError) as exc:  # sizes torch cannot represent
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ValueError(f"{config_path}: invalid config: torch cannot build these sizes "
                         f"({type(exc).__name__}: {first_line})") from None


def _header(path: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """Shape and dtype name of each tensor in a safetensors file, read from its header only."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            return {name: (tuple(handle.get_slice(name).get_shape()), handle.get_slice(name).get_dtype())
                    for name in handle.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ValueError(f"{path}: not a readable safetensors file ({exc})") from None


def _check_header(reference: nn.Module, path: Path, config: GANConfig, config_path: Path) -> None:
    """The file's tensor names and shapes against the module ``config`` describes.

    Raises:
        ValueError: naming the file and the tensor: missing or unexpected tensors, a
            shape other than the config's, or an integer tensor where a float one is
            expected (or the reverse).
    """
    header = _header(path)
    expected = reference.state_dict()
    _check_keys(path, reference, expected, header)
    sizes = ", ".join(f"{name}={getattr(config, name)}" for name in ("latent_dim", "image_channels", "g_width", "d_width"))
    for name, tensor in expected.items():
        shape, dtype = header[name]
        if shape != tuple(tensor.shape):
            raise ValueError(
                f"{path}: tensor {name!r}: expected shape {tuple(tensor.shape)} from {config_path} ({sizes}), "
                f"received {shape}; the config and the weights do not belong together"
            )
        if dtype.startswith(("F", "BF")) != tensor.is_floating_point():
            raise ValueError(f"{path}: tensor {name!r}: expected dtype {tensor.dtype}, received {dtype}")


def load_gan(
    directory: str | os.PathLike[str], *, device: str | torch.device = "cpu", read_discriminator: bool = True,
) -> tuple[DCGANGenerator, DCGANDiscriminator | None, GANConfig, dict[str, Any]]:
    """Load a GAN written by :func:`save_gan`.

    Args:
        directory: Folder holding ``config.json`` and the two safetensors files, or only
            ``generator.safetensors`` beside ``config.json`` for G alone.
        device: Where to put the models.
        read_discriminator: ``False`` leaves ``discriminator.safetensors`` unread (D is ``None``),
            to use G alone from a full GAN.

    Returns:
        ``(G, D, config, extra)`` with the models in eval mode and float32
        (float16 checkpoints are up-cast), ``extra`` the saved metadata dict. ``D`` is ``None``
        for a directory without ``discriminator.safetensors`` (G alone) or ``read_discriminator=False``.

    Raises:
        FileNotFoundError: ``config.json`` or ``generator.safetensors`` is missing.
        ValueError: naming the file, if ``config.json`` is malformed or of another
            format, a safetensors file is unreadable, or a state dict has missing or
            unexpected keys or wrong shapes (strict loading).
    """
    directory = Path(directory)
    config_path = directory / CONFIG_FILE
    for path in (config_path, directory / GENERATOR_FILE):
        if not path.is_file():
            raise FileNotFoundError(f"GAN checkpoint file {path} not found")
    with_d = read_discriminator and (directory / DISCRIMINATOR_FILE).is_file()
    document = parse_json(config_path.read_bytes(), source=str(config_path))
    if not isinstance(document, dict) or document.get("format") != _FORMAT:
        found = document.get("format") if isinstance(document, dict) else type(document).__name__
        raise ValueError(f"{config_path}: expected format {_FORMAT!r}, received {found!r}")
    if document.get("format_version") != _FORMAT_VERSION:
        raise ValueError(
            f"{config_path}: expected format_version {_FORMAT_VERSION}, "
            f"received {document.get('format_version')!r}"
        )
    try:
        config = GANConfig.from_dict(document.get("config"))
    except ValueError as exc:
        raise ValueError(f"{config_path}: invalid config ({exc})") from exc
    extra = document.get("extra", {})
    if not isinstance(extra, dict):
        raise ValueError(f"{config_path}: expected 'extra' to be an object, received {type(extra).__name__}")

    # Names and shapes are checked against the files' headers before any model is built:
    # a config.json that says latent_dim=10**7 must not allocate gigabytes (or fail to)
    # before the mismatch is reported.
    reference_g, reference_d = _shape_models(config, config_path)
    _check_header(reference_g, directory / GENERATOR_FILE, config, config_path)
    if with_d:
        _check_header(reference_d, directory / DISCRIMINATOR_FILE, config, config_path)
    generator, discriminator = build_gan(config)
    _load_state(generator, directory / GENERATOR_FILE)
    generator.to(device).eval()
    if not with_d:
        logger.info("loaded G alone (%s, %s) from %s", config.loss, document.get("dtype"), directory)
        return generator, None, config, extra
    _load_state(discriminator, directory / DISCRIMINATOR_FILE)
    discriminator.to(device).eval()
    logger.info("loaded GAN (%s, %s) from %s", config.loss, document.get("dtype"), directory)
    return generator, discriminator, config, extra


def parameter_count(module: nn.Module) -> int:
    """Number of trainable parameters of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)

