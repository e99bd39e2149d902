"""Discriminator features with an early exit.

A forward hook on the feature layer captures its output and raises
:class:`_StopForward`, so the rest of D is never computed. The hook lives only for
the duration of one call and is removed in ``finally``: no hook is ever left on the
user's model between calls.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from discinvert.conditioning import Conditioning
from discinvert.layers import first_tensor

__all__ = ["FeatureTap", "LayerNotReachedError", "layer_calls", "reached_modules"]

logger = logging.getLogger(__name__)


class _StopForward(BaseException):
    """Raised by the feature hook to end D's forward pass; caught by :class:`FeatureTap` only.

    A ``BaseException``, so that an ``except Exception`` block inside the user's D cannot
    swallow it and run the rest of D.
    """


class LayerNotReachedError(ValueError):
    """D's forward pass finished without ever running the feature layer."""


class FeatureTap:
    """``D_f``: images → flattened output of one layer of D, or of several concatenated.

    Args:
        discriminator: the user's D. It is called, never modified; the caller is
            responsible for eval mode (see :func:`discinvert.guard.frozen`).
        layer_name: dotted name of the feature layer, or a tuple of names for several
            (see :func:`discinvert.layers.resolve_layers`).
        layer: the feature layer module inside ``discriminator``, or a tuple of them in
            the order of ``layer_name``.
        conditioning: how to call a conditional D, or ``None`` for ``D(images)``.
    """

    def __init__(
        self,
        discriminator: nn.Module,
        layer_name: str | tuple[str, ...],
        layer: nn.Module | tuple[nn.Module, ...],
        *,
        conditioning: Conditioning | None = None,
    ) -> None:
        self.discriminator = discriminator
        self.layer_name = layer_name
        self.layer_names: tuple[str, ...] = (layer_name,) if isinstance(layer_name, str) else tuple(layer_name)
        self.layers: tuple[nn.Module, ...] = (layer,) if isinstance(layer, nn.Module) else tuple(layer)
        if len(self.layer_names) != len(self.layers):
            raise ValueError(f"FeatureTap: {len(self.layer_names)} layer names for {len(self.layers)} layers.")
        self.conditioning = conditioning

    def _call(self, images: torch.Tensor, conditions: torch.Tensor | None) -> Any:
        if self.conditioning is None:
            return self.discriminator(images)
        if conditions is None:
            raise ValueError(
                "conditions: this inverter was fit with a Conditioning, so the images' "
                "conditions (e.g. class labels) must be given; got None."
            )
        return self.conditioning.call_discriminator(self.discriminator, images, conditions)

    def __call__(self, images: torch.Tensor, conditions: torch.Tensor | None = None) -> torch.Tensor:
        """Return the feature layers' outputs for ``images``, flattened and concatenated: ``(N, feature_dim)``.

        D's forward pass stops as soon as every feature layer has run. Grad mode is the
        caller's: under ``torch.no_grad()`` nothing is recorded, with grad enabled the
        features are differentiable with respect to ``images``. D gets a copy of
        ``images``: a D that writes into its input (an in-place first activation,
        ``x.mul_(...)``) never changes the caller's tensor. With several layers, each
        output but the last one taken is copied when captured, so an in-place activation
        after a listed layer cannot overwrite what was read.

        Raises:
            LayerNotReachedError: D returned without running every feature layer.
            ValueError: a layer's output holds no tensor or lost the batch dimension.
        """
        wanted = len(self.layers)
        captured: dict[int, Any] = {}

        def make_hook(index: int) -> Callable[..., None]:
            def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
                if index in captured:
                    return
                if len(captured) + 1 == wanted:
                    captured[index] = output
                    raise _StopForward
                tensor = first_tensor(output)
                captured[index] = output if tensor is None else tensor.clone()

            return hook

        handles = [layer.register_forward_hook(make_hook(i)) for i, layer in enumerate(self.layers)]
        try:
            self._call(images.clone(), conditions)
        except _StopForward:
            pass
        finally:
            for handle in handles:
                handle.remove()
        missing = [name for i, name in enumerate(self.layer_names) if i not in captured]
        if missing:
            which = f"feature_layer {self.layer_name!r}" if wanted == 1 else \
                f"feature_layer {missing[0]!r} (of {list(self.layer_names)})"
            raise LayerNotReachedError(
                f"{which}: D's forward pass finished without "
                "running this layer. Choose a layer D actually calls (see "
                "discinvert.list_layers(D, example_images))."
            )
        batch = images.shape[0]
        flat = []
        for index, name in enumerate(self.layer_names):
            tensor = first_tensor(captured[index])
            if tensor is None:
                raise ValueError(
                    f"feature_layer {name!r}: expected the layer to output a tensor "
                    f"(or a tuple starting with one), got {type(captured[index]).__name__}."
                )
            if tensor.dim() == 0 or tensor.shape[0] != batch:
                raise ValueError(
                    f"feature_layer {name!r}: expected an output with batch "
                    f"dimension {batch} first, got shape {tuple(tensor.shape)}."
                )
            flat.append(tensor.reshape(batch, -1))
        return flat[0] if len(flat) == 1 else torch.cat(flat, dim=1)


def reached_modules(tap: FeatureTap, images: torch.Tensor, conditions: torch.Tensor | None = None) -> list[str]:
    """Names of D's submodules whose forward starts before the feature layer's output is taken.

    These are the modules whose weights can influence the features; their parameters
    and buffers make up D's fingerprint.
    """
    names: list[str] = []
    seen: set[int] = set()
    handles = []

    def make_hook(name: str, module: nn.Module) -> Callable[..., None]:
        def pre_hook(_module: nn.Module, _inputs: Any) -> None:
            if id(module) not in seen:
                seen.add(id(module))
                names.append(name)

        return pre_hook

    try:
        for name, module in tap.discriminator.named_modules():
            handles.append(module.register_forward_pre_hook(make_hook(name, module)))
        tap(images, conditions)
    finally:
        for handle in handles:
            handle.remove()
    return names


def layer_calls(tap: FeatureTap, images: torch.Tensor, conditions: torch.Tensor | None = None) -> dict[str, int]:
    """How many times one full forward pass of D on ``images`` runs each feature layer.

    A module D runs several times (one activation shared by every block) has no single
    output to read. The count runs D to the end, so it runs on a deep copy of D where D
    can be copied: the user's D never computes past the feature layers, and whatever D's
    later layers change (attributes, buffers replaced through ``.data``) happens to the
    copy. A D that cannot be deep-copied (it holds a lock, a file or a CUDA stream) is
    counted on itself, as :func:`discinvert.list_layers` does: the caller's
    :func:`discinvert.guard.frozen` puts back its flags and any buffer a forward pass
    changed. The check is never skipped. Call it under :func:`~discinvert.guard.frozen`
    and ``torch.no_grad()``.

    Returns:
        The number of calls per feature layer name, in the tap's order (a D that fails
        after a feature layer counts the calls made before it failed).
    """
    try:
        duplicate = copy.deepcopy(tap.discriminator)
        layers = tuple(duplicate.get_submodule(name) for name in tap.layer_names)
    except Exception as error:  # noqa: BLE001 - the user's D may hold uncopyable objects
        logger.info(
            "counting the calls of feature layer %r on D itself: D cannot be deep-copied (%s: %s)",
            tap.layer_name, type(error).__name__, error,
        )
        duplicate, layers = tap.discriminator, tap.layers
    calls = dict.fromkeys(tap.layer_names, 0)

    def make_hook(name: str) -> Callable[..., None]:
        def hook(_module: nn.Module, _inputs: Any, _output: Any) -> None:
            calls[name] += 1

        return hook

    handles = [layer.register_forward_hook(make_hook(name)) for name, layer in zip(tap.layer_names, layers)]
    try:
        FeatureTap(duplicate, tap.layer_name, layers, conditioning=tap.conditioning)._call(images.clone(), conditions)
    except Exception:  # noqa: BLE001 - the user's D past the feature layers; their first calls are counted
        pass
    finally:
        for handle in handles:
            handle.remove()
    return calls
