#!/usr/bin/env python
"""Issue 36 ablation: how to turn a few labelled codes into a direction, judged on the selection slice only.

    python -m benchmarks.directions.estimators --out runs/estimators --classifier runs/classifier \\
        --gan dcgan-fashion-mnist --ridges 0.01,0.1,1,10,100,10000
    python -m benchmarks.directions.estimators --out runs/estimators --page docs/lab/directions_ridge.md \\
        --json docs/results/directions_ridge.json

The same labelled train images as ``benchmarks/directions/edits.py`` (the first 20 / 100 / 1,000 of each class in
its seeded shuffle of the train split's first 55,000), inverted with the entry's default inverter; each estimator
gives one unit direction per class; each is scored by edit success (``benchmarks/directions/metrics.py``) on the
**selection slice** (the train split's last 1,000 images, inverted the same way) at each of ``--amounts`` spreads.
Nothing here touches the test split: the choice made from this record is then measured on the test images by
``edits.py``.

Estimators: ``logistic-L`` is :func:`discinvert.learn_directions_from_codes` with ``l2=L`` (the final fit uses every
labelled code); ``mean-difference`` is the class-balanced difference of the class's mean code and the others' mean
code (the limit of the logistic normal as the ridge grows), its scales from the same seeded prior codes.
"""

from __future__ import annotations

import argparse
import inspect
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.common import command_line, describe_device, write_json
from benchmarks.directions.classifier import load_classifier
from benchmarks.directions.edits import (LABELLED_POOL, SELECTION, MemoClassifier, MemoDecode, labelled_indices,
                                        mean_success, pad_to)
from discinvert import DirectionSet, MappedGenerator, learn_directions_from_codes
from discinvert.zoo import default_inverter, label_names, load
from discinvert.zoo.datasets import load_fashion_mnist, to_model_range


LIBRARY_L2 = inspect.signature(learn_directions_from_codes).parameters["l2"].default
"""``learn_directions_from_codes``' default ridge (for the help text)."""
PRIOR_SAMPLES = 2000
"""Prior codes for the scales, as the library draws them for label directions."""
OLD_DEFAULT = 0.01
"""The library's ridge when this ablation was run; the cosines are taken against its directions."""


def mean_difference(learned: DirectionSet, codes: torch.Tensor, labels: np.ndarray, generator: torch.nn.Module,
                    seed: int) -> DirectionSet:
    """``learned`` with each direction replaced by the unit class-balanced mean difference, its scales recomputed from
    the same prior codes the library draws (``_prior_codes``, seeded)."""
    x = codes.reshape(len(codes), -1).double()
    rows = []
    for c in range(len(learned.names)):
        positive = torch.as_tensor(labels == c)
        d = x[positive].mean(0) - x[~positive].mean(0)
        rows.append(d / torch.linalg.vector_norm(d))
    directions = torch.stack(rows).reshape(learned.directions.shape).float()
    rng = torch.Generator().manual_seed(seed)  # the library's draw for label directions: 2,000 seeded prior codes
    prior_codes = (generator.sample(PRIOR_SAMPLES, rng, torch.device("cpu")) if isinstance(generator, MappedGenerator)
                   else torch.randn((PRIOR_SAMPLES, *learned.latent_shape), generator=rng))
    projections = prior_codes.double().reshape(PRIOR_SAMPLES, -1) @ directions.double().reshape(len(rows), -1).T
    return DirectionSet(directions=directions, names=learned.names, scales=projections.std(dim=0).float(),
                        method="labels", space=learned.space, latent_shape=learned.latent_shape,
                        generator_fingerprint=learned.generator_fingerprint,
                        info={**learned.info, "settings": {**learned.info["settings"], "l2": None}, "estimator": "mean-difference"}, prior=learned.prior,
                        typical=learned.typical)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gan", default="dcgan-fashion-mnist")
    parser.add_argument("--out", type=Path, default=Path("runs/estimators"))
    parser.add_argument("--classifier", type=Path, default=Path("runs/classifier"))
    parser.add_argument("--per-class", default="20,100,1000")
    parser.add_argument("--amounts", default="2,3,4")
    parser.add_argument("--ridges", default="0.01,1,100,10000", help=f"logistic ridges (the library's default: {LIBRARY_L2:g})")
    parser.add_argument("--pool", type=int, default=LABELLED_POOL, help="labelled images come from the first N train images")
    parser.add_argument("--selection", type=int, default=SELECTION, help="the train split's last N images score")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--page", type=Path, default=None, help="write this Markdown page from the stored records")
    parser.add_argument("--json", type=Path, default=None, help="with --page: every record, as JSON")
    args = parser.parse_args(argv)
    command = command_line(__spec__, argv)
    print(command, flush=True)
    if args.page is not None:
        write_page(args, command)
        return {}
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    G, _, inverter = load(args.gan, inverter=default_inverter(args.gan))
    classifier = MemoClassifier(load_classifier(args.classifier)).eval()
    decode = MemoDecode(G)
    side = inverter.image_shape[-1]
    names = label_names(args.gan)
    train_x, train_y = load_fashion_mnist("train", root=args.data_root)
    sel_codes = inverter.encode(pad_to(to_model_range(train_x[-args.selection:]).float(), side), range_check="ignore")
    amounts = [float(a) for a in args.amounts.split(",")]
    ridges = [float(r) for r in args.ridges.split(",")]
    rows: dict[str, Any] = {}
    for per_class in [int(p) for p in args.per_class.split(",")]:
        idx = labelled_indices(per_class, train_y, args.seed, args.pool)
        codes = inverter.encode(pad_to(to_model_range(train_x[idx]).float(), side), range_check="ignore")
        labels = train_y[idx]
        sets = {f"logistic-{ridge:g}": learn_directions_from_codes(codes, torch.as_tensor(labels), names=names,
                                                                  generator=G, seed=args.seed, l2=ridge)
                for ridge in ridges}
        sets["mean-difference"] = mean_difference(sets[f"logistic-{ridges[0]:g}"], codes, labels, G, args.seed)
        reference = sets.get(f"logistic-{OLD_DEFAULT:g}")
        for estimator, ds in sets.items():
            success = {str(a): mean_success(classifier, decode, sel_codes, ds, a)[0] for a in amounts}
            cosine = (None if reference is None else
                      float(np.mean([float(ds.vector(n).flatten() @ reference.vector(n).flatten()
                                           / (ds.vector(n).norm() * reference.vector(n).norm())) for n in names])))
            rows.setdefault(estimator, {})[str(per_class)] = {"selection_success": success,
                                                             "mean_cosine_with_library": cosine}
            print(per_class, estimator, {a: round(v, 3) for a, v in success.items()}, flush=True)
    record = {"gan": args.gan, "command": command, "device": describe_device("cpu"), "threads": args.threads,
              "selection_images": args.selection, "amounts": amounts, "rows": rows,
              "seconds": round(time.perf_counter() - start, 1)}
    write_json(args.out / f"{args.gan}.json", record)
    print(json.dumps(record, indent=1), flush=True)
    return record


def write_page(args: argparse.Namespace, command: str) -> None:
    """The page: per GAN, selection-slice edit success of each estimator by labelled images per class and amount."""
    records = {r["gan"]: r for r in (json.loads(p.read_text()) for p in sorted(args.out.glob("*.json")))}
    if not records and args.json is not None and args.json.is_file():  # a checkout without runs/: the committed copy
        records = json.loads(args.json.read_text())["records"]
    lines = ["# Label directions: which ridge? (issue 36 ablation)", "",
             f"Written by `{command}` from the records of `benchmarks/directions/estimators.py`. Every figure is edit "
             "success (`benchmarks/directions/metrics.py`: of the images the classifier does not already put in the "
             "target class, the fraction the edit moves into it, averaged over the ten classes) on the **selection "
             "slice**, the Fashion-MNIST train split's last 1,000 images, inverted with the entry's default inverter. "
             "The labelled images are `edits.py`'s (the first N of each class in its seeded shuffle of the train "
             "split's first 55,000). No test image is used here; the choice is then measured on the test images by "
             "`edits.py` ([directions.md](directions.md)). `logistic-L`: `learn_directions_from_codes(..., l2=L)`; "
             "`mean-difference`: the unit difference of the class's mean code and the others' (the large-ridge "
             "limit).", ""]
    for gan, r in records.items():
        amounts = [str(float(a)) for a in r["amounts"]]
        budgets = sorted({int(b) for rows in r["rows"].values() for b in rows})
        lines += [f"## {gan}", "", f"`{r['command']}` ({r['device']}; {r['seconds']:.0f} s).", "",
                  "| estimator | " + " | ".join(f"{b}/class at {a}" for b in budgets for a in amounts) + " |",
                  "|---|" + "---:|" * (len(budgets) * len(amounts))]
        for estimator, rows in r["rows"].items():
            cells = [f"{rows[str(b)]['selection_success'][a]:.3f}" if str(b) in rows else "" for b in budgets
                     for a in amounts]
            lines.append(f"| {estimator} | " + " | ".join(cells) + " |")
        best = {b: max(r["rows"], key=lambda e: np.mean([r["rows"][e][str(b)]["selection_success"][a] for a in amounts]))
                for b in budgets}
        overall = max(r["rows"], key=lambda e: np.mean([r["rows"][e][str(b)]["selection_success"][a]
                                                         for b in budgets for a in amounts]))
        lines += ["", "Best mean over the amounts, by labelled images per class: "
                  + ", ".join(f"{b}: `{e}`" for b, e in best.items()) + f". Best mean over every budget and amount "
                  f"(the rule that sets `learn_directions`' default ridge): `{overall}`.", ""]
    args.page.parent.mkdir(parents=True, exist_ok=True)
    args.page.write_text("\n".join(lines))
    if args.json is not None:
        write_json(args.json, {"command": command, "records": records})


if __name__ == "__main__":
    main()
