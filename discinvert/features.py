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
    """``D_f``: images → flattened output of one layer of D.

    Args:
        discriminator: the user's D. It is called, never modified; the caller is
            responsible for eval mode (see :func:`discinvert.guard.frozen`).
        layer_name: dotted name of the feature layer (for messages).
        layer: the feature layer module inside ``discriminator``.
        conditioning: how to call a conditional D, or ``None`` for ``D(images)``.
    """

    def __init__(
        self,
        discriminator: nn.Module,
        layer_name: str,
        layer: nn.Module,
        *,
        conditioning: Conditioning | None = None,
    ) -> None:
        self.discriminator = discriminator
        self.layer_name = layer_name
        self.layer = layer
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
        """Return the feature layer's output for ``images``, shape ``(N, feature_dim)``.

        Grad mode is the caller's: under ``torch.no_grad()`` nothing is recorded, with
        grad enabled the features are differentiable with respect to ``images``. D gets
        a copy of ``images``: a D that writes into its input (an in-place first
        activation, ``x.mul_(...)``) never changes the caller's tensor.

        Raises:
            LayerNotReachedError: D returned without running the feature layer.
            ValueError: the layer's output holds no tensor or lost the batch dimension.
        """
        captured: list[Any] = []

        def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
            captured.append(output)
            raise _StopForward

        handle = self.layer.register_forward_hook(hook)
        try:
            self._call(images.clone(), conditions)
        except _StopForward:
            pass
        finally:
            handle.remove()
        if not captured:
            raise LayerNotReachedError(
                f"feature_layer {self.layer_name!r}: D's forward pass finished without "
                "running this layer. Choose a layer D actually calls (see "
                "discinvert.list_layers(D, example_images))."
            )
        tensor = first_tensor(captured[0])
        if tensor is None:
            raise ValueError(
                f"feature_layer {self.layer_name!r}: expected the layer to output a tensor "
                f"(or a tuple starting with one), got {type(captured[0]).__name__}."
            )
        batch = images.shape[0]
        if tensor.dim() == 0 or tensor.shape[0] != batch:
            raise ValueError(
                f"feature_layer {self.layer_name!r}: expected an output with batch "
                f"dimension {batch} first, got shape {tuple(tensor.shape)}."
            )
        return tensor.reshape(batch, -1)


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


def layer_calls(tap: FeatureTap, images: torch.Tensor, conditions: torch.Tensor | None = None) -> int | None:
    """How many times one full forward pass of D on ``images`` runs the feature layer.

    A module D runs several times (one activation shared by every block) has no single
    output to read. The count runs D to the end, so it runs on a deep copy of D where D
    can be copied: the user's D never computes past the feature layer, and whatever D's
    later layers change (attributes, buffers replaced through ``.data``) happens to the
    copy. A D that cannot be deep-copied (it holds a lock, a file or a CUDA stream) is
    counted on itself, as :func:`discinvert.list_layers` does: the caller's
    :func:`discinvert.guard.frozen` puts back its flags and any buffer a forward pass
    changed. The check is never skipped. Call it under :func:`~discinvert.guard.frozen`
    and ``torch.no_grad()``.

    Returns:
        The number of calls (a D that fails after the feature layer counts the calls made
        before it failed).
    """
    try:
        duplicate = copy.deepcopy(tap.discriminator)
        layer = duplicate.get_submodule(tap.layer_name)
    except Exception as error:  # noqa: BLE001 - the user's D may hold uncopyable objects
        logger.info(
            "counting the calls of feature layer %r on D itself: D cannot be deep-copied (%s: %s)",
            tap.layer_name, type(error).__name__, error,
        )
        duplicate, layer = tap.discriminator, tap.layer
    calls = [0]

    def hook(_module: nn.Module, _inputs: Any, _output: Any) -> None:
        calls[0] += 1

    handle = layer.register_forward_hook(hook)
    try:
        FeatureTap(duplicate, tap.layer_name, layer, conditioning=tap.conditioning)._call(images.clone(), conditions)
    except Exception:  # noqa: BLE001 - the user's D past the feature layer; its first calls are counted
        pass
    finally:
        handle.remove()
    return calls[0]
