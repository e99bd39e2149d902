#!/usr/bin/env python
"""Build the zoo entry ``stylegan2-fashion-mnist`` from a training run of the reference StyleGAN2.

    python -m tools.build_zoo_stylegan2 --run runs/stylegan2

``--run``: the folder ``benchmarks/stylegan2/train.py`` wrote (``generator.safetensors``: the EMA G,
``discriminator.safetensors``, ``config.json``). Writes ``discinvert/zoo/<name>/`` (or ``--out``):

- ``gan/``: G and D in ``--gan-dtype`` (float16), with an ``inversion`` record: the codes' space (``--space``,
  W+), the fixed noise buffers, no truncation, and D's feature layer as ``suggest_feature_layers`` picks it on
  G's images (the last per-image layer, before the minibatch standard deviation). The entry is re-loaded as the zoo
  loads it (float32, ``MappedGenerator.nvidia``) *before* any inverter is fit, so the fingerprints match the
  bundled weights exactly.
- ``test_images.safetensors``: the first ``--per-class`` (100) images of each class of the Fashion-MNIST **test**
  split (no model saw them), stored at 28x28 (uint8 ``(1000, 28, 28)``, labels and their indices in the split)
  with the metadata ``pad`` = 2: ``zoo.load_test_images`` pads them to 32x32 with the background 0. Where the
  entry ``dcgan-fashion-mnist`` beside the built one stores exactly the same (it does, with the default 100), only
  ``test_images.json`` is written instead: a pointer to its file with ``pad`` 2 and the file's sha256
  (``discinvert.zoo.test_images``), so the package ships the images once.
- ``inverter/``: the paper's CN (self-generated pairs only), fitted with the library's defaults but
  ``--cn-hidden``; ``inverter-real-images/``: the same with the real-image stage on the Fashion-MNIST **train**
  split (padded) but its last ``--holdout`` images (``--no-real-images``: none). Both in the Hub layout, weights
  stored as ``--inverter-dtype`` (int8), with model cards whose metrics are those of the stored files on the
  entry's 1,000 test images (encode PSNR/SSIM), the held-out train images' encode PSNR (the figure to choose
  settings on, never the test images'), the fit's seconds, and what storing G and D in ``--gan-dtype`` costs
  (``tools/check_zoo_storage.py``: the stored G's images against the float32 G's, and the encodes through each).

``--rescore`` fits nothing: it scores the built entry's stored inverters again (as the build scores them) and
rewrites only their model cards, keeping the fit's seconds and command from each card (used once, after the
scoring range of an unclamped G was fixed).

Prints every figure, the file sizes and the entry's total. The entry is built in a scratch folder and moves into
place (replacing the one there) only once complete. ``--device cuda`` fits on a GPU (two default fits
through this G take the better part of an hour on 2 CPU cores). ``--train-limit``, ``--steps``, ``--real-steps``,
``--per-class`` and ``--check-n`` make small test builds.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import safetensors
import safetensors.torch
import torch
import torch.nn.functional as F

from benchmarks.common import command_line
from benchmarks.stylegan2.train import PAD, padded_train_images
from discinvert import Inverter, fit_inverter, suggest_feature_layers
from discinvert.metrics import reconstruction_score
from discinvert.zoo import read_test_images
from discinvert.zoo.datasets import FASHION_MNIST_CLASSES, load_fashion_mnist, to_model_range
from discinvert.zoo.gans import ZooGAN, load_zoo_gan
from discinvert.zoo.stylegan2 import load_stylegan2, save_stylegan2
from discinvert.zoo.test_images import POINTER, STORED, pointer_record
from tools.check_zoo_storage import encode_check, float32_twin, image_check

ZOO = Path(__file__).resolve().parents[1] / "discinvert" / "zoo"
NAME = "stylegan2-fashion-mnist"
SHARE_TEST_IMAGES_FROM = "dcgan-fashion-mnist"  # the entry beside it whose test images it shares when they are the same
DTYPES = {"int8": torch.int8, "float16": torch.float16, "float32": torch.float32}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="the folder benchmarks/stylegan2/train.py wrote")
    parser.add_argument("--name", default=NAME, help="the entry's name (default %(default)s)")
    parser.add_argument("--out", type=Path, default=None, help="the entry's folder (default: discinvert/zoo/NAME)")
    parser.add_argument("--space", choices=("z", "w", "w+"), default="w+", help="the codes' space (default w+)")
    parser.add_argument("--gan-dtype", choices=("float16", "float32"), default="float16")
    parser.add_argument("--inverter-dtype", choices=tuple(DTYPES), default="int8")
    parser.add_argument("--cn-hidden", type=int, nargs="*", default=[256], help="hidden widths of both CNs")
    parser.add_argument("--steps", type=int, default=0, help="self-generated steps (0: the library's default)")
    parser.add_argument("--real-steps", type=int, default=0, help="real-image steps (0: the library's default)")
    parser.add_argument("--no-real-images", dest="real_images", action="store_false",
                        help="bundle only the paper's CN")
    parser.add_argument("--holdout", type=int, default=1000, help="last N train images left out (as the benchmarks)")
    parser.add_argument("--train-limit", type=int, default=None, help="only the first N train images (test builds)")
    parser.add_argument("--per-class", type=int, default=100, help="test images of each class")
    parser.add_argument("--check-n", type=int, default=1000, help="codes for the storage check of G's images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="where to fit (the scores and checks run on the CPU)")
    parser.add_argument("--rescore", action="store_true",
                        help="fit nothing: score the built entry's inverters again and rewrite their model cards")
    parser.add_argument("--data-root", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = ZOO / args.name
    args.final = args.out  # the entry is built in a scratch folder (args.out) and moved here when complete
    return args


def _same_as_stored(folder: Path, arrays: dict[str, np.ndarray]) -> bool:
    """Whether ``folder``'s own ``test_images.safetensors`` holds exactly ``arrays`` (names, dtypes, shapes, values)."""
    with safetensors.safe_open(str(folder / STORED), framework="np") as handle:
        if sorted(handle.keys()) != sorted(arrays):
            return False
        return all(handle.get_tensor(k).dtype == a.dtype and np.array_equal(handle.get_tensor(k), a)
                   for k, a in arrays.items())


def write_test_images(out: Path, *, per_class: int, data_root: Path | None, command: str,
                      share_from: Path | None = None) -> torch.Tensor:
    """The first ``per_class`` test images of each class, stored at 28x28 to be padded by ``PAD`` with the
    background 0 when loaded (a quarter less to ship); returns them padded to 32x32 in G's range ``(N, 1, 32, 32)``.

    Where ``share_from`` (the folder of the zoo entry that will lie beside this one, e.g. the DCGAN's) stores
    exactly these images, labels and indices, only the pointer ``test_images.json`` is written (the package ships
    them once; ``discinvert.zoo.test_images``); otherwise, or without ``share_from``, ``test_images.safetensors``
    with the metadata ``pad``."""
    images, labels = load_fashion_mnist("test", root=data_root)
    chosen = np.sort(np.concatenate([np.flatnonzero(labels == k)[:per_class]
                                     for k in range(len(FASHION_MNIST_CLASSES))]))
    arrays = {"images": np.ascontiguousarray(images[chosen]), "labels": labels[chosen].astype(np.int64),
              "indices": chosen.astype(np.int64)}
    if share_from is not None and (share_from / STORED).is_file() and _same_as_stored(share_from, arrays):
        (out / POINTER).write_text(json.dumps(pointer_record(share_from, pad=PAD)) + "\n")
        print(f"test images: the same as {share_from / STORED}; wrote the pointer {POINTER}", flush=True)
    else:
        safetensors.torch.save_file(
            {k: torch.from_numpy(a) for k, a in arrays.items()}, str(out / STORED),
            metadata={"source": f"Fashion-MNIST test split (t10k), first images of each class, stored at 28x28; "
                                f"padded by {PAD} pixels of background to 32x32 when loaded", "pad": str(PAD),
                      "command": command})
    padded = np.pad(arrays["images"], ((0, 0), (PAD, PAD), (PAD, PAD)))  # background 0 (-1 in G's range)
    return to_model_range(padded)


def store_gan(args: argparse.Namespace, command: str) -> ZooGAN:
    """The run's G and D in ``--gan-dtype`` with the inversion record, re-loaded as the zoo loads them."""
    G, D, config, extra = load_stylegan2(args.run)
    with torch.no_grad():
        example = G(torch.randn(16, G.z_dim, generator=torch.Generator().manual_seed(args.seed)), noise_mode="const")
    (layer,) = suggest_feature_layers(D, example)
    inversion = {"space": args.space, "noise_mode": "const", "truncation_psi": 1.0, "feature_layer": layer}
    save_stylegan2(args.out / "gan", G, D, config, dtype=getattr(torch, args.gan_dtype), inversion=inversion,
                   extra={**extra, "zoo_command": command, "source_run": str(args.run)})
    gan = load_zoo_gan(args.out / "gan")
    print(f"stored the GAN in {args.gan_dtype}: {gan.summary}, D's feature layer {layer} (suggest_feature_layers)",
          flush=True)
    return gan


def fit_one(gan: ZooGAN, args: argparse.Namespace, images: torch.Tensor | None) -> tuple[Inverter, float]:
    """One inverter for the stored GAN with the library's defaults but ``--cn-hidden`` (and the step counts)."""
    settings: dict[str, Any] = {"seed": args.seed, "cn_hidden": tuple(args.cn_hidden)}
    settings.update({k: v for k, v in (("steps", args.steps), ("real_steps", args.real_steps)) if v})
    if images is None:
        settings.pop("real_steps", None)
    if args.device != "cpu":
        gan = load_zoo_gan(args.out / "gan", device=args.device)
    G = gan.generator
    start = time.perf_counter()
    inverter = fit_inverter(G, gan.discriminator, gan.feature_layer, images=images, device=args.device,
                            **settings)  # codes, sampler and prior: the MappedGenerator's space
    return inverter, time.perf_counter() - start


def _score(inverter: Inverter, x: torch.Tensor) -> dict[str, float]:
    return reconstruction_score(inverter, x, n=len(x), repeats=1)


def card_metrics(scores: dict[str, Any], figures: dict[str, Any], args: argparse.Namespace,
                 fit_line: tuple[str, float], command: str) -> dict[str, Any]:
    """The model card's metrics: ``scores`` (``test``, ``heldout_train``, ``storage``) of the stored inverter."""
    test, heldout, storage, images = scores["test"], scores["heldout_train"], scores["storage"], figures["images"]
    return {
        "data": f"the {len(figures['test_x'])} bundled Fashion-MNIST test images, padded to 32x32 (never trained on)",
        "encode PSNR (dB)": round(test["psnr_mean"], 3),
        "encode SSIM": round(test["ssim_mean"], 4),
        f"held-out train images (the last {len(figures['heldout_x'])}): encode PSNR (dB)": round(heldout["psnr_mean"], 3),
        fit_line[0]: round(fit_line[1], 1),
        "weights stored as": f"{args.inverter_dtype} (the CN); G and D {args.gan_dtype}",
        f"G stored in {args.gan_dtype} vs float32, {images['n_codes']} codes: max abs pixel difference / PSNR (dB)":
            f"{images['max_abs_pixel_difference']:.2e} / {images['psnr_db_stored_vs_fp32']:.2f}",
        f"encode through G and D in {args.gan_dtype} vs float32: encode PSNR (dB)":
            f"{storage['encode_psnr_db_stored']:.3f} / {storage['encode_psnr_db_fp32']:.3f}",
        "command": command,
    }


def score_stored(stored: Inverter, folder: Path, gan: ZooGAN, figures: dict[str, Any]) -> dict[str, Any]:
    """The stored inverter (weights as written to ``folder``) on the test and held-out train images, in G's
    nominal range (``stored.value_range``), and what G and D in float16 cost its encodes."""
    return {"test": _score(stored, figures["test_x"]), "heldout_train": _score(stored, figures["heldout_x"]),
            "storage": encode_check(folder, (gan.generator, gan.discriminator), figures["fp32"], figures["test_x"])}


def save_inverter(inverter: Inverter, gan: ZooGAN, folder: Path, figures: dict[str, Any], args: argparse.Namespace,
                  gan_line: str) -> dict[str, Any]:
    """``inverter`` stored in ``--inverter-dtype``, scored as stored, then written with its model card."""
    dtype = DTYPES[args.inverter_dtype]
    with tempfile.TemporaryDirectory() as scratch:
        inverter.save_pretrained(scratch, dtype=dtype)
        stored = Inverter.from_pretrained(scratch, generator=gan.generator, discriminator=gan.discriminator)
        scores = score_stored(stored, Path(scratch), gan, figures)
    fit_line = (f"fit seconds ({args.device}, {args.threads} CPU threads)", figures["seconds"])
    metrics = card_metrics(scores, figures, args, fit_line, f"`{figures['command']}`")
    inverter.save_pretrained(folder, gan=gan_line, metrics=metrics, dtype=dtype)
    result = {**scores, "seconds": figures["seconds"]}
    print(json.dumps({folder.name: result}, indent=1), flush=True)
    return result


def _card_row(card: str, prefix: str) -> tuple[str, str]:
    """The (key, value) of the model card's metrics row whose key starts with ``prefix``."""
    for line in card.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[0].startswith(prefix):
            return cells[0], cells[1]
    raise SystemExit(f"--rescore: the model card has no row starting {prefix!r}")


def rescore(args: argparse.Namespace, command: str) -> dict[str, Any]:
    """Score the built entry's stored inverters again and rewrite only their model cards (``README.md``): their
    weights, the GAN and the test images stay as built; the fit's seconds and command are kept from the card."""
    folder = args.final
    gan = load_zoo_gan(folder / "gan")
    test_u8, _ = read_test_images(folder)
    train = padded_train_images(data_root=args.data_root, limit=args.train_limit)
    figures: dict[str, Any] = {
        "test_x": to_model_range(test_u8), "heldout_x": train[len(train) - args.holdout:],
        "fp32": (float32_twin(args.run, {"space": args.space, "noise_mode": "const", "truncation_psi": 1.0}),
                 load_stylegan2(args.run)[1])}
    figures["images"] = image_check(figures["fp32"][0], gan.generator, n=args.check_n, seed=args.seed)
    results: dict[str, Any] = {"command": command}
    for kind, sub in (("paper", "inverter"), ("real-images", "inverter-real-images")):
        if not (folder / sub / "model.safetensors").is_file():
            continue
        card = (folder / sub / "README.md").read_text()
        gan_line = card.split("**GAN it belongs to**: ", 1)[1].split("\n", 1)[0].rstrip(".")
        key, seconds = _card_row(card, "fit seconds")
        built_by = _card_row(card, "command")[1]
        stored = Inverter.from_pretrained(folder / sub, generator=gan.generator, discriminator=gan.discriminator)
        scores = score_stored(stored, folder / sub, gan, figures)
        metrics = card_metrics(scores, figures, args, (key, float(seconds)), f"{built_by}; scored by `{command}`")
        with tempfile.TemporaryDirectory() as scratch:
            stored.save_pretrained(scratch, gan=gan_line, metrics=metrics, dtype=DTYPES[args.inverter_dtype])
            shutil.copyfile(Path(scratch) / "README.md", folder / sub / "README.md")
        results[kind] = scores
        print(json.dumps({sub: scores}, indent=1), flush=True)
    return results


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    command = command_line(__spec__, argv)
    print(command, flush=True)
    torch.set_num_threads(args.threads)
    if args.rescore:
        return rescore(args, command)
    # Built outside the zoo and moved into place at the end: a failed build leaves no half entry that
    # zoo.available() would list.
    args.out = Path(tempfile.mkdtemp(prefix=f"{args.name}-")) / args.name
    args.out.mkdir()
    gan = store_gan(args, command)
    test_x = write_test_images(args.out, per_class=args.per_class, data_root=args.data_root, command=command,
                               share_from=args.final.parent / SHARE_TEST_IMAGES_FROM)
    train = padded_train_images(data_root=args.data_root, limit=args.train_limit)
    if args.holdout < 1 or args.holdout >= len(train):
        raise SystemExit(f"--holdout {args.holdout}: expected 1 .. {len(train) - 1} (train images: {len(train)})")
    heldout_x, train_x = train[len(train) - args.holdout:], train[: len(train) - args.holdout]
    fp32_g = float32_twin(args.run, {"space": args.space, "noise_mode": "const", "truncation_psi": 1.0})
    fp32 = (fp32_g, load_stylegan2(args.run)[1])
    images = image_check(fp32_g, gan.generator, n=args.check_n, seed=args.seed)
    print(f"G in {args.gan_dtype} against float32: {json.dumps(images)}", flush=True)
    iterations = gan.extra.get("iterations", "?")
    gan_line = (f"the reference StyleGAN2 trained on Fashion-MNIST padded to 32x32 by `benchmarks/stylegan2/train.py` "
                f"({iterations} iterations; bundled as discinvert.zoo entry `{args.name}`), inverted into "
                f"{args.space.upper()} through `MappedGenerator.nvidia` (fixed noise, no truncation)")
    results: dict[str, Any] = {"command": command, "gan": gan.summary, "feature_layer": gan.feature_layer,
                               "images": images}
    for kind, folder, real in (("paper", "inverter", None), ("real-images", "inverter-real-images", train_x)):
        if real is not None and not args.real_images:
            continue
        print(f"fitting the {kind} inverter ...", flush=True)
        inverter, seconds = fit_one(gan, args, real)
        line = gan_line + ("" if real is None else f"; fitted with the real-image stage on the Fashion-MNIST train "
                                                   f"split (padded) but its last {args.holdout} images")
        figures = {"test_x": test_x, "heldout_x": heldout_x, "fp32": fp32, "images": images, "seconds": seconds,
                   "command": command}
        results[kind] = save_inverter(inverter, gan, args.out / folder, figures, args, line)
    sizes = {p.relative_to(args.out).as_posix(): p.stat().st_size for p in sorted(args.out.rglob("*")) if p.is_file()}
    results["sizes"] = sizes
    if args.final.exists():
        shutil.rmtree(args.final)
    args.final.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(args.out), str(args.final))
    shutil.rmtree(args.out.parent, ignore_errors=True)
    print(f"wrote {args.final}", flush=True)
    print(json.dumps(sizes, indent=1), f"\ntotal {sum(sizes.values()) / 1e6:.2f} MB", flush=True)
    return results


if __name__ == "__main__":
    main()
