#!/usr/bin/env python
"""Rank our inverter against models that learn inference jointly with generation.

    python benchmarks/rivals/evaluate.py --rivals runs/rivals/vae runs/rivals/bigan runs/rivals/gaan runs/rivals/aaae \
        --ours discinvert/zoo/dcgan-fashion-mnist/gan:discinvert/zoo/dcgan-fashion-mnist/inverter \
        --device cuda --json docs/results/rivals.json --out docs/rivals.md [--fit-steps 10000]

For each rival (trained by ``benchmarks/rivals/train.py``; ``models.py`` describes them):

- **own encoder**: reconstruction ``G(E(x))`` (the VAE's posterior mean);
- **CN (ours) on its G**, where the rival has a discriminator: ``discinvert.fit_inverter`` on
  the rival's G and D (``--fit-steps`` batches of 256). GAAN: D's last hidden layer
  ``main.5``. AAAE: D_x's ``main.7`` with latents drawn from its latent generator. BiGAN: its
  D is joint, ``D(x, z)``, so it is hooked through ``BiGANImageDiscriminator`` (``x -> D(x, 0)``,
  layer ``d.x_trunk.7``): the x-trunk's features do not depend on z. The VAE has no D.

and for each of our inverters given as ``--ours GAN_DIR:INVERTER`` (GAN from
``benchmarks/train_gan.py``; INVERTER an ``Inverter.save`` file or an ``Inverter.save_pretrained``
folder), **CN (ours)**.

Every encoder gets the same scores: PSNR / SSIM of 1,000 **test** images drawn 5 times
(seed 0) with ``discinvert.metrics.draw_subsets``, ``image_quality`` and ``summarize_draws``,
exactly as ``benchmarks/table1.py`` does; 1-nearest-neighbour accuracy in code space
(``discinvert.metrics.nearest_neighbour_accuracy``: codes of the train images, all 60,000
unless ``--nn-train``, against the codes of the 10,000 test images; the BiGAN protocol); and
seconds to encode 1,000 images (first draw, after a warm-up; fitting excluded).

Runs can be split (e.g. one process per rival on one GPU) and merged with
``--merge A.json B.json ... [--ran-in-parallel]``. Writes ``--out`` (Markdown) and ``--json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

try:  # Allow `python benchmarks/rivals/evaluate.py` from a source checkout without installing.
    import discinvert  # noqa: F401
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from discinvert import Inverter, fit_inverter
from discinvert.architectures import load_gan
from discinvert.datasets import load_fashion_mnist, to_model_range
from discinvert.metrics import (
    draw_subsets,
    image_quality,
    nearest_neighbour_accuracy,
    summarize_draws,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/common.py
from common import command_line, load_module  # noqa: E402

HERE = Path(__file__).resolve().parent


models = load_module("discinvert_rivals_models", HERE / "models.py")

# The paper's Table 1, Fashion-MNIST (PSNR dB / SSIM), from shared/docs/anchors.md.
PAPER = {"VAE": (11.83, 0.3921), "ALI/BiGAN": (13.02, 0.3623), "DCGAN, CN": (15.10, 0.5332)}
# Which of our rows each paper figure sits beside: (result kind/name, method).
PAPER_ROW = {("vae", "own encoder"): "VAE", ("bigan", "own encoder"): "ALI/BiGAN", ("ours:dcgan", "CN (ours)"): "DCGAN, CN"}
# BiGAN slides (shared/seeds/002): 1-NN accuracy (%) on the permutation-invariant MNIST test set.
MNIST_1NN = {"BiGAN": 97.39, "D (discriminator features)": 97.30, "latent regressor": 97.44,
             "joint latent regressor": 97.13, "autoencoder (l2)": 97.58, "autoencoder (l1)": 97.63}
MODEL_TITLES = {"vae": "VAE", "bigan": "BiGAN/ALI", "gaan": "GAAN/Dist-GAN", "aaae": "AAAE"}


def sync(device: str) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def resolve_device(choice: str) -> str:
    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if choice.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--device cuda requested but torch.cuda.is_available() is False")
    return choice


def parse_ours(spec: str) -> tuple[Path, Path]:
    gan, sep, inverter = spec.rpartition(":")
    if not sep or not gan or not inverter:
        raise SystemExit(f"--ours: expected GAN_DIR:INVERTER, received {spec!r}")
    return Path(gan), Path(inverter)


def load_ours(gan_dir: Path, inverter_path: Path, device: str) -> tuple[Inverter, Any, dict]:
    G, D, config, extra = load_gan(gan_dir, device=device)
    if inverter_path.is_dir():
        inverter = Inverter.from_pretrained(inverter_path, generator=G, discriminator=D)
    else:
        inverter = Inverter.load(inverter_path, generator=G, discriminator=D)
    return inverter, config, extra


class Scorer:
    """The shared protocol: draws of test images, PSNR/SSIM, 1-NN accuracy, encode time."""

    def __init__(self, args: argparse.Namespace, device: str) -> None:
        self.device = device
        self.batch = args.batch
        test_images, test_labels = load_fashion_mnist("test", root=args.data_root)
        self.total = len(test_images)
        self.subsets = draw_subsets(self.total, args.n, args.repeats, args.seed)
        self.used = np.unique(np.concatenate(self.subsets))
        position = {int(i): j for j, i in enumerate(self.used)}
        first = torch.as_tensor([position[int(i)] for i in self.subsets[0]])
        self.x_used = to_model_range(test_images[self.used]).to(device)
        self.x_first = self.x_used[first]
        self.x_test = to_model_range(test_images)  # CPU; encoders batch it onto the device
        self.y_test = test_labels
        train_images, train_labels = load_fashion_mnist("train", root=args.data_root)
        if args.nn_train is not None:
            train_images, train_labels = train_images[: args.nn_train], train_labels[: args.nn_train]
        self.x_train = to_model_range(train_images)
        self.y_train = train_labels

    def __call__(self, label: str, encode: Callable[[torch.Tensor], torch.Tensor],
                 decode: Callable[[torch.Tensor], torch.Tensor], **info: Any) -> dict[str, Any]:
        encode(self.x_first[:8])  # warm-up
        sync(self.device)
        start = time.perf_counter()
        encode(self.x_first)
        sync(self.device)
        seconds_1k = (time.perf_counter() - start) * 1000.0 / len(self.x_first)
        psnr_used, ssim_used = image_quality(self.x_used, decode(encode(self.x_used)))
        psnr = np.full(self.total, np.nan)
        ssim = np.full(self.total, np.nan)
        psnr[self.used], ssim[self.used] = psnr_used, ssim_used
        accuracy = nearest_neighbour_accuracy(encode, self.x_train, self.y_train, self.x_test, self.y_test)
        row = {**summarize_draws(psnr, ssim, self.subsets), "nn_accuracy": accuracy, "seconds_per_1k": seconds_1k, **info}
        print(f"  {label:22s} PSNR {row['psnr_mean']:.2f} ± {row['psnr_std']:.2f}  SSIM {row['ssim_mean']:.4f} ± "
              f"{row['ssim_std']:.4f}  1-NN {100 * accuracy:.2f}%  {seconds_1k:.4f} s/1k", flush=True)
        return row


def evaluate_rival(directory: Path, score: Scorer, args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    model = models.load(directory, device=score.device)
    record = model.record
    print(f"== {model.name} ({directory}) ==", flush=True)
    methods = {"own encoder": score("own encoder", lambda x: model.encode(x, args.batch),
                                    lambda z: model.decode(z, args.batch))}
    target = model.inverter_target()
    cn_note = None
    if target is not None:
        cn_note = target.note
        start = time.perf_counter()
        inverter = fit_inverter(target.generator, target.discriminator, target.feature_layer,
                                latent_shape=target.latent_shape, latent_sampler=target.latent_sampler,
                                steps=args.fit_steps, seed=args.seed, progress=False)
        fit_seconds = time.perf_counter() - start
        methods["CN (ours) on its G"] = score(
            "CN (ours) on its G", lambda x: inverter.encode(x, args.batch), lambda z: inverter.decode(z, args.batch),
            fit_seconds=fit_seconds, fit_steps=args.fit_steps, feature_layer=target.feature_layer,
            best_validation_mse=inverter.config.fit.get("best_validation_mse"))
    training = record.get("training", {})
    result = {
        "kind": "rival", "model": model.name, "dir": str(directory), "description": record.get("description"),
        "parameters": record.get("parameters"), "cn_hook": cn_note,
        "training": {k: training.get(k) for k in ("epochs", "epochs_requested", "stopped_early", "train_seconds",
                                                  "device_name", "torch_version", "command", "n_train")},
        "final_losses": (training.get("losses_per_epoch") or [{}])[-1],
        "methods": methods,
    }
    return model.name, result


def evaluate_ours(spec: str, score: Scorer, args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    gan_dir, inverter_path = parse_ours(spec)
    inverter, config, extra = load_ours(gan_dir, inverter_path, score.device)
    name = f"ours:{config.loss}"
    print(f"== {name} ({gan_dir} + {inverter_path}) ==", flush=True)
    methods = {"CN (ours)": score("CN (ours)", lambda x: inverter.encode(x, args.batch),
                                  lambda z: inverter.decode(z, args.batch),
                                  fit_steps=inverter.config.fit.get("steps"), feature_layer=inverter.feature_layer)}
    result = {
        "kind": "ours", "model": config.loss, "dir": str(gan_dir), "inverter": str(inverter_path),
        "parameters": {"generator": sum(p.numel() for p in inverter.generator.parameters()),
                       "discriminator": sum(p.numel() for p in inverter.discriminator.parameters()),
                       "connection network": sum(p.numel() for p in inverter.cn.parameters())},
        "training": {"epochs": extra.get("epochs"), "train_seconds": extra.get("train_seconds"),
                     "device_name": extra.get("device_name"), "command": extra.get("command")},
        "methods": methods,
    }
    return name, result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rivals", type=Path, nargs="+", default=[], help="rival folders from train.py")
    parser.add_argument("--ours", nargs="+", default=[], help="GAN_DIR:INVERTER (file or save_pretrained folder)")
    parser.add_argument("--merge", type=Path, nargs="+", default=None, help="merge the JSONs of earlier runs")
    parser.add_argument("--ran-in-parallel", action="store_true", help="with --merge: the runs shared one device")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--fit-steps", type=int, default=10000)
    parser.add_argument("--n", type=int, default=1000, help="test images per draw")
    parser.add_argument("--repeats", type=int, default=5, help="draws")
    parser.add_argument("--nn-train", type=int, default=None, help="train codes for 1-NN (default: all 60,000)")
    parser.add_argument("--pixel-nn", action="store_true",
                        help="also report 1-NN accuracy on raw pixels (the reference every encoder should beat)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=1000, help="images per forward pass")
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=Path("docs/results/rivals.json"))
    parser.add_argument("--out", type=Path, default=Path("docs/rivals.md"))
    args = parser.parse_args(argv)
    command = command_line(argv)
    print(command, flush=True)

    if args.merge:
        runs = [json.loads(p.read_text()) for p in args.merge]
        meta = {**runs[0]["meta"], "commands": [c for r in runs for c in r["meta"]["commands"]] + [command],
                "parallel_runs": len(runs) if args.ran_in_parallel else 0}
        results = {name: res for r in runs for name, res in r["results"].items()}
        meta["pixel_nn_accuracy"] = next((r["meta"]["pixel_nn_accuracy"] for r in runs
                                          if r["meta"].get("pixel_nn_accuracy") is not None), None)
    else:
        if not args.rivals and not args.ours:
            parser.error("expected --rivals and/or --ours (or --merge)")
        device = resolve_device(args.device)
        score = Scorer(args, device)
        results = {}
        for directory in args.rivals:
            name, result = evaluate_rival(directory, score, args)
            results[name if name not in results else f"{name}:{directory}"] = result
        for spec in args.ours:
            name, result = evaluate_ours(spec, score, args)
            results[name if name not in results else f"{name}:{spec}"] = result
        pixel_nn = None
        if args.pixel_nn:
            pixel_nn = nearest_neighbour_accuracy(lambda x: x.flatten(1), score.x_train, score.y_train,
                                                  score.x_test, score.y_test)
            print(f"  raw pixels (784 values): 1-NN {100 * pixel_nn:.2f}%", flush=True)
        device_name = (torch.cuda.get_device_name(device) if device.startswith("cuda")
                       else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)")
        meta = {"commands": [command], "device": device_name, "torch": torch.__version__, "fit_steps": args.fit_steps,
                "n": args.n, "repeats": args.repeats, "seed": args.seed, "nn_train": len(score.y_train),
                "nn_test": len(score.y_test), "parallel_runs": 0, "pixel_nn_accuracy": pixel_nn}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    write_markdown(args.out, meta, results)
    print(f"wrote {args.out} and {args.json}", flush=True)
    print(command, flush=True)


def _title(name: str, res: dict[str, Any]) -> str:
    if res["kind"] == "ours":
        return f"our {res['model'].upper()}"
    return MODEL_TITLES.get(res["model"], res["model"])


def _order(results: dict[str, Any]) -> dict[str, Any]:
    """Rivals in the order of ``models.MODELS``, then ours."""
    rank = {name: i for i, name in enumerate(models.MODELS)}
    keys = sorted(results, key=lambda k: (results[k]["kind"] == "ours", rank.get(results[k]["model"], len(rank)), k))
    return {k: results[k] for k in keys}


def write_markdown(out: Path, meta: dict[str, Any], results: dict[str, Any]) -> None:
    results = _order(results)
    rows = []
    for name, res in results.items():
        key = f"ours:{res['model']}" if res["kind"] == "ours" else res["model"]
        for method, r in res["methods"].items():
            paper = PAPER_ROW.get((key, method))
            rows.append((name, res, method, r, paper))
    lines = [
        "# Rivals: models that learn inference jointly with generation",
        "",
        f"Written by `benchmarks/rivals/evaluate.py` on {meta['device']} (torch {meta['torch']}):",
        "",
        *[f"    {c}" for c in meta["commands"]],
        "",
        f"Protocol (as `benchmarks/table1.py`): {meta['n']:,} Fashion-MNIST **test** images drawn {meta['repeats']} "
        f"times (seed {meta['seed']}); PSNR (dB) and SSIM from scikit-image on images mapped to [0, 1]; mean ± std over "
        "the draws. *own encoder*: the rival's E (the VAE's posterior mean), reconstruction G(E(x)). "
        f"*CN (ours) on its G*: `discinvert.fit_inverter` on the rival's own G and D, {meta['fit_steps']:,} batches of "
        "256 fresh pairs, reconstruction G(CN(D_f(x))). *CN (ours)*: our inverter on our GAN. "
        f"*1-NN*: 1-nearest-neighbour accuracy (Euclidean) of the codes of the {meta['nn_test']:,} test images "
        f"against the codes of {meta['nn_train']:,} train images (BiGAN protocol). *s / 1k*: seconds to encode "
        "1,000 images (fitting excluded).",
        "",
    ]
    if meta.get("parallel_runs", 0) > 1:
        lines += [f"The {meta['parallel_runs']} runs above shared one device at the same time: their *s / 1k* and "
                  "fit times include time-sharing (compare within a run only).", ""]
    lines += ["| model | encoder | PSNR | SSIM | 1-NN acc. | s / 1k | paper (PSNR / SSIM) |",
              "|---|---|---|---|---|---|---|"]
    for name, res, method, r, paper in rows:
        cell = f"{PAPER[paper][0]:.2f} / {PAPER[paper][1]:.4f} ({paper})" if paper else "–"
        lines.append(f"| {_title(name, res)} | {method} | {r['psnr_mean']:.2f} ± {r['psnr_std']:.2f} | "
                     f"{r['ssim_mean']:.4f} ± {r['ssim_std']:.4f} | {100 * r['nn_accuracy']:.2f}% | "
                     f"{r['seconds_per_1k']:.4f} | {cell} |")
    lines += ["", "### Ranking by reconstruction PSNR", ""]
    for rank, (name, res, method, r, _) in enumerate(sorted(rows, key=lambda t: -t[3]["psnr_mean"]), 1):
        lines.append(f"{rank}. {_title(name, res)}, {method}: {r['psnr_mean']:.2f} dB, SSIM {r['ssim_mean']:.4f}, "
                     f"1-NN {100 * r['nn_accuracy']:.2f}%")
    lines += ["", "### Ranking by 1-NN accuracy in code space", ""]
    for rank, (name, res, method, r, _) in enumerate(sorted(rows, key=lambda t: -t[3]["nn_accuracy"]), 1):
        lines.append(f"{rank}. {_title(name, res)}, {method}: {100 * r['nn_accuracy']:.2f}%")
    if meta.get("pixel_nn_accuracy") is not None:
        lines += ["", f"Reference: 1-NN on the raw pixels (784 values, same train and test images): "
                  f"{100 * meta['pixel_nn_accuracy']:.2f}%."]
    lines += [
        "",
        "## The paper's Fashion-MNIST figures (Table 1, PSNR dB / SSIM, 5 × 1k test images)",
        "",
        "| " + " | ".join(PAPER) + " |",
        "|" + "---|" * len(PAPER),
        "| " + " | ".join(f"{p:.2f} / {s:.4f}" for p, s in PAPER.values()) + " |",
        "",
        "## For reference only: 1-NN accuracy on **MNIST** (not Fashion-MNIST)",
        "",
        "From the BiGAN slides (shared/seeds/002): 1-NN classification accuracy (%) on the permutation-invariant "
        "MNIST test set in each method's feature space. A different data set (MNIST digits are far easier to separate "
        "than Fashion-MNIST clothes), so not comparable with the Fashion-MNIST column above.",
        "",
        "| " + " | ".join(MNIST_1NN) + " |",
        "|" + "---|" * len(MNIST_1NN),
        "| " + " | ".join(f"{v:.2f}" for v in MNIST_1NN.values()) + " |",
        "",
        "## Models",
        "",
    ]
    for name, res in results.items():
        params = res.get("parameters") or {}
        t = res.get("training") or {}
        lines.append(f"- **{_title(name, res)}** (`{res['dir']}`"
                     + (f" + `{res['inverter']}`" if res.get("inverter") else "") + ")"
                     + (f": {res['description']}" if res.get("description") else ""))
        lines.append("  Parameters: " + ", ".join(f"{k} {v:,}" for k, v in params.items()) + ".")
        if t.get("epochs") is not None:
            seconds = t.get("train_seconds")
            lines.append(f"  Training: {t['epochs']} epoch(s)"
                         + (f" of {t['epochs_requested']} requested (stopped by --max-seconds)" if t.get("stopped_early") else "")
                         + (f", {seconds:.0f} s" if seconds is not None else "")
                         + (f" on {t['device_name']}" if t.get("device_name") else "") + ".")
        if t.get("command"):
            lines.append(f"  Command: `{t['command']}`.")
        if res.get("final_losses"):
            losses = {k: v for k, v in res["final_losses"].items() if k not in ("epoch", "steps", "seconds")}
            lines.append("  Last epoch's mean losses: " + ", ".join(
                f"{k} {v:.4g}" if isinstance(v, (int, float)) else f"{k} {v}" for k, v in losses.items()) + ".")
        if res.get("cn_hook"):
            cn = res["methods"].get("CN (ours) on its G", {})
            lines.append(f"  Our CN hooked: {res['cn_hook']}"
                         + (f"; fit in {cn['fit_seconds']:.0f} s" if cn.get("fit_seconds") is not None else "") + ".")
        elif res["kind"] == "rival":
            lines.append("  No discriminator: no CN can be fit on its decoder.")
    lines.append("")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))


if __name__ == "__main__":
    main()
