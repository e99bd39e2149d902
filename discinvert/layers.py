"""Find the discriminator's layers by name, and list them for the user.

A feature layer is named by its dotted path in ``D.named_modules()`` (``"main.9"``,
``"blocks.3.act"``, or a bare index ``"8"`` for a top-level ``nn.Sequential``), or
handed over as the submodule itself. Several layers (a list of such names or modules) make
one feature vector: their outputs flattened and concatenated in the order given, as pSp
reads a pyramid of an encoder's depths (:func:`resolve_layers`).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from discinvert.guard import frozen

__all__ = ["FeatureLayer", "LayerInfo", "first_tensor", "list_layers", "resolve_layer", "resolve_layers",
           "suggest_feature_layers"]

FeatureLayer = str | nn.Module | Sequence[str | nn.Module]
"""What ``feature_layer`` accepts: one layer (a dotted name or the submodule), or a list of them."""


@dataclass(frozen=True)
class LayerInfo:
    """One submodule of a model.

    Attributes:
        name: dotted name from ``named_modules()`` (``""`` is the model itself).
        type: the module's class name.
        output_shape: shape of its first output for the example input, batch
            dimension included; ``None`` when no example was given or the layer
            was not reached.
        num_parameters: parameters held directly or by its children.
        calls: how many times the example forward pass ran it (``None`` without an
            example). A feature layer must run exactly once: a module shared by several
            blocks (one activation reused after each) is refused by ``fit_inverter``.
    """

    name: str
    type: str
    output_shape: tuple[int, ...] | None
    num_parameters: int
    calls: int | None = None

    @property
    def features(self) -> int | None:
        """Flattened feature size per sample, or ``None`` without a shape."""
        if self.output_shape is None or len(self.output_shape) == 0:
            return None
        size = 1
        for dim in self.output_shape[1:]:
            size *= dim
        return size


def resolve_layer(model: nn.Module, layer: str | nn.Module) -> tuple[str, nn.Module]:
    """Return ``(name, module)`` for ``layer`` inside ``model``.

    Raises:
        ValueError: ``layer`` names no submodule of ``model`` (the message lists close
            matches and points to :func:`list_layers`), or a module was given that is
            not part of ``model``, or ``layer`` is neither a string nor a module.
    """
    if isinstance(layer, nn.Module):
        for name, module in model.named_modules(remove_duplicate=False):
            if module is layer:
                return name, module
        raise ValueError(
            f"feature_layer: the given {type(layer).__name__} module is not a submodule of "
            f"the discriminator ({type(model).__name__}); pass one of its submodules or its "
            "dotted name (see discinvert.list_layers(D))."
        )
    if not isinstance(layer, str):
        raise ValueError(
            "feature_layer: expected a dotted layer name (str) or a submodule of the "
            f"discriminator, got {type(layer).__name__}."
        )
    modules = dict(model.named_modules(remove_duplicate=False))
    if layer in modules:
        return layer, modules[layer]
    names = [name for name in modules if name]
    close = difflib.get_close_matches(layer, names, n=5, cutoff=0.5)
    hint = f" Close matches: {', '.join(repr(c) for c in close)}." if close else ""
    raise ValueError(
        f"feature_layer: {layer!r} is not a layer of the discriminator "
        f"({type(model).__name__}).{hint} Call discinvert.list_layers(D) to see all "
        "layer names with their output shapes."
    )


def resolve_layers(model: nn.Module, layer: FeatureLayer) -> tuple[str | tuple[str, ...], tuple[nn.Module, ...]]:
    """Return ``(name, modules)`` for one feature layer or a list of them inside ``model``.

    ``name`` is the dotted name (a ``str``) for one layer and a tuple of names, in the
    order given, for several; a list of one layer is that layer. ``modules`` holds the
    submodules in the same order.

    Raises:
        ValueError: what :func:`resolve_layer` raises for any entry; an empty list; the
            same module listed twice (under one name or two).
    """
    if isinstance(layer, (str, nn.Module)):
        name, module = resolve_layer(model, layer)
        return name, (module,)
    if not isinstance(layer, Sequence) or isinstance(layer, bytes):
        raise ValueError(
            "feature_layer: expected a dotted layer name (str), a submodule of the discriminator, "
            f"or a list of them, got {type(layer).__name__}."
        )
    if len(layer) == 0:
        raise ValueError("feature_layer: expected at least one layer, got an empty list.")
    resolved = [resolve_layer(model, entry) for entry in layer]
    seen: dict[int, str] = {}
    for name, module in resolved:
        if id(module) in seen:
            raise ValueError(
                f"feature_layer: expected distinct layers, got {seen[id(module)]!r}"
                + (" twice." if seen[id(module)] == name else f" and {name!r}, two names of one module.")
            )
        seen[id(module)] = name
    if len(resolved) == 1:
        return resolved[0][0], (resolved[0][1],)
    return tuple(name for name, _ in resolved), tuple(module for _, module in resolved)


def first_tensor(output: Any) -> torch.Tensor | None:
    """The tensor a layer's output stands for: itself, or the first tensor of a tuple/list."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)):
        for item in output:
            found = first_tensor(item)
            if found is not None:
                return found
    return None


def _check_model(model: object) -> None:
    if not isinstance(model, nn.Module):
        hint = " (a name: pass the module itself)" if isinstance(model, str) else ""
        raise ValueError(f"model: expected a torch.nn.Module (usually the discriminator D), got "
                         f"{type(model).__name__} {model!r:.80}{hint}.")


def list_layers(
    model: nn.Module,
    example_input: torch.Tensor | tuple[Any, ...] | None = None,
    *,
    call: Callable[[nn.Module, Any], Any] | None = None,
) -> list[LayerInfo]:
    """List a model's layers with types and, given an example input, output shapes.

    Use it to choose ``feature_layer`` for :func:`discinvert.fit_inverter`: the paper
    takes the discriminator's last hidden layer.

    Args:
        model: usually the discriminator D.
        example_input: a batch D accepts, e.g. ``G(z)`` of shape ``(N, C, H, W)``, or a
            tuple of positional arguments for a D taking several (images, labels).
        call: how to call the model on ``example_input`` when the default
            (``model(example_input)`` or ``model(*example_input)`` for a tuple) does
            not fit.

    Returns:
        One :class:`LayerInfo` per submodule, in ``named_modules()`` order. The model
        runs once, in eval mode without gradients, and comes back unchanged.

    Raises:
        ValueError: ``model`` is not an ``nn.Module`` (e.g. the string ``"D"``).
    """
    _check_model(model)
    shapes: dict[str, tuple[int, ...]] = {}
    calls: dict[str, int] = {}
    if example_input is not None:
        handles = []

        def make_hook(name: str) -> Callable[..., None]:
            def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
                calls[name] = calls.get(name, 0) + 1
                tensor = first_tensor(output)
                if tensor is not None and name not in shapes:
                    shapes[name] = tuple(tensor.shape)

            return hook

        try:
            for name, module in model.named_modules():
                handles.append(module.register_forward_hook(make_hook(name)))
            with frozen(model), torch.no_grad():
                if call is not None:
                    call(model, example_input)
                elif isinstance(example_input, tuple):
                    model(*example_input)
                else:
                    model(example_input)
        finally:
            for handle in handles:
                handle.remove()
    return [
        LayerInfo(
            name=name,
            type=type(module).__name__,
            output_shape=shapes.get(name),
            num_parameters=sum(p.numel() for p in module.parameters()),
            calls=None if example_input is None else calls.get(name, 0),
        )
        for name, module in model.named_modules()
    ]


_PASS_THROUGH = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.Identity, nn.Flatten,
                 nn.Unflatten, nn.Embedding)
"""Leaf types never suggested: they copy, reshape or drop values, or read labels rather than images."""


def suggest_feature_layers(
    model: nn.Module,
    example_input: torch.Tensor | tuple[Any, ...],
    *,
    depths: int = 1,
    call: Callable[[nn.Module, Any], Any] | None = None,
) -> list[str]:
    """D's layers to read: the last layer at each of the ``depths`` deepest resolutions before D's head.

    A heuristic for a D you do not know, checked on the reference DCGAN and the test zoo's GANs
    (``tests/test_multi_depth.py``). D runs once on ``example_input`` (eval mode, no gradients,
    D comes back unchanged) and the leaf modules are recorded in the order they run. The head is
    every leaf from the first one whose output has as few values per sample as D's output; leaves
    that run more than once, and dropout, identity, flatten and embedding modules, are skipped. The
    rest are grouped by the shape of their output after the channel dimension (the spatial size of
    ``(N, C, H, W)`` maps); each group offers its last leaf to run (a block's closing activation), and
    the ``depths`` groups whose last leaves run latest are returned, in the order they run. With
    ``depths=1`` that is the paper's choice, D's last hidden layer (``["main.7"]`` on the reference
    DCGAN); ``depths=2`` gives the two-depth reading of ``docs/multi_depth.md``
    (``["main.4", "main.7"]``). Pass the list to :func:`discinvert.fit_inverter` as ``feature_layer``.

    Args:
        model: the discriminator D.
        example_input: a batch of at least 2 images D accepts, e.g. ``G(z)``, or a tuple of
            positional arguments starting with one (only outputs with that batch size count).
        depths: how many resolutions to read (at least 1); fewer come back when D has fewer.
        call: how to call the model, as in :func:`list_layers`.

    Raises:
        ValueError: ``depths`` is not a positive int; ``example_input`` holds no batch of at least
            2; D runs no leaf module before its head; ``model`` is not an ``nn.Module``.
    """
    _check_model(model)
    if isinstance(depths, bool) or not isinstance(depths, int) or depths < 1:
        raise ValueError(f"depths: expected a positive int, got {depths!r}.")
    images = first_tensor(example_input)
    batch = None if images is None or images.dim() == 0 else images.shape[0]
    if batch is None or batch < 2:
        raise ValueError(f"example_input: expected a batch of at least 2 images first, got "
                         f"{None if images is None else tuple(images.shape)}.")
    order: list[tuple[str, tuple[int, ...]]] = []  # leaves with a batch-first output, in the order they ran
    calls: dict[str, int] = {}
    final: list[Any] = []
    handles = []

    def make_hook(name: str) -> Callable[..., None]:
        def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
            calls[name] = calls.get(name, 0) + 1
            tensor = first_tensor(output)
            if calls[name] == 1 and tensor is not None and tensor.dim() >= 1 and tensor.shape[0] == batch:
                order.append((name, tuple(tensor.shape)))

        return hook

    try:
        for name, module in model.named_modules():
            if name and not any(True for _ in module.children()) and ".parametrizations." not in f".{name}.":
                handles.append(module.register_forward_hook(make_hook(name)))
        with frozen(model), torch.no_grad():
            if call is not None:
                final.append(call(model, example_input))
            elif isinstance(example_input, tuple):
                final.append(model(*example_input))
            else:
                final.append(model(example_input))
    finally:
        for handle in handles:
            handle.remove()
    output = first_tensor(final[0])
    head_size = 1 if output is None or output.dim() == 0 else max(1, output[0].numel())
    modules = dict(model.named_modules())
    groups: dict[tuple[int, ...], str] = {}
    for name, shape in order:
        per_sample = 1
        for size in shape[1:]:
            per_sample *= size
        if per_sample <= head_size:
            break  # the head: this leaf and every one after it
        if calls[name] != 1 or isinstance(modules[name], _PASS_THROUGH):
            continue
        key = shape[2:]
        groups.pop(key, None)  # re-insert: dict order is then the order the groups' last leaves ran
        groups[key] = name
    if not groups:
        raise ValueError(
            f"{type(model).__name__}: found no leaf module that runs once before D's head; choose the "
            "feature layer by hand (see discinvert.list_layers(D, example_images))."
        )
    return list(groups.values())[-depths:]
