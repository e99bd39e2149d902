"""Running the user's GAN: where it lives, how G is called, and whether (G, D, layer) fit together."""

from __future__ import annotations

import inspect
import logging
import warnings
from dataclasses import dataclass

import torch
from torch import nn

from discinvert.conditioning import Conditioning
from discinvert.features import FeatureTap, layer_calls, reached_modules
from discinvert.fingerprint import fingerprint_discriminator, fingerprint_generator
from discinvert.guard import buffer_snapshot, frozen
from discinvert.layers import batch_dependence

__all__ = ["BATCH_CHECK_SIZE", "DEFAULT_BATCH_SIZE", "GANFacts", "check_batch_independence", "check_module", "generate", "inspect_gan",
           "model_device", "model_dtype", "probe", "probe_generator", "resolve_device"]

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 256
"""Images per forward pass through G and D when the caller names no batch size: in :meth:`Inverter.encode`,
``decode`` and ``reconstruct``, and images optimised together in ``refine``
(:func:`discinvert.optimize.optimize_latents`) and the command line's ``--batch-size``."""

BATCH_CHECK_SIZE = 8
"""G's images in the batch-independence check of :func:`check_batch_independence` (halves of 4: a multiple
of StyleGAN's minibatch-standard-deviation group size)."""


def check_module(model: object, name: str) -> nn.Module:
    """``model`` if it is an ``nn.Module`` whose weights all exist, else ``ValueError``.

    Lazy modules (``nn.LazyLinear``, ...) that never ran hold no weights yet: running them
    here would create the user's weights, and no inverter can be tied to weights that do
    not exist yet.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"{name}: expected a torch.nn.Module, got {type(model).__name__}.")
    lazy = [key for key, tensor in [*model.named_parameters(), *model.named_buffers()]
            if nn.parameter.is_lazy(tensor)]
    if lazy:
        raise ValueError(
            f"{name}: expected initialised weights, got {len(lazy)} uninitialised lazy tensor(s) "
            f"({', '.join(lazy[:3])}{', ...' if len(lazy) > 3 else ''}); run one forward pass of the {name} "
            "(or load its trained weights) first."
        )
    return model


def model_device(module: nn.Module) -> torch.device | None:
    """Device of the module's first parameter or buffer; ``None`` if it holds none."""
    for tensor in module.parameters():
        return tensor.device
    for tensor in module.buffers():
        return tensor.device
    return None


def model_dtype(module: nn.Module) -> torch.dtype:
    """Dtype of the module's first floating parameter or buffer (float32 if none)."""
    for tensor in list(module.parameters()) + list(module.buffers()):
        if tensor.is_floating_point():
            return tensor.dtype
    return torch.float32


def _same_device(a: torch.device, b: torch.device) -> bool:
    if a.type != b.type:
        return False
    if a.type != "cuda":
        return True
    current = torch.cuda.current_device() if torch.cuda.is_available() else 0
    return (a.index if a.index is not None else current) == (b.index if b.index is not None else current)


def resolve_device(
    generator: nn.Module, discriminator: nn.Module, device: str | torch.device | None
) -> torch.device:
    """The device to work on: where G and D live, else ``device``, else the CPU.

    The user's models are never moved.

    Raises:
        ValueError: G and D live on different devices, or ``device`` names another
            device than the one they live on.
    """
    g_device = model_device(generator)
    d_device = model_device(discriminator)
    if g_device is not None and d_device is not None and not _same_device(g_device, d_device):
        raise ValueError(
            f"generator and discriminator must live on the same device; got G on {g_device} "
            f"and D on {d_device}. Move them with G.to(device) and D.to(device) first."
        )
    found = g_device if g_device is not None else d_device
    if device is not None:
        try:
            wanted = torch.device(device)
        except (RuntimeError, TypeError) as error:
            raise ValueError(f"device: expected a torch device such as 'cpu' or 'cuda', got {device!r} ({error}).") from None
        if found is not None and not _same_device(found, wanted):
            raise ValueError(
                f"device: asked for {wanted}, but G and D live on {found}. discinvert never moves "
                f"your models: move them with G.to({str(wanted)!r}) and D.to({str(wanted)!r}), or "
                "leave device=None."
            )
        return wanted
    return found if found is not None else torch.device("cpu")


def generate(
    generator: nn.Module,
    latents: torch.Tensor,
    conditions: torch.Tensor | None = None,
    conditioning: Conditioning | None = None,
) -> torch.Tensor:
    """Images ``G(z)`` (or ``conditioning.call_generator(G, z, y)``), cast latents to G's dtype.

    G gets a copy of ``latents`` (differentiable when they require grad): a G that writes
    into its input (``nn.LeakyReLU(inplace=True)`` on z) must never change the caller's
    codes, nor the latents a fit uses as its regression targets.
    """
    latents = latents.to(model_dtype(generator), copy=True)
    if conditioning is None:
        return generator(latents)
    return conditioning.call_generator(generator, latents, conditions)


def _check_takes_one_argument(generator: nn.Module) -> None:
    """Refuse a G whose ``forward`` cannot be called as ``G(z)`` (before any latent-shape guess).

    Raises:
        ValueError: ``forward`` needs more arguments (a required keyword such as
            ``truncation``, or a second positional such as labels).
    """
    try:
        signature = inspect.signature(generator.forward)
    except (TypeError, ValueError):  # builtins, C extensions: nothing to check
        return
    try:
        signature.bind(object())
    except TypeError as error:
        raise ValueError(
            f"generator: expected G(z) with the latent batch as its only required argument, but "
            f"{type(generator).__name__}.forward{signature} cannot be called that way ({error}). Wrap G in a "
            "module whose forward(z) supplies the other arguments, or, for a conditional GAN, pass "
            "conditioning=Conditioning(sampler=..., call_generator=...)."
        ) from None


def probe_generator(
    generator: nn.Module,
    latents: torch.Tensor,
    conditions: torch.Tensor | None = None,
    conditioning: Conditioning | None = None,
) -> torch.Tensor:
    """Run G on a small batch of latents and return its images ``(N, *image_shape)``, checked.

    Call it under :func:`discinvert.guard.frozen` and ``torch.no_grad()``.

    Raises:
        ValueError: G rejects latents of this shape (with a conditioning: these latents and the
            sampler's conditions), or returns no floating-point image batch of the latents' length.
    """
    batch = latents.shape[0]
    shape = tuple(latents.shape[1:])
    if conditioning is None:
        _check_takes_one_argument(generator)
    try:
        images = generate(generator, latents, conditions, conditioning)
    except Exception as error:  # the user's G: any failure means a shape it rejects
        if conditioning is not None and isinstance(conditions, torch.Tensor):
            # Either input may be the one G rejects: name both, the sampler's conditions first.
            raise ValueError(
                f"generator: G rejected latents of shape {shape} (a batch of {tuple(latents.shape)}) with "
                f"conditions of shape {tuple(conditions.shape[1:])} and dtype {conditions.dtype} from "
                f"conditioning.sampler (called through conditioning.call_generator): {type(error).__name__}: "
                f"{error}; check latent_shape and conditioning.sampler (and Conditioning.num_classes for labels)."
            ) from error
        raise ValueError(
            f"latent_shape: the generator rejected latents of shape {shape} (a batch of "
            f"{tuple(latents.shape)}): {type(error).__name__}: {error}"
        ) from error
    if not isinstance(images, torch.Tensor) or images.dim() < 2 or images.shape[0] != batch:
        got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(
            f"generator: expected a batch of images with {batch} first for latents of shape "
            f"{tuple(latents.shape)}, got {got}."
        )
    if not images.is_floating_point():
        raise ValueError(f"generator: expected floating-point images, got dtype {images.dtype}.")
    return images


def probe(
    generator: nn.Module,
    tap: FeatureTap,
    latents: torch.Tensor,
    conditions: torch.Tensor | None = None,
    conditioning: Conditioning | None = None,
) -> tuple[tuple[int, ...], int]:
    """Run G and D_f on a small batch and return ``(image_shape, feature_dim)``.

    Call it under :func:`discinvert.guard.frozen` and ``torch.no_grad()``.

    Raises:
        ValueError: what :func:`probe_generator` raises; D fails on G's images; the feature layer is
            never reached.
    """
    images = probe_generator(generator, latents, conditions, conditioning)
    try:
        features = tap(images, conditions)
    except ValueError:  # ours (layer never reached, bad layer output): already clear
        raise
    except Exception as error:  # the user's D
        raise ValueError(
            f"discriminator: failed on the generator's images of shape {tuple(images.shape)} "
            f"before reaching feature_layer {tap.layer_name!r}: {type(error).__name__}: {error}"
        ) from error
    return tuple(images.shape[1:]), features.shape[1]


@dataclass(frozen=True)
class GANFacts:
    """What a fit needs to know about (G, D, feature layer), learnt from one probe batch.

    Attributes:
        image_shape: one image as G gives it.
        feature_dim: flattened size of the feature layer's output.
        modules: D's submodules that run up to the feature layer, in order.
        generator_fingerprint, discriminator_fingerprint: see :mod:`discinvert.fingerprint`.
    """

    image_shape: tuple[int, ...]
    feature_dim: int
    modules: tuple[str, ...]
    generator_fingerprint: str
    discriminator_fingerprint: str


def inspect_gan(
    generator: nn.Module,
    tap: FeatureTap,
    latents: torch.Tensor,
    conditions: torch.Tensor | None = None,
    conditioning: Conditioning | None = None,
) -> GANFacts:
    """Check that G, D and the feature layer fit together, and fingerprint them.

    Call it under :func:`discinvert.guard.frozen` and ``torch.no_grad()``. The
    fingerprints see the user's values: G's before anything runs, D's after a nested
    :func:`~discinvert.guard.frozen` has put back any buffer D's forward touched.

    Raises:
        ValueError: what :func:`probe` raises; a feature layer D runs more than once per
            forward pass (a shared module), whose output is ambiguous.
    """
    g_print = fingerprint_generator(generator)
    with frozen(generator, tap.discriminator):
        image_shape, feature_dim = probe(generator, tap, latents, conditions, conditioning)
        images = generate(generator, latents, conditions, conditioning)
        shared = {name: count for name, count in layer_calls(tap, images, conditions).items() if count > 1}
        if shared:
            name, calls = next(iter(shared.items()))
            raise ValueError(
                f"feature_layer {name!r}: expected a layer D runs once per forward pass, got one it "
                f"runs {calls} times (a shared module, e.g. one activation reused after every block), so "
                "its output is ambiguous. Choose a layer D runs once, e.g. the module just before it (see "
                "discinvert.list_layers(D, images): LayerInfo.calls)."
            )
        modules = tuple(reached_modules(tap, images, conditions))
    d_print = fingerprint_discriminator(tap.discriminator, modules, tap.layer_name)
    return GANFacts(image_shape, feature_dim, modules, g_print, d_print)


def check_batch_independence(
    generator: nn.Module,
    tap: FeatureTap,
    latents: torch.Tensor,
    conditions: torch.Tensor | None = None,
    conditioning: Conditioning | None = None,
    *,
    allow: bool = False,
) -> bool:
    """Check that the features of one image do not depend on the other images in its batch.

    A minibatch standard deviation layer before the feature layer (the batch's spread appended as a
    feature map, as StyleGAN's and ProGAN's D have) would give an image another code in another batch.
    D runs through ``tap`` (stopping at the feature layers) on G's images of ``latents``
    (:data:`BATCH_CHECK_SIZE` of them), on them permuted, and on the permuted batch split in two
    (:func:`discinvert.layers.batch_dependence`); G and D come back untouched, and the global RNG as it
    was. BatchNorm in eval mode,
    as every fit runs D, reads no batch statistics and passes.

    Args:
        generator, tap, conditioning: as for :func:`inspect_gan`.
        latents: ``(n, *latent_shape)`` with ``n >= 2``; ``conditions`` their conditions (or ``None``).
        allow: warn (a ``UserWarning``) instead of raising.

    Returns:
        Whether the features depend on the batch (``True`` only with ``allow``).

    Raises:
        ValueError: the features depend on the batch and ``allow`` is ``False``. The message names the
            feature layer, D's first layer whose output depends on the batch, and the deepest layer
            before it whose output does not, to fit on instead.
    """
    device = latents.device
    # fork_rng: a G or D drawing noise in its forward pass must not move the fit's seeded global stream.
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), \
            frozen(generator, tap.discriminator), torch.no_grad():
        images = generate(generator, latents, conditions, conditioning)
        reset = buffer_snapshot(tap.discriminator)  # every arrangement starts from the same buffer values

        def run(rows: torch.Tensor) -> torch.Tensor:
            reset()
            rows = rows.to(images.device)
            return tap(images[rows], None if conditions is None else conditions[rows])

        found = batch_dependence(tap.discriminator, run, images.shape[0])
    if not found.output_dependent:
        if found.output_dependent is None and found.stochastic:
            logger.info("D's features at %s change between two runs of the same images (noise drawn in D's forward "
                        "pass), so whether they depend on the batch cannot be checked; fitting on them",
                        tap.layer_name)
        return False
    named = [name for name in tap.layer_names if found.of(name)] or list(tap.layer_names)
    first = found.first_dependent or named[0]
    modules = dict(tap.discriminator.named_modules(remove_duplicate=False))
    last = found.last_per_image(tap.discriminator, first)
    which = (f"feature_layer {named[0]!r}" if len(tap.layer_names) == 1 else
             f"feature_layer {', '.join(repr(name) for name in named)} (of {list(tap.layer_names)})")
    cause = ("" if first in named else
             f" D's first layer whose output depends on the batch is {first!r} ({type(modules[first]).__name__});")
    instead = (f" the deepest layer before it whose features are per-image is {last!r}: fit with "
               f"feature_layer={last!r}" if last is not None else
               " no layer of D before it gives per-image features: choose another feature layer")
    instead = instead if cause else f" {instead[1].upper()}{instead[2:]}"
    message = (
        f"{which}: expected features of each image that do not depend on the other images in its batch, got "
        "features that change when the same images come in another batch (permuted, or split in two), as after "
        f"a minibatch standard deviation layer, so an image would get another code in another batch.{cause}"
        f"{instead} (see discinvert.list_layers(D, images): LayerInfo.batch_dependent)"
    )
    if not allow:
        raise ValueError(f"{message}, or pass allow_batch_dependent_features=True (discinvert fit "
                         "--allow-batch-dependent-features) to fit on these features anyway.")
    warnings.warn(f"{message}. Fitting anyway (allow_batch_dependent_features=True): codes depend on the batch "
                  "they are encoded in.", UserWarning, stacklevel=3)
    return True
