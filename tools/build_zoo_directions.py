#!/usr/bin/env python
"""Ship a zoo entry's label directions: ``discinvert/zoo/<name>/directions/labels.safetensors``.

    python -m tools.build_zoo_directions --name dcgan-fashion-mnist
    python -m tools.build_zoo_directions --name stylegan2-fashion-mnist

One direction per Fashion-MNIST class (:func:`discinvert.directions.learn_directions`, seed 0), learned through
the entry's default inverter (:func:`discinvert.zoo.default_inverter`) from the first ``--per-class`` images of
each class of the **train** split's first 59,000 images (the last 1,000, held out by the benchmarks, and the test
split, which the entry bundles and the benchmarks report on, are never used). The page and ``discinvert serve``
load this file instead of learning the sliders at start-up (encoding pictures and ten regressions, slowest for the
StyleGAN2's W+ codes).
Why 1,000 per class: issue 36's benchmark (docs/lab/directions.md) measured edit success rising with the
labelled images per class (20, 100, 1,000), best at 1,000. The set's ``info`` records this command.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import command_line
from discinvert import zoo
from discinvert.directions import learn_directions
from discinvert.guard import frozen
from discinvert.zoo.datasets import load_fashion_mnist, to_model_range

HELD_OUT = 1000
"""The train split's last images the benchmarks hold out; never used here."""


def labelled_images(labels: np.ndarray, per_class: int) -> np.ndarray:
    """Indices of the first ``per_class`` images of each class among the first ``len(labels) - HELD_OUT``.

    Raises:
        ValueError: a class with fewer than ``per_class`` images there.
    """
    usable = labels[: len(labels) - HELD_OUT]
    chosen = []
    for c in range(int(labels.max()) + 1):
        where = np.flatnonzero(usable == c)[:per_class]
        if len(where) < per_class:
            raise ValueError(f"class {c}: expected {per_class} train images, found {len(where)}.")
        chosen.append(where)
    return np.sort(np.concatenate(chosen))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", required=True, help="the zoo entry")
    parser.add_argument("--per-class", type=int, default=1000, help="train images per class")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None,
                        help="default: the entry's directions/labels.safetensors")
    args = parser.parse_args(argv)
    command = command_line(__spec__, argv)
    print(command, flush=True)
    if args.threads:
        torch.set_num_threads(args.threads)
    inverter_name = zoo.default_inverter(args.name)
    G, _, inverter = zoo.load(args.name, inverter=inverter_name)
    train_x, train_y = load_fashion_mnist("train", root=args.data_root)
    idx = labelled_images(train_y, args.per_class)
    images = to_model_range(train_x[idx]).float()
    side = inverter.image_shape[-1]
    if images.shape[-1] != side:  # the StyleGAN2 entry's 32x32: pad with the background (-1 in G's range)
        margin = (side - images.shape[-1]) // 2
        images = torch.nn.functional.pad(images, (margin,) * 4, value=-1.0)
    start = time.perf_counter()
    with frozen(G):
        ds = learn_directions(inverter, images, torch.as_tensor(train_y[idx]), names=zoo.label_names(args.name),
                              seed=0)
    info = {**ds.info, "command": command, "inverter": inverter_name,
            "images": f"the first {args.per_class} of each class among the Fashion-MNIST train split's first "
                      f"{len(train_y) - HELD_OUT} images"}
    ds = dataclasses.replace(ds, info=info)
    out = args.out or zoo.path(args.name) / "directions" / "labels.safetensors"
    out.parent.mkdir(parents=True, exist_ok=True)
    ds.save(out)
    accuracy = {n: ds.info["per_direction"][n]["holdout_balanced_accuracy"] for n in ds.names}
    print(json.dumps({"file": str(out), "bytes": out.stat().st_size, "seconds": round(time.perf_counter() - start, 1),
                      "holdout_balanced_accuracy": accuracy}, indent=1), flush=True)


if __name__ == "__main__":
    main()
