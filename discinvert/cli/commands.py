"""What each ``discinvert`` command does, once its options are parsed."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from discinvert.cli.options import Handler, UsageError, fit_settings

__all__ = ["HANDLERS", "is_network_error"]

_NETWORK_MODULES = ("huggingface_hub", "httpx", "httpx2", "httpcore", "httpcore2", "requests", "urllib3")


def is_network_error(error: BaseException) -> bool:
    """An error of the Hub client or its HTTP stack (no connection, refused, bad token): not a bug of ours."""
    return any(cls.__module__.split(".")[0] in _NETWORK_MODULES for cls in type(error).__mro__)


def _check_gan_options(args: argparse.Namespace, *, need_generator: bool = True,
                       need_discriminator: bool = False) -> None:
    """``--gan`` or the factories, not both, not neither; ``--generator`` alone is G alone, unless the
    command needs D (``layers``); ``--no-discriminator`` not with ``--discriminator``."""
    factories = args.generator is not None or args.discriminator is not None
    if args.gan is not None and factories:
        raise UsageError("give either --gan or --generator/--discriminator, not both")
    if args.gan is None and not factories:
        raise UsageError("a GAN is needed: --gan DIR (or zoo:NAME), or --generator (and --discriminator) factories")
    if factories and need_discriminator and args.discriminator is None:
        raise UsageError(f"--discriminator package.module:factory is needed: `discinvert {args.command}` reads D")
    if factories and need_generator and args.generator is None:
        raise UsageError("--generator package.module:factory is needed with --discriminator")
    if getattr(args, "no_discriminator", False) and args.discriminator is not None:
        raise UsageError("give either --discriminator or --no-discriminator, not both")


def _load_gan(args: argparse.Namespace, *, need_generator: bool = True) -> Any:
    """G and D from ``--gan`` or the factories, after checking the options go together (D ``None``: G alone)."""
    from discinvert.cli.sources import load_gan_source, parse_device

    _check_gan_options(args, need_generator=need_generator)
    device = parse_device(args.device)
    return load_gan_source(gan=args.gan, generator=args.generator, discriminator=args.discriminator,
                           latent_shape=getattr(args, "latent_shape", None), device=device,
                           latent_space=getattr(args, "latent_space", None),
                           no_discriminator=getattr(args, "no_discriminator", False))


def _example_codes(gan: Any, n: int, seed: int, device: Any) -> Any:
    """``n`` codes for G's example images: a MappedGenerator's own samples (W/W+ codes as G makes them), else
    ``z ~ N(0, I)`` of the latent shape."""
    import torch

    from discinvert.mapped import MappedGenerator

    rng = torch.Generator().manual_seed(seed)
    if isinstance(gan.generator, MappedGenerator):
        return gan.generator.sample(n, rng, torch.device("cpu")).to(device)
    return torch.randn((n, *gan.latent_shape), generator=rng).to(device)


def _inverter_spec(args: argparse.Namespace, gan: Any) -> str:
    """``--inverter``, else the GAN's own (a zoo entry's default); ``zoo:NAME`` completed to ``zoo:NAME/KIND``."""
    from discinvert.cli.sources import inverter_name

    spec = args.inverter or gan.default_inverter
    if spec is None:
        raise UsageError("--inverter PATH is needed (an inverter file, a save_pretrained directory, org/name or zoo:NAME)")
    return inverter_name(spec)


def _load_inverter(args: argparse.Namespace, gan: Any, token: str | None = None) -> Any:
    from discinvert.cli.sources import load_inverter

    return load_inverter(_inverter_spec(args, gan), gan.generator, gan.discriminator, token=token,
                         without_discriminator=gan.without_discriminator)


def _say_inverter(args: argparse.Namespace, gan: Any, inverter: Any) -> None:
    """One line on stderr: which inverter the command uses, and what kind it is."""
    import sys

    from discinvert.cli.sources import ZOO_PREFIX, describe_inverter

    spec = _inverter_spec(args, gan)
    how = ""
    if args.inverter is None:
        how = " (the GAN's default"
        if spec.startswith(ZOO_PREFIX):
            from discinvert import zoo

            entry, _, kind = spec[len(ZOO_PREFIX):].partition("/")
            others = [f"{ZOO_PREFIX}{entry}/{k}" for k in zoo.inverters(entry) if k != kind]
            how += f"; --inverter {' or '.join(others)} for the other" if others else ""
        how += ")"
    unused = "; the GAN's discriminator is not used" if gan.discriminator is not None and inverter.discriminator is None else ""
    print(f"discinvert {args.command}: inverter {spec}{how}: {describe_inverter(inverter)}{unused}", file=sys.stderr,
          flush=True)


def _codes_suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".safetensors"):
        raise UsageError(f"--out {path}: expected a .npy or .safetensors file for the codes")
    return suffix


def _range_check(args: argparse.Namespace) -> str:
    """The library's own range check is off: :func:`_prepare` has checked the images, naming the command's flags."""
    return "ignore"


def _invert(inverter: Any, x: Any, args: argparse.Namespace) -> Any:
    if args.refine_steps:
        from discinvert.cli.progress import Progress, refine_callback

        progress = Progress(args.command, counters=args.progress)  # a bar on a terminal, lines in a log
        with progress.counter(f"refine {len(x)} images x {args.refine_steps} steps", 0, "image-step") as counter:
            return inverter.refine(x, args.refine_steps, batch_size=args.batch_size, progress=False,
                                   range_check=_range_check(args), iterations=args.iterations,
                                   callback=refine_callback(counter, len(x), args.refine_steps))
    return inverter.encode(x, args.batch_size, range_check=_range_check(args), iterations=args.iterations)


@dataclass(frozen=True)
class _Prepared:
    """Images ready for the inverter, and how they are seen as pictures."""

    x: Any  # (N, *inverter.image_shape) in G's range
    value_range: tuple[float, float]  # --range, else the inverter's recorded range
    picture_shape: tuple[int, ...]  # (C, H, W): --image-shape, else the inverter's image shape


def _prepare(raw: Any, inverter: Any, args: argparse.Namespace) -> _Prepared:
    """``raw`` in G's range, checked against it (a warning, or an error with ``--strict-range``)."""
    from discinvert.cli.images import range_warning
    from discinvert.pixels import prepare_images

    value_range = tuple(args.range) if args.range is not None else tuple(inverter.value_range)
    shape = tuple(inverter.image_shape)
    picture = tuple(args.image_shape) if args.image_shape is not None else shape
    if math.prod(picture) != math.prod(shape):
        raise ValueError(f"--image-shape {','.join(map(str, picture))}: expected C,H,W holding {math.prod(shape)} values "
                         f"(one image of this generator, shape {_format_shape(shape)}).")
    x = prepare_images(raw, picture, value_range, args.input_range)
    range_warning(x, raw, value_range, inverter.config.image_range, input_range=args.input_range, strict=args.strict_range)
    return _Prepared(x.reshape(len(x), *shape), value_range, picture)


def _layer_text(feature_layer: str | tuple[str, ...]) -> str:
    """A feature layer as the CLI writes it: ``main.7``, or ``main.4,main.7`` for several."""
    return feature_layer if isinstance(feature_layer, str) else ",".join(feature_layer)


def _reads(inverter: Any) -> str:
    """What the inverter reads, as the CLI writes it: D's layer(s), or ``pixels`` for one fit for G alone."""
    return "pixels" if inverter.feature_source == "pixels" else _layer_text(inverter.feature_layer)


def _format_shape(shape: Sequence[int] | None) -> str:
    return "-" if shape is None else "(" + ", ".join(str(d) for d in shape) + ")"


def _check_writable(path: Path, *, directory: bool = False) -> None:
    """``--out``/``--json`` can be written, checked before any long work (exit 1 if not)."""
    from discinvert.files import check_writable

    check_writable(path, directory=directory)


def _read_candidates(source: Path, written: Path, *, images: bool, inverters: bool = True) -> list[Path]:
    """The files read from ``source`` that could be ``written``: ``source`` itself, or its files of that name.

    A folder given as ``--gan`` is read as a GAN folder or a zoo-entry folder (its ``gan/``); its bundled
    inverter folders count only when the command loads one (``inverters``; not ``fit``).
    """
    from discinvert.pixels import IMAGE_SUFFIXES

    if source.is_file():
        return [source]
    if not source.is_dir():
        return []
    names = {written.name, Path(os.path.realpath(written)).name}
    if images:  # an image folder: only its image files are read
        return [source / n for n in names if Path(n).suffix.lower() in IMAGE_SUFFIXES]
    folders = [source, source / "gan"]  # a GAN folder, or a zoo-entry folder's gan/
    if inverters:  # and the zoo-entry folder's inverter/ and inverter-real-images/
        folders += [d for d in source.iterdir() if d.is_dir() and d.name.startswith("inverter")]
    return [d / n for d in folders for n in names]


def _zoo_folder(source: str) -> Path | None:
    """The installed folder of a ``zoo:NAME[/...]`` source (``None`` for an unknown entry, refused elsewhere)."""
    from discinvert import zoo

    name = source[len("zoo:"):].split("/")[0]
    return zoo.path(name) if name in zoo.available() else None


def _zoo_entry_files(folder: Path) -> list[Path]:
    """Every file of an installed zoo entry, and the test images of the entry beside it that its
    ``test_images.json`` points to (read as its own).

    Raises:
        ValueError: a bad ``test_images.json`` (which file it protects is then unknown: refused, not skipped).
    """
    from discinvert.zoo.test_images import images_file

    files = [p for p in folder.rglob("*") if p.is_file()]
    try:
        files.append(images_file(folder))
    except FileNotFoundError:  # an entry without test images: none to protect
        pass
    return files


def _refuse_overwriting_inputs(written: Sequence[tuple[str, Path]], read: Sequence[tuple[str, Any]], *,
                               inverters: bool = True) -> None:
    """An output that is a file this command reads (also through a symlink or another spelling) is refused.

    Args:
        written: ``(flag, path)`` of each file the command would write.
        read: ``(flag, path or None)`` of each input given: ``--images``, ``--inverter``, ``--gan``
            (a ``zoo:`` name stands for every file of that entry in the installed package; Hub ids are no
            local files and are skipped).
        inverters: whether the command reads a ``--gan`` zoo-entry folder's bundled inverters (``fit``
            does not, so it may write into ``ENTRY/inverter`` again and again).

    Raises:
        ValueError: a written path and a read file are the same file.
    """
    for flag, path in written:
        if not path.is_file():  # a file that does not exist yet is no input
            continue
        for source_flag, source in read:
            if source is None:
                continue
            if str(source).startswith("zoo:"):  # the installed package's files: none may be written over
                folder = _zoo_folder(str(source))
                candidates = [] if folder is None else _zoo_entry_files(folder)
            else:
                candidates = _read_candidates(Path(source), path, images=source_flag == "--images", inverters=inverters)
            for candidate in candidates:
                if candidate.is_file() and os.path.samefile(candidate, path):
                    raise ValueError(
                        f"{flag} {path}: this file is also an input ({source_flag} {source}"
                        f"{'' if Path(source).is_file() else f', file {candidate.name}'}); expected an output path "
                        "that is not read, so that writing it cannot overwrite the input.")


# ---------------------------------------------------------------------------- commands
def _demo(args: argparse.Namespace) -> int:
    from discinvert.cli.demo import DemoOptions, run_demo

    options = DemoOptions(out=args.out, gan=args.gan, fit=args.fit, fit_steps=args.steps, n_images=args.n_images,
                          refine_images=args.refine_images, refine_steps=args.refine_steps, seed=args.seed)
    what = "bundled DCGAN" if args.gan == "dcgan-fashion-mnist" else f"bundled GAN zoo:{args.gan}"
    print(f"discinvert demo: {what} on Fashion-MNIST, {'fitting a fresh' if args.fit else 'bundled'} inverter", flush=True)
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
    from discinvert.layers import list_layers, suggest_feature_layers

    _check_gan_options(args, need_generator=False, need_discriminator=True)
    if args.generator is not None and args.latent_shape is None and args.image_shape is None:
        raise UsageError("--latent-shape (e.g. 100,1,1) is needed to run the --generator factory")
    gan = _load_gan(args, need_generator=False)
    D = gan.discriminator
    if D is None:
        raise ValueError(f"discriminator: `discinvert layers` lists D's layers; expected a GAN with its discriminator, "
                         f"got none ({gan.without_discriminator}). A GAN without D needs no feature layer: "
                         "`discinvert fit` fits it for the generator alone.")
    device = model_device(D) or torch.device("cpu")
    rng = torch.Generator().manual_seed(0)
    example = None
    if args.image_shape is not None:
        example = torch.randn((2, *args.image_shape), generator=rng).to(device)
        made = f"random images of shape {_format_shape(example.shape)}"
    elif gan.generator is not None and gan.latent_shape is not None:
        z = _example_codes(gan, 2, 0, device)
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
             {None: "-", False: "per-image", True: "DEPENDS"}[info.batch_dependent],
             "-" if info.calls is None else str(info.calls)) for info in layers]
    header = ("layer", "type", "output shape", "features", "params", "batch", "calls")
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) for i in range(len(header))]
    print("  " + "  ".join(h.ljust(w) if i < 3 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths))))
    for info, row in zip(layers, rows):
        mark = "*" if gan.feature_layer is not None and info.name == gan.feature_layer else " "
        print(mark + " " + "  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
    if any(info.calls is not None and info.calls > 1 for info in layers):
        print("calls > 1: a module D runs several times (shared); it cannot be the feature layer")
    if any(info.batch_dependent for info in layers):
        print("batch DEPENDS: the layer's output for one image changes with the other images in the batch (a minibatch "
              "standard deviation before it); it cannot be the feature layer without "
              "--allow-batch-dependent-features")
    if gan.feature_layer is not None:
        print(f"* the GAN config's feature layer ({gan.feature_layer}), used by `discinvert fit` by default")
    else:
        print("choose --feature-layer for `discinvert fit`; the paper uses D's last hidden layer")
    if example is not None:
        try:
            one, two = (suggest_feature_layers(D, example, depths=d) for d in (1, 2))
        except ValueError as error:
            print(f"no suggestion: {error}")
        else:
            print(f"suggested (D's last hidden layer, the paper's choice): --feature-layer {one[0]}")
            if len(two) == 2:
                print(f"two depths (docs/byo_gan.md): --feature-layer {','.join(two)}")
    return 0


def _fit(args: argparse.Namespace) -> int:
    import torch

    from discinvert.cli.progress import Progress, fit_lines
    from discinvert.fitting.fit import fit_inverter
    from discinvert.fitting.fit_config import ITERATIVE_SETTINGS, REAL_STAGE_SETTINGS, FitConfig, command_line_settings

    out = Path(args.out)
    to_file = out.suffix.lower() == ".safetensors"
    if not to_file and out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: expected a .safetensors file or a directory")
    if to_file and out.is_dir():
        raise UsageError(f"--out {out}: expected a .safetensors file to write, got an existing directory")
    _check_gan_options(args)
    if args.generator is not None and args.latent_shape is None:
        raise UsageError("--latent-shape (e.g. 100,1,1) is needed with --generator")
    if args.discriminator is not None and args.feature_layer is None:
        raise UsageError("--feature-layer is needed with --discriminator (see `discinvert layers`)")
    if (args.gan is None and args.discriminator is None) or args.no_discriminator:
        _check_generator_only(args, "--no-discriminator" if args.no_discriminator else "--generator without --discriminator")
    if args.images is None:
        given = [flag for flag, value in (("--range", args.range), ("--input-range", args.input_range)) if value is not None]
        given += [option.flag for name, option in command_line_settings() if name in REAL_STAGE_SETTINGS
                  and getattr(args, name) is not None]
        if given:
            raise UsageError(f"{', '.join(given)}: only with --images (the real-image stage)")
    if not args.iterations:
        given = [option.flag for name, option in command_line_settings() if name in ITERATIVE_SETTINGS
                 and getattr(args, name) is not None]
        if given:
            raise UsageError(f"{', '.join(given)}: only with --iterations K, K > 0 (the step networks)")
    _check_writable(out, directory=not to_file)  # before minutes of fitting, not after
    from discinvert.hub import CONFIG_NAME, MODEL_CARD_NAME, WEIGHTS_NAME

    written = [out] if to_file else [out / name for name in (WEIGHTS_NAME, CONFIG_NAME, MODEL_CARD_NAME)]
    if not to_file:  # the folder's three files are replaced together; one blocked refuses all, so say it now
        for path in written:
            _check_writable(path)
    _refuse_overwriting_inputs([("--out", path) for path in written], [("--images", args.images), ("--gan", args.gan)],
                               inverters=False)
    settings = FitConfig.build(**fit_settings(args), device=args.device)
    gan = _load_gan(args)
    if gan.discriminator is None:  # G alone: a GAN directory without D's file, or --no-discriminator
        _check_generator_only(args, gan.without_discriminator)
        layer, reads = None, "no discriminator, an inverter reading pixels"
    else:
        text = args.feature_layer or gan.feature_layer
        # several depths of D: --feature-layer main.4,main.7
        layer = [name.strip() for name in text.split(",")] if "," in text else text
        _check_feature_layer(gan, layer, text, args)  # before the banner: a fit that never starts announces nothing
        reads = f"layer {text}"
    print(f"fitting an inverter for {gan.description}: {reads}, latents {_format_shape(gan.latent_shape)}, "
          f"{settings.steps} steps of {settings.batch_size}", flush=True)
    images = None if args.images is None else _real_images(args, gan)
    with warnings.catch_warnings():
        from discinvert.fitting.image_sets import UnitRangeWarning

        warnings.simplefilter("ignore", UnitRangeWarning)  # _real_images said it, naming --input-range
        with fit_lines(Progress("fit"), enabled=settings.progress is not False and not args.verbose):
            inverter = fit_inverter(gan.generator, gan.discriminator, layer, latent_shape=gan.latent_shape,
                                    images=images, config=settings)
    fit = inverter.config.fit
    print(f"best held-out latent MSE {fit['best_validation_mse']:.5f} at step {fit['best_step']} "
          f"(predicting the mean: {fit['baseline_validation_mse']:.5f}), {fit['seconds']:.1f} s")
    if fit.get("stopped"):
        print(f"stopped at step {fit['stopped']} of {settings.steps}: the validation error had plateaued "
              f"(--patience {settings.patience})")
    if "real_images" in fit:
        real = fit["real_images"]
        print(f"real-image stage: held-out pixel MSE {real['start_held_out_pixel_mse']:.5f} -> "
              f"{real['best_held_out_pixel_mse']:.5f} (update {real['best_step']} of {real['real_steps']}), "
              f"held-out latent MSE now {real['latent_validation_mse']:.5f}, {real['seconds']:.1f} s")
    if "iterative" in fit:
        for index, step in enumerate(fit["iterative"]["steps"], 1):
            print(f"step network {index}: {step['metric']} {step['start_error']:.5f} -> {step['best_error']:.5f} "
                  f"(update {step['best_step']}), {step['seconds']:.1f} s")
    dtype = getattr(torch, args.weights_dtype)
    written = inverter.save(out, dtype=dtype) if to_file else inverter.save_pretrained(out, gan=gan.description, dtype=dtype)
    print(f"wrote {written}")
    return 0


def _gan_flags(args: argparse.Namespace) -> str:
    """The options naming the GAN, as typed: ``--gan DIR`` or the factories."""
    if args.gan is not None:
        return f"--gan {args.gan}"
    flags = [f"{flag} {value}" for flag, value in (("--generator", args.generator), ("--discriminator", args.discriminator))
             if value is not None]
    if getattr(args, "latent_shape", None) is not None:
        flags.append(f"--latent-shape {','.join(map(str, args.latent_shape))}")
    return " ".join(flags)


def _check_generator_only(args: argparse.Namespace, why: str | None) -> None:
    """A fit without D (``why`` says why there is none) takes no D options: ``--feature-layer``, a D-feature term,
    ``--allow-batch-dependent-features``."""
    if args.feature_layer is not None:
        raise UsageError(f"--feature-layer {args.feature_layer} names a layer of the discriminator, but there is no "
                         f"discriminator ({why}); leave --feature-layer out to fit for the generator alone, or give D")
    if args.feature_weight is not None and args.feature_weight > 0:
        raise UsageError(f"--feature-weight {args.feature_weight:g}: the real-image stage's D-feature term compares "
                         f"the discriminator's features, and there is no discriminator ({why}); leave it out")
    if getattr(args, "allow_batch_dependent_features", False):
        raise UsageError(f"--allow-batch-dependent-features lets the discriminator's feature layer depend on the rest "
                         f"of the batch, and there is no discriminator ({why}); leave it out")


def _check_feature_layer(gan: Any, layer: str | list[str], text: str, args: argparse.Namespace) -> None:
    """``--feature-layer`` names layers of D (only D's module names are read; D is not run)."""
    from discinvert.layers import resolve_layers

    try:
        resolve_layers(gan.discriminator, layer)
    except ValueError as error:
        raise ValueError(f"--feature-layer {text}: {str(error).removeprefix('feature_layer: ')} On the command line, "
                         f"`discinvert layers {_gan_flags(args)}` lists them.") from None


def _real_images(args: argparse.Namespace, gan: Any) -> Any:
    """``--images`` read and mapped into G's range (``--range``, else measured on 64 of G's images)."""
    import torch

    from discinvert.cli.images import range_warning
    from discinvert.gan import generate, model_device
    from discinvert.guard import frozen
    from discinvert.pixels import prepare_images
    from discinvert.value_range import nominal_range
    from discinvert.zoo import read_image_source

    raw = read_image_source(args.images)
    if gan.latent_shape is None:
        raise UsageError("--latent-shape is needed with --images (to render G's images and learn their shape)")
    device = model_device(gan.generator) or torch.device("cpu")
    z = _example_codes(gan, 64, 0, device)
    with frozen(gan.generator), torch.no_grad():
        sample = generate(gan.generator, z)
    value_range = tuple(args.range) if args.range is not None else nominal_range(
        (float(sample.min()), float(sample.max())))
    shape = tuple(sample.shape[1:])
    if len(shape) != 3:
        raise ValueError(f"--images: expected a generator of (C, H, W) images, got images of shape "
                         f"{_format_shape(shape)}; pass images to fit_inverter(images=...) in Python instead.")
    x = prepare_images(raw, shape, value_range, args.input_range)
    # the fit refuses images far outside G's range: said here in the command line's words
    range_warning(x, raw, value_range, (float(sample.min()), float(sample.max())), input_range=args.input_range,
                  strict=True)
    print(f"real-image stage on {len(x)} images from {raw.source}, mapped to G's range "
          f"[{value_range[0]:g}, {value_range[1]:g}]", flush=True)
    return x


def _inputs(args: argparse.Namespace) -> list[tuple[str, Any]]:
    """The local inputs of encode, reconstruct and evaluate: ``--images``, ``--inverter``, ``--gan``."""
    return [("--images", args.images), ("--inverter", args.inverter), ("--gan", args.gan)]


def _encode(args: argparse.Namespace) -> int:
    import io

    import numpy as np

    from discinvert.files import atomic_write_bytes
    from discinvert.zoo import read_image_source

    out = Path(args.out)
    suffix = _codes_suffix(out)
    _check_writable(out)
    _refuse_overwriting_inputs([("--out", out)], _inputs(args))
    raw = read_image_source(args.images)
    gan = _load_gan(args)
    inverter = _load_inverter(args, gan)
    images = _prepare(raw, inverter, args)
    _say_inverter(args, gan, inverter)
    codes = _invert(inverter, images.x, args).detach().cpu().float().contiguous()
    # Serialised in memory, then written atomically: np.save to a path can drop a failed
    # final flush silently, leaving a short file behind.
    if suffix == ".npy":
        buffer = io.BytesIO()
        np.save(buffer, codes.numpy())
        data = buffer.getvalue()
    else:
        from safetensors.torch import save

        reads = {"feature_layer": _layer_text(inverter.feature_layer)} if inverter.feature_source != "pixels" else \
            {"feature_layer": "", "feature_source": "pixels"}  # G alone: no layer of D
        metadata = {"names": json.dumps(raw.names), "source": str(raw.source), **reads,
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
    from discinvert.cli.images import pair_grid, pair_grid_shape, to_uint8, write_png
    from discinvert.metrics import image_quality
    from discinvert.zoo import read_image_source

    _check_writable(Path(args.out), directory=True)
    raw = read_image_source(args.images)
    grids = [("--out", Path(args.out) / f"reconstructions_{i:03d}.png")
             for i in range(math.ceil(len(raw) / args.per_grid))]
    _refuse_overwriting_inputs(grids, _inputs(args))
    gan = _load_gan(args)
    inverter = _load_inverter(args, gan)
    images = _prepare(raw, inverter, args)
    picture = images.picture_shape
    # the largest picture, before any image is inverted: --scale 10000 fails here, in one line
    pair_grid_shape(min(args.per_grid, len(images.x)), picture[1], picture[2], columns=args.columns, scale=args.scale)
    _say_inverter(args, gan, inverter)
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
    from discinvert.pixels import RawImages
    from discinvert.zoo import read_image_source

    if args.images is not None:
        return read_image_source(args.images)
    from discinvert.zoo.datasets import load_fashion_mnist, resolve_fashion_mnist_root

    images, _ = load_fashion_mnist("test", root=args.data_root)
    source = f"Fashion-MNIST test split ({resolve_fashion_mnist_root(args.data_root)})"
    return RawImages(images, [f"test[{i}]" for i in range(len(images))], source, "batch")


def _evaluate(args: argparse.Namespace) -> int:
    import torch

    from discinvert.metrics import Draws, reconstruction_score

    specs: list[tuple[str, argparse.Namespace]] = []
    for spec in args.model or []:
        specs.append((spec.name, argparse.Namespace(command=args.command, gan=spec.gan, generator=None, discriminator=None,
                                                    latent_shape=None, device=args.device, inverter=spec.inverter,
                                                    no_discriminator=False)))
    if args.gan is not None or args.generator is not None or args.discriminator is not None:
        name = args.name or args.gan or args.generator or args.discriminator
        specs.append((name, args))
    elif args.inverter is not None or args.name is not None or args.no_discriminator:
        raise UsageError("--inverter/--name/--no-discriminator describe a model given with --gan or "
                         "--generator/--discriminator")
    if not specs:
        raise UsageError("no model to evaluate: give --model [NAME=]GAN[:INVERTER] (repeatable), or --gan/--generator/"
                          "--discriminator with --inverter")
    names = [name for name, _ in specs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise UsageError(f"model names must differ; {', '.join(duplicates)} given twice (use --model NAME=...)")

    from discinvert.cli.sources import resolve_gan_directory

    for name, options in specs:  # fail fast, before any image is read or scored
        if options.gan is not None:
            _, default_inverter = resolve_gan_directory(options.gan)
            if options.inverter is None and default_inverter is None:
                raise UsageError(f"model {name}: no inverter; give --model {name}={options.gan}:INVERTER"
                                  if options is not args else f"model {name}: --inverter is needed")
        elif options.inverter is None:
            raise UsageError(f"model {name}: --inverter is needed")
    if args.data_root is not None and not args.fashion_mnist_test:
        raise UsageError("--data-root goes with --fashion-mnist-test")
    if args.json is not None:
        _check_writable(Path(args.json))
        models = [(flag, value) for _, options in specs
                  for flag, value in (("--gan", options.gan), ("--inverter", options.inverter))]
        _refuse_overwriting_inputs([("--json", Path(args.json))], [("--images", args.images), *models])
    raw = _evaluate_images(args)
    n = args.n if args.n is not None else min(Draws().n, len(raw))
    if n > len(raw):
        raise ValueError(f"--n {n}: only {len(raw)} images in {raw.source}.")
    print(f"evaluating {len(specs)} model(s) on {raw.source}: {n} images x {args.repeats} draws, seed {args.seed}, "
          f"refine steps {args.refine_steps}", flush=True)
    from discinvert.cli.progress import Progress

    progress = Progress(args.command)  # refinement: a bar on a terminal, a line every few seconds in a log
    results = []
    for i, (name, options) in enumerate(specs, 1):
        print(f"[{i}/{len(specs)}] {name}", flush=True)
        gan = _load_gan(options)
        inverter = _load_inverter(options, gan)
        try:
            images = _prepare(raw, inverter, args)
            _say_inverter(options, gan, inverter)
            counter = progress.counter(f"{name}: refine {args.refine_steps} steps", 0, "image-step") \
                if args.refine_steps else None
            with counter or contextlib.nullcontext():
                score = reconstruction_score(inverter, images.x, n=n, repeats=args.repeats, seed=args.seed,
                                             refine_steps=args.refine_steps, batch_size=args.batch_size,
                                             value_range=images.value_range, image_shape=images.picture_shape,
                                             range_check=_range_check(args),
                                             progress_callback=None if counter is None else counter.update_to)
        except ValueError as error:
            raise ValueError(f"model {name}: {error}") from None
        reads = {"feature_layer": _layer_text(inverter.feature_layer)} if inverter.feature_source != "pixels" else \
            {"feature_layer": None, "feature_source": "pixels"}  # G alone: no layer of D
        results.append({"name": name, "gan": gan.description, "inverter": _inverter_spec(options, gan),
                        **reads, "value_range": list(images.value_range), **score})
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
        from discinvert.files import write_json

        path = write_json(args.json, document)  # strict JSON: NaN and infinities become null
        print(f"wrote {path}")
    return 0


def _set_out(path: Path, args: argparse.Namespace) -> Path:
    """``--out FILE.safetensors`` of ``directions find|learn``, writable and no input."""
    if path.suffix.lower() != ".safetensors":
        raise UsageError(f"--out {path}: expected a .safetensors file for the direction set")
    if path.is_dir():
        raise UsageError(f"--out {path}: expected a .safetensors file to write, got an existing directory")
    _check_writable(path)
    _refuse_overwriting_inputs([("--out", path)], [("--inverter", getattr(args, "inverter", None)), ("--gan", args.gan)])
    return path


def _read_set(spec: str, *, generator: Any = None, token: str | None = None, revision: str | None = None) -> Any:
    """The direction set ``spec`` names: a file, or ``hub:ORG/NAME:SET`` (``DIR:SET`` for an inverter directory),
    checked against ``generator`` when given."""
    from discinvert.directions import DirectionSet
    from discinvert.hub import directions_file, list_directions

    if Path(spec).is_file() or not (spec.startswith("hub:") or ":" in spec):
        return DirectionSet.load(spec, generator=generator)
    where, _, name = spec.removeprefix("hub:").rpartition(":")
    if not where or not name:
        where, name = spec.removeprefix("hub:"), ""
    if not name:
        have = list_directions(where, token=token, revision=revision)
        raise ValueError(f"{spec}: expected {spec}:SET naming one of its direction sets {have}.")
    path, source = directions_file(where, name, token=token, revision=revision)
    try:
        loaded = DirectionSet.load(path)
    except ValueError as error:
        raise ValueError(f"{source}: {error}") from None
    if generator is not None:
        loaded.check_generator(generator, source=source)
    return loaded


def _set_summary(ds: Any) -> str:
    shape = _format_shape(ds.latent_shape)
    method = "label" if ds.method == "labels" else ds.method
    return (f"{len(ds)} {method} direction{'s' if len(ds) != 1 else ''} in {ds.space}, codes {shape}, for the "
            f"generator {ds.generator_fingerprint[:19]}...")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value)


def _print_set(ds: Any, title: str) -> None:
    """A set's summary, settings and one row per direction: its spread and what ``info`` measured of it."""
    print(f"{title}: {_set_summary(ds)}")
    settings = ds.info.get("settings") if isinstance(ds.info.get("settings"), dict) else {}
    if settings:
        print("settings: " + ", ".join(f"{key} {_cell(value)}" for key, value in settings.items()))
    per = ds.info.get("per_direction") if isinstance(ds.info.get("per_direction"), dict) else {}
    keys = list(dict.fromkeys(key for name in ds.names for key in (per.get(name) or {})))
    rows = [(name, _cell(float(scale)), *(_cell((per.get(name) or {}).get(key)) for key in keys))
            for name, scale in zip(ds.names, ds.scales.tolist())]
    header = ("name", "scale", *keys)
    widths = [max(len(header[i]), *(len(row[i]) for row in rows)) for i in range(len(header))]
    print("  " + "  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths))))
    for row in rows:
        print("  " + "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))


def _directions_find(args: argparse.Namespace) -> int:
    from discinvert.directions import find_directions

    out = _set_out(args.out, args)
    gan = _load_gan(args)
    if gan.latent_shape is None:
        raise UsageError("--latent-shape (e.g. 100,1,1) is needed with --generator")
    layer = None if not args.layer else args.layer[0] if len(args.layer) == 1 else args.layer
    print(f"finding {args.k} {args.method} directions of {gan.description} from {args.samples} prior codes, seed "
          f"{args.seed}", flush=True)
    ds = find_directions(gan.generator, latent_shape=gan.latent_shape, method=args.method, k=args.k, layer=layer,
                         samples=args.samples, seed=args.seed)
    _print_set(ds, "found")
    print(f"wrote {ds.save(out)}")
    return 0


def _labelled_images(folder: str, inverter: Any, args: argparse.Namespace) -> tuple[Any, Any, list[str]]:
    """The pictures of ``folder``'s sub-folders (one per label, sorted by name) in G's range, and their label ids."""
    import torch

    from discinvert.zoo import read_image_source

    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"--labelled {root}: no such folder of labelled sub-folders.")
    labels = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(labels) < 2:
        raise ValueError(f"--labelled {root}: expected at least two sub-folders of pictures, one per label, got "
                         f"{len(labels)}.")
    batches = [_prepare(read_image_source(p), inverter, args).x for p in labels]
    ids = torch.cat([torch.full((len(b),), i, dtype=torch.long) for i, b in enumerate(batches)])
    return torch.cat(batches), ids, [p.name for p in labels]


def _directions_learn(args: argparse.Namespace) -> int:
    from discinvert.directions import learn_directions_from_codes

    out = _set_out(args.out, args)
    gan = _load_gan(args)
    inverter = _load_inverter(args, gan)
    if inverter.conditioning is not None:
        raise ValueError("--inverter: expected an unconditional inverter; a conditional GAN's codes depend on each "
                         "image's condition (use discinvert.learn_directions_from_codes in Python).")
    x, labels, names = _labelled_images(args.labelled, inverter, args)
    conditional: dict[str, list[str]] = {}
    for label, others in args.conditional or []:
        conditional.setdefault(label, []).extend(o for o in others if o not in conditional.get(label, []))
    _say_inverter(args, gan, inverter)
    print(f"learning {len(names)} label directions from {len(x)} pictures of {args.labelled} "
          f"({', '.join(f'{n} {int((labels == i).sum())}' for i, n in enumerate(names))})", flush=True)
    codes = _invert(inverter, x, args)
    ds = learn_directions_from_codes(codes, labels, names=names, generator=gan.generator,
                                     conditional_on=conditional or None, holdout=args.holdout, seed=args.seed)
    per = ds.info["per_direction"]
    width = max(len(n) for n in names)
    for name in names:
        row = per[name]
        accuracy = row["holdout_balanced_accuracy"]
        measured = "not measured (--holdout 0)" if accuracy is None else (
            f"{accuracy:.3f} on {row['holdout_positives']} + {row['holdout_negatives']} held-out codes")
        fixed = f"; holds {', '.join(row['conditional_on'])} fixed" if "conditional_on" in row else ""
        print(f"  {name:{width}s}  held-out balanced accuracy {measured}{fixed}")
    print(f"wrote {ds.save(out)}")
    return 0


def _directions_apply(args: argparse.Namespace) -> int:
    import re

    from discinvert.cli.images import row_grid, row_grid_shape, to_uint8, write_png
    from discinvert.zoo import read_image_source

    out = Path(args.out)
    _check_writable(out, directory=True)
    raw = read_image_source(args.images)
    stems = [re.sub(r"[^\w.-]", "_", Path(name).stem) if raw.layout == "files" else f"image{i:04d}"
             for i, name in enumerate(raw.names)]
    amounts = list(dict.fromkeys(args.amount))
    label = re.sub(r"[^\w.-]", "_", args.name)  # a direction named "T-shirt/top" writes T-shirt_top files
    singles = [out / f"{stem}.{label}.{amount:+g}.png" for stem in stems for amount in amounts]
    grids = [out / f"edits_{i:03d}.png" for i in range(math.ceil(len(raw) / args.per_grid))]
    _refuse_overwriting_inputs([("--out", p) for p in (*grids, *singles)], _inputs(args))
    gan = _load_gan(args)
    inverter = _load_inverter(args, gan, token=args.token)
    ds = _read_set(args.directions, generator=gan.generator, token=args.token)
    if tuple(ds.latent_shape) != tuple(inverter.latent_shape):
        raise ValueError(f"--directions {args.directions}: codes of shape {_format_shape(ds.latent_shape)}; expected "
                         f"the inverter's {_format_shape(inverter.latent_shape)}.")
    ds.vector(args.name)  # an unknown name fails here, with close matches, before any picture is inverted
    images = _prepare(raw, inverter, args)
    picture = images.picture_shape
    row_grid_shape(min(args.per_grid, len(images.x)), picture[1], picture[2], columns=2 + len(amounts), scale=args.scale)
    _say_inverter(args, gan, inverter)
    codes = _invert(inverter, images.x, args)
    decoded = [inverter.decode(codes, args.batch_size)]
    decoded += [inverter.decode(ds.edit(codes, args.name, amount), args.batch_size) for amount in amounts]
    columns = [to_uint8(images.x.reshape(-1, *picture), images.value_range),
               *(to_uint8(d.reshape(-1, *picture), images.value_range) for d in decoded)]
    for i, stem in enumerate(stems):
        for j, amount in enumerate(amounts):
            write_png(out / f"{stem}.{label}.{amount:+g}.png", columns[2 + j][i])
    written = [write_png(out / f"edits_{g:03d}.png",
                         row_grid([c[start:start + args.per_grid] for c in columns], scale=args.scale))
               for g, start in enumerate(range(0, len(raw), args.per_grid))]
    scale = float(ds.scales[ds.names.index(args.name)])
    print(f"edited {len(raw)} pictures of {raw.source} along {args.name!r} ({ds.method}, spread {scale:.4g}) by "
          f"{', '.join(f'{a:+g}' for a in amounts)}")
    print(f"wrote {len(singles)} pictures ({singles[0].name}, ...) and {len(written)} grid(s) of original | "
          f"reconstruction | {' | '.join(f'{a:+g}' for a in amounts)}: {written[0]}" + (" ..." if len(written) > 1 else ""))
    return 0


def _directions_list(args: argparse.Namespace) -> int:
    from discinvert.hub import list_directions

    source = args.source
    where = source.removeprefix("hub:")
    if source.startswith("hub:") and where.count(":") == 0 or (Path(source).is_dir() and ":" not in source):
        names = list_directions(where, token=args.token, revision=args.revision)
        if not names:
            print(f"{source}: no direction sets (directions/<name>.safetensors)")
            return 0
        print(f"{source}: {len(names)} direction set(s): {', '.join(names)}")
        for name in names:
            print()
            _print_set(_read_set(f"{source}:{name}", token=args.token, revision=args.revision), f"{source}:{name}")
        return 0
    _print_set(_read_set(source, token=args.token, revision=args.revision), source)
    return 0


_DIRECTION_ACTIONS = {"find": _directions_find, "learn": _directions_learn, "apply": _directions_apply,
                      "list": _directions_list}


def _directions(args: argparse.Namespace) -> int:
    return _DIRECTION_ACTIONS[args.directions_command](args)


def _push(args: argparse.Namespace) -> int:
    import torch

    gan = _load_gan(args)
    inverter = _load_inverter(args, gan, token=args.token)
    _say_inverter(args, gan, inverter)
    print(f"pushing the inverter ({_reads(inverter)} -> {_format_shape(inverter.latent_shape)}) to {args.repo_id}",
          flush=True)
    try:
        url = inverter.push_to_hub(args.repo_id, private=True if args.private else None, token=args.token,
                                   commit_message=args.message, gan=args.gan_name or gan.description,
                                   dtype=getattr(torch, args.weights_dtype))
    except Exception as error:
        if not is_network_error(error):
            raise
        raise ValueError(f"pushing to the Hub repo {args.repo_id!r} failed ({type(error).__name__}: {error}); check "
                         "the connection, the repo id and the token (--token, $HF_TOKEN or `hf auth login`).") from None
    print(f"pushed: {url}")
    return 0


def _zoo_session(entry: str, args: argparse.Namespace, progress: Any, limits: Any) -> Any:
    """Another bundled zoo entry for the page's picker: its default inverter, test pictures and label directions."""
    from discinvert import web
    from discinvert.cli.sources import inverter_name, load_gan_source, load_inverter, parse_device
    from discinvert.web import sources

    progress.stage(f"loading zoo:{entry} for the page's picker of GANs ...")
    gan = load_gan_source(gan=f"zoo:{entry}", device=parse_device(args.device))
    spec = inverter_name(gan.default_inverter)
    inverter = load_inverter(spec, gan.generator, gan.discriminator)
    examples, images, labels, names = sources.zoo_examples(entry, inverter)
    directions = _zoo_label_directions(entry, inverter, (images, labels, names), progress)
    return web.WebSession(inverter, description=f"{gan.description}; inverter {spec}", examples=examples,
                          directions=directions, limits=limits)


def _zoo_label_directions(entry: str, inverter: Any, pictures: Any, progress: Any) -> Any:
    """A zoo entry's label directions: the ones it ships (:func:`discinvert.zoo.load_directions`) when they fit the
    inverter's G, else one per class learned from its test ``pictures`` (``(images, labels, names)``) at start-up."""
    from discinvert import zoo
    from discinvert.directions import learn_directions

    try:
        shipped = zoo.load_directions(entry, generator=inverter.generator)
    except ValueError as error:  # e.g. the StyleGAN2 entry's W+ set for a G in W
        progress.stage(f"zoo:{entry}'s shipped directions could not be used ({error}); learning them instead")
        shipped = None
    if shipped is not None:
        progress.stage(f"one edit direction per class of zoo:{entry}, as the entry ships them")
        return shipped
    images, labels, names = pictures
    progress.stage(f"one edit direction per class of zoo:{entry}, learned from {len(images)} test pictures ...")
    return learn_directions(inverter, images, labels, names=names, seed=0)


def _serve_directions(args: argparse.Namespace, inverter: Any, zoo_entry: tuple[str, Any] | None,
                      progress: Any) -> list[Any]:
    """The page's groups of sliders: a zoo GAN's label directions, --labelled, --directions, or else SeFa's.
    ``zoo_entry``: ``(name, (images, labels, label names))`` when the GAN is a zoo entry, else ``None``."""
    from discinvert.web import sources

    groups = []
    if zoo_entry is not None and args.labelled is None and args.directions is None:
        entry, pictures = zoo_entry
        groups.append(_zoo_label_directions(entry, inverter, pictures, progress))
    if args.labelled is not None:
        progress.stage(f"one edit direction per label of {args.labelled} ...")
        groups.append(sources.directions_from_folders(args.labelled, inverter))
    if args.directions is not None:
        groups.append(sources.directions_from_file(args.directions, inverter))
    if not groups:  # a GAN without labels: directions from G alone
        progress.stage(f"{sources.UNSUPERVISED_K} edit directions from G alone (SeFa) ...")
        try:
            groups.append(sources.unsupervised_directions(inverter))
        except ValueError as error:
            progress.stage(f"no edit directions from G alone ({error}); give --labelled or --directions for sliders")
    return groups


def _serve(args: argparse.Namespace) -> int:
    import sys

    from discinvert.cli.progress import Progress

    progress = Progress(args.command)  # stderr: stdout's first line stays the URL
    progress.stage(f"loading {args.gan or 'the GAN'} and its inverter ...")  # before the seconds of importing
    try:
        from discinvert import web
        from discinvert.web import server, sources
    except ImportError as error:
        raise ValueError(str(error)) from None
    gan = _load_gan(args)
    inverter = _load_inverter(args, gan)
    _say_inverter(args, gan, inverter)
    zoo_entry = args.gan[len("zoo:"):].strip("/") if args.gan is not None and args.gan.startswith("zoo:") else None
    examples = zoo_pictures = None
    if zoo_entry is not None:  # its test pictures, and one direction per class
        examples, images, labels, names = sources.zoo_examples(zoo_entry, inverter)
        zoo_pictures = (images, labels, names)
    if args.examples is not None:
        progress.stage(f"reading the example pictures {args.examples} ...")
        examples = sources.examples_from(args.examples, inverter)
    directions = _serve_directions(args, inverter, None if zoo_entry is None else (zoo_entry, zoo_pictures), progress)
    limits = web.Limits(max_upload_bytes=int(args.max_upload_mb * 2**20), max_refine_steps=args.max_refine_steps,
                        queue=args.queue)
    session = web.WebSession(inverter, description=f"{gan.description}; inverter {_inverter_spec(args, gan)}",
                             examples=examples, directions=directions, limits=limits)
    others = {}
    if zoo_entry is not None and args.latent_space is None:  # the picker offers every bundled GAN
        from discinvert import zoo

        others = {entry: _zoo_session(entry, args, progress, limits) for entry in zoo.available() if entry != zoo_entry}
    sock = server.bind(args.host, args.port)
    if not server.is_loopback(args.host):
        print(f"discinvert serve: warning: listening on {args.host}, not only on this machine: anyone who can reach "
              "this address can use the page and its API (there is no authentication).", file=sys.stderr, flush=True)
    print(f"discinvert serve: {server.url_of(sock)}  (Ctrl-C stops)", flush=True)
    app = web.create_app(session, name=zoo_entry or args.gan or "this GAN", others=others)
    server.serve(app, sock)
    return 0


HANDLERS: dict[str, Handler] = {
    "layers": _layers, "fit": _fit, "encode": _encode, "reconstruct": _reconstruct, "evaluate": _evaluate,
    "push": _push, "demo": _demo, "serve": _serve,
    "directions": _directions,
}
"""The function that runs each command."""
