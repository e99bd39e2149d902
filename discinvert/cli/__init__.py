"""The ``discinvert`` command line (also ``python -m discinvert``).

Subcommands: ``layers``, ``fit``, ``encode``, ``reconstruct``, ``evaluate``, ``push``
and ``demo``; ``discinvert COMMAND --help`` describes each.

The parser is built inside :func:`main`, never at import time. Exit codes: 0 success,
2 usage errors (argparse, or options that do not go together), 1 failures, 130 Ctrl-C;
user mistakes (a bad path, factory string, layer name, image shape, zoo entry), a full
disk, an unwritable output and running out of memory print one line, not a traceback.
Every output file is written atomically (:func:`discinvert.serialization.atomic_write`):
a failed write leaves the previous file as it was. Outputs are checked to be writable
before any long work starts.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from discinvert._version import __version__

__all__ = ["main"]

_GAN_HELP = """\
GAN sources (every command but demo):
  --gan DIR         a directory written by discinvert.zoo.architectures.save_gan
                    (generator.safetensors, discriminator.safetensors, config.json),
                    a zoo-entry folder (gan/ + inverter/), or zoo:NAME for a bundled
                    entry (zoo:dcgan-fashion-mnist); its config gives the default
                    feature layer and latent shape, and a zoo entry its inverter.
  --generator package.module:factory --discriminator package.module:factory
                    callables taking no arguments and returning an nn.Module (the
                    current directory is importable); give --latent-shape for them.
"""

_RANGE_HELP = """\
Image values: image files hold 8-bit (0..255) or 16-bit (0..65535) pixels, mapped
linearly onto G's value range --range LO,HI (default: the range the inverter recorded
for G at fit time, e.g. -1,1 for a tanh generator such as the reference and zoo GANs,
0,1 for a sigmoid one): 0 -> LO, the maximum -> HI. A uint8/uint16 .npy array is mapped
the same way. A float .npy array is taken as already in G's range, unless --input-range
gives its range (e.g. 0,1), which is then mapped linearly onto --range. Images far
outside G's range get a warning (--strict-range: an error). Nothing is resized, and
grayscale vs colour must match the inverter's image shape; a generator of flat vectors
(an MLP giving 784 values) takes images of --image-shape C,H,W (e.g. 1,28,28).
"""


class _UsageError(Exception):
    """Options that do not go together: reported like an argparse error (exit code 2)."""


# ---------------------------------------------------------------------------- argument types
_SEED_LIMIT = 2**62  # fit_inverter's seeds: room for seed + 1 and per-rank offsets in torch's int64 seeds


def _shown(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:37] + "...")


def _integer(minimum: int, limit: int | None = None, limit_text: str | None = None) -> Callable[[str], int]:
    """An argparse type: an integer ``>= minimum`` (and ``< limit``), else a message saying so."""
    expected = f"an integer >= {minimum}" if limit is None else f"an integer in [{minimum}, {limit_text or limit})"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {_shown(text)}") from None
        if value < minimum or (limit is not None and value >= limit):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {_shown(text)}")
        return value

    parse.__name__ = expected  # argparse names the type in its "invalid ... value" messages
    return parse


_positive = _integer(0)
_count = _integer(1)
_pairs = _integer(2)  # fit: a batch (and the held-out set) needs two or more latents
_seed = _integer(0, _SEED_LIMIT, "2**62")


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {_shown(text)}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {_shown(text)}")
    return value


def _shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(part) for part in text.replace("x", ",").split(",") if part.strip())
    except ValueError:
        shape = ()
    if not shape or any(d < 1 for d in shape):
        raise argparse.ArgumentTypeError(f"expected positive ints separated by commas such as 100,1,1, got {text!r}")
    return shape


def _value_range(text: str) -> tuple[float, float]:
    from discinvert.cli.images import parse_range

    try:
        return parse_range(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _factory(text: str) -> str:
    from discinvert.cli.sources import check_factory_spec

    try:
        return check_factory_spec(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


@dataclass(frozen=True)
class _ModelSpec:
    """One ``evaluate --model [NAME=]GAN[:INVERTER]``."""

    name: str
    gan: str
    inverter: str | None


def _model_spec(text: str) -> _ModelSpec:
    name, sep, rest = text.partition("=")
    if not sep or "/" in name or ":" in name:
        name, rest = "", text
    if not rest:
        raise argparse.ArgumentTypeError(f"expected [NAME=]GAN[:INVERTER], got {text!r}")
    if rest.startswith("zoo:"):
        entry, _, inverter = rest[len("zoo:"):].partition(":")
        gan = f"zoo:{entry}"
        default_name = entry if not inverter else rest
    elif Path(rest).exists():
        gan, inverter, default_name = rest, "", rest
    else:
        gan, _, inverter = rest.partition(":")
        default_name = rest
    if not gan or gan == "zoo:":
        raise argparse.ArgumentTypeError(f"expected [NAME=]GAN[:INVERTER] with a GAN directory or zoo:ENTRY, got {text!r}")
    return _ModelSpec(name or default_name, gan, inverter or None)


# ---------------------------------------------------------------------------- shared helpers
def _check_gan_options(args: argparse.Namespace, *, need_generator: bool = True) -> None:
    """``--gan`` or the factories, not both, not neither."""
    factories = args.generator is not None or args.discriminator is not None
    if args.gan is not None and factories:
        raise _UsageError("give either --gan or --generator/--discriminator, not both")
    if args.gan is None and not factories:
        raise _UsageError("a GAN is needed: --gan DIR (or zoo:NAME), or --generator and --discriminator factories")
    if factories and args.discriminator is None:
        raise _UsageError("--discriminator package.module:factory is needed with --generator")
    if factories and need_generator and args.generator is None:
        raise _UsageError("--generator package.module:factory is needed with --discriminator")


def _load_gan(args: argparse.Namespace, *, need_generator: bool = True) -> Any:
    """G and D from ``--gan`` or the factories, after checking the options go together."""
    from discinvert.cli.sources import load_gan_source, parse_device

    _check_gan_options(args, need_generator=need_generator)
    device = parse_device(args.device)
    return load_gan_source(gan=args.gan, generator=args.generator, discriminator=args.discriminator,
                           latent_shape=getattr(args, "latent_shape", None), device=device)


def _load_inverter(args: argparse.Namespace, gan: Any, token: str | None = None) -> Any:
    from discinvert.cli.sources import load_inverter

    spec = args.inverter or gan.default_inverter
    if spec is None:
        raise _UsageError("--inverter PATH is needed (an inverter file, a save_pretrained directory, org/name or zoo:NAME)")
    return load_inverter(spec, gan.generator, gan.discriminator, token=token)


def _codes_suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".safetensors"):
        raise _UsageError(f"--out {path}: expected a .npy or .safetensors file for the codes")
    return suffix


def _range_check(args: argparse.Namespace) -> str:
    return "raise" if args.strict_range else "warn"


def _invert(inverter: Any, x: Any, args: argparse.Namespace) -> Any:
    if args.refine_steps:
        return inverter.refine(x, args.refine_steps, batch_size=args.batch_size, progress=None if args.progress else False,
                               range_check=_range_check(args))
    return inverter.encode(x, args.batch_size, range_check=_range_check(args))


@dataclass(frozen=True)
class _Prepared:
    """Images ready for the inverter, and how they are seen as pictures."""

    x: Any  # (N, *inverter.image_shape) in G's range
    value_range: tuple[float, float]  # --range, else the inverter's recorded range
    picture_shape: tuple[int, ...]  # (C, H, W): --image-shape, else the inverter's image shape


def _prepare(raw: Any, inverter: Any, args: argparse.Namespace) -> _Prepared:
    from discinvert.cli.images import prepare_images

    value_range = tuple(args.range) if args.range is not None else tuple(inverter.value_range)
    shape = tuple(inverter.image_shape)
    picture = tuple(args.image_shape) if args.image_shape is not None else shape
    if math.prod(picture) != math.prod(shape):
        raise ValueError(f"--image-shape {','.join(map(str, picture))}: expected C,H,W holding {math.prod(shape)} values "
                         f"(one image of this generator, shape {_format_shape(shape)}).")
    x = prepare_images(raw, picture, value_range, args.input_range)
    return _Prepared(x.reshape(len(x), *shape), value_range, picture)


def _format_shape(shape: Sequence[int] | None) -> str:
    return "-" if shape is None else "(" + ", ".join(str(d) for d in shape) + ")"


def _check_writable(path: Path, *, directory: bool = False) -> None:
    """``--out``/``--json`` can be written, checked before any long work (exit 1 if not)."""
    from discinvert.serialization import check_writable

    check_writable(path, directory=directory)


# ---------------------------------------------------------------------------- commands
def _demo(args: argparse.Namespace) -> int:
    from discinvert.cli.demo import DemoOptions, run_demo

    options = DemoOptions(out=args.out, fit=args.fit, fit_steps=args.steps, n_images=args.n_images,
                          refine_images=args.refine_images, refine_steps=args.refine_steps, seed=args.seed)
    print(f"discinvert demo: bundled DCGAN on Fashion-MNIST, {'fitting a fresh' if args.fit else 'bundled'} inverter", flush=True)
    metrics = run_demo(options)
    print(f"\n{'method':26s} {'images':>6s} {'PSNR (dB)':>14s} {'SSIM':>16s} {'seconds':>8s}")
    for name, m in metrics["methods"].items():
        print(f"{name:26s} {m['n_images']:6d} {m['psnr_mean']:7.2f} ± {m['psnr_std']:4.2f} "
              f"{m['ssim_mean']:8.4f} ± {m['ssim_std']:.3f} {m['seconds']:8.2f}")
    print(f"\nwrote {args.out / 'reconstructions.png'} and {args.out / 'metrics.json'}")
    return 0


def _layers(args: argparse.Namespace) -> int:
    import torch

    from discinvert.gan import model_device
    from discinvert.guard import frozen
    from discinvert.layers import list_layers

    _check_gan_options(args, need_generator=False)
    if args.generator is not None and args.latent_shape is None and args.image_shape is None:
        raise _UsageError("--latent-shape (e.g. 100,1,1) is needed to run the --generator factory")
    gan = _load_gan(args, need_generator=False)
    D = gan.discriminator
    device = model_device(D) or torch.device("cpu")
    rng = torch.Generator().manual_seed(0)
    example = None
    if args.image_shape is not None:
        example = torch.randn((2, *args.image_shape), generator=rng).to(device)
        made = f"random images of shape {_format_shape(example.shape)}"
    elif gan.generator is not None and gan.latent_shape is not None:
        z = torch.randn((2, *gan.latent_shape), generator=rng).to(device)
        try:
            with frozen(gan.generator), torch.no_grad():
                example = gan.generator(z)
        except Exception as error:  # the user's G
            raise ValueError(f"latent shape {_format_shape(gan.latent_shape)}: the generator rejected latents "
                             f"of shape {_format_shape(z.shape)} ({type(error).__name__}: {error}).") from None
        if not isinstance(example, torch.Tensor):
            raise ValueError(f"generator: expected a tensor of images, got {type(example).__name__}.")
        made = f"G(z) of shape {_format_shape(example.shape)}"
    else:
        made = "none (give --generator with --latent-shape, or --image-shape, for output shapes)"
    try:
        layers = list_layers(D, example)
    except Exception as error:  # the user's D on these images
        shape = _format_shape(example.shape) if example is not None else "-"
        raise ValueError(f"discriminator: failed on example images of shape {shape} ({type(error).__name__}: "
                         f"{error}).") from None
    print(f"discriminator layers of {gan.description}")
    print(f"example input: {made}")
    rows = [(info.name or "(D)", info.type, _format_shape(info.output_shape),
             "-" if info.features is None else str(info.features), str(info.num_parameters),
             "-" if info.calls is None else str(info.calls)) for info in layers]
    header = ("layer", "type", "output shape", "features", "params", "calls")
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) for i in range(6)]
    print("  " + "  ".join(h.ljust(w) if i < 3 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths))))
    for info, row in zip(layers, rows):
        mark = "*" if gan.feature_layer is not None and info.name == gan.feature_layer else " "
        print(mark + " " + "  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
    if any(info.calls is not None and info.calls > 1 for info in layers):
        print("calls > 1: a module D runs several times (shared); it cannot be the feature layer")
    if gan.feature_layer is not None:
        print(f"* the GAN config's feature layer ({gan.feature_layer}), used by `discinvert fit` by default")
    else:
        print("choose --feature-layer for `discinvert fit`; the paper uses D's last hidden layer")
    return 0


def _fit(args: argparse.Namespace) -> int:
    import torch

    from discinvert.fit import DEFAULT_STEPS, fit_inverter

    out = Path(args.out)
    to_file = out.suffix.lower() == ".safetensors"
    if not to_file and out.exists() and not out.is_dir():
        raise _UsageError(f"--out {out}: expected a .safetensors file or a directory")
    if to_file and out.is_dir():
        raise _UsageError(f"--out {out}: expected a .safetensors file to write, got an existing directory")
    _check_gan_options(args)
    if args.generator is not None and args.latent_shape is None:
        raise _UsageError("--latent-shape (e.g. 100,1,1) is needed with --generator")
    if args.discriminator is not None and args.feature_layer is None:
        raise _UsageError("--feature-layer is needed with --discriminator (see `discinvert layers`)")
    _check_writable(out, directory=not to_file)  # before minutes of fitting, not after
    gan = _load_gan(args)
    layer = args.feature_layer or gan.feature_layer
    steps = DEFAULT_STEPS if args.steps is None else args.steps
    print(f"fitting an inverter for {gan.description}: layer {layer}, latents {_format_shape(gan.latent_shape)}, "
          f"{steps} steps of {args.batch_size}", flush=True)
    kwargs = {} if args.lr is None else {"lr": args.lr}
    autocast_dtype = {None: None, "bf16": torch.bfloat16, "fp16": torch.float16}[args.autocast]
    inverter = fit_inverter(gan.generator, gan.discriminator, layer, latent_shape=gan.latent_shape, steps=steps,
                            batch_size=args.batch_size, device=args.device, seed=args.seed,
                            validation_size=args.validation_size, reuse=args.reuse, autocast_dtype=autocast_dtype,
                            channels_last=args.channels_last, progress=None if args.progress else False, **kwargs)
    fit = inverter.config.fit
    print(f"best held-out latent MSE {fit['best_validation_mse']:.5f} at step {fit['best_step']} "
          f"(predicting the mean: {fit['baseline_validation_mse']:.5f}), {fit['seconds']:.1f} s")
    written = inverter.save(out) if to_file else inverter.save_pretrained(out, gan=gan.description)
    print(f"wrote {written}")
    return 0


def _encode(args: argparse.Namespace) -> int:
    import io

    import numpy as np

    from discinvert.cli.images import read_images
    from discinvert.serialization import atomic_write_bytes

    out = Path(args.out)
    suffix = _codes_suffix(out)
    _check_writable(out)
    raw = read_images(args.images)
    gan = _load_gan(args)
    inverter = _load_inverter(args, gan)
    images = _prepare(raw, inverter, args)
    codes = _invert(inverter, images.x, args).detach().cpu().float().contiguous()
    # Serialised in memory, then written atomically: np.save to a path can drop a failed
    # final flush silently, leaving a short file behind.
    if suffix == ".npy":
        buffer = io.BytesIO()
        np.save(buffer, codes.numpy())
        data = buffer.getvalue()
    else:
        from safetensors.torch import save

        metadata = {"names": json.dumps(raw.names), "source": str(raw.source), "feature_layer": inverter.feature_layer,
                    "refine_steps": str(args.refine_steps), "value_range": json.dumps(list(images.value_range))}
        data = save({"codes": codes}, metadata=metadata)
    atomic_write_bytes(out, data)
    if raw.layout == "files":
        order = "files sorted by name: " + ", ".join(raw.names[:3]) + (", ..." if len(raw.names) > 3 else "")
    else:
        order = "the array's order"
    print(f"encoded {len(codes)} images from {raw.source} into codes of shape {_format_shape(codes.shape)}"
          f"{f', refined {args.refine_steps} steps' if args.refine_steps else ''}; rows follow {order}")
    print(f"wrote {out}")
    return 0


def _reconstruct(args: argparse.Namespace) -> int:
    from discinvert.cli.images import (
        pair_grid,
        pair_grid_shape,
        read_images,
        to_uint8,
        write_png,
    )
    from discinvert.metrics import image_quality

    _check_writable(Path(args.out), directory=True)
    raw = read_images(args.images)
    gan = _load_gan(args)
    inverter = _load_inverter(args, gan)
    images = _prepare(raw, inverter, args)
    picture = images.picture_shape
    # the largest picture, before any image is inverted: --scale 10000 fails here, in one line
    pair_grid_shape(min(args.per_grid, len(images.x)), picture[1], picture[2], columns=args.columns, scale=args.scale)
    recon = inverter.decode(_invert(inverter, images.x, args), args.batch_size).reshape(-1, *picture)
    x = images.x.reshape(-1, *picture)
    psnr, ssim = image_quality(x, recon, value_range=images.value_range)
    originals, rebuilt = to_uint8(x, images.value_range), to_uint8(recon, images.value_range)
    out = Path(args.out)
    written = []
    for index, start in enumerate(range(0, len(x), args.per_grid)):
        picture = pair_grid(originals[start : start + args.per_grid], rebuilt[start : start + args.per_grid],
                            columns=args.columns, scale=args.scale)
        written.append(write_png(out / f"reconstructions_{index:03d}.png", picture))
    finite = psnr[psnr != math.inf]
    psnr_text = f"{finite.mean():.2f}" if len(finite) else "inf"
    print(f"reconstructed {len(x)} images from {raw.source}"
          f"{f' (refined {args.refine_steps} steps)' if args.refine_steps else ''}: "
          f"PSNR {psnr_text} dB, SSIM {ssim.mean():.4f} (mean over images)")
    print(f"wrote {len(written)} grid(s) of original | reconstruction pairs: {written[0]}" + (" ..." if len(written) > 1 else ""))
    return 0


def _evaluate_images(args: argparse.Namespace) -> Any:
    from discinvert.cli.images import RawImages, read_images

    if args.images is not None:
        return read_images(args.images)
    from discinvert.zoo.datasets import load_fashion_mnist, resolve_fashion_mnist_root

    images, _ = load_fashion_mnist("test", root=args.data_root)
    source = f"Fashion-MNIST test split ({resolve_fashion_mnist_root(args.data_root)})"
    return RawImages(images, [f"test[{i}]" for i in range(len(images))], source, "batch")


def _evaluate(args: argparse.Namespace) -> int:
    import torch

    from discinvert.metrics import reconstruction_score

    specs: list[tuple[str, argparse.Namespace]] = []
    for spec in args.model or []:
        specs.append((spec.name, argparse.Namespace(gan=spec.gan, generator=None, discriminator=None,
                                                    latent_shape=None, device=args.device, inverter=spec.inverter)))
    if args.gan is not None or args.generator is not None or args.discriminator is not None:
        name = args.name or args.gan or args.generator or args.discriminator
        specs.append((name, args))
    elif args.inverter is not None or args.name is not None:
        raise _UsageError("--inverter/--name describe a model given with --gan or --generator/--discriminator")
    if not specs:
        raise _UsageError("no model to evaluate: give --model [NAME=]GAN[:INVERTER] (repeatable), or --gan/--generator/"
                          "--discriminator with --inverter")
    names = [name for name, _ in specs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise _UsageError(f"model names must differ; {', '.join(duplicates)} given twice (use --model NAME=...)")

    from discinvert.cli.sources import resolve_gan_directory

    for name, options in specs:  # fail fast, before any image is read or scored
        if options.gan is not None:
            _, default_inverter = resolve_gan_directory(options.gan)
            if options.inverter is None and default_inverter is None:
                raise _UsageError(f"model {name}: no inverter; give --model {name}={options.gan}:INVERTER"
                                  if options is not args else f"model {name}: --inverter is needed")
        elif options.inverter is None:
            raise _UsageError(f"model {name}: --inverter is needed")
    if args.data_root is not None and not args.fashion_mnist_test:
        raise _UsageError("--data-root goes with --fashion-mnist-test")
    if args.json is not None:
        _check_writable(Path(args.json))
    raw = _evaluate_images(args)
    n = args.n if args.n is not None else min(1000, len(raw))
    if n > len(raw):
        raise ValueError(f"--n {n}: only {len(raw)} images in {raw.source}.")
    print(f"evaluating {len(specs)} model(s) on {raw.source}: {n} images x {args.repeats} draws, seed {args.seed}, "
          f"refine steps {args.refine_steps}", flush=True)
    results = []
    for i, (name, options) in enumerate(specs, 1):
        print(f"[{i}/{len(specs)}] {name}", flush=True)
        gan = _load_gan(options)
        inverter = _load_inverter(options, gan)
        try:
            images = _prepare(raw, inverter, args)
            score = reconstruction_score(inverter, images.x, n=n, repeats=args.repeats, seed=args.seed,
                                         refine_steps=args.refine_steps, batch_size=args.batch_size,
                                         value_range=images.value_range, image_shape=images.picture_shape,
                                         range_check=_range_check(args))
        except ValueError as error:
            raise ValueError(f"model {name}: {error}") from None
        results.append({"name": name, "gan": gan.description, "inverter": options.inverter or gan.default_inverter,
                        "feature_layer": inverter.feature_layer, "value_range": list(images.value_range), **score})
        del gan, inverter, images
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    key = "psnr_mean" if args.sort_by == "psnr" else "ssim_mean"
    results.sort(key=lambda r: -r[key] if math.isfinite(r[key]) else -math.inf)
    width = max(5, *(len(r["name"]) for r in results))
    print(f"\n{'rank':>4s}  {'model':{width}s}  {'PSNR (dB)':>15s}  {'SSIM':>15s}  {'seconds':>8s}")
    for rank, r in enumerate(results, 1):
        r["rank"] = rank
        print(f"{rank:4d}  {r['name']:{width}s}  {r['psnr_mean']:7.2f} ± {r['psnr_std']:5.2f}  "
              f"{r['ssim_mean']:7.4f} ± {r['ssim_std']:5.3f}  {r['seconds']:8.2f}")
    print(f"(mean ± std over {args.repeats} draws of {n} images; ranked by {args.sort_by.upper()})")
    if args.json is not None:
        document = {
            "images": {"source": str(raw.source), "count": len(raw)},
            "protocol": {"n": n, "repeats": args.repeats, "seed": args.seed, "refine_steps": args.refine_steps,
                         "value_range": None if args.range is None else list(args.range), "sort_by": args.sort_by},
            "results": results,
        }
        from discinvert.serialization import write_json

        path = write_json(args.json, document)  # strict JSON: NaN and infinities become null
        print(f"wrote {path}")
    return 0


def _push(args: argparse.Namespace) -> int:
    gan = _load_gan(args)
    inverter = _load_inverter(args, gan, token=args.token)
    print(f"pushing the inverter ({inverter.feature_layer} -> {_format_shape(inverter.latent_shape)}) to {args.repo_id}",
          flush=True)
    try:
        url = inverter.push_to_hub(args.repo_id, private=True if args.private else None, token=args.token,
                                   commit_message=args.message, gan=args.gan_name or gan.description)
    except Exception as error:
        if not _is_network_error(error):
            raise
        raise ValueError(f"pushing to the Hub repo {args.repo_id!r} failed ({type(error).__name__}: {error}); check "
                         "the connection, the repo id and the token (--token, $HF_TOKEN or `hf auth login`).") from None
    print(f"pushed: {url}")
    return 0


# ---------------------------------------------------------------------------- parser
def _gan_parent(*, with_shape: bool = True) -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("GAN (either --gan, or --generator/--discriminator factories)")
    group.add_argument("--gan", metavar="GAN",
                       help="a GAN directory written by discinvert.zoo.architectures.save_gan (or a zoo-entry folder "
                            "holding gan/ and inverter/), or zoo:NAME for a bundled entry; its config gives the "
                            "default feature layer and latent shape")
    group.add_argument("--generator", metavar="FACTORY", type=_factory,
                       help="package.module:callable taking no arguments and returning G, e.g. "
                            "mypkg.models:make_generator (the current directory is importable)")
    group.add_argument("--discriminator", metavar="FACTORY", type=_factory,
                       help="package.module:callable returning D, e.g. mypkg.models:make_discriminator")
    if with_shape:
        group.add_argument("--latent-shape", type=_shape, metavar="SHAPE",
                           help="shape of one latent, e.g. 100,1,1 (default: the GAN config's; needed for factories)")
    group.add_argument("--device", help="where to load and run the models, e.g. cpu, cuda, cuda:1 (default: cpu "
                       "for directories, where the factory put them otherwise)")
    return parent


def _image_parent() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("images")
    group.add_argument("--range", type=_value_range, default=None, metavar="LO,HI",
                       help="G's output value range (default: as the inverter recorded it, e.g. -1,1 for a tanh G); "
                            "integer pixels map 0..max -> LO..HI")
    group.add_argument("--strict-range", action="store_true",
                       help="refuse images far outside G's range (default: warn and go on)")
    group.add_argument("--image-shape", type=_shape, metavar="C,H,W",
                       help="for a generator of flat vectors: the images they are (e.g. 1,28,28); files are read "
                            "as such, flattened for G, and scored as pictures")
    group.add_argument("--input-range", type=_value_range, default=None, metavar="LO,HI",
                       help="value range of a float .npy input (default: taken as already in G's range)")
    group.add_argument("--batch-size", type=_count, default=None, help="images per forward pass (default 256)")
    return parent


def _inverter_option(parser: argparse.ArgumentParser, *, optional_text: str = "") -> None:
    parser.add_argument("--inverter", metavar="INV",
                        help="the inverter: a .safetensors file (Inverter.save), a save_pretrained directory, a Hub "
                             "repo id org/name, or zoo:NAME" + optional_text)


def _refine_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--refine-steps", type=_positive, default=0,
                        help="hybrid inversion: optimise each code this many Adam steps after encoding (default 0)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")


def _wrap(text: str) -> str:
    import textwrap

    return textwrap.fill(text, width=88)


def _build_parser() -> argparse.ArgumentParser:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="discinvert",
        description="Inverse mappings (image -> latent) for pretrained GANs, from their discriminators.",
        epilog=_GAN_HELP + "\nRun `discinvert COMMAND --help` for a command's options.",
        formatter_class=raw,
    )
    parser.add_argument("--version", action="version", version=f"discinvert {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress messages")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    default_inverter = " (default: a zoo entry's own inverter with --gan zoo:NAME)"

    # layers
    layers = commands.add_parser(
        "layers", parents=[_gan_parent()], formatter_class=raw,
        help="list D's layers with types and output shapes (to choose a feature layer)",
        description=_wrap("List the discriminator's layers with their types, output shapes for an example batch "
                          "G(z) (or random images of --image-shape), feature sizes and parameter counts."),
        epilog="examples:\n  discinvert layers --gan zoo:dcgan-fashion-mnist\n"
               "  discinvert layers --generator mypkg.models:G --discriminator mypkg.models:D --latent-shape 128",
    )
    layers.add_argument("--image-shape", type=_shape, metavar="C,H,W",
                        help="run D on random images of this shape instead of G(z)")
    layers.set_defaults(handler=_layers)

    # fit
    fit = commands.add_parser(
        "fit", parents=[_gan_parent()], formatter_class=raw,
        help="fit an inverter for a GAN and save it",
        description=_wrap("Fit the connection network on self-generated pairs (z, D_f(G(z))) and save the "
                          "inverter with the lowest held-out error. A progress bar shows on a terminal."),
        epilog="examples:\n  discinvert fit --gan runs/dcgan --out inverter.safetensors\n"
               "  discinvert fit --generator mypkg.models:G --discriminator mypkg.models:D --latent-shape 128 \\\n"
               "      --feature-layer blocks.3.act --out my-inverter/",
    )
    fit.add_argument("--out", required=True, metavar="OUT",
                     help="a .safetensors file (Inverter.save), or a directory (Inverter.save_pretrained: "
                          "model.safetensors, config.json, README.md model card)")
    fit.add_argument("--feature-layer", help="D's layer to read (default: the GAN config's; see `discinvert layers`)")
    fit.add_argument("--steps", type=_count, default=None, help="CN updates (default: the library's, 2000)")
    fit.add_argument("--batch-size", type=_pairs, default=256, help="pairs per update, at least 2 (default 256)")
    fit.add_argument("--lr", type=_float, default=None, help="peak Adam learning rate (default: the library's)")
    fit.add_argument("--validation-size", type=_pairs, default=1024,
                     help="held-out latents that pick the best CN, at least 2 (default 1024)")
    fit.add_argument("--seed", type=_seed, default=0,
                     help="seed in [0, 2**62); the same seed gives the same inverter (default 0)")
    fit.add_argument("--reuse", type=_count, default=1,
                     help="CN steps per generated batch (default 1: always fresh; see docs/fit_speed.md)")
    fit.add_argument("--autocast", choices=["bf16", "fp16"], default=None,
                     help="run G and D (training pairs) and the CN's training forward under torch.autocast "
                          "in this dtype (default: off)")
    fit.add_argument("--channels-last", action="store_true",
                     help="run G and D as channels-last copies for the training pairs (default: off)")
    fit.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    fit.set_defaults(handler=_fit)

    # encode
    encode = commands.add_parser(
        "encode", parents=[_gan_parent(with_shape=False), _image_parent()], formatter_class=raw,
        help="encode images to latent codes (.npy or .safetensors)",
        description=_wrap("Encode images to latent codes: one partial pass of D plus the connection network "
                          "(optionally refined by optimisation)."),
        epilog=_RANGE_HELP
               + "\nCodes: --out codes.npy holds one (N, *latent_shape) float32 array, rows in the images'\n"
               "order (folders: sorted by file name); --out codes.safetensors holds the tensor 'codes'\n"
               "and, in its metadata, the image names.\n"
               "\nexample:\n  discinvert encode --gan zoo:dcgan-fashion-mnist --images photos/ --out codes.npy",
    )
    encode.add_argument("--images", required=True, metavar="SRC",
                        help="a folder of PNG/JPEG files, one image file, an .npy array, or zoo:NAME (bundled test images)")
    encode.add_argument("--out", required=True, metavar="CODES", help="where to write the codes: a .npy or .safetensors file")
    _inverter_option(encode, optional_text=default_inverter)
    _refine_option(encode)
    encode.set_defaults(handler=_encode)

    # reconstruct
    reconstruct = commands.add_parser(
        "reconstruct", parents=[_gan_parent(with_shape=False), _image_parent()], formatter_class=raw,
        help="write PNG grids of originals beside their reconstructions G(encode(x))",
        description=_wrap("Reconstruct images through the GAN and write PNG grids of original | reconstruction "
                          "pairs (reconstructions_000.png, ...); prints mean PSNR and SSIM."),
        epilog=_RANGE_HELP + "\nexample:\n  discinvert reconstruct --gan zoo:dcgan-fashion-mnist "
               "--images zoo:dcgan-fashion-mnist --out out/recon --scale 3",
    )
    reconstruct.add_argument("--images", required=True, metavar="SRC",
                             help="a folder of PNG/JPEG files, one image file, an .npy array, or zoo:NAME")
    reconstruct.add_argument("--out", required=True, type=Path, metavar="DIR", help="folder for the PNG grids")
    _inverter_option(reconstruct, optional_text=default_inverter)
    _refine_option(reconstruct)
    reconstruct.add_argument("--per-grid", type=_count, default=64, help="pairs per PNG file (default 64)")
    reconstruct.add_argument("--columns", type=_count, default=8, help="pairs per row (default 8)")
    reconstruct.add_argument("--scale", type=_count, default=1, help="integer upscaling of the grids (default 1)")
    reconstruct.set_defaults(handler=_reconstruct)

    # evaluate
    evaluate = commands.add_parser(
        "evaluate", parents=[_gan_parent(with_shape=False), _image_parent()], formatter_class=raw,
        help="score GAN+inverter pairs on real test images (PSNR/SSIM), ranked side by side",
        description=_wrap("The paper's GAN metric (reconstruction_score): reconstruct unseen test images, --n "
                          "images in each of --repeats random draws, PSNR and SSIM mean ± std over the draws, "
                          "for each model; prints a ranked table."),
        epilog="models:\n"
               "  --model [NAME=]GAN[:INV]  repeatable; GAN is a GAN directory or zoo:ENTRY, INV an inverter\n"
               "                            file, directory, org/name or zoo:ENTRY (default: the zoo entry's\n"
               "                            own inverter, or the inverter/ of a zoo-entry folder)\n"
               "  --gan or --generator/--discriminator, with --inverter [--name NAME]: one more model\n\n"
               + _RANGE_HELP + "\nexample:\n  discinvert evaluate --model zoo:dcgan-fashion-mnist "
               "--model mine=runs/dcgan:inv.safetensors \\\n      --fashion-mnist-test --json scores.json",
    )
    evaluate.add_argument("--model", action="append", type=_model_spec, metavar="[NAME=]GAN[:INV]",
                          help="a GAN and its inverter (repeatable)")
    _inverter_option(evaluate, optional_text=" (with --gan or --generator/--discriminator)")
    evaluate.add_argument("--name", help="name of the --gan/--generator model in the table")
    source = evaluate.add_mutually_exclusive_group(required=True)
    source.add_argument("--images", metavar="SRC",
                        help="test images: a folder of PNG/JPEG files, an .npy array, or zoo:NAME (bundled test images)")
    source.add_argument("--fashion-mnist-test", action="store_true",
                        help="the Fashion-MNIST test split (Debian's dataset-fashion-mnist)")
    evaluate.add_argument("--data-root", metavar="DIR",
                          help="folder of the Fashion-MNIST IDX files (default: $DISCINVERT_FASHION_MNIST or "
                               "/usr/share/datasets/fashion-mnist)")
    evaluate.add_argument("--n", type=_count, default=None, help="images per draw (default: 1000, or all if fewer)")
    evaluate.add_argument("--repeats", type=_count, default=5, help="random draws (default 5)")
    evaluate.add_argument("--seed", type=_seed, default=0, help="seed of the draws, in [0, 2**62) (default 0)")
    evaluate.add_argument("--refine-steps", type=_positive, default=0,
                          help="0: the inverter alone (default); else hybrid refinement steps")
    evaluate.add_argument("--sort-by", choices=("psnr", "ssim"), default="psnr", help="ranking (default psnr)")
    evaluate.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    evaluate.set_defaults(handler=_evaluate)

    # push
    push = commands.add_parser(
        "push", parents=[_gan_parent(with_shape=False)], formatter_class=raw,
        help="upload an inverter to the Hugging Face Hub",
        description=_wrap("Upload an inverter (model.safetensors, config.json, README.md model card) to a Hub "
                          "model repo, created if needed. The GAN is needed to load and check the inverter; it "
                          "is not uploaded."),
        epilog="example:\n  discinvert push --gan runs/dcgan --inverter inv.safetensors "
               "--repo-id me/dcgan-inverter --private",
    )
    _inverter_option(push, optional_text=default_inverter)
    push.add_argument("--repo-id", required=True, metavar="org/name", help="the Hub model repo")
    push.add_argument("--private", action="store_true", help="create the repo as private")
    push.add_argument("--token", help="Hub token (default: $HF_TOKEN or the cached `hf auth login`)")
    push.add_argument("--message", help="commit message")
    push.add_argument("--gan-name", help="the line naming the GAN on the model card (default: its source)")
    push.set_defaults(handler=_push)

    # demo
    demo = commands.add_parser("demo", help="invert real Fashion-MNIST test images with the bundled DCGAN",
                               description="Encode, refine and edit the bundled real test images; write a picture and metrics.")
    demo.add_argument("--out", type=Path, default=Path("out/demo"), help="output folder (default: out/demo)")
    demo.add_argument("--fit", action="store_true", help="fit a fresh inverter instead of loading the bundled one")
    demo.add_argument("--steps", type=_count, default=None, help="steps of the fresh fit (default: the library's)")
    demo.add_argument("--n-images", type=_count, default=1000, help="bundled test images to encode, 1 to 1000 "
                      "(default 1000)")
    demo.add_argument("--refine-images", type=_positive, default=200, help="how many of them to refine (default 200)")
    demo.add_argument("--refine-steps", type=_positive, default=50, help="refinement steps (default 50)")
    demo.add_argument("--seed", type=_seed, default=0, help="seed of the fresh fit, in [0, 2**62) (default 0)")
    demo.set_defaults(handler=_demo)

    for sub in commands.choices.values():
        sub.set_defaults(_parser=sub)
    return parser


_NETWORK_MODULES = ("huggingface_hub", "httpx", "httpx2", "httpcore", "httpcore2", "requests", "urllib3")


def _is_network_error(error: BaseException) -> bool:
    """An error of the Hub client or its HTTP stack (no connection, refused, bad token): not a bug of ours."""
    return any(cls.__module__.split(".")[0] in _NETWORK_MODULES for cls in type(error).__mro__)


def _setup_logging(verbose: bool) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    # huggingface_hub prints its own warnings (its logger has a handler): do not print them twice
    handler.addFilter(lambda record: not record.name.startswith("huggingface_hub"))
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, handlers=[handler])


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    text = re.sub(r"^\[Errno -?\d+\] ", "", text)  # OSError's prefix: the message says what failed
    return text or type(error).__name__


def _is_out_of_memory(error: BaseException) -> bool:
    """torch's allocation failures: ``torch.OutOfMemoryError`` (CUDA) or the CPU allocator's RuntimeError."""
    if any(cls.__name__ == "OutOfMemoryError" for cls in type(error).__mro__):
        return True
    return isinstance(error, RuntimeError) and "can't allocate memory" in str(error)


def _run(args: argparse.Namespace) -> int:
    """Run the chosen command; user mistakes and failed writes become one line on stderr."""
    try:
        if args.command == "demo" and args.steps is None:
            from discinvert.fit import DEFAULT_STEPS

            args.steps = DEFAULT_STEPS
        return int(args.handler(args))
    except _UsageError as error:
        args._parser.error(str(error))  # prints usage and the message, exits with code 2
        return 2  # pragma: no cover
    except (ValueError, FileNotFoundError, OSError) as error:
        print(f"discinvert {args.command}: error: {_one_line(error)}", file=sys.stderr)
        return 1
    except MemoryError as error:
        print(f"discinvert {args.command}: error: out of memory ({_one_line(error)})", file=sys.stderr)
        return 1
    except Exception as error:
        if _is_out_of_memory(error):
            print(f"discinvert {args.command}: error: out of memory ({_one_line(error)})", file=sys.stderr)
            return 1
        if not _is_network_error(error):
            raise  # a bug: keep the traceback
        print(f"discinvert {args.command}: error: {type(error).__name__}: {_one_line(error)}", file=sys.stderr)
        return 1


def _warning_printer(prefix: str) -> Callable[..., None]:
    def show(message: Warning | str, category: type[Warning], *_args: Any, **_kwargs: Any) -> None:
        print(f"{prefix}: warning: {message}", file=sys.stderr)

    return show


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 success, 2 usage error, 1 failure, 130 Ctrl-C).

    Ctrl-C anywhere in here (parsing imports torch for some options, commands import
    it too) ends with one line and exit code 130.
    """
    command = ""
    try:
        parser = _build_parser()
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        command = f" {args.command}"
        _setup_logging(args.verbose)
        with warnings.catch_warnings():  # the library's warnings (images out of G's range, ...) as one line each
            warnings.showwarning = _warning_printer(f"discinvert{command}")
            return _run(args)
    except KeyboardInterrupt:
        print(f"discinvert{command}: interrupted", file=sys.stderr)
        return 130
