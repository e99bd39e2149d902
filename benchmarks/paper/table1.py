#!/usr/bin/env python
"""The paper's Table 1 protocol on Fashion-MNIST: our inverter, the baselines and the rivals in one table.

    python -m benchmarks.paper.table1 --gans runs/dcgan runs/lsgan runs/wgan-gp \
        --rivals runs/rivals/vae runs/rivals/bigan runs/rivals/gaan runs/rivals/aaae --device cuda

For each reference GAN in ``--gans`` (trained by ``benchmarks/paper/train_gan.py`` on the train split):

- **CN (ours)**: ``fit_inverter`` on D's last hidden layer, ``--fit-steps`` batches of 256;
- **naive encoder**: the same architecture (a re-initialised copy of D up to the feature
  layer + the same CN) trained from scratch on ``(G(z), z)`` with the same budget;
- **optimisation only**: Adam on z from a random N(0, I) start, ``--k`` steps;
- **iGAN**: naive encoder + ``--k`` steps;
- **hybrid**: CN + ``--k`` steps (``Inverter.refine``).

For each rival in ``--rivals`` (a model that learns an encoder jointly with its generator,
trained by ``benchmarks/paper/rivals/train.py``; ``benchmarks/paper/rivals/models.py`` describes them):

- **own encoder**: reconstruction ``G(E(x))`` (the VAE's posterior mean);
- **CN (ours) on its G**, where the rival has a discriminator: ``fit_inverter`` on the
  rival's G and D with the same ``--fit-steps`` as the reference GANs' CN. GAAN: D's last
  hidden layer ``main.5``. AAAE: D_x's ``main.7``, latents drawn from its latent generator.
  BiGAN: its D is joint, ``D(x, z)``, so it is hooked through ``BiGANImageDiscriminator``
  (``x -> D(x, 0)``, layer ``d.x_trunk.7``): the x-trunk's features do not depend on z.
  The VAE has no D.

Scoring (``benchmarks/paper/protocol.py``, the same for every row): 1,000 unseen **test** images
drawn 5 times (seed 0); PSNR and SSIM from scikit-image on images mapped to [0, 1]; mean ±
std over the draws; 1-NN accuracy in code space for every feed-forward encoder (codes of
the 10,000 test images against the codes of the train images, all 60,000 unless
``--nn-train``; the BiGAN protocol); seconds per 1,000 images on the first draw (fitting
excluded). Nothing here is tuned on the test split: the fit budget and step sizes come from
``docs/lab/defaults.md`` (training images) and the refinement step size from ``--refine-lr``.

For the reference GANs it also runs optimisation-only for a range of step counts on the
first draw, to find where optimisation first matches the CN's PSNR and how much slower it
is there.

Runs can be split (one process per model, e.g. on one GPU: pass ``--concurrent N`` to say how
many shared it) and joined with ``--merge A.json B.json ...``, which refuses runs with
different protocols. Writes ``--out`` (Markdown), ``--json`` and the summary block of the README and of
``docs/results.md``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.baselines import fit_naive_encoder, optimization_only
from benchmarks.common import command_line, describe_device, pick_device, timed
from benchmarks.paper.protocol import (
    MNIST_1NN,
    PAPER_BEST_PSNR,
    PAPER_FASHION_MNIST,
    Protocol,
)
from benchmarks.paper.rivals import models as rival_models
from discinvert import fit_inverter
from discinvert.metrics import image_quality
from discinvert.optimize import DEFAULT_REFINE_LR, optimize_latents
from discinvert.zoo.architectures import load_gan

GAN_TITLES = {"dcgan": "DCGAN", "lsgan": "LSGAN", "wgan-gp": "WGAN-GP"}
RIVAL_TITLES = {"vae": "VAE", "bigan": "BiGAN/ALI", "gaan": "GAAN/Dist-GAN", "aaae": "AAAE"}
RIVAL_ORDER = ("vae", "bigan", "gaan", "aaae")
# Which of our rows each of the paper's Fashion-MNIST figures sits beside: (kind, model, method) -> paper column.
PAPER_ROW = {
    ("gan", "dcgan", "CN (ours)"): "DCGAN", ("gan", "lsgan", "CN (ours)"): "LSGAN",
    ("gan", "wgan-gp", "CN (ours)"): "WGAN-GP", ("rival", "vae", "own encoder"): "VAE",
    ("rival", "bigan", "own encoder"): "ALI/BiGAN",
}
# What differs between the paper's set-up and ours, for each paper column we sit beside
# (set-up facts only: the figures themselves come from the run).
SETUP_NOTES = {
    "VAE": "The paper says only that its models borrow DCGAN's architecture. Ours is a sigma-VAE: a Gaussian "
           "decoder with one shared variance set to its optimum, which weighs the pixel error far more heavily "
           "against the KL term than a unit-variance or Bernoulli decoder does; its encoder is trained on exactly "
           "the pixel reconstruction that PSNR measures.",
    "ALI/BiGAN": "E and G meet only through the joint discriminator; no loss asks G(E(x)) to equal x, so a "
                 "reconstruction often keeps the kind of garment rather than the garment (the paper's Fig. 2 "
                 "shows the same). Its figure depends on how long the adversarial training ran (see Models).",
    "DCGAN": "Same DCGAN-style backbone and the paper's CN shape (FC1024-BN-LeakyReLU twice, then FC to z). The "
             "paper gives neither its GANs' training length nor its CN's budget (the authors' code used about "
             "100k iterations); our CN reads D's last hidden layer and sees --fit-steps batches of 256 fresh pairs.",
}
SETUP_NOTES["LSGAN"] = SETUP_NOTES["WGAN-GP"] = SETUP_NOTES["DCGAN"]
PROTOCOL_KEYS = ("device", "torch", "fit_steps", "k", "refine_lr", "curve", "batch", "n", "repeats", "seed", "nn_train",
                 "nn_test")


def decode_batched(G: torch.nn.Module, codes: torch.Tensor, batch: int = 1000) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([G(codes[i : i + batch]) for i in range(0, len(codes), batch)])


def evaluate_gan(gan_dir: Path, proto: Protocol, args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """Every inversion method on one reference GAN: CN, naive encoder, optimisation only, iGAN, hybrid."""
    device = proto.device
    G, D, config, extra = load_gan(gan_dir, device=device)
    name = config.loss
    print(f"== {name} ({gan_dir}) ==", flush=True)
    decode = lambda z: decode_batched(G, z, args.batch)  # noqa: E731
    x_first, x_used = proto.x_first, proto.x_used
    rows: dict[str, dict[str, Any]] = {}

    start = time.perf_counter()
    inverter = fit_inverter(G, D, config.feature_layer, latent_shape=config.latent_shape, steps=args.fit_steps,
                            seed=args.seed, progress=False)
    cn_fit = time.perf_counter() - start
    rows["CN (ours)"] = proto.score_encoder("CN (ours)", lambda x: inverter.encode(x, args.batch), decode,
                                            fit_seconds=cn_fit, fit_steps=args.fit_steps,
                                            best_validation_mse=inverter.config.fit.get("best_validation_mse"))

    start = time.perf_counter()
    naive = fit_naive_encoder(G, D, config.feature_layer, latent_shape=config.latent_shape, steps=args.fit_steps,
                              seed=args.seed, progress=False)
    naive_fit = time.perf_counter() - start
    naive_encode = lambda x: naive.encode(x, args.batch)  # noqa: E731
    rows["naive encoder"] = proto.score_encoder("naive encoder", naive_encode, decode, fit_seconds=naive_fit,
                                                fit_steps=args.fit_steps)

    def opt_only(x: torch.Tensor, k: int) -> torch.Tensor:
        return optimization_only(G, x, latent_shape=config.latent_shape, steps=k, lr=args.refine_lr,
                                 seed=args.seed, batch_size=args.batch, progress=False)

    def igan(x: torch.Tensor) -> torch.Tensor:
        return optimize_latents(G, x, naive_encode(x), steps=args.k, lr=args.refine_lr, batch_size=args.batch,
                                progress=False)

    def hybrid(x: torch.Tensor) -> torch.Tensor:
        return inverter.refine(x, args.k, lr=args.refine_lr, batch_size=args.batch, progress=False)

    per_1k = 1000.0 / len(x_first)
    for method, run in ((f"optimisation only ({args.k})", lambda x: opt_only(x, args.k)),
                        (f"iGAN (naive + {args.k})", igan), (f"hybrid (CN + {args.k})", hybrid)):
        _, seconds = timed(device, lambda: run(x_first))
        rows[method] = proto.score_codes(method, run(x_used), decode, seconds * per_1k)

    # Optimisation-only against its step count, on the first draw.
    curve = []
    for k in args.curve:
        codes, seconds = timed(device, lambda: opt_only(x_first, k))
        psnr, ssim = image_quality(x_first, decode(codes))
        curve.append({"steps": k, "psnr": float(psnr.mean()), "ssim": float(ssim.mean()),
                      "seconds_per_1k": seconds * per_1k})
        print(f"  optimisation-only {k:5d} steps: PSNR {psnr.mean():.2f}, {seconds * per_1k:.2f} s/1k", flush=True)
    cn_first_psnr = float(image_quality(x_first, decode(inverter.encode(x_first, args.batch)))[0].mean())
    match = next((c for c in curve if c["psnr"] >= cn_first_psnr), None)
    t_cn = rows["CN (ours)"]["seconds_per_1k"]
    result = {
        "kind": "gan", "model": name, "dir": str(gan_dir), "feature_layer": config.feature_layer,
        "parameters": {"generator": sum(p.numel() for p in G.parameters()),
                       "discriminator": sum(p.numel() for p in D.parameters()),
                       "connection network": sum(p.numel() for p in inverter.cn.parameters())},
        "training": {k: extra.get(k) for k in ("epochs", "epochs_requested", "stopped_early", "train_seconds",
                                               "device_name", "command")},
        "methods": rows, "optimisation_curve": curve, "cn_psnr_first_draw": cn_first_psnr,
        "match": None if match is None else {**match, "speedup": match["seconds_per_1k"] / t_cn},
    }
    return name, result


def evaluate_rival(directory: Path, proto: Protocol, args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """A rival's own encoder, and our CN fit on its generator (where it has a discriminator)."""
    model = rival_models.load(directory, device=proto.device)
    record = model.record
    print(f"== {model.name} ({directory}) ==", flush=True)
    methods = {"own encoder": proto.score_encoder("own encoder", lambda x: model.encode(x, args.batch),
                                                  lambda z: model.decode(z, args.batch))}
    target = model.inverter_target()
    if target is not None:
        start = time.perf_counter()
        inverter = fit_inverter(target.generator, target.discriminator, target.feature_layer,
                                latent_shape=target.latent_shape, latent_sampler=target.latent_sampler,
                                steps=args.fit_steps, seed=args.seed, progress=False)
        fit_seconds = time.perf_counter() - start
        methods["CN (ours) on its G"] = proto.score_encoder(
            "CN (ours) on its G", lambda x: inverter.encode(x, args.batch), lambda z: inverter.decode(z, args.batch),
            fit_seconds=fit_seconds, fit_steps=args.fit_steps, feature_layer=target.feature_layer,
            best_validation_mse=inverter.config.fit.get("best_validation_mse"))
    training = record.get("training", {})
    result = {
        "kind": "rival", "model": model.name, "dir": str(directory), "description": record.get("description"),
        "parameters": record.get("parameters"), "cn_hook": None if target is None else target.note,
        "training": {k: training.get(k) for k in ("epochs", "epochs_requested", "stopped_early", "train_seconds",
                                                  "device_name", "torch_version", "command", "n_train")},
        "final_losses": (training.get("losses_per_epoch") or [{}])[-1],
        "methods": methods,
    }
    return model.name, result


def merge_runs(runs: list[dict[str, Any]], command: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Join the JSONs of runs of one protocol (one process per model) into one table's meta and results.

    Raises:
        ValueError: runs whose protocol differs (device, torch, budgets, draws, 1-NN sets), or two runs
            that scored the same model.
    """
    for run in runs:
        if "runs" not in run.get("meta", {}) or any("kind" not in res for res in run.get("results", {}).values()):
            raise ValueError("--merge: expected JSONs written by this table1.py (meta.runs, a kind per model); "
                             f"received one without them (written by an older table1.py?): {run.get('meta', {}).get('command')}")
    first = runs[0]["meta"]
    for run in runs[1:]:
        differ = {k: (first.get(k), run["meta"].get(k)) for k in PROTOCOL_KEYS if first.get(k) != run["meta"].get(k)}
        if differ:
            raise ValueError(f"--merge: expected runs of one protocol, but these differ (first run, this run): {differ}")
    results: dict[str, Any] = {}
    for run in runs:
        for name, res in run["results"].items():
            if name in results:
                raise ValueError(f"--merge: expected each model once, but {name!r} is in more than one run")
            results[name] = res
    meta = {**first, "runs": [r for run in runs for r in run["meta"]["runs"]], "merge_command": command,
            "pixel_nn_accuracy": next((run["meta"]["pixel_nn_accuracy"] for run in runs
                                       if run["meta"].get("pixel_nn_accuracy") is not None), None)}
    return meta, results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gans", type=Path, nargs="+", default=[], help="reference GAN folders from train_gan.py")
    parser.add_argument("--rivals", type=Path, nargs="+", default=[], help="rival folders from rivals/train.py")
    parser.add_argument("--merge", type=Path, nargs="+", default=None,
                        help="write --out/--json from JSONs of earlier runs (e.g. one per model, run in parallel)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (CUDA when there)")
    parser.add_argument("--fit-steps", type=int, default=10000, help="CN and naive-encoder budget, for every model")
    parser.add_argument("--k", type=int, default=100, help="optimisation steps for optimisation-only, iGAN and hybrid")
    parser.add_argument("--refine-lr", type=float, default=DEFAULT_REFINE_LR)
    parser.add_argument("--curve", type=int, nargs="+", default=[10, 20, 50, 100, 200, 500, 1000])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=1000, help="images per forward pass / optimised together")
    parser.add_argument("--nn-train", type=int, default=None,
                        help="train images for 1-NN accuracy (default: all 60,000; 0 turns 1-NN off)")
    parser.add_argument("--pixel-nn", action="store_true",
                        help="also report 1-NN accuracy on raw pixels (the reference an encoder's codes are read against)")
    parser.add_argument("--concurrent", type=int, default=1,
                        help="how many benchmark processes shared the device during this run (said in the doc)")
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path("docs/lab/benchmarks.md"))
    parser.add_argument("--json", type=Path, default=Path("docs/results/table1.json"))
    parser.add_argument("--readme", type=Path, nargs="+", default=[Path("README.md"), Path("docs/results.md")],
                        help="pages whose block between the table1 markers is re-written (each skipped if absent)")
    args = parser.parse_args(argv)
    command = command_line(__spec__, argv)
    print(command, flush=True)
    if args.merge:
        try:
            meta, results = merge_runs([json.loads(p.read_text()) for p in args.merge], command)
        except ValueError as exc:
            parser.error(str(exc))
    else:
        if not args.gans and not args.rivals:
            parser.error("--gans/--rivals: expected at least one GAN or rival directory (or --merge)")
        if args.concurrent < 1:
            parser.error(f"--concurrent: expected >= 1, received {args.concurrent}")
        if args.nn_train is not None and args.nn_train < 0:
            parser.error(f"--nn-train: expected >= 0 (0 turns 1-NN off), received {args.nn_train}")
        device = str(pick_device(args.device))
        proto = Protocol(device=device, n=args.n, repeats=args.repeats, seed=args.seed, data_root=args.data_root,
                         nn_train=args.nn_train, batch=args.batch)
        results: dict[str, Any] = {}
        for directory, evaluate in [*((d, evaluate_gan) for d in args.gans), *((d, evaluate_rival) for d in args.rivals)]:
            name, result = evaluate(directory, proto, args)
            if name in results:
                parser.error(f"expected each model once, but {name!r} came twice ({results[name]['dir']}, {directory})")
            results[name] = result
        pixel_nn = proto.pixel_nn_accuracy() if args.pixel_nn else None
        if pixel_nn is not None:
            print(f"  raw pixels (784 values): 1-NN {100 * pixel_nn:.2f}%", flush=True)
        nn_train, nn_test = proto.nn_sizes
        meta = {"runs": [{"command": command, "concurrent": args.concurrent, "models": list(results)}],
                "device": describe_device(device), "torch": torch.__version__, "fit_steps": args.fit_steps,
                "k": args.k, "refine_lr": args.refine_lr, "curve": args.curve, "batch": args.batch, "n": args.n, "repeats": args.repeats, "seed": args.seed,
                "nn_train": nn_train, "nn_test": nn_test, "pixel_nn_accuracy": pixel_nn}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    write_markdown(args.out, meta, results)
    for page in args.readme:
        write_readme_block(page, results)
    print(f"wrote {args.out} and {args.json}")
    print(command, flush=True)


START, END = "<!-- table1:start -->", "<!-- table1:end -->"


def _pick(methods: dict[str, Any], prefix: str) -> dict[str, Any]:
    return next(v for k, v in methods.items() if k.startswith(prefix))


def write_readme_block(readme: Path, results: dict[str, Any]) -> None:
    """Re-write the README's summary table (reference GANs) between the markers from these results."""
    gans = {n: r for n, r in results.items() if r["kind"] == "gan"}
    if not gans or not readme.is_file() or START not in readme.read_text():
        return
    lines = [START, "", "| GAN | CN only (ours) | naive encoder | optimisation only | hybrid: CN + optimisation | paper, CN only |",
             "|---|---|---|---|---|---|"]
    for name, res in gans.items():
        m = res["methods"]
        cells = [f"{r['psnr_mean']:.2f} / {r['ssim_mean']:.3f}" for r in
                 (m["CN (ours)"], m["naive encoder"], _pick(m, "optimisation only"), _pick(m, "hybrid"))]
        paper = PAPER_FASHION_MNIST.get(GAN_TITLES.get(name, ""))
        lines.append(f"| {GAN_TITLES.get(name, name)} | " + " | ".join(cells)
                     + (f" | {paper[0]:.2f} / {paper[1]:.3f} |" if paper else " | – |"))
    lines += ["", END]
    text = readme.read_text()
    head, rest = text.split(START, 1)
    readme.write_text(head + "\n".join(lines) + rest.split(END, 1)[1])


def _ordered(results: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Reference GANs in the order given, then the rivals in ``RIVAL_ORDER``."""
    rank = {name: i for i, name in enumerate(RIVAL_ORDER)}
    keyed = [(0 if r["kind"] == "gan" else 1, rank.get(r["model"], len(rank)), i, name, r)
             for i, (name, r) in enumerate(results.items())]
    return [(name, r) for *_, name, r in sorted(keyed, key=lambda t: t[:3])]


def _title(res: dict[str, Any]) -> str:
    if res["kind"] == "gan":
        return GAN_TITLES.get(res["model"], res["model"])
    return RIVAL_TITLES.get(res["model"], res["model"])


def _cell(r: dict[str, Any]) -> str:
    return f"{r['psnr_mean']:.2f} / {r['ssim_mean']:.4f}"


def _comparison_lines(ordered: list[tuple[str, dict[str, Any]]], meta: dict[str, Any]) -> list[str]:
    """Each row that has a paper figure beside it, the difference, and what differs in the set-up."""
    lines = ["### Compared with the paper", "",
             "| paper column | our row | paper PSNR / SSIM | ours | difference (dB / SSIM) |", "|---|---|---|---|---|"]
    notes: dict[str, list[str]] = {}
    for _, res in ordered:
        for method, r in res["methods"].items():
            column = PAPER_ROW.get((res["kind"], res["model"], method))
            if column is None:
                continue
            p_psnr, p_ssim = PAPER_FASHION_MNIST[column]
            lines.append(f"| {column} | {_title(res)}, {method} | {p_psnr:.2f} / {p_ssim:.4f} | {_cell(r)} | "
                         f"{r['psnr_mean'] - p_psnr:+.2f} / {r['ssim_mean'] - p_ssim:+.4f} |")
            notes.setdefault(SETUP_NOTES[column], []).append(column)
    if len(lines) == 4:
        return []
    lines.append("")
    for note, columns in notes.items():
        lines.append(f"- **{', '.join(columns)}**: {note}".replace("--fit-steps", f"{meta['fit_steps']:,}"))
    # The paper's claim: the CN on every GAN beats VAE and ALI/BiGAN in both PSNR and SSIM.
    cns = [(res, res["methods"]["CN (ours)"]) for _, res in ordered if res["kind"] == "gan"]
    owns = [(res, res["methods"]["own encoder"]) for _, res in ordered
            if res["kind"] == "rival" and res["model"] in ("vae", "bigan")]
    if cns and owns:
        beaten = [f"{_title(g)} CN {'beats' if c['psnr_mean'] > o['psnr_mean'] and c['ssim_mean'] > o['ssim_mean'] else 'does not beat'} "
                  f"{_title(v)} ({_cell(c)} against {_cell(o)})" for g, c in cns for v, o in owns]
        holds = all(" beats " in b for b in beaten)
        scored = {res["model"] for res, _ in owns}
        scope = "" if scored == {"vae", "bigan"} else (
            f" (checked against {_title(owns[0][0])} only: {'ALI/BiGAN' if 'vae' in scored else 'VAE'} was not scored in this run)")
        lines += ["", "The paper's claim that the CN on every GAN beats VAE and ALI/BiGAN in both PSNR and SSIM "
                  f"**{'holds' if holds else 'does not hold'}** for the GANs scored here{scope}: " + "; ".join(beaten) + "."]
    return lines + [""]


def write_markdown(out: Path, meta: dict[str, Any], results: dict[str, Any]) -> None:
    k = meta["k"]
    ordered = _ordered(results)
    gans = [(n, r) for n, r in ordered if r["kind"] == "gan"]
    rivals = [(n, r) for n, r in ordered if r["kind"] == "rival"]
    runs = meta["runs"]
    lines = [
        "# Benchmarks",
        "",
        "## Table 1 protocol: Fashion-MNIST reconstruction of unseen test images",
        "",
        f"Written by `benchmarks/paper/table1.py` on {meta['device']} (torch {meta['torch']}):",
        "",
        *[f"    {r['command']}" for r in runs],
        *([f"    {meta['merge_command']}"] if meta.get("merge_command") else []),
        "",
        f"{meta['n']:,} Fashion-MNIST **test** images drawn {meta['repeats']} times (seed {meta['seed']}); PSNR (dB) and "
        "SSIM from scikit-image on images mapped to [0, 1]; mean ± std over the draws. CN and naive "
        f"encoder: {meta['fit_steps']:,} batches of 256 fresh pairs each (same budget, also for the CN on each rival's "
        f"generator). Optimisation methods: {k} Adam steps on z, step size {meta['refine_lr']}. *own encoder*: a rival's "
        "E (the VAE's posterior mean), reconstruction G(E(x)). *s / 1k*: seconds to invert 1,000 images (fitting excluded).",
    ]
    if meta.get("nn_train"):
        lines[-1] += (f" *1-NN*: 1-nearest-neighbour accuracy (Euclidean) of the codes of the {meta['nn_test']:,} test "
                      f"images against the codes of {meta['nn_train']:,} train images (the BiGAN protocol), for every "
                      "feed-forward encoder; the optimisation rows have none, since it would mean optimising a code "
                      f"for each of those {meta['nn_train'] + meta['nn_test']:,} images.")
    lines += ["The GANs were trained on the train split by `benchmarks/paper/train_gan.py`, the rivals by "
              "`benchmarks/paper/rivals/train.py` (see Models below).", ""]
    shared = [r for r in runs if r.get("concurrent", 1) > 1]
    if shared:
        lines += ["Runs that shared the device with other benchmark processes (their *s / 1k* and fit times include "
                  "that time-sharing; compare seconds within a run only, and see `docs/lab/speed.md` for clean timings): "
                  + "; ".join(f"{', '.join(r['models'])} ({r['concurrent']} processes)" for r in shared) + ".", ""]
    lines += ["| model | method | PSNR | SSIM | 1-NN acc. | s / 1k | paper (PSNR / SSIM) |",
              "|---|---|---|---|---|---|---|"]
    for _, res in ordered:
        for method, r in res["methods"].items():
            column = PAPER_ROW.get((res["kind"], res["model"], method))
            paper = f"{PAPER_FASHION_MNIST[column][0]:.2f} / {PAPER_FASHION_MNIST[column][1]:.4f}" if column else "–"
            nn = f"{100 * r['nn_accuracy']:.2f}%" if r.get("nn_accuracy") is not None else "–"
            lines.append(f"| {_title(res)} | {method} | {r['psnr_mean']:.2f} ± {r['psnr_std']:.2f} | "
                         f"{r['ssim_mean']:.4f} ± {r['ssim_std']:.4f} | {nn} | {r['seconds_per_1k']:.4f} | {paper} |")
    lines += _ranking_lines(ordered)
    if meta.get("pixel_nn_accuracy") is not None:
        lines += ["", f"Reference: 1-NN on the raw pixels (784 values, same train and test images): "
                  f"{100 * meta['pixel_nn_accuracy']:.2f}%."]
    lines += ["", "The paper's Fashion-MNIST row (Table 1; VAE and ALI/BiGAN through their own encoders, the GANs "
              "through the CN; PSNR / SSIM):", "",
              "| " + " | ".join(PAPER_FASHION_MNIST) + " |",
              "|" + "---|" * len(PAPER_FASHION_MNIST),
              "| " + " | ".join(f"{p:.2f} / {s:.4f}" for p, s in PAPER_FASHION_MNIST.values()) + " |", ""]
    lines += _comparison_lines(ordered, meta)
    dc = results.get("dcgan")
    if dc:
        lines += ["### Targets", ""]
        cn = dc["methods"]["CN (ours)"]
        hy = dc["methods"][f"hybrid (CN + {k})"]
        paper_p, paper_s = PAPER_FASHION_MNIST["DCGAN"]
        best_p, best_s = PAPER_FASHION_MNIST["RFGAN"]
        verdict = lambda ok: "**met**" if ok else "**missed**"  # noqa: E731
        lines.append(f"- CN only, our DCGAN: PSNR {cn['psnr_mean']:.2f} dB, SSIM {cn['ssim_mean']:.4f} against the paper's "
                     f"DCGAN {paper_p} / {paper_s}: {verdict(cn['psnr_mean'] >= paper_p and cn['ssim_mean'] >= paper_s)}; "
                     f"against the paper's best row (RFGAN {best_p} / {best_s}): "
                     f"{verdict(cn['psnr_mean'] >= best_p and cn['ssim_mean'] >= best_s)}.")
        lines.append(f"- Hybrid with {k} steps: {hy['psnr_mean']:.2f} dB against the target {PAPER_BEST_PSNR + 2:.2f} dB "
                     f"(paper's best Fashion-MNIST PSNR + 2 dB): {verdict(k <= 100 and hy['psnr_mean'] >= PAPER_BEST_PSNR + 2)}.")
        m = dc["match"]
        if shared:
            lines.append("- Speed (timed here while runs shared the device, so only indicative; the clean "
                         "measurement and its verdict are in `docs/lab/speed.md`):")
        if m is None:
            last = dc["optimisation_curve"][-1]
            lines.append(f"- Speed: optimisation-only never reached the CN's PSNR ({dc['cn_psnr_first_draw']:.2f} dB on the "
                         f"first draw) within {last['steps']} steps; at that budget it is "
                         f"{last['seconds_per_1k'] / cn['seconds_per_1k']:.0f}x slower than encode: "
                         f"{verdict(last['seconds_per_1k'] / cn['seconds_per_1k'] >= 100)} (lower bound).")
        else:
            lines.append(f"- Speed: optimisation-only first matches the CN's PSNR ({dc['cn_psnr_first_draw']:.2f} dB on the "
                         f"first draw) at {m['steps']} steps ({m['psnr']:.2f} dB), taking {m['seconds_per_1k']:.2f} s per 1k "
                         f"images against encode's {cn['seconds_per_1k']:.4f} s: {m['speedup']:.0f}x, target 100x: "
                         f"{verdict(m['speedup'] >= 100)}.")
        lines.append("")
    if gans:
        curve0 = gans[0][1]["optimisation_curve"]
        lines += ["### Optimisation-only against its step count (first draw)", "",
                  "| GAN | " + " | ".join(str(c["steps"]) for c in curve0) + " | CN |",
                  "|---|" + "---|" * (len(curve0) + 1)]
        for _, res in gans:
            cells = [f"{c['psnr']:.2f} dB, {c['seconds_per_1k']:.2f} s" for c in res["optimisation_curve"]]
            lines.append(f"| {_title(res)} | " + " | ".join(cells) + f" | {res['cn_psnr_first_draw']:.2f} dB, "
                         f"{res['methods']['CN (ours)']['seconds_per_1k']:.3f} s |")
        lines.append("")
    lines += ["## For reference only: 1-NN accuracy on **MNIST** (not Fashion-MNIST)", "",
              "From the BiGAN slides (shared/seeds/002): 1-NN classification accuracy (%) on the permutation-invariant "
              "MNIST test set in each method's feature space. A different data set (MNIST digits are far easier to "
              "separate than Fashion-MNIST clothes), so not comparable with the 1-NN column above.", "",
              "| " + " | ".join(MNIST_1NN) + " |", "|" + "---|" * len(MNIST_1NN),
              "| " + " | ".join(f"{v:.2f}" for v in MNIST_1NN.values()) + " |", ""]
    lines += ["## Models", ""]
    for _, res in gans + rivals:
        lines += _model_lines(res)
    lines += ["", "Clean speed and memory figures: `docs/lab/speed.md`; what each fit lever (fused Adam, autocast, "
              "channels-last copies, batch reuse) saves and costs: `docs/lab/fit_speed.md`.", ""]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))


def _ranking_lines(ordered: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """The feed-forward encoders (the rows with a 1-NN figure) ranked by PSNR and by 1-NN accuracy."""
    rows = [(f"{_title(res)}, {method}", r) for _, res in ordered for method, r in res["methods"].items()
            if r.get("nn_accuracy") is not None]
    if len(rows) < 2:
        return []
    lines = ["", "Feed-forward encoders ranked by PSNR: " + "; ".join(
        f"{i}. {label} {r['psnr_mean']:.2f} dB" for i, (label, r) in enumerate(sorted(rows, key=lambda t: -t[1]["psnr_mean"]), 1))
        + ".", "", "Ranked by 1-NN accuracy in code space: " + "; ".join(
        f"{i}. {label} {100 * r['nn_accuracy']:.2f}%" for i, (label, r) in
        enumerate(sorted(rows, key=lambda t: -t[1]["nn_accuracy"]), 1)) + "."]
    return lines


def _model_lines(res: dict[str, Any]) -> list[str]:
    params = res.get("parameters") or {}
    t = res.get("training") or {}
    lines = [f"- **{_title(res)}** (`{res['dir']}`)" + (f": {res['description']}" if res.get("description") else "")]
    if params:
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
    if res["kind"] == "gan":
        cn = res["methods"]["CN (ours)"]
        lines.append(f"  CN on D's layer {res['feature_layer']}; fit in {cn['fit_seconds']:.0f} s.")
    elif res.get("cn_hook"):
        cn = res["methods"].get("CN (ours) on its G", {})
        lines.append(f"  Our CN hooked: {res['cn_hook']}"
                     + (f"; fit in {cn['fit_seconds']:.0f} s" if cn.get("fit_seconds") is not None else "") + ".")
    else:
        lines.append("  No discriminator: no CN can be fit on its decoder.")
    return lines


if __name__ == "__main__":
    main()
