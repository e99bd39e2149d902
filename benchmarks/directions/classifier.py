#!/usr/bin/env python
"""A small Fashion-MNIST classifier that judges edits (issue 36): a benchmark tool, not part of discinvert.

Usage::

    python -m benchmarks.directions.classifier --out runs/classifier --threads 1

It trains :class:`FashionClassifier` (two convolutions and two linear layers, about 0.2 M parameters) on the
Fashion-MNIST train split but its last ``--holdout`` images (default 5,000), seeded, on the CPU. The held-out
slice is the only accuracy any choice may look at; the test split's accuracy is reported, never used. The
folder ``--out`` gets:

- ``classifier.safetensors``: the weights, with the format version and the widths in its metadata;
- ``record.json``: held-out (train) accuracy, test accuracy (reported only), the held-out accuracy after each
  epoch, seconds, threads, device and the command.

Inputs are images ``(N, 1, 28, 28)`` in [-1, 1] (``discinvert.zoo.datasets.to_model_range``, as G's outputs);
``(N, 1, 32, 32)`` images (the reference StyleGAN2's: Fashion-MNIST padded with -1 by 2 pixels a side) are
cropped back to their central 28x28 before classifying. :func:`load_classifier` reads the folder back (eval
mode, strict) and :func:`predict_proba` gives class probabilities in batches without gradients.

The defaults (widths 16, 32 and 128, batch 64, Adam at 2e-3 with a cosine decay, 6 epochs) were chosen on the
held-out slice alone, on one torch thread of a shared 2-core CPU: 3 epochs gave 0.909 in 70 s, 8 epochs 0.918 in
253 s with 0.919 already after its 6th; widths 32, 64 took about three times as long an epoch.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import safetensors.torch
import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.common import command_line, describe_device, write_json
from discinvert.zoo.datasets import FASHION_MNIST_CLASSES, load_fashion_mnist, to_model_range

__all__ = ["CLASSIFIER_FILE", "RECORD_FILE", "FashionClassifier", "ClassifierConfig", "crop_to_28",
           "load_classifier", "predict_proba", "save_classifier", "main"]

CLASSIFIER_FILE: Final[str] = "classifier.safetensors"
RECORD_FILE: Final[str] = "record.json"
FORMAT: Final[str] = "discinvert-benchmark-classifier/1"
SIDE: Final[int] = 28
PADDED_SIDE: Final[int] = 32


@dataclass(frozen=True)
class ClassifierConfig:
    """The classifier's widths: channels of its two convolutions and its hidden linear layer."""

    channels: tuple[int, int] = (16, 32)
    hidden: int = 128


def crop_to_28(images: torch.Tensor) -> torch.Tensor:
    """Images ``(N, 1, 28, 28)`` as they are; ``(N, 1, 32, 32)`` cropped by their 2-pixel margin a side.

    The reference StyleGAN2 makes 32x32 images: Fashion-MNIST padded with the background (-1); the crop
    undoes that padding (as ``benchmarks/generator_only/routes.py`` crops its reconstructions).

    Raises:
        ValueError: images not ``(N, 1, 28, 28)`` or ``(N, 1, 32, 32)``.
    """
    shape = tuple(images.shape)
    if images.ndim != 4 or shape[1] != 1 or shape[2:] not in ((SIDE, SIDE), (PADDED_SIDE, PADDED_SIDE)):
        raise ValueError(f"images: expected (N, 1, 28, 28) or (N, 1, 32, 32) in [-1, 1], got shape {shape}")
    if shape[2] == PADDED_SIDE:
        margin = (PADDED_SIDE - SIDE) // 2
        return images[..., margin:-margin, margin:-margin]
    return images


class FashionClassifier(nn.Module):
    """Images ``(N, 1, 28, 28)`` or ``(N, 1, 32, 32)`` in [-1, 1] → logits ``(N, 10)`` (Fashion-MNIST's classes).

    conv 3x3 → ReLU → max-pool 2 (14x14) → conv 3x3 → ReLU → max-pool 2 (7x7) → linear → ReLU → linear.
    32x32 inputs are cropped first (:func:`crop_to_28`).
    """

    def __init__(self, config: ClassifierConfig = ClassifierConfig()) -> None:
        super().__init__()
        self.config = config
        c1, c2 = config.channels
        self.conv1 = nn.Conv2d(1, c1, 3, padding=1)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1)
        self.fc1 = nn.Linear(c2 * 7 * 7, config.hidden)
        self.fc2 = nn.Linear(config.hidden, len(FASHION_MNIST_CLASSES))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = crop_to_28(images)
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


def predict_proba(model: nn.Module, images: torch.Tensor, *, batch_size: int = 500) -> torch.Tensor:
    """Class probabilities ``(N, 10)`` (rows sum to 1) of images ``(N, 1, 28|32, 28|32)`` in [-1, 1].

    Runs in batches of ``batch_size`` under ``no_grad`` on the model's device, in eval mode (the model's mode
    is restored afterwards); the result is on the images' device, float32.

    Raises:
        ValueError: a bad image shape (see :func:`crop_to_28`; only for a :class:`FashionClassifier`),
            ``batch_size < 1``, or a model whose output is not ``(N, C)``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size: expected >= 1, got {batch_size}")
    if images.ndim != 4:
        raise ValueError(f"images: expected (N, 1, H, W) in [-1, 1], got shape {tuple(images.shape)}")
    param = next(model.parameters(), None)
    device = param.device if param is not None else images.device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            parts = []
            for batch in images.split(batch_size):
                logits = model(batch.to(device=device, dtype=torch.float32))
                if logits.ndim != 2 or logits.shape[0] != batch.shape[0]:
                    raise ValueError(f"classifier: expected logits ({batch.shape[0]}, C), got {tuple(logits.shape)}")
                parts.append(torch.softmax(logits.float(), dim=1).to(images.device))
    finally:
        model.train(was_training)
    if not parts:
        return torch.empty(0, len(FASHION_MNIST_CLASSES), device=images.device)
    return torch.cat(parts)


def save_classifier(model: FashionClassifier, folder: Path) -> Path:
    """Write ``folder/classifier.safetensors``: the weights, the format and the widths in its metadata."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / CLASSIFIER_FILE
    metadata = {"format": FORMAT, "channels": ",".join(map(str, model.config.channels)),
                "hidden": str(model.config.hidden)}
    safetensors.torch.save_file({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()},
                                str(path), metadata=metadata)
    return path


def load_classifier(folder: str | Path) -> FashionClassifier:
    """The classifier saved in ``folder`` (its ``classifier.safetensors``), on the CPU, in eval mode, loaded strictly.

    Raises:
        FileNotFoundError: no ``classifier.safetensors`` in ``folder``.
        ValueError: the file is not this tool's format (its metadata names what it holds).
    """
    path = Path(folder) / CLASSIFIER_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no classifier here; train one with "
                                f"python -m benchmarks.directions.classifier --out {folder}")
    with safetensors.safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    if metadata.get("format") != FORMAT:
        raise ValueError(f"{path}: expected format {FORMAT!r} in the metadata, got {metadata.get('format')!r}")
    config = ClassifierConfig(channels=tuple(int(c) for c in metadata["channels"].split(",")),  # type: ignore[arg-type]
                              hidden=int(metadata["hidden"]))
    model = FashionClassifier(config)
    model.load_state_dict(safetensors.torch.load_file(str(path)), strict=True)
    return model.eval()


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of ``images`` whose most probable class is their label."""
    return float((predict_proba(model, images).argmax(1) == labels).float().mean())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder for classifier.safetensors and record.json")
    parser.add_argument("--epochs", type=int, default=6,
                        help="passes over the training images (6: see the module's docstring)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--data-root", type=Path, default=None,
                        help="folder with the four Fashion-MNIST IDX files (default: Debian's dataset-fashion-mnist)")
    parser.add_argument("--holdout", type=int, default=5000, help="the train split's last N images: held out")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3, help="Adam's learning rate (cosine decay to 5%%)")
    parser.add_argument("--channels", default="16,32", help="the two convolutions' channels, C1,C2")
    parser.add_argument("--hidden", type=int, default=128, help="the hidden linear layer's width")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.threads < 1 or args.holdout < 1 or args.batch_size < 1:
        parser.error("--epochs, --threads, --holdout and --batch-size must be >= 1")
    try:
        args.channels = tuple(int(c) for c in args.channels.split(","))
    except ValueError:
        parser.error(f"--channels: expected two integers C1,C2, got {args.channels!r}")
    if len(args.channels) != 2 or min(args.channels) < 1 or args.hidden < 1:
        parser.error("--channels: expected two integers C1,C2 >= 1, and --hidden >= 1")
    return args


def train(args: argparse.Namespace, command: str) -> dict[str, object]:
    """Train, save and record one classifier as ``args`` say; the record."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    images, labels = load_fashion_mnist("train", root=args.data_root)
    if len(images) <= args.holdout:
        raise SystemExit(f"--holdout {args.holdout} leaves no training images (the train split has {len(images)})")
    x_all, y_all = to_model_range(images).float(), torch.from_numpy(labels)
    cut = len(x_all) - args.holdout
    x_train, y_train, x_held, y_held = x_all[:cut], y_all[:cut], x_all[cut:], y_all[cut:]
    print(f"data: {len(x_train)} train images, {len(x_held)} held out (the train split's last)", flush=True)

    model = FashionClassifier(ClassifierConfig(channels=args.channels, hidden=args.hidden))
    optimiser = torch.optim.Adam(model.parameters(), lr=args.lr)
    steps_per_epoch = -(-len(x_train) // args.batch_size)
    total = steps_per_epoch * args.epochs
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: 0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * min(step, total) / total)))
    order_rng = torch.Generator().manual_seed(args.seed)
    by_epoch = []
    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        model.train()
        order = torch.randperm(len(x_train), generator=order_rng)
        running = 0.0
        for index in order.split(args.batch_size):
            loss = F.cross_entropy(model(x_train[index]), y_train[index])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            running += float(loss.detach()) * len(index)
        held = accuracy(model, x_held, y_held)
        by_epoch.append(round(held, 4))
        print(f"epoch {epoch}: train loss {running / len(x_train):.4f}, held-out accuracy {held:.4f}, "
              f"{time.perf_counter() - start:.0f} s", flush=True)
    seconds = time.perf_counter() - start
    model.eval()
    path = save_classifier(model, args.out)

    test_images, test_labels = load_fashion_mnist("test", root=args.data_root)
    test = accuracy(model, to_model_range(test_images).float(), torch.from_numpy(test_labels))
    record: dict[str, object] = {
        "heldout_accuracy": by_epoch[-1], "test_accuracy_reported_only": round(test, 4),
        "heldout_accuracy_by_epoch": by_epoch, "train_images": len(x_train), "heldout_images": len(x_held),
        "heldout": f"the train split's last {len(x_held)} images", "test_images": len(test_images),
        "seconds": round(seconds, 1), "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
        "seed": args.seed, "parameters": sum(p.numel() for p in model.parameters()),
        "channels": list(model.config.channels), "hidden": model.config.hidden,
        "threads": torch.get_num_threads(), "device": describe_device("cpu"), "file": path.name, "command": command}
    write_json(args.out / RECORD_FILE, record)
    print(f"held-out accuracy {by_epoch[-1]:.4f} (test, reported only: {test:.4f}) in {seconds:.0f} s; "
          f"wrote {path} and {args.out / RECORD_FILE}", flush=True)
    return record


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = command_line(__spec__, argv)
    print(command, flush=True)
    train(args, command)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
