"""Plumbing shared by the benchmark scripts: the command line they print, devices, doc sections.

Scripts run as ``python benchmarks/NAME.py`` (this folder is then on ``sys.path``); the
ones under ``benchmarks/rivals/`` add this folder themselves.
"""

from __future__ import annotations

import importlib.util
import math
import platform
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

from discinvert.zoo.datasets import load_fashion_mnist, to_model_range


def command_line(argv: list[str] | None) -> str:
    """The command that ran this script, quoted so it can be pasted back into a shell."""
    return "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv if argv is not None else sys.argv[1:])])


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


def describe_device(device: str | torch.device) -> str:
    """The device's name for a doc: the GPU's name, or the CPU's architecture and torch's thread count."""
    if str(device).startswith("cuda"):
        return torch.cuda.get_device_name(device)
    return f"CPU {platform.machine()}, {torch.get_num_threads()} torch threads"


def pick_device(choice: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU; ``cuda`` without CUDA ends the script with a message."""
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda requested but torch.cuda.is_available() is False")
    return torch.device(choice)


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


def load_module(name: str, path: Path) -> ModuleType:
    """Import the file ``path`` as module ``name`` once (the benchmark folders are no packages)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


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
