#!/usr/bin/env python
"""Issue 36's measurements: editing directions judged by an independent classifier.

Usage (one GAN a call, its record in ``OUT/<entry>.json``; ``--page`` rewrites the page from every stored record)::

    python -m benchmarks.directions.classifier --out runs/classifier --threads 1
    python -m benchmarks.directions.edits --out runs/directions --classifier runs/classifier --gan dcgan-fashion-mnist
    python -m benchmarks.directions.edits --out runs/directions --classifier runs/classifier \\
        --gan stylegan2-fashion-mnist --n-test 500 --no-labels
    python -m benchmarks.directions.edits --out runs/directions --page docs/lab/directions.md \\
        --json docs/results/directions.json --pictures docs/lab/images --looks docs/lab/directions_looks.json

For a zoo entry (its G and its default inverter, the one the command line and the page use):

- **label directions** (``discinvert.learn_directions``) from ``20``, ``100`` and ``1,000`` labelled images per class,
  the first of each class in a seeded shuffle of the Fashion-MNIST train split's first 55,000 images (the
  classifier's training images; its held-out slice, the last 5,000, is never used to learn a direction);
- **unsupervised directions** (``discinvert.find_directions``): the top ``--k`` of SeFa and of PCA (GANSpace);
- the real **test** images (the first ``--n-test`` of the split, inverted with the entry's inverter) edited along
  them and judged by ``benchmarks.directions.classifier`` (``benchmarks.directions.metrics``):
  *edit success* (of the images not already in the target class, the fraction the edit moves into it), for the
  label direction of each class at each amount of ``--amounts`` (in spreads of the prior along the direction);
  *preservation* at a small amount (1 spread): PSNR / SSIM of the edited image against the reconstruction and the
  mean move of the probabilities of the classes the edit is not about; for unsupervised directions the best-matching
  direction and signed amount per class, and the fraction of images whose class an edit of ±1 spread keeps.

The **headline amount** at which the issue's target (20 images per class reach at least 80% of the success of 1,000)
is read is chosen on the selection slice (the train split's last 1,000 images, inverted the same way): the
smallest amount at which the 1,000-image directions move at least half of those images, else the largest. The test
split is reported, never used to choose.

Pictures: for each GAN, the top unsupervised directions (rows) at ``-2 .. 2`` spreads on the codes of three test
images; for the DCGAN also the label edits of a few test images towards each class. What each unsupervised
direction appears to change is written by hand after looking at the picture, in ``--looks`` (JSON), and quoted.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.common import command_line, describe_device, write_json
from benchmarks.directions.classifier import load_classifier, predict_proba
from benchmarks.directions.metrics import best_matching, class_kept, edit_success, preservation
from discinvert import DirectionSet, find_directions, learn_directions
from discinvert.guard import frozen
from discinvert.zoo import default_inverter, label_names, load, load_entry_gan
from discinvert.zoo.datasets import load_fashion_mnist, to_model_range

SELECTION: Final[int] = 1000
LABELLED_POOL: Final[int] = 55_000
SMALL: Final[float] = 1.0
SMALLEST: Final[float] = 0.5
ZOOM: Final[int] = 2
GRID_AMOUNTS: Final[tuple[float, ...]] = (-2.0, -1.0, 0.0, 1.0, 2.0)
GRID_IMAGES: Final[int] = 3


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gan", default=None, help="a zoo entry (e.g. dcgan-fashion-mnist); none: only --page")
    parser.add_argument("--out", type=Path, default=Path("runs/directions"))
    parser.add_argument("--classifier", type=Path, default=Path("runs/classifier"),
                        help="folder of benchmarks.directions.classifier's output")
    parser.add_argument("--n-test", type=int, default=1000, help="first N test images")
    parser.add_argument("--per-class", default="20,100,1000", help="labelled images per class, comma-separated")
    parser.add_argument("--amounts", default="1,2,3,4,6", help="edit amounts (spreads), comma-separated")
    parser.add_argument("--k", type=int, default=10, help="unsupervised directions of each method")
    parser.add_argument("--no-labels", action="store_true", help="unsupervised directions only")
    parser.add_argument("--samples", type=int, default=2000, help="find_directions' prior samples")
    parser.add_argument("--pool", type=int, default=LABELLED_POOL,
                        help="labelled images come from the train split's first N (the classifier's training images)")
    parser.add_argument("--selection", type=int, default=SELECTION,
                        help="the train split's last N images: where the headline amount is chosen")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--page", type=Path, default=None, help="rewrite this Markdown page from the records")
    parser.add_argument("--json", type=Path, default=None, help="with --page: every record, as JSON")
    parser.add_argument("--pictures", type=Path, default=None, help="with --page: folder for the PNG grids")
    parser.add_argument("--looks", type=Path, default=None,
                        help="with --page: JSON {entry: {direction: what it appears to change}}, written by hand")
    return parser.parse_args(argv)


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v.strip()]


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def _batch_key(batch: torch.Tensor) -> str:
    """What the memos below remember a batch by: the digest of its values and its shape."""
    return hashlib.sha1(batch.detach().contiguous().cpu().numpy().tobytes()).hexdigest() + str(tuple(batch.shape))


class MemoDecode:
    """``G(codes)`` in eval, without grad, inside ``frozen`` (G untouched), remembered per batch: the metrics
    decode the same edited codes once per target class; G runs once for each distinct batch."""

    def __init__(self, generator: torch.nn.Module) -> None:
        self.generator = generator
        self.cache: dict[str, torch.Tensor] = {}
        self.calls = 0

    def __call__(self, codes: torch.Tensor) -> torch.Tensor:
        key = _batch_key(codes)
        if key not in self.cache:
            self.calls += 1
            with frozen(self.generator), torch.no_grad():
                self.cache[key] = self.generator(codes)
        return self.cache[key]


class MemoClassifier(torch.nn.Module):
    """The classifier's logits, remembered per batch of images: every target class's edit success re-classifies
    the same decoded images; the classifier runs once for each distinct batch."""

    def __init__(self, classifier: torch.nn.Module) -> None:
        super().__init__()
        self.classifier = classifier
        self.cache: dict[str, torch.Tensor] = {}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        key = _batch_key(images)
        if key not in self.cache:
            self.cache[key] = self.classifier(images)
        return self.cache[key]


def pad_to(images: torch.Tensor, side: int) -> torch.Tensor:
    """Images ``(N, C, H, H)`` in [-1, 1] padded with the background (-1) to ``(N, C, side, side)``."""
    margin = (side - images.shape[-1]) // 2
    return F.pad(images, (margin,) * 4, value=-1.0) if margin else images


def labelled_indices(per_class: int, labels: np.ndarray, seed: int, pool: int) -> np.ndarray:
    """Indices of the first ``per_class`` images of each class in a seeded shuffle of the first ``pool``."""
    order = np.random.default_rng(seed).permutation(pool)
    chosen = [order[labels[order] == c][:per_class] for c in range(10)]
    return np.sort(np.concatenate(chosen))


def _classes(classifier: torch.nn.Module, decode: MemoDecode, codes: torch.Tensor) -> set[int]:
    """The classes the classifier gives the unedited decodes: a target class is measurable where some image is
    not in it already (edit success is undefined otherwise; it never happens on real test images)."""
    return set(predict_proba(classifier, decode(codes)).argmax(1).tolist())


def mean_success(classifier: torch.nn.Module, decode: MemoDecode, codes: torch.Tensor, ds: DirectionSet,
                  amount: float) -> tuple[float, list[float | None]]:
    """Mean edit success over the target classes (``None`` for a class every image is in already)."""
    present = _classes(classifier, decode, codes)
    per_class = [None if present == {c} else
                 edit_success(classifier, decode, codes, ds.vector(name), target_class=c, amount=amount)
                 for c, name in enumerate(ds.names)]
    return float(np.mean([v for v in per_class if v is not None])), per_class


def run_gan(args: argparse.Namespace, command: str) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    name = args.gan
    inverter_name = default_inverter(name)
    G, _, inverter = load(name, inverter=inverter_name)
    gan = load_entry_gan(name)
    classifier = MemoClassifier(load_classifier(args.classifier)).eval()
    classifier_record = json.loads((args.classifier / "record.json").read_text())
    names = label_names(name)
    test_x, test_y = load_fashion_mnist("test", root=args.data_root)
    with frozen(G), torch.no_grad():
        side = int(G(gan.generator.sample(1, torch.Generator().manual_seed(0), torch.device("cpu"))
                     if hasattr(gan.generator, "sample") else torch.zeros(1, *gan.latent_shape)).shape[-1])
    x_test = pad_to(to_model_range(test_x[: args.n_test]).float(), side)
    decode = MemoDecode(G)
    start = time.perf_counter()
    codes = inverter.encode(x_test, range_check="ignore")
    record: dict[str, Any] = {"gan": name, "inverter": inverter_name, "command": command, "n_test": args.n_test,
                              "device": describe_device("cpu"), "threads": torch.get_num_threads(),
                              "classifier": {k: classifier_record[k] for k in
                                             ("heldout_accuracy", "test_accuracy_reported_only", "command")},
                              "amounts": _floats(args.amounts), "small_amount": SMALL}
    with torch.no_grad():
        recon_probs = predict_proba(classifier, decode(codes))
    record["reconstruction_class_agreement"] = float((recon_probs.argmax(1) == torch.as_tensor(test_y[: args.n_test]))
                                                     .float().mean())

    # --------------------------------------------------------------- unsupervised
    unsupervised: dict[str, Any] = {}
    sets: dict[str, DirectionSet] = {}
    for method in ("sefa", "pca"):
        t0 = time.perf_counter()
        ds = find_directions(G, latent_shape=gan.latent_shape, method=method, k=args.k, samples=args.samples,
                             seed=args.seed)
        seconds = time.perf_counter() - t0
        ds.save(args.out / f"{name}.{method}.safetensors")
        sets[method] = ds
        rows = {}
        for d in ds.names:
            vector = ds.vector(d)
            kept = {str(s): min(class_kept(classifier, decode, codes, vector, amount=a) for a in (s, -s))
                    for s in (SMALLEST, SMALL)}
            keep = preservation(classifier, decode, codes, vector, amount=SMALL)
            rows[d] = {"class_kept": kept, "psnr": keep["psnr"], "ssim": keep["ssim"],
                       "other_classes_change": keep["other_classes_change"],
                       "image_change": ds.info["per_direction"][d].get("image_change")}
        unsupervised[method] = {"seconds": round(seconds, 1), "directions": rows}
    every = {d: s.vector(d) for s in sets.values() for d in s.names}
    unsupervised["best_matching"] = {}
    present = _classes(classifier, decode, codes)
    for c, class_name in enumerate(names):
        if present == {c}:
            continue
        match = best_matching(classifier, decode, codes, every, amounts=_floats(args.amounts), target_class=c)
        unsupervised["best_matching"][class_name] = {"direction": match.name, "amount": match.amount,
                                                     "success": match.success}
    record["unsupervised"] = unsupervised
    record["picture_codes"] = codes[:GRID_IMAGES].reshape(GRID_IMAGES, -1).tolist()

    # --------------------------------------------------------------- labels
    if not args.no_labels:
        train_x, train_y = load_fashion_mnist("train", root=args.data_root)
        x_sel = pad_to(to_model_range(train_x[-args.selection:]).float(), side)
        sel_codes = inverter.encode(x_sel, range_check="ignore")
        budgets = {}
        label_sets: dict[int, DirectionSet] = {}
        for per_class in _ints(args.per_class):
            idx = labelled_indices(per_class, train_y, args.seed, args.pool)
            images = pad_to(to_model_range(train_x[idx]).float(), side)
            t0 = time.perf_counter()
            ds = learn_directions(inverter, images, torch.as_tensor(train_y[idx]), names=names, seed=args.seed)
            label_sets[per_class] = ds
            ds.save(args.out / f"{name}.labels-{per_class}.safetensors")
            per_direction = ds.info["per_direction"]
            budgets[str(per_class)] = {
                "images": len(idx), "seconds": round(time.perf_counter() - t0, 1),
                "heldout_balanced_accuracy": {n: per_direction[n].get("holdout_balanced_accuracy") for n in names},
            }
        largest = max(label_sets)
        selection_curve = {str(a): mean_success(classifier, decode, sel_codes, label_sets[largest], a)[0]
                           for a in _floats(args.amounts)}
        reaching = [a for a in _floats(args.amounts) if selection_curve[str(a)] >= 0.5]
        headline = min(reaching) if reaching else max(_floats(args.amounts))
        for per_class, ds in label_sets.items():
            curve = {}
            for a in _floats(args.amounts):
                mean, per = mean_success(classifier, decode, codes, ds, a)
                curve[str(a)] = {"mean": mean, "per_class": dict(zip(names, per, strict=True))}
            keeps = [preservation(classifier, decode, codes, ds.vector(n), amount=SMALL, target_class=c)
                     for c, n in enumerate(names)]
            budgets[str(per_class)].update(
                success=curve,
                preservation={key: float(np.mean([k[key] for k in keeps]))
                              for key in ("psnr", "ssim", "other_classes_change")})
        record["labels"] = {"budgets": budgets, "l2": label_sets[largest].info["settings"]["l2"],
                            "selection_curve_largest": selection_curve,
                            "headline_amount": headline, "largest": largest,
                            "ratio_smallest_to_largest": {
                                str(p): budgets[str(p)]["success"][str(headline)]["mean"]
                                / max(budgets[str(largest)]["success"][str(headline)]["mean"], 1e-12)
                                for p in label_sets}}
    record["seconds"] = round(time.perf_counter() - start, 1)
    record["decodes"] = decode.calls
    print(json.dumps({k: v for k, v in record.items() if k != "picture_codes"}, indent=1), flush=True)
    write_json(args.out / f"{name}.json", record)
    return record


# ------------------------------------------------------------------- page
def _grid(gan_name: str, codes: torch.Tensor, ds: DirectionSet, path: Path) -> None:
    from benchmarks.paper.train_gan import write_png_gray
    from discinvert.zoo.datasets import from_model_range

    gan = load_entry_gan(gan_name)
    G = gan.generator
    codes = codes.reshape(len(codes), *gan.latent_shape)
    rows = []
    with frozen(G), torch.no_grad():
        for d in ds.names:
            vector = ds.vector(d)
            tiles = [G(codes + a * vector) for a in GRID_AMOUNTS]                     # each (3, 1, H, W)
            strip = torch.cat([t[i] for i in range(len(codes)) for t in tiles], dim=-1)  # (1, H, 15 W)
            rows.append(from_model_range(strip).reshape(strip.shape[-2], strip.shape[-1]))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_png_gray(path, _zoom(np.concatenate(rows, axis=0)))


def _label_picture(record: dict[str, Any], out: Path, path: Path) -> None:
    from benchmarks.paper.train_gan import write_png_gray
    from discinvert.zoo.datasets import from_model_range

    gan = load_entry_gan(record["gan"])
    G = gan.generator
    codes = torch.tensor(record["picture_codes"]).reshape(-1, *gan.latent_shape)
    amount = record["labels"]["headline_amount"]
    rows = []
    with frozen(G), torch.no_grad():
        for per_class in (min(map(int, record["labels"]["budgets"])), record["labels"]["largest"]):
            ds = DirectionSet.load(out / f"{record['gan']}.labels-{per_class}.safetensors", generator=G)
            for i in range(len(codes)):
                tiles = [G(codes[i:i + 1])] + [G(codes[i:i + 1] + amount * ds.vector(n)) for n in ds.names]
                strip = torch.cat([t[0] for t in tiles], dim=-1)
                rows.append(from_model_range(strip).reshape(strip.shape[-2], strip.shape[-1]))
    write_png_gray(path, _zoom(np.concatenate(rows, axis=0)))


def _zoom(image: np.ndarray) -> np.ndarray:
    """Each pixel as a ZOOM x ZOOM block (28-pixel tiles are too small to look at)."""
    return np.kron(image, np.ones((ZOOM, ZOOM), dtype=image.dtype))


def write_page(args: argparse.Namespace, command: str) -> None:
    records = {r["gan"]: r for r in (json.loads(p.read_text()) for p in sorted(args.out.glob("*.json")))}
    looks = json.loads(args.looks.read_text()) if args.looks is not None and args.looks.is_file() else {}
    lines = ["# Editing directions judged by an independent classifier (issue 36)", "",
             f"Written by `{command}` from the records of `benchmarks/directions/edits.py` (each record's command "
             "below). Amounts are in spreads of the prior along each direction (`DirectionSet.vector`). Test "
             "images: the first N of the Fashion-MNIST test split, inverted with the entry's default inverter; "
             "reported, never used to choose. The classifier (`benchmarks/directions/classifier.py`) never saw "
             "them either.", ""]
    for gan_name, r in records.items():
        c = r["classifier"]
        lines += [f"## {gan_name}", "",
                  f"`{r['command']}` ({r['device']}; {r['seconds']:.0f} s, {r['decodes']} batches through G). "
                  f"Inverter: `{r['inverter']}`; {r['n_test']} test images; the classifier: held-out train accuracy "
                  f"{c['heldout_accuracy']:.4f} (test {c['test_accuracy_reported_only']:.4f}, reported only), "
                  f"made by `{c['command']}`. The classifier gives the reconstruction the original's label for "
                  f"{100 * r['reconstruction_class_agreement']:.1f}% of the test images.", ""]
        if "labels" in r:
            lab = r["labels"]
            amounts = r["amounts"]
            ridge = (f"Learned with `learn_directions`' ridge `l2={lab['l2']:g}` "
                     "([directions_ridge.md](directions_ridge.md)). " if "l2" in lab else "")
            lines += ["### Label directions", "",
                      ridge + f"Headline amount (chosen on the train split's last `--selection` images, default 1,000, see the command: the smallest amount at which "
                      f"the {lab['largest']}-image directions move at least half of them; their success there by "
                      "amount: " + ", ".join(f"{a:g}: {lab['selection_curve_largest'][str(a)]:.3f}" for a in amounts)
                      + f"): **{lab['headline_amount']:g}**.", "",
                      "| images per class | mean held-out balanced accuracy | "
                      + " | ".join(f"success at {a:g}" for a in amounts)
                      + f" | ratio to {lab['largest']} at {lab['headline_amount']:g} | PSNR / SSIM at {SMALL:g} | "
                      "other classes' probabilities move |",
                      "|---:|---:|" + "---:|" * len(amounts) + "---:|---:|---:|"]
            for p, b in sorted(lab["budgets"].items(), key=lambda kv: int(kv[0])):
                accuracy = np.mean([v for v in b["heldout_balanced_accuracy"].values() if v is not None])
                lines.append(f"| {p} | {accuracy:.3f} | "
                             + " | ".join(f"{b['success'][str(a)]['mean']:.3f}" for a in amounts)
                             + f" | {lab['ratio_smallest_to_largest'][p]:.2f} | {b['preservation']['psnr']:.2f} / "
                             f"{b['preservation']['ssim']:.4f} | {b['preservation']['other_classes_change']:.4f} |")
            head = str(lab["headline_amount"])
            per_budget = [f"{p} images: " + ", ".join(f"{n} {v:.2f}" if v is not None else f"{n} -"
                                                      for n, v in b["success"][head]["per_class"].items())
                          for p, b in sorted(lab["budgets"].items(), key=lambda kv: int(kv[0]))]
            lines += ["", f"Success per target class at {lab['headline_amount']:g} spreads: "
                      + "; ".join(per_budget) + ".", ""]
        u = r["unsupervised"]
        lines += ["### Unsupervised directions", "",
                  f"Top {len(u['sefa']['directions'])} of each method, ranked by `find_directions` by how much they "
                  "change G's images. *Class kept at ±a*: the smaller, over +a and -a spreads, of the "
                  "fractions of test images whose predicted class the edit leaves as it was. *Looks*: what the "
                  "direction appears to change in the picture, written by hand after looking.", "",
                  f"| direction | image change (ranking) | class kept at ±{SMALLEST:g} | class kept at ±{SMALL:g} | "
                  f"PSNR / SSIM at +{SMALL:g} | looks (by hand) |",
                  "|---|---:|---:|---:|---:|---|"]
        for method in ("sefa", "pca"):
            for d, v in u[method]["directions"].items():
                look = looks.get(gan_name, {}).get(d, "")
                change = f"{v['image_change']:.4f}" if v["image_change"] is not None else ""
                lines.append(f"| {d} | {change} | {v['class_kept'][str(SMALLEST)]:.3f} | "
                             f"{v['class_kept'][str(SMALL)]:.3f} | {v['psnr']:.2f} / {v['ssim']:.4f} | "
                             f"{look} |")
        lines += ["", "Best-matching unsupervised direction per target class (over both methods, amounts "
                  + ", ".join(f"±{a:g}" for a in r["amounts"]) + "): "
                  + "; ".join(f"{n}: {m['direction']} at {m['amount']:+g}, {m['success']:.3f}"
                              for n, m in u["best_matching"].items())
                  + f" (mean {np.mean([m['success'] for m in u['best_matching'].values()]):.3f}).", ""]
        if args.pictures is not None:
            codes = torch.tensor(r["picture_codes"])
            for method in ("sefa", "pca"):
                ds = DirectionSet.load(args.out / f"{gan_name}.{method}.safetensors")
                picture = args.pictures / f"directions-{gan_name}-{method}.png"
                _grid(gan_name, codes, ds, picture)
                lines += [f"![{method} directions of {gan_name}](images/{picture.name})", "",
                          f"{method}: one row a direction ({', '.join(ds.names)}), three test images' codes at "
                          + ", ".join(f"{a:g}" for a in GRID_AMOUNTS) + " spreads each.", ""]
            if "labels" in r:
                picture = args.pictures / f"directions-{gan_name}-labels.png"
                _label_picture(r, args.out, picture)
                lab = r["labels"]
                lines += [f"![label edits of {gan_name}](images/{picture.name})", "",
                          f"Label edits at {lab['headline_amount']:g} spreads: the reconstruction of each of three "
                          f"test images, then its edit towards each class ({', '.join(label_names(gan_name))}); the "
                          f"first three rows with directions from {min(map(int, lab['budgets']))} images per class, "
                          f"the last three from {lab['largest']}.", ""]
    args.page.parent.mkdir(parents=True, exist_ok=True)
    args.page.write_text("\n".join(lines))
    print(f"wrote {args.page}", flush=True)
    if args.json is not None:
        write_json(args.json, {"command": command, "records": records})
        print(f"wrote {args.json}", flush=True)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    command = command_line(__spec__, argv)
    print(command, flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.gan is not None:
        run_gan(args, command)
    if args.page is not None:
        write_page(args, command)


if __name__ == "__main__":
    main()
