"""What every benchmark shares: the command it prints, devices, timing, doc sections, data, and G and D run as a fit runs them.

Scripts run from the repository root as ``python -m benchmarks.GROUP.NAME`` (``benchmarks/README.md``
lists them); nothing here or in them edits ``sys.path``.

- **command line**: :func:`command_line`, the ``python -m ...`` command a doc quotes;
- **a run's outputs**: :func:`write_json`, :func:`settings_of`, :func:`settings_line`, :func:`finish_run`;
- **devices and timing**: :func:`pick_device`, :func:`describe_device`, :func:`sync`, :func:`timed`,
  :func:`median_seconds`, :func:`reset_peak`, :func:`peak_memory_mb`;
- **docs**: :func:`write_marked_section` (one section per device in one page);
- **training runs**: :func:`training_tensor` (the Fashion-MNIST train split on the device),
  :func:`out_of_time`, :func:`finite_or_none`;
- **G and D as fit_inverter runs them**: :class:`LayerFeatures` (D up to its feature layer, with an
  early exit), :func:`autocast` and :func:`channels_last_copy` (the fit's two generation levers).
  These are local copies of what the library does inside ``fit_inverter``, so that no benchmark
  imports the library's private hook and lever helpers (``benchmarks/README.md``, "Internal surface").
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import platform
import resource
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from importlib.machinery import ModuleSpec
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from discinvert.zoo.datasets import load_fashion_mnist, to_model_range


# --------------------------------------------------------------------------- command line
def command_line(spec: ModuleSpec | None, argv: list[str] | None) -> str:
    """The command that ran this script, quoted so it can be pasted back into a shell.

    Args:
        spec: the script's ``__spec__``: ``python -m benchmarks.paper.table1 ...`` for a script run
            with ``-m`` or imported (a test calling ``main(argv)``); ``None`` (run by path) gives
            ``python PATH ...``.
        argv: the arguments ``main`` was given; ``None`` means ``sys.argv[1:]``.
    """
    head = ["-m", spec.name] if spec is not None else [sys.argv[0]]
    return "python " + " ".join(shlex.quote(a) for a in [*head, *(argv if argv is not None else sys.argv[1:])])


# --------------------------------------------------------------------------- a run's outputs
def write_json(path: Path, data: Any) -> None:
    """Write a run's results as indented JSON (with a final newline), creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n")


def settings_of(args: Any, skip: tuple[str, ...] = ("out", "json", "data_root")) -> dict[str, Any]:
    """A run's parsed options as JSON-able settings (paths as text), without where it writes and reads."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k not in skip}


def parse_settings(items: list[str], option: str = "--setting") -> dict[str, Any]:
    """``["perceptual=\"encoder\"", "steps=300"]`` (repeatable ``KEY=JSON`` options) → ``{"perceptual": "encoder",
    "steps": 300}``; a malformed item stops the run with a message naming the option, what it expects and what came."""
    settings: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"{option}: expected KEY=JSON, got {item!r}")
        try:
            settings[key] = json.loads(value)
        except json.JSONDecodeError as error:
            raise SystemExit(f"{option}: the value of {key!r} must be JSON (strings in double quotes), "
                             f"got {value!r}: {error}") from None
    return settings


def settings_line(settings: dict[str, Any]) -> str:
    """The ``Settings: `k=v`, ...`` line under a page's table."""
    return "Settings: " + ", ".join(f"`{k}={v}`" for k, v in settings.items())


def finish_run(args: Any, argv: list[str] | None, run: Callable[[Any, list[str] | None], dict[str, Any]],
               write_page: Callable[[dict[str, Any], Path], None]) -> int:
    """Run on 2 torch threads, write ``args.json`` and the page ``args.out``, say so; the exit code (0)."""
    torch.set_num_threads(2)
    result = run(args, argv)
    write_json(args.json, result)
    write_page(result, args.out)
    print(f"wrote {args.out} and {args.json}")
    return 0


# --------------------------------------------------------------------------- devices and timing


def pick_device(choice: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU; ``cuda`` without CUDA ends the script with a message."""
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda requested but torch.cuda.is_available() is False")
    return torch.device(choice)


def describe_device(device: str | torch.device) -> str:
    """The device's name for a doc: the GPU's name, or the CPU's architecture and torch's thread count."""
    if str(device).startswith("cuda"):
        return torch.cuda.get_device_name(device)
    return f"CPU {platform.machine()}, {torch.get_num_threads()} torch threads"


def sync(device: str | torch.device) -> None:
    """Wait for queued CUDA work, so that a timer measures it (no-op on the CPU)."""
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def timed(device: str | torch.device, fn: Callable[[], object]) -> tuple[object, float]:
    """``fn()`` and its wall-clock seconds, with the device synchronised on both sides."""
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return out, time.perf_counter() - start


def median_seconds(device: str | torch.device, fn: Callable[[], object], repeats: int, *, warmups: int = 1) -> float:
    """The median wall-clock seconds of ``repeats`` calls of ``fn`` after ``warmups`` untimed ones.

    Each call is timed with the device synchronised on both sides. A warm-up lets oneDNN / cuDNN
    pick their kernels and allocators fill their caches before the timed calls.
    """
    for _ in range(warmups):
        fn()
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def reset_peak(device: str | torch.device) -> None:
    """Start a new CUDA peak-memory count (no-op on the CPU, whose peak resident size only grows)."""
    if str(device).startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()


def peak_memory_mb(device: str | torch.device) -> float:
    """Peak memory in MiB: CUDA's ``max_memory_allocated``, or the process's peak resident size on the CPU."""
    if str(device).startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --------------------------------------------------------------------------- docs
def write_marked_section(path: Path, name: str, key: str, block_lines: list[str], title: str) -> None:
    """Put ``block_lines`` between ``<!-- name:key:start/end -->`` markers in ``path``.

    Replaces that section when it exists, appends it otherwise, and creates the file with
    ``title`` when missing, so one document can hold a section per device.
    """
    start, end = f"<!-- {name}:{key}:start -->", f"<!-- {name}:{key}:end -->"
    block = "\n".join([start, *block_lines, end])
    text = path.read_text() if path.is_file() else title
    if start in text:
        head, rest = text.split(start, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


# --------------------------------------------------------------------------- training runs
def out_of_time(max_seconds: float | None, *, elapsed: float, last_epoch: float, epoch: int, epochs: int) -> bool:
    """Whether a training loop should stop after ``epoch``: another epoch as long as the last would pass
    ``max_seconds`` (``None``: never). Prints why when it stops."""
    if max_seconds is None or epoch >= epochs or elapsed + last_epoch <= max_seconds:
        return False
    print(f"stopping after epoch {epoch}: another epoch would pass --max-seconds {max_seconds}", flush=True)
    return True


def finite_or_none(value: float) -> float | None:
    """``value`` as a float, or ``None`` when it is NaN/Inf (JSON has no such numbers)."""
    value = float(value)
    return value if math.isfinite(value) else None


def training_tensor(*, seed: int, device: torch.device, data_root: Path | None, limit: int | None,
                    batch_size: int) -> torch.Tensor:
    """Seed torch and numpy, and load the Fashion-MNIST TRAIN split as ``(N, 1, 28, 28)`` in [-1, 1] on ``device``.

    The test split is never read here. Ends the script when fewer than ``batch_size`` images remain.
    """
    torch.manual_seed(seed)
    np.random.seed(seed)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    images, _ = load_fashion_mnist("train", root=data_root)
    if limit is not None:
        images = images[:limit]
    n_train = int(images.shape[0])
    if n_train < batch_size:
        raise SystemExit(f"need at least --batch-size={batch_size} images, have {n_train}")
    data = to_model_range(images).to(device)
    print(f"data: {n_train} train images, tensor {tuple(data.shape)} on {device}", flush=True)
    return data


# --------------------------------------------------------------------------- G and D as a fit runs them
class _StopForward(BaseException):
    """Ends D's forward pass at the feature layer; a ``BaseException``, so an ``except Exception`` in D cannot swallow it."""


def _first_tensor(output: Any) -> torch.Tensor | None:
    """The tensor a layer's output stands for: itself, or the first tensor of a tuple/list."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)):
        for item in output:
            found = _first_tensor(item)
            if found is not None:
                return found
    return None


class LayerFeatures:
    """``D_f``: images ``(N, ...)`` → the flattened output ``(N, F)`` of ``model``'s layer ``name``.

    Computes what ``fit_inverter`` computes for its training pairs: the model gets a copy of the
    images, a forward hook on the layer captures its output and ends the pass there (nothing after
    the layer runs), and the hook is removed in ``finally``. Grad mode is the caller's.

    Raises:
        ValueError: ``name`` is not a submodule of ``model`` (``get_submodule``'s message), or the
            forward pass ended without running the layer.
    """

    def __init__(self, model: nn.Module, name: str) -> None:
        try:
            self.layer = model.get_submodule(name)
        except AttributeError as error:
            raise ValueError(f"feature layer {name!r}: {error}; see discinvert.list_layers(model)") from None
        self.model = model
        self.name = name

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        captured: list[Any] = []

        def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
            captured.append(output)
            raise _StopForward

        handle = self.layer.register_forward_hook(hook)
        try:
            self.model(images.clone())
        except _StopForward:
            pass
        finally:
            handle.remove()
        tensor = _first_tensor(captured[0]) if captured else None
        if tensor is None:
            raise ValueError(f"feature layer {self.name!r}: the forward pass ended without a tensor from this layer")
        return tensor.reshape(images.shape[0], -1)


def autocast(device: str | torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager[None]:
    """``torch.autocast`` on ``device`` in ``dtype`` (as ``fit_inverter(autocast_dtype=dtype)``); a null context for ``None``."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)


def channels_last_copy(module: nn.Module) -> nn.Module:
    """A deep copy of ``module`` with its 4-D weights stored channels-last (as ``fit_inverter(channels_last=True)``).

    The original is left as it is; the copy keeps its modes, ``requires_grad`` and values.
    """
    return copy.deepcopy(module).to(memory_format=torch.channels_last)
