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

An inverter comes from a ``.safetensors`` file (:meth:`Inverter.load`), a directory
written by :meth:`Inverter.save_pretrained`, a Hub repo id ``org/name``
(:meth:`Inverter.from_pretrained`), or ``zoo:NAME[/KIND]``. Without ``--inverter``, a zoo
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

from discinvert.inverter import Inverter
from discinvert.zoo.architectures import CONFIG_FILE
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
        generator, discriminator: the models (eval mode for zoo-format directories).
        description: one line naming where they came from.
        feature_layer: the directory config's feature layer, ``None`` for factories.
        latent_shape: the config's latent shape, or ``--latent-shape``; ``None`` if unknown.
        default_inverter: the inverter that belongs to this GAN (a zoo entry's), or ``None``.
    """

    generator: nn.Module | None
    discriminator: nn.Module
    description: str
    feature_layer: str | None = None
    latent_shape: tuple[int, ...] | None = None
    default_inverter: str | None = None


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
) -> LoadedGAN:
    """Load G and D from a GAN directory / zoo entry or from factory strings.

    With factories, ``generator`` may be ``None`` (then ``LoadedGAN.generator`` is too);
    ``discriminator`` is required. ``device`` moves factory models there and loads
    directory models there (default: the CPU for directories, where the factory put
    them otherwise). ``latent_space`` (``"z"``, ``"w"``, ``"w+"``): a StyleGAN2 directory's codes
    in that space instead of its recorded one.

    Raises:
        ValueError, FileNotFoundError: see :func:`resolve_gan_directory` and :func:`load_factory`;
            ``latent_space`` for a GAN that is no StyleGAN2 directory.
    """
    if gan is not None:
        directory, default_inverter = resolve_gan_directory(gan)
        loaded = load_zoo_gan(directory, device=device or "cpu", space=latent_space)
        description = gan if gan.startswith(ZOO_PREFIX) else f"{directory}"
        if latent_space is not None:  # the entry's bundled inverters live in its recorded space
            default_inverter = None
        return LoadedGAN(
            generator=loaded.generator, discriminator=loaded.discriminator,
            description=f"{description} ({loaded.summary})", feature_layer=loaded.feature_layer,
            latent_shape=latent_shape or loaded.latent_shape, default_inverter=default_inverter,
        )
    if latent_space is not None:
        raise ValueError(f"--latent-space {latent_space}: expected only with --gan naming a StyleGAN2 directory; "
                         "with factories, wrap G in discinvert.MappedGenerator yourself (docs/byo_gan.md).")
    if discriminator is None:
        raise ValueError("discriminator: expected --gan DIR or --discriminator package.module:factory.")
    D = load_factory(discriminator, "discriminator")
    G = load_factory(generator, "generator") if generator is not None else None
    if device is not None:
        D.to(device)
        if G is not None:
            G.to(device)
    parts = [f"generator {generator}"] if generator else []
    parts.append(f"discriminator {discriminator}")
    return LoadedGAN(generator=G, discriminator=D, description=", ".join(parts), latent_shape=latent_shape)


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

    E.g. ``"fitted on real images, 2 step networks; reads D's main.7, codes (100, 1, 1)"`` or
    ``"fitted on self-generated pairs (the paper's method); reads D's main.7, codes (100, 1, 1)"``.
    """
    fit = inverter.config.fit if isinstance(inverter.config.fit, dict) else {}
    kind = "fitted on real images" if "real_images" in fit else "fitted on self-generated pairs (the paper's method)"
    if inverter.iterations:
        kind += f", {inverter.iterations} step network{'s' if inverter.iterations > 1 else ''}"
    layer = inverter.feature_layer if isinstance(inverter.feature_layer, str) else ",".join(inverter.feature_layer)
    shape = ", ".join(str(d) for d in inverter.latent_shape)
    return f"{kind}; reads D's {layer}, codes ({shape})"


def load_inverter(spec: str, generator: nn.Module, discriminator: nn.Module, *, token: str | None = None) -> Inverter:
    """Load the inverter ``spec`` (file, directory, ``org/name``, ``zoo:NAME`` or ``zoo:NAME/KIND``) for G and D.

    ``zoo:NAME/real-images`` names the entry's real-image-stage inverter, ``zoo:NAME/paper`` the
    paper's CN (``zoo.INVERTERS``); ``zoo:NAME`` alone, the entry's
    :func:`discinvert.zoo.default_inverter`.

    Raises:
        FileNotFoundError: a path that does not exist and is no Hub repo id.
        ValueError: unreadable files, an inverter fit for another GAN (fingerprints), a
            missing Hub repo or offline without a cached copy.
    """
    try:
        if spec.startswith(ZOO_PREFIX):
            from discinvert import zoo

            entry, _, kind = spec.partition("/")
            kinds = zoo.inverters(_zoo_entry(entry).name)
            if kind and kind not in kinds:
                raise ValueError(f"{spec}: expected {entry}/KIND with KIND one of {', '.join(kinds)}, got {kind!r}.")
            folder = _zoo_entry(entry) / zoo.INVERTERS[kind or zoo.default_inverter(_zoo_entry(entry).name)]
            return Inverter.from_pretrained(folder, generator=generator, discriminator=discriminator)
        path = Path(spec)
        if path.is_dir():
            return Inverter.from_pretrained(path, generator=generator, discriminator=discriminator)
        if path.is_file():
            return Inverter.load(path, generator=generator, discriminator=discriminator)
        if path.suffix == ".safetensors" or not _HUB_ID.match(spec):
            raise FileNotFoundError(f"{spec}: no such inverter file or directory (nor a Hub repo id 'org/name').")
        return Inverter.from_pretrained(spec, generator=generator, discriminator=discriminator, token=token)
    except ValueError as error:
        if spec in str(error) or Path(spec).name in str(error):
            raise
        # e.g. the GAN rejects the inverter's latent shape: say which inverter did not fit
        raise ValueError(f"inverter {spec} does not fit this GAN: {error}") from None
