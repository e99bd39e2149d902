"""Loading a GAN and its inverter from the command line's sources.

A GAN comes from one of

- a zoo-format directory written by :func:`discinvert.zoo.architectures.save_gan` or
  :func:`discinvert.zoo.stylegan2.save_stylegan2` (``generator.safetensors``,
  ``discriminator.safetensors``, ``config.json``, which names the architecture), or a
  folder laid out like a zoo entry (``gan/`` and ``inverter/`` inside it). A StyleGAN2's G
  comes wrapped in a :class:`~discinvert.mapped.MappedGenerator` (codes in its recorded space,
  W+ unless it says otherwise, or ``--latent-space``), as :func:`discinvert.zoo.gans.load_zoo_gan` loads it;
- ``zoo:NAME``, a bundled zoo entry (see :func:`discinvert.zoo.available`);
- two factory strings ``package.module:callable`` (a callable taking no arguments
  and returning an ``nn.Module``), one for G and one for D; the current directory is
  importable, as for ``python -m``.

Without D: a GAN directory that holds no ``discriminator.safetensors`` is G alone, and so is
``--generator`` without ``--discriminator``; ``--no-discriminator`` (``no_discriminator=True``) leaves
the D of a directory or zoo entry unread. :attr:`LoadedGAN.without_discriminator` says why there is no D.

An inverter comes from a ``.safetensors`` file (:meth:`Inverter.load`), a directory
written by :meth:`Inverter.save_pretrained`, a Hub repo id ``org/name``
(:meth:`Inverter.from_pretrained`), or ``zoo:NAME[/KIND]``. The file's own config says which route it
takes: an inverter fit for G alone (``feature_source`` ``"pixels"``) loads without D, also when the GAN
came with one (D is not read; :func:`load_inverter`); one that reads D's features needs D. Without ``--inverter``, a zoo
GAN (and a folder laid out like a zoo entry) brings its own: the entry's
:func:`discinvert.zoo.default_inverter`, its real-images inverter where it has one, the same
one the page serves. :func:`inverter_name` and :func:`describe_inverter` give the line each
command prints about the inverter it used.

Every user mistake (missing path, malformed or unimportable factory, unknown zoo
entry, unusable device) raises ``ValueError`` or ``FileNotFoundError`` with a
one-line message.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from discinvert.hub import read_pretrained
from discinvert.inverter import Inverter
from discinvert.inverter_config import InverterConfig
from discinvert.serialization import read_inverter_file
from discinvert.zoo.architectures import CONFIG_FILE, DISCRIMINATOR_FILE
from discinvert.zoo.gans import load_zoo_gan

__all__ = [
    "ZOO_PREFIX",
    "LoadedGAN",
    "check_factory_spec",
    "describe_inverter",
    "inverter_name",
    "load_factory",
    "load_gan_source",
    "load_inverter",
    "parse_device",
    "resolve_gan_directory",
]

ZOO_PREFIX = "zoo:"
"""Prefix naming a bundled zoo entry instead of a path: ``zoo:dcgan-fashion-mnist``."""

_FACTORY = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass
class LoadedGAN:
    """A GAN as the command line loaded it.

    Attributes:
        generator, discriminator: the models (eval mode for zoo-format directories); ``discriminator`` is
            ``None`` for G alone.
        description: one line naming where they came from (``"...; generator only"`` without D).
        feature_layer: the directory config's feature layer, ``None`` for factories and without D.
        latent_shape: the config's latent shape, or ``--latent-shape``; ``None`` if unknown.
        default_inverter: the inverter that belongs to this GAN (a zoo entry's), or ``None``.
        without_discriminator: why there is no D, in the command line's words (``"--no-discriminator"``,
            ``"DIR holds no discriminator.safetensors"``, ``"no --discriminator factory"``); ``None`` with D.
    """

    generator: nn.Module | None
    discriminator: nn.Module | None
    description: str
    feature_layer: str | None = None
    latent_shape: tuple[int, ...] | None = None
    default_inverter: str | None = None
    without_discriminator: str | None = None


def parse_device(text: str | None) -> torch.device | None:
    """``--device``: a usable torch device, or ``None`` when not given.

    Raises:
        ValueError: not a device name; ``meta`` (shapes only, no data to run on); a
            CUDA/MPS device that is not available; any other device type on which a
            tensor cannot be made here.
    """
    if text is None:
        return None
    try:
        device = torch.device(text)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"device: expected a torch device such as 'cpu' or 'cuda:0', got {text!r} ({error}).") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device: {text!r} asked for, but CUDA is not available on this machine.")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device: {text!r} asked for, but only {torch.cuda.device_count()} CUDA device(s) exist.")
    elif device.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ValueError(f"device: {text!r} asked for, but MPS is not available on this machine.")
    elif device.type == "meta":
        raise ValueError(f"device: expected a device that holds data, such as 'cpu' or 'cuda:0', got {text!r} "
                         "(meta tensors have shapes only; nothing can run there).")
    elif device.type not in ("cpu", "cuda", "mps"):
        try:
            torch.empty(0, device=device)
        except Exception as error:  # noqa: BLE001 - torch reports an absent backend in many ways (ImportError, AssertionError, ...)
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ValueError(f"device: {text!r} asked for, but it is not usable on this machine ({reason}).") from None
    return device


def check_factory_spec(text: str) -> str:
    """Syntax check of ``package.module:callable``; returns ``text`` unchanged.

    Raises:
        ValueError: not of that form.
    """
    if not _FACTORY.match(text):
        raise ValueError(
            f"expected a factory 'package.module:callable' (a callable returning an nn.Module), got {text!r}"
        )
    return text


def load_factory(spec: str, what: str) -> nn.Module:
    """Import ``package.module:callable``, call it without arguments and return the module.

    Args:
        spec: the factory string.
        what: ``"generator"`` or ``"discriminator"`` (for messages).

    Raises:
        ValueError: malformed string, module not importable, no such attribute, not
            callable, the call failed, or it returned something other than an ``nn.Module``.
    """
    check_factory_spec(spec)
    module_name, _, attribute = spec.partition(":")
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)  # as `python -m` does: factories in the current directory import
    try:
        target: object = importlib.import_module(module_name)
    except Exception as error:  # the user's module: a missing module or its own import failure
        raise ValueError(f"{what} factory {spec!r}: cannot import {module_name!r} ({type(error).__name__}: {error}).") from None
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise ValueError(f"{what} factory {spec!r}: module {module_name!r} has no attribute {attribute!r}.")
        target = getattr(target, part)
    if isinstance(target, nn.Module):
        return target
    if not callable(target):
        raise ValueError(f"{what} factory {spec!r}: {attribute!r} is not callable (got {type(target).__name__}).")
    try:
        model = target()
    except Exception as error:  # the user's factory
        raise ValueError(f"{what} factory {spec!r} failed: {type(error).__name__}: {error}") from None
    if not isinstance(model, nn.Module):
        raise ValueError(f"{what} factory {spec!r}: expected it to return a torch.nn.Module, got {type(model).__name__}.")
    return model


def _zoo_entry(text: str) -> Path:
    from discinvert import zoo

    name = text[len(ZOO_PREFIX):]
    try:
        return zoo.path(name)
    except ValueError:
        raise ValueError(f"{text!r}: unknown zoo entry; available: {', '.join(zoo.available())}.") from None


def _bundled_inverter(folder: Path) -> Path | None:
    """A zoo-entry layout's default inverter folder: ``inverter-real-images/`` when it holds one, else ``inverter/``."""
    from discinvert import zoo

    real = folder / zoo.INVERTERS["real-images"]
    if (real / "model.safetensors").is_file():  # zoo.default_inverter's choice
        return real
    paper = folder / zoo.INVERTERS["paper"]
    return paper if paper.is_dir() else None


def resolve_gan_directory(text: str) -> tuple[Path, str | None]:
    """Where the GAN's files are for ``--gan``, and the inverter that comes with it (if any).

    ``zoo:NAME`` gives the entry's ``gan/`` and ``zoo:NAME/KIND`` with KIND its
    :func:`discinvert.zoo.default_inverter` (``real-images`` where bundled); a folder holding
    ``gan/`` (a zoo-entry layout) gives ``gan/`` and, when present, ``inverter-real-images/``,
    else ``inverter/`` (the same choice); any other existing folder is taken as the GAN
    directory itself.

    Raises:
        FileNotFoundError: no such folder.
        ValueError: an unknown zoo entry, or a folder without the GAN's ``config.json``.
    """
    if text.startswith(ZOO_PREFIX):
        from discinvert import zoo

        folder = _zoo_entry(text)
        return folder / "gan", f"{ZOO_PREFIX}{folder.name}/{zoo.default_inverter(folder.name)}"
    path = Path(text)
    if not path.exists():
        raise FileNotFoundError(f"{text}: no such GAN directory.")
    if not path.is_dir():
        raise ValueError(
            f"{text}: expected a GAN directory (generator.safetensors, discriminator.safetensors, "
            f"{CONFIG_FILE}), got a file."
        )
    if (path / "gan").is_dir() and not (path / CONFIG_FILE).is_file():
        inverter = _bundled_inverter(path)
        return path / "gan", None if inverter is None else str(inverter)
    if not (path / CONFIG_FILE).is_file():
        raise ValueError(
            f"{text}: not a GAN directory (no {CONFIG_FILE}); expected one written by "
            "discinvert.zoo.architectures.save_gan, or use --generator/--discriminator factories."
        )
    return path, None


def load_gan_source(
    *,
    gan: str | None = None,
    generator: str | None = None,
    discriminator: str | None = None,
    latent_shape: tuple[int, ...] | None = None,
    device: torch.device | None = None,
    latent_space: str | None = None,
    no_discriminator: bool = False,
) -> LoadedGAN:
    """Load G and D from a GAN directory / zoo entry or from factory strings.

    With factories, either may be ``None`` (then so is that model of the :class:`LoadedGAN`), not both:
    ``generator`` alone is G alone. A directory without ``discriminator.safetensors`` gives G alone too,
    and ``no_discriminator`` leaves a directory's D unread (and refuses a ``discriminator`` factory).
    ``device`` moves factory models there and loads directory models there (default: the CPU for
    directories, where the factory put them otherwise). ``latent_space`` (``"z"``, ``"w"``, ``"w+"``): a
    StyleGAN2 directory's codes in that space instead of its recorded one.

    Raises:
        ValueError, FileNotFoundError: see :func:`resolve_gan_directory` and :func:`load_factory`;
            ``latent_space`` for a GAN that is no StyleGAN2 directory; neither factory; a ``discriminator``
            factory with ``no_discriminator``.
    """
    if gan is not None:
        directory, default_inverter = resolve_gan_directory(gan)
        loaded = load_zoo_gan(directory, device=device or "cpu", space=latent_space,
                              read_discriminator=not no_discriminator)
        description = f"{gan if gan.startswith(ZOO_PREFIX) else directory} ({loaded.summary})"
        if latent_space is not None:  # the entry's bundled inverters live in its recorded space
            default_inverter = None
        missing = None
        if loaded.discriminator is None:
            missing = "--no-discriminator" if no_discriminator else f"{directory} holds no {DISCRIMINATOR_FILE}"
            description += "; generator only"
        return LoadedGAN(
            generator=loaded.generator, discriminator=loaded.discriminator, description=description,
            feature_layer=None if missing else loaded.feature_layer, latent_shape=latent_shape or loaded.latent_shape,
            default_inverter=default_inverter, without_discriminator=missing,
        )
    if latent_space is not None:
        raise ValueError(f"--latent-space {latent_space}: expected only with --gan naming a StyleGAN2 directory; "
                         "with factories, wrap G in discinvert.MappedGenerator yourself (docs/byo_gan.md).")
    if discriminator is None and generator is None:
        raise ValueError("GAN: expected --gan DIR, or --generator package.module:factory (and --discriminator "
                         "package.module:factory with D).")
    if discriminator is not None and no_discriminator:
        raise ValueError(f"--no-discriminator: expected no --discriminator factory with it, got {discriminator}.")
    D = load_factory(discriminator, "discriminator") if discriminator is not None else None
    G = load_factory(generator, "generator") if generator is not None else None
    for model in (G, D):
        if device is not None and model is not None:
            model.to(device)
    parts = [f"generator {generator}"] if generator else []
    parts.append(f"discriminator {discriminator}" if discriminator else "generator only")
    missing = None if D is not None else "--no-discriminator" if no_discriminator else "no --discriminator factory"
    return LoadedGAN(generator=G, discriminator=D, description=", ".join(parts), latent_shape=latent_shape,
                     without_discriminator=missing)


def inverter_name(spec: str) -> str:
    """``spec`` as the commands print it: ``zoo:NAME`` completed to ``zoo:NAME/KIND`` (the entry's default).

    Raises:
        ValueError: an unknown zoo entry.
    """
    entry, _, kind = spec.partition("/")
    if not spec.startswith(ZOO_PREFIX) or kind:
        return spec
    from discinvert import zoo

    name = _zoo_entry(entry).name
    return f"{ZOO_PREFIX}{name}/{zoo.default_inverter(name)}"


def describe_inverter(inverter: Inverter) -> str:
    """What kind of inverter it is, in a few words, from its config.

    E.g. ``"fitted on real images, 2 step networks; reads D's main.7, codes (100, 1, 1)"``,
    ``"fitted on self-generated pairs (the paper's method); reads D's main.7, codes (100, 1, 1)"`` or, for G
    alone, ``"...; generator only: reads its own pixel network, no D; codes (100, 1, 1)"``.
    """
    fit = inverter.config.fit if isinstance(inverter.config.fit, dict) else {}
    kind = "fitted on real images" if "real_images" in fit else "fitted on self-generated pairs (the paper's method)"
    if inverter.iterations:
        kind += f", {inverter.iterations} step network{'s' if inverter.iterations > 1 else ''}"
    shape = ", ".join(str(d) for d in inverter.latent_shape)
    if inverter.feature_source == "pixels":
        return f"{kind}; generator only: reads its own pixel network, no D; codes ({shape})"
    layer = inverter.feature_layer if isinstance(inverter.feature_layer, str) else ",".join(inverter.feature_layer)
    return f"{kind}; reads D's {layer}, codes ({shape})"


def _read_inverter(spec: str, *, token: str | None) -> tuple[dict[str, torch.Tensor], InverterConfig, str]:
    """The weights, config and source name of the inverter ``spec`` names, read and checked, not yet built."""
    if spec.startswith(ZOO_PREFIX):
        from discinvert import zoo

        entry, _, kind = spec.partition("/")
        kinds = zoo.inverters(_zoo_entry(entry).name)
        if kind and kind not in kinds:
            raise ValueError(f"{spec}: expected {entry}/KIND with KIND one of {', '.join(kinds)}, got {kind!r}.")
        return read_pretrained(_zoo_entry(entry) / zoo.INVERTERS[kind or zoo.default_inverter(_zoo_entry(entry).name)])
    path = Path(spec)
    if path.is_dir():
        return read_pretrained(path)
    if path.is_file():
        return (*read_inverter_file(path), str(path))
    if path.suffix == ".safetensors" or not _HUB_ID.match(spec):
        raise FileNotFoundError(f"{spec}: no such inverter file or directory (nor a Hub repo id 'org/name').")
    return read_pretrained(spec, token=token)


def load_inverter(spec: str, generator: nn.Module, discriminator: nn.Module | None, *, token: str | None = None,
                  without_discriminator: str | None = None) -> Inverter:
    """Load the inverter ``spec`` (file, directory, ``org/name``, ``zoo:NAME`` or ``zoo:NAME/KIND``) for G and D.

    ``zoo:NAME/real-images`` names the entry's real-image-stage inverter, ``zoo:NAME/paper`` the
    paper's CN (``zoo.INVERTERS``); ``zoo:NAME`` alone, the entry's
    :func:`discinvert.zoo.default_inverter`.

    The inverter's stored config decides whether D is read: one fit for G alone (``feature_source``
    ``"pixels"``) is loaded with no D even when ``discriminator`` is given (the GAN's D is simply not
    used; :meth:`Inverter.load` itself refuses a D for it), one reading D's features needs
    ``discriminator``. ``without_discriminator`` says why there is none, for that message
    (:attr:`LoadedGAN.without_discriminator`).

    Raises:
        FileNotFoundError: a path that does not exist and is no Hub repo id.
        ValueError: unreadable files, an inverter fit for another GAN (fingerprints), a
            missing Hub repo or offline without a cached copy, an inverter that reads D's features
            without ``discriminator``.
    """
    try:
        state, config, source = _read_inverter(spec, token=token)
        if config.feature_source == "pixels":  # G alone: D, if given, is not read
            discriminator = None
        elif discriminator is None:
            layer = config.feature_layer if isinstance(config.feature_layer, str) else ",".join(config.feature_layer or ())
            raise ValueError(
                f"inverter {spec} reads the discriminator's features (layer {layer}); expected the GAN with its "
                f"discriminator, got none ({without_discriminator or 'no discriminator given'}). Give D (a --gan "
                "directory holding discriminator.safetensors, or --discriminator FACTORY), or an inverter fit for "
                "the generator alone.")
        return Inverter.from_state(state, config, generator=generator, discriminator=discriminator, source=source)
    except ValueError as error:
        if spec in str(error) or Path(spec).name in str(error):
            raise
        # e.g. the GAN rejects the inverter's latent shape: say which inverter did not fit
        raise ValueError(f"inverter {spec} does not fit this GAN: {error}") from None
