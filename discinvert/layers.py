"""Find the discriminator's layers by name, and list them for the user.

A feature layer is named by its dotted path in ``D.named_modules()`` (``"main.9"``,
``"blocks.3.act"``, or a bare index ``"8"`` for a top-level ``nn.Sequential``), or
handed over as the submodule itself. Several layers (a list of such names or modules) make
one feature vector: their outputs flattened and concatenated in the order given, as pSp
reads a pyramid of an encoder's depths (:func:`resolve_layers`). A layer whose output for one
image depends on the other images in its batch (after a minibatch standard deviation) cannot be one:
:func:`batch_dependence` finds such layers, :func:`list_layers` marks them and
:func:`suggest_feature_layers` passes them over.
"""

from __future__ import annotations

import contextlib
import difflib
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from discinvert.guard import frozen

__all__ = ["BATCH_TOLERANCE", "BatchDependence", "FeatureLayer", "LayerInfo", "batch_dependence", "batch_permutation",
           "first_tensor", "list_layers", "resolve_layer", "resolve_layers", "suggest_feature_layers"]

logger = logging.getLogger(__name__)

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
        batch_dependent: whether the layer's output for one image changes with the other images in
            its batch (it does after a minibatch standard deviation layer, which appends the batch's
            spread as a feature map; see :func:`batch_dependence`). Such a layer would give an image
            another code in another batch: ``fit_inverter`` refuses it, and
            :func:`suggest_feature_layers` never suggests it. ``None`` without an example of at least
            2 inputs, for a layer whose output has no row per input (D's head when it scores the whole
            batch) or that was not reached, and when D failed on the rearranged batch.
    """

    name: str
    type: str
    output_shape: tuple[int, ...] | None
    num_parameters: int
    calls: int | None = None
    batch_dependent: bool | None = None

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


BATCH_TOLERANCE = 1e-4
"""A layer's output for an image "depends on the batch" when rearranging the batch moves some value of it by
more than this fraction of the output's largest magnitude (at least 8 machine epsilons of its dtype, for half
precision): far above the float noise of another batch size in float32 (none at all on the CPU for the zoo's
DCGAN; kernels chosen by batch size round differently by a few float32 epsilons, 1.2e-7, with TF32 off), below
what an untrained minibatch standard deviation layer moves the next layer's output (about 1.5e-3 in
``tests/test_batch_independence.py`` before its statistic's weights are scaled up; a trained D leans on the
statistic far more)."""

_SUMMARY_VALUES = 16384
"""Values per image compared for each layer: all of them up to this many, else as many evenly spaced ones
(and the image's mean over all of them), which bounds the memory the check holds for a large D."""


@dataclass(frozen=True)
class BatchDependence:
    """Which of a model's layers give an image an output that depends on the other images in its batch.

    Found by :func:`batch_dependence`. Only layers whose output held one row per image in every
    arrangement of the batch are compared (not D's head when it returns one score per batch, nor
    modules the run never reached).

    Attributes:
        order: the compared layers, in the order their first call finished in the batch as given.
        dependent: those of them whose output for some image changed when the batch was
            rearranged (any of their calls, for a module that runs several times).
        calls: how many times each compared layer ran in the batch as given.
        output_dependent: whether the run's own result (e.g. the feature tap's features) changed;
            ``None`` when it returned no tensor with one row per image, or when it changed between
            two runs of the same batch (random, so batch dependence cannot be told apart).
        stochastic: compared layers whose output changed between two runs of the batch as given
            (noise drawn in the forward pass) and that a rearranged batch moved no more than
            :data:`NOISE_FACTOR` times as far: random, not dependent.
    """

    order: tuple[str, ...]
    dependent: frozenset[str]
    calls: dict[str, int]
    output_dependent: bool | None
    stochastic: frozenset[str] = frozenset()

    def of(self, name: str) -> bool | None:
        """Whether layer ``name``'s output depends on the batch; ``None`` where it was not compared or is random."""
        return (name in self.dependent) if name in self.calls and name not in self.stochastic else None

    @property
    def first_dependent(self) -> str | None:
        """The first layer to finish whose output depends on the batch (``None``: none)."""
        return next((name for name in self.order if name in self.dependent), None)

    def last_per_image(self, model: nn.Module, before: str | None) -> str | None:
        """The deepest layer that finished before ``before`` (all compared layers for ``None``) with per-image
        output, that runs once and is no dropout, identity, reshaping or embedding module; ``None``: none."""
        modules = dict(model.named_modules(remove_duplicate=False))
        found = None
        for name in self.order:
            if name == before:
                break
            if (name and name not in self.dependent and self.calls[name] == 1
                    and not isinstance(modules.get(name), _PASS_THROUGH)):
                found = name
        return found


def batch_permutation(batch: int) -> torch.Tensor:
    """A fixed rearrangement of ``batch`` rows that moves every image into new company.

    For 8 rows, ``[4, 0, 7, 3, 2, 5, 1, 6]``: every group of 2 or 4 images (consecutive, or every 2nd or
    4th, as StyleGAN's minibatch standard deviation groups them) gets other members, in the whole
    permuted batch and in each of its halves.
    """
    order = torch.randperm(batch, generator=torch.Generator().manual_seed(0))
    return order.flip(0) if torch.equal(order, torch.arange(batch)) else order


def _summary(tensor: torch.Tensor) -> torch.Tensor:
    """``(N, S)``: each row's values (float32, float64 for float64 outputs), or :data:`_SUMMARY_VALUES` of them
    evenly spaced and their mean."""
    dtype = torch.float64 if tensor.dtype == torch.float64 else torch.float32
    flat = tensor.detach().reshape(tensor.shape[0], -1).to(dtype)
    if flat.shape[1] <= _SUMMARY_VALUES:
        return flat.clone()  # a later in-place layer must not change what was kept
    picks = torch.linspace(0, flat.shape[1] - 1, _SUMMARY_VALUES, device=flat.device).long()
    return torch.cat([flat[:, picks], flat.mean(1, keepdim=True)], dim=1)


def _tolerance(dtype: torch.dtype) -> float:
    return max(BATCH_TOLERANCE, 8 * torch.finfo(dtype).eps) if dtype.is_floating_point else 0.0


def _gap(a: torch.Tensor, b: torch.Tensor) -> float:
    """The largest difference of ``a`` and ``b`` relative to their largest finite magnitude (NaN equals NaN;
    ``inf`` where only one of them is NaN)."""
    if not torch.equal(a.isnan(), b.isnan()):
        return math.inf
    same = (a == b) | a.isnan()  # equal infinities too
    gap = (a - b).abs().masked_fill(same, 0.0)
    if not gap.numel():
        return 0.0
    finite = torch.cat([a[a.isfinite()].abs(), b[b.isfinite()].abs(), a.new_zeros(1)])
    peak = float(finite.max())
    largest = float(gap.max())
    return largest / peak if peak > 0 else (math.inf if largest > 0 else 0.0)


def _differs(a: torch.Tensor, b: torch.Tensor, tolerance: float) -> bool:
    """Whether ``a`` and ``b`` differ by more than ``tolerance`` of their largest finite magnitude (NaN equals NaN)."""
    return _gap(a, b) > tolerance


NOISE_FACTOR = 4.0
"""For a layer that draws noise (its output moves between two runs of the same batch): it depends on the batch
when a rearranged batch moves it more than this many times as far as the noise alone did."""


@contextlib.contextmanager
def _full_float32() -> Iterator[None]:
    """Float32 matrix products and convolutions without TF32, so another batch size moves values by float noise only."""
    precision, cudnn = torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32
    try:
        torch.set_float32_matmul_precision("highest")
        torch.backends.cudnn.allow_tf32 = False
        yield
    finally:
        torch.set_float32_matmul_precision(precision)
        torch.backends.cudnn.allow_tf32 = cudnn


def batch_dependence(model: nn.Module, run: Callable[[torch.Tensor], Any], batch: int) -> BatchDependence:
    """Find the layers of ``model`` whose output for one image depends on the other images in its batch.

    ``run(rows)`` runs the model on the rows ``rows`` (a 1-D ``int64`` tensor) of the caller's batch of
    ``batch >= 2`` inputs, and may return a tensor with one row per input to compare as well. It runs on
    the batch as given, on the batch permuted (:func:`batch_permutation`), on the permuted batch split
    into two halves, and on the batch as given again: four forward passes over ``batch`` inputs in all.
    A layer whose output changes between the two runs of the batch as given draws noise in its forward
    pass: it depends on the batch only when a rearranged batch moves it :data:`NOISE_FACTOR` times as far
    as the noise does, else it is marked stochastic. Each layer's output for each input
    (every call of it) is compared with the batch as given: it depends on the batch when a value moved by
    more than :data:`BATCH_TOLERANCE` of the output's largest magnitude. A minibatch standard deviation
    layer (the spread of the batch appended as a feature map) does; BatchNorm and InstanceNorm in eval mode
    do not. TF32 is off meanwhile (restored after). Call it under :func:`discinvert.guard.frozen` and
    ``torch.no_grad()``; its hooks are removed before it returns or raises.

    Raises:
        ValueError: ``batch`` is below 2.
        Exception: whatever ``run`` raises.
    """
    if batch < 2:
        raise ValueError(f"batch: expected at least 2 inputs to rearrange, got {batch}.")
    permutation = batch_permutation(batch)
    arrangements = [[torch.arange(batch)], [permutation], [permutation[: batch // 2], permutation[batch // 2 :]],
                    [torch.arange(batch)]]  # the last: the batch as given again, to tell noise from dependence
    captured: dict[Any, list[torch.Tensor | None]] = {}
    dtypes: dict[Any, torch.dtype] = {}
    rows_now = [0]

    def keep(name: Any, output: Any) -> None:
        tensor = first_tensor(output)
        per_image = tensor is not None and tensor.dim() >= 1 and tensor.shape[0] == rows_now[0]
        captured.setdefault(name, []).append(_summary(tensor) if per_image else None)  # type: ignore[arg-type]
        if per_image:
            dtypes[name] = tensor.dtype  # type: ignore[union-attr]

    def make_hook(name: str) -> Callable[..., None]:
        def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
            keep(name, output)

        return hook

    runs: list[list[tuple[torch.Tensor, dict[Any, list[torch.Tensor | None]]]]] = []
    handles = [module.register_forward_hook(make_hook(name)) for name, module in model.named_modules()]
    try:
        with _full_float32():
            for chunks in arrangements:
                runs.append([])
                for rows in chunks:
                    captured = {}
                    rows_now[0] = len(rows)
                    result = run(rows)
                    if result is not None:
                        keep(None, result)
                    runs[-1].append((rows, captured))
    finally:
        for handle in handles:
            handle.remove()
    return _compare(runs, dtypes, batch)


def _assemble(chunks: list[tuple[torch.Tensor, dict[Any, list[torch.Tensor | None]]]], name: Any,
              batch: int) -> list[torch.Tensor] | None:
    """One arrangement's outputs of layer ``name`` per call, rows back in the batch's order; ``None``: not per image."""
    counts = {len(captured.get(name, [])) for _, captured in chunks}
    if len(counts) != 1 or 0 in counts:
        return None
    calls = []
    for call in range(counts.pop()):
        parts = [(rows, captured[name][call]) for rows, captured in chunks]
        if any(part is None for _, part in parts) or len({part.shape[1] for _, part in parts}) != 1:  # type: ignore[union-attr]
            return None
        whole = parts[0][1].new_empty((batch, parts[0][1].shape[1]))  # type: ignore[union-attr]
        for rows, part in parts:
            whole[rows.to(whole.device)] = part  # type: ignore[assignment]
        calls.append(whole)
    return calls


def _compare(runs: list[list[tuple[torch.Tensor, dict[Any, list[torch.Tensor | None]]]]],
             dtypes: dict[Any, torch.dtype], batch: int) -> BatchDependence:
    reference = runs[0][0][1]
    order, dependent, stochastic, calls, output = [], set(), set(), {}, None
    for name in reference:  # dict order: the order their first calls finished
        arranged = [_assemble(chunks, name, batch) for chunks in runs]
        if any(a is None for a in arranged) or len({len(a) for a in arranged}) != 1:  # type: ignore[arg-type]
            continue
        tolerance = _tolerance(dtypes[name])
        *compared, again = arranged
        noise = max(_gap(other, first) for other, first in zip(again, compared[0]))  # type: ignore[arg-type]
        moved = max(_gap(other, first) for rearranged in compared[1:]
                    for other, first in zip(rearranged, compared[0]))  # type: ignore[arg-type]
        noisy = noise > tolerance
        # A noisy layer depends on the batch only when rearranging moves it far more than its noise does.
        differs = moved > (NOISE_FACTOR * noise if noisy else tolerance)
        if name is None:
            output = differs if differs or not noisy else None
            continue
        order.append(name)
        calls[name] = len(compared[0])  # type: ignore[arg-type]
        if differs:
            dependent.add(name)
        elif noisy:
            stochastic.add(name)
    return BatchDependence(tuple(order), frozenset(dependent), calls, output, frozenset(stochastic))


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
        runs once, in eval mode without gradients, and comes back unchanged; with an
        example of at least 2 inputs it runs four times more on the batch rearranged (and as given),
        to mark the layers whose outputs depend on the batch (``LayerInfo.batch_dependent``).

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
    dependence = None if example_input is None else _example_dependence(model, example_input, call)
    return [
        LayerInfo(
            name=name,
            type=type(module).__name__,
            output_shape=shapes.get(name),
            num_parameters=sum(p.numel() for p in module.parameters()),
            calls=None if example_input is None else calls.get(name, 0),
            batch_dependent=None if dependence is None else dependence.of(name),
        )
        for name, module in model.named_modules()
    ]


def _example_dependence(model: nn.Module, example_input: torch.Tensor | tuple[Any, ...],
                        call: Callable[[nn.Module, Any], Any] | None) -> BatchDependence | None:
    """:func:`batch_dependence` on ``example_input`` (every argument with the images' batch size
    rearranged alike); ``None`` for a batch of fewer than 2 or when the model fails on a rearranged one."""
    images = first_tensor(example_input)
    batch = 0 if images is None or images.dim() == 0 else images.shape[0]
    if batch < 2:
        return None

    def pick(value: Any, rows: torch.Tensor) -> Any:
        if isinstance(value, torch.Tensor) and value.dim() >= 1 and value.shape[0] == batch:
            return value[rows.to(value.device)]
        return value

    def run(rows: torch.Tensor) -> Any:
        if isinstance(example_input, tuple):
            arguments = tuple(pick(value, rows) for value in example_input)
            return call(model, arguments) if call is not None else model(*arguments)
        return call(model, pick(example_input, rows)) if call is not None else model(pick(example_input, rows))

    try:
        with frozen(model), torch.no_grad():
            return batch_dependence(model, run, batch)
    except Exception as error:  # noqa: BLE001 - the user's model on a smaller or rearranged batch
        logger.info("could not check which layers depend on the batch: %s failed on a rearranged batch of "
                    "the example (%s: %s)", type(model).__name__, type(error).__name__, error)
        return None


def _image_blind(model: nn.Module, example_input: torch.Tensor | tuple[Any, ...],
                 call: Callable[[nn.Module, Any], Any] | None) -> frozenset[str]:
    """For :func:`suggest_feature_layers` on a D taking more than images (``D(img, c)``): the modules whose output
    stays the same when each row gets another image and keeps its other arguments (a conditional D's label
    embedding, which reads ``c`` only). Two more passes; empty for a lone tensor, images that are all alike, or a
    model that fails on the rearranged images."""
    if not isinstance(example_input, tuple) or not example_input or not isinstance(example_input[0], torch.Tensor):
        return frozenset()
    images = example_input[0]
    other = images.roll(1, dims=0) if images.dim() >= 1 else images
    if torch.equal(other, images):
        return frozenset()
    seen: list[dict[str, torch.Tensor]] = []

    def hook_for(name: str) -> Callable[..., None]:
        def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
            tensor = first_tensor(output)
            if tensor is not None and tensor.dim() >= 1 and name not in seen[-1]:
                seen[-1][name] = _summary(tensor)

        return hook

    handles = [module.register_forward_hook(hook_for(name)) for name, module in model.named_modules() if name]
    try:
        with frozen(model), torch.no_grad():
            for first in (images, other):
                seen.append({})
                arguments = (first, *example_input[1:])
                call(model, arguments) if call is not None else model(*arguments)
    except Exception as error:  # noqa: BLE001 - the user's model on rearranged images
        logger.info("could not check which layers read the images: %s failed on them rearranged (%s: %s)",
                    type(model).__name__, type(error).__name__, error)
        return frozenset()
    finally:
        for handle in handles:
            handle.remove()
    return frozenset(name for name, value in seen[0].items()
                     if name in seen[1] and value.shape == seen[1][name].shape and torch.equal(value, seen[1][name]))


_PASS_THROUGH = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.Identity, nn.Flatten,
                 nn.Unflatten, nn.Embedding)
"""Leaf types never suggested: they copy, reshape or drop values, or read labels rather than images."""


def _last_per_resolution(order: list[tuple[str, tuple[int, ...]]], calls: dict[str, int],
                         modules: dict[str, nn.Module], mixed: frozenset[str], head_size: int) -> dict[tuple[int, ...], str]:
    """For :func:`suggest_feature_layers`: output shape after the channels → the last module to finish with it
    before the head, in the order those modules finish; modules that ran more than once, pass-through modules,
    batch-dependent ones (``mixed``) and modules inside a block that counts with its own output are left out."""
    eligible: list[tuple[str, tuple[int, ...]]] = []
    for name, shape in order:
        per_sample = 1
        for size in shape[1:]:
            per_sample *= size
        if per_sample <= head_size:
            break  # the head: this module and every one after it
        if calls[name] != 1 or isinstance(modules[name], _PASS_THROUGH) or name in mixed:
            continue
        eligible.append((name, shape))
    names = {name for name, _ in eligible}
    groups: dict[tuple[int, ...], str] = {}
    for name, shape in eligible:
        parts = name.split(".")
        if any(".".join(parts[:end]) in names for end in range(1, len(parts))):
            continue  # inside a block that counts with its own output: read the block, not its branch
        key = shape[2:]
        groups.pop(key, None)  # re-insert: dict order is then the order the groups' last modules finished
        groups[key] = name
    return groups


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
    D comes back unchanged) and its modules are recorded in the order they finish: a container after
    its children, so a residual block that adds its skip in ``forward()`` counts with its own output
    (the block, not its branch's last conv), while a container that hands on its last child's output
    unchanged (a ``Sequential``) keeps that child's name; a module inside a block that counts is not
    offered. The head is every module from the first one
    whose output has as few values per sample as D's output; modules that run more than once, whose
    output for an image depends on the other images in the batch (``LayerInfo.batch_dependent``,
    checked on ``example_input`` rearranged: three more passes), modules of a D taking more than images whose
    output does not change with the image (a conditional D's label embedding; two more passes), and dropout,
    identity, flatten and embedding modules, are skipped. The rest are grouped by the shape of their output after the
    channel dimension (the spatial size of ``(N, C, H, W)`` maps); each group offers its last module
    to finish (a block's closing activation, or the block), and the ``depths`` groups whose last
    modules finish latest are returned, in the order they finish. With
    ``depths=1`` that is the paper's choice, D's last hidden layer (``["main.7"]`` on the reference
    DCGAN); ``depths=2`` gives the two-depth reading of ``docs/byo_gan.md`` ("Several depths";
    ``["main.4", "main.7"]``). Pass the list to :func:`discinvert.fit_inverter` as ``feature_layer``.

    Args:
        model: the discriminator D.
        example_input: a batch of at least 2 images D accepts, e.g. ``G(z)``, or a tuple of
            positional arguments starting with one (only outputs with that batch size count).
        depths: how many resolutions to read (at least 1); fewer come back when D has fewer.
        call: how to call the model, as in :func:`list_layers`.

    Raises:
        ValueError: ``depths`` is not a positive int; ``example_input`` holds no batch of at least
            2; D runs no module once before its head; ``model`` is not an ``nn.Module``.
    """
    _check_model(model)
    if isinstance(depths, bool) or not isinstance(depths, int) or depths < 1:
        raise ValueError(f"depths: expected a positive int, got {depths!r}.")
    images = first_tensor(example_input)
    batch = None if images is None or images.dim() == 0 else images.shape[0]
    if batch is None or batch < 2:
        raise ValueError(f"example_input: expected a batch of at least 2 images first, got "
                         f"{None if images is None else tuple(images.shape)}.")
    order: list[tuple[str, tuple[int, ...]]] = []  # modules with a batch-first output, in the order they ended
    calls: dict[str, int] = {}
    final: list[Any] = []
    handles = []
    outputs: list[tuple[torch.Tensor, int]] = []  # every output seen, with its version (kept alive: identity counts)

    def make_hook(name: str, container: bool) -> Callable[..., None]:
        def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
            calls[name] = calls.get(name, 0) + 1
            tensor = first_tensor(output)
            if tensor is None:
                return
            # a child's output, unchanged: the same tensor, not written in place since (NVIDIA's blocks end with
            # ``y.add_(x)``, handing on their skip's output tensor with the branch added to it)
            handed_on = container and any(tensor is seen and tensor._version == version for seen, version in outputs)
            outputs.append((tensor, tensor._version))
            if calls[name] == 1 and not handed_on and tensor.dim() >= 1 and tensor.shape[0] == batch:
                order.append((name, tuple(tensor.shape)))

        return hook

    try:
        for name, module in model.named_modules():
            if name and ".parametrizations." not in f".{name}.":
                container = any(True for _ in module.children())
                handles.append(module.register_forward_hook(make_hook(name, container)))
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
    dependence = _example_dependence(model, example_input, call)
    mixed = (frozenset() if dependence is None else dependence.dependent) | _image_blind(model, example_input, call)
    output = first_tensor(final[0])
    head_size = 1 if output is None or output.dim() == 0 else max(1, output[0].numel())
    groups = _last_per_resolution(order, calls, dict(model.named_modules()), mixed, head_size)
    if not groups:
        raise ValueError(
            f"{type(model).__name__}: found no module that runs once before D's head; choose the "
            "feature layer by hand (see discinvert.list_layers(D, example_images))."
        )
    return list(groups.values())[-depths:]
