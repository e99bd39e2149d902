"""The ``discinvert`` argument parser: option types, shared option groups, and one sub-parser per command.

The ``fit`` flags that set fit settings are generated from
:class:`discinvert.fitting.fit_config.FitConfig` (:func:`discinvert.fitting.fit_config.command_line_settings`).
The parser is built by :func:`build_parser` inside ``main``, never at import time.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from discinvert._version import __version__
from discinvert.fitting.fit_config import MAX_SEED, MAX_SEED_TEXT, CommandLine, command_line_help, command_line_settings

__all__ = ["DEMO_IMAGES", "Handler", "UsageError", "build_parser", "fit_settings"]

WEIGHT_DTYPES = ("float32", "float16", "bfloat16", "int8")
"""``--weights-dtype`` choices: names of torch dtypes ``save``/``save_pretrained`` store weights in."""

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
  Generator only: a GAN directory without discriminator.safetensors, or --generator
                    without --discriminator, is G alone: `fit` fits an inverter that
                    reads pixels (no feature layer), and every command loads one;
                    --no-discriminator leaves a directory's or zoo entry's D unread.
                    An inverter fit for G alone never reads D, even when D is there.
"""

_RANGE_HELP = """\
Image values: image files hold 8-bit (0..255) or 16-bit (0..65535) pixels, mapped
linearly onto G's value range --range LO,HI (default: the range the inverter recorded
for G at fit time, e.g. -1,1 for a tanh generator such as the reference and zoo GANs,
0,1 for a sigmoid one): 0 -> LO, the maximum -> HI. A uint8/uint16 .npy array is mapped
the same way; 1-bit PNGs and bool arrays are black 0 and white 255. A float .npy array is
taken as already in G's range, unless --input-range gives its range (e.g. 0,1), which is
then mapped linearly onto --range (--input-range is refused for integer pixels: their
scale is known). Images far outside G's range get a warning (--strict-range: an error);
a float array of [0, 1] values for a [-1, 1] G gets a warning naming --input-range 0,1.
An output that is also an input (--out x.npy --images x.npy) is refused. Nothing is resized, and
grayscale vs colour must match the inverter's image shape; a generator of flat vectors
(an MLP giving 784 values) takes images of --image-shape C,H,W (e.g. 1,28,28).
"""


class UsageError(Exception):
    """Options that do not go together: reported like an argparse error (exit code 2)."""


# ---------------------------------------------------------------------------- argument types

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
_seed = _integer(0, MAX_SEED, MAX_SEED_TEXT)  # fit_inverter's seeds (and every other --seed)


DEMO_IMAGES = 1000
"""The bundled Fashion-MNIST test images ``discinvert demo --n-images`` chooses from."""

DEMO_ENTRY = "dcgan-fashion-mnist"
"""The zoo entry ``discinvert demo`` runs on without ``--gan``."""


def _zoo_name(text: str) -> str:
    """An argparse type: ``zoo:NAME`` (the entry itself is checked when the command runs), returned as ``NAME``
    (argparse passes a string default through it too)."""
    name = text[len("zoo:"):].strip("/") if text.startswith("zoo:") else ""
    if not name:
        raise argparse.ArgumentTypeError(f"expected zoo:NAME, a bundled entry such as zoo:{DEMO_ENTRY}, got {_shown(text)}")
    return name


def _up_to(maximum: int, what: str) -> Callable[[str], int]:
    """An argparse type: an integer from 1 to ``maximum`` (``what`` says why that bound), else a message saying so."""
    expected = f"an integer from 1 to {maximum} ({what})"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {_shown(text)}") from None
        if not 1 <= value <= maximum:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {_shown(text)}")
        return value

    parse.__name__ = expected
    return parse


def _feature_layers(text: str) -> str:
    """``--feature-layer``: one name or several separated by commas, none empty (an empty name is D itself)."""
    if any(not name.strip() for name in text.split(",")):
        raise argparse.ArgumentTypeError(
            f"expected layer names separated by commas, such as main.7 or main.4,main.7, got {_shown(text)} with an "
            "empty name (which would select D's output); see `discinvert layers`")
    return text


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {_shown(text)}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {_shown(text)}")
    return value


def _weight(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {_shown(text)}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {_shown(text)}")
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


def _gan_parent(*, with_shape: bool = True, without_d: bool = True) -> argparse.ArgumentParser:
    """The options naming the GAN; ``without_d``: the command works with G alone (``--no-discriminator``)."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("GAN (either --gan, or --generator/--discriminator factories)")
    group.add_argument("--gan", metavar="GAN",
                       help="a GAN directory written by discinvert.zoo.architectures.save_gan (or a zoo-entry folder "
                            "holding gan/ and inverter/), or zoo:NAME for a bundled entry; its config gives the "
                            "default feature layer and latent shape"
                            + ("; without discriminator.safetensors it is G alone" if without_d else ""))
    group.add_argument("--generator", metavar="FACTORY", type=_factory,
                       help="package.module:callable taking no arguments and returning G, e.g. "
                            "mypkg.models:make_generator (the current directory is importable)"
                            + ("; without --discriminator, G alone" if without_d else ""))
    group.add_argument("--discriminator", metavar="FACTORY", type=_factory,
                       help="package.module:callable returning D, e.g. mypkg.models:make_discriminator")
    if without_d:
        group.add_argument("--no-discriminator", action="store_true",
                           help="use G alone: leave the D of --gan unread (an inverter fit for G alone never reads "
                                "D; one that reads D's features then fails to load)")
    if with_shape:
        group.add_argument("--latent-shape", type=_shape, metavar="SHAPE",
                           help="shape of one latent, e.g. 100,1,1 (default: the GAN config's; needed for factories)")
    group.add_argument("--latent-space", choices=("z", "w", "w+"), default=None,
                       help="a StyleGAN2 --gan directory: invert into Z, W or W+ (default: the space its config "
                            "records, W+ for zoo:stylegan2-fashion-mnist); an inverter fitted in one space loads "
                            "only in that space")
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
                       help="value range of a float .npy input (default: taken as already in G's range); refused "
                            "for integer pixels (image files, integer .npy), whose scale is known")
    from discinvert.gan import DEFAULT_BATCH_SIZE

    group.add_argument("--batch-size", type=_count, default=None,
                       help=f"images per forward pass (default {DEFAULT_BATCH_SIZE})")
    return parent


def _inverter_option(parser: argparse.ArgumentParser, *, optional_text: str = "") -> None:
    parser.add_argument("--inverter", metavar="INV",
                        help="the inverter: a .safetensors file (Inverter.save), a save_pretrained directory, a Hub "
                             "repo id org/name, zoo:NAME/real-images (the entry's real-image-stage inverter), "
                             "zoo:NAME/paper (its paper CN) or zoo:NAME (its default)"
                             + optional_text)


def _refine_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--refine-steps", type=_positive, default=0,
                        help="hybrid inversion: optimise each code this many Adam steps after encoding (default %(default)s)")
    parser.add_argument("--iterations", type=_positive, default=None, metavar="K",
                        help="feed-forward corrections to run, 0 to the inverter's own (default: all it was fit with, "
                             "see `discinvert fit --iterations`)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")


def _wrap(text: str) -> str:
    import textwrap

    return textwrap.fill(text, width=88)


_RAW = argparse.RawDescriptionHelpFormatter
_DEFAULT_INVERTER = (" (default with --gan zoo:NAME: the entry's real-images inverter where it has one, as for "
                     "serve; the command prints which one it used)")

Handler = Callable[[argparse.Namespace], int]
"""What runs a command: its parsed options in, the exit code out."""


def _setting_type(option: CommandLine) -> dict[str, Any]:
    """argparse keywords for one :class:`~discinvert.fitting.fit_config.CommandLine` spec; ``None`` means "not given"."""
    if option.kind == "int":
        return {"type": _integer(option.minimum), "default": option.default}
    if option.kind == "float":
        return {"type": _float, "default": option.default}
    if option.kind == "weight":
        return {"type": _weight, "default": option.default}
    if option.kind == "seed":
        return {"type": _seed, "default": option.default}
    if option.kind == "switch":
        return {"action": "store_const", "const": True, "default": option.default}
    if option.kind == "off-switch":
        return {"action": "store_const", "const": False, "default": option.default}
    return {"choices": sorted(option.choices or {}), "default": option.default}


def _add_fit_settings(parser: argparse.ArgumentParser) -> None:
    """One flag per fit setting that has one, as :class:`~discinvert.fitting.fit_config.FitConfig` describes it."""
    for name, option in command_line_settings():
        parser.add_argument(option.flag, dest=name, help=command_line_help(name), **_setting_type(option))


def fit_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The fit settings given on the command line (choices mapped to their values), for ``fit_inverter``."""
    settings = {}
    for name, option in command_line_settings():
        value = getattr(args, name)
        if value is None:
            continue
        settings[name] = option.choices[value] if option.kind == "choice" and option.choices else value
    return settings


def _add_layers(commands: Any, handler: Handler) -> None:
    layers = commands.add_parser(
        "layers", parents=[_gan_parent(without_d=False)], formatter_class=_RAW,
        help="list D's layers with types and output shapes (to choose a feature layer)",
        description=_wrap("List the discriminator's layers with their types, output shapes for an example batch "
                          "G(z) (or random images of --image-shape), feature sizes and parameter counts."),
        epilog="examples:\n  discinvert layers --gan zoo:dcgan-fashion-mnist\n"
               "  discinvert layers --generator mypkg.models:G --discriminator mypkg.models:D --latent-shape 128",
    )
    layers.add_argument("--image-shape", type=_shape, metavar="C,H,W",
                        help="run D on random images of this shape instead of G(z)")
    layers.set_defaults(handler=handler)


def _add_fit(commands: Any, handler: Handler) -> None:
    fit = commands.add_parser(
        "fit", parents=[_gan_parent()], formatter_class=_RAW,
        help="fit an inverter for a GAN and save it",
        description=_wrap("Fit the connection network on self-generated pairs (z, D_f(G(z))) and save the "
                          "inverter with the lowest held-out error. A progress bar shows on a terminal."),
        epilog="examples:\n  discinvert fit --gan runs/dcgan --out inverter.safetensors\n"
               "  discinvert fit --gan zoo:dcgan-fashion-mnist --images train-images-idx3-ubyte.gz --out inv/\n"
               "  discinvert fit --generator mypkg.models:G --discriminator mypkg.models:D --latent-shape 128 \\\n"
               "      --feature-layer blocks.3.act --out my-inverter/\n"
               "  discinvert fit --generator mypkg.models:G --latent-shape 128 --out g-only/   (G alone, no D)",
    )
    fit.add_argument("--out", required=True, metavar="OUT",
                     help="a .safetensors file (Inverter.save), or a directory (Inverter.save_pretrained: "
                          "model.safetensors, config.json, README.md model card)")
    fit.add_argument("--weights-dtype", choices=tuple(WEIGHT_DTYPES), default="float32",
                     help="how the file stores the weights (default %(default)s, which round-trips exactly; float16 "
                          "halves it; int8 stores weight matrices as int8 with a scale per row, about a quarter)")
    fit.add_argument("--feature-layer", type=_feature_layers, help="D's layer to read (default: the GAN config's; see `discinvert layers`), or "
                     "several separated by commas (main.4,main.7): the CN reads them concatenated; none without D "
                     "(G alone: the inverter reads pixels)")
    real = fit.add_argument_group("real-image stage (after the self-generated fit; see docs/cli.md)")
    real.add_argument("--images", metavar="PATH",
                      help="real training images (never your test split): a folder of PNG/JPEG files, an .npy "
                           "array or an IDX file such as train-images-idx3-ubyte.gz; the CN is then fine-tuned on "
                           "them through the frozen G")
    real.add_argument("--range", type=_value_range, default=None, metavar="LO,HI",
                      help="G's output value range that integer pixels map onto (default: measured on 64 of G's "
                           "images: -1,1 for a tanh G, 0,1 for a sigmoid one)")
    real.add_argument("--input-range", type=_value_range, default=None, metavar="LO,HI",
                      help="value range of a float .npy input (default: taken as already in G's range); refused "
                           "for integer pixels (image files, integer .npy), whose scale is known")
    _add_fit_settings(fit)
    fit.set_defaults(handler=handler)


def _add_encode(commands: Any, handler: Handler) -> None:
    encode = commands.add_parser(
        "encode", parents=[_gan_parent(with_shape=False), _image_parent()], formatter_class=_RAW,
        help="encode images to latent codes (.npy or .safetensors)",
        description=_wrap("Encode images to latent codes: one partial pass of D (for an inverter fit for the "
                          "generator alone, its own pixel network) plus the connection network (optionally refined by "
                          "optimisation)."),
        epilog=_RANGE_HELP
               + "\nCodes: --out codes.npy holds one (N, *latent_shape) float32 array, rows in the images'\n"
               "order (folders: sorted by file name); --out codes.safetensors holds the tensor 'codes'\n"
               "and, in its metadata, the image names.\n"
               "\nexample:\n  discinvert encode --gan zoo:dcgan-fashion-mnist --images photos/ --out codes.npy",
    )
    encode.add_argument("--images", required=True, metavar="SRC",
                        help="a folder of PNG/JPEG files, one image file, an .npy array, or zoo:NAME (bundled test images)")
    encode.add_argument("--out", required=True, metavar="CODES", help="where to write the codes: a .npy or .safetensors file")
    _inverter_option(encode, optional_text=_DEFAULT_INVERTER)
    _refine_option(encode)
    encode.set_defaults(handler=handler)


def _add_reconstruct(commands: Any, handler: Handler) -> None:
    reconstruct = commands.add_parser(
        "reconstruct", parents=[_gan_parent(with_shape=False), _image_parent()], formatter_class=_RAW,
        help="write PNG grids of originals beside their reconstructions G(encode(x))",
        description=_wrap("Reconstruct images through the GAN and write PNG grids of original | reconstruction "
                          "pairs (reconstructions_000.png, ...); prints mean PSNR and SSIM."),
        epilog=_RANGE_HELP + "\nexample:\n  discinvert reconstruct --gan zoo:dcgan-fashion-mnist "
               "--images zoo:dcgan-fashion-mnist --out out/recon --scale 3",
    )
    reconstruct.add_argument("--images", required=True, metavar="SRC",
                             help="a folder of PNG/JPEG files, one image file, an .npy array, or zoo:NAME")
    reconstruct.add_argument("--out", required=True, type=Path, metavar="DIR", help="folder for the PNG grids")
    _inverter_option(reconstruct, optional_text=_DEFAULT_INVERTER)
    _refine_option(reconstruct)
    reconstruct.add_argument("--per-grid", type=_count, default=64, help="pairs per PNG file (default %(default)s)")
    reconstruct.add_argument("--columns", type=_count, default=8, help="pairs per row (default %(default)s)")
    reconstruct.add_argument("--scale", type=_count, default=1,
                             help="integer upscaling of the grids (default %(default)s)")
    reconstruct.set_defaults(handler=handler)


def _add_evaluate(commands: Any, handler: Handler) -> None:
    evaluate = commands.add_parser(
        "evaluate", parents=[_gan_parent(with_shape=False), _image_parent()], formatter_class=_RAW,
        help="score GAN+inverter pairs on real test images (PSNR/SSIM), ranked side by side",
        description=_wrap("The paper's GAN metric (reconstruction_score): reconstruct unseen test images, --n "
                          "images in each of --repeats random draws, PSNR and SSIM mean ± std over the draws, "
                          "for each model; prints a ranked table."),
        epilog="models:\n"
               "  --model [NAME=]GAN[:INV]  repeatable; GAN is a GAN directory or zoo:ENTRY, INV an inverter\n"
               "                            file, directory, org/name or zoo:ENTRY[/KIND] (default: the zoo\n"
               "                            entry's real-images inverter where it has one, else its paper CN;\n"
               "                            the same in a zoo-entry folder)\n"
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
    evaluate.add_argument("--repeats", type=_count, default=5, help="random draws (default %(default)s)")
    evaluate.add_argument("--seed", type=_seed, default=0,
                          help=f"seed of the draws, in [0, {MAX_SEED_TEXT}) (default %(default)s)")
    evaluate.add_argument("--refine-steps", type=_positive, default=0,
                          help="0: the inverter alone (default); else hybrid refinement steps")
    evaluate.add_argument("--sort-by", choices=("psnr", "ssim"), default="psnr", help="ranking (default %(default)s)")
    evaluate.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    evaluate.set_defaults(handler=handler)


def _add_push(commands: Any, handler: Handler) -> None:
    push = commands.add_parser(
        "push", parents=[_gan_parent(with_shape=False)], formatter_class=_RAW,
        help="upload an inverter to the Hugging Face Hub",
        description=_wrap("Upload an inverter (model.safetensors, config.json, README.md model card) to a Hub "
                          "model repo, created if needed. The GAN is needed to load and check the inverter; it "
                          "is not uploaded."),
        epilog="example:\n  discinvert push --gan runs/dcgan --inverter inv.safetensors "
               "--repo-id me/dcgan-inverter --private",
    )
    _inverter_option(push, optional_text=_DEFAULT_INVERTER)
    push.add_argument("--repo-id", required=True, metavar="org/name", help="the Hub model repo")
    push.add_argument("--private", action="store_true", help="create the repo as private")
    push.add_argument("--token", help="Hub token (default: $HF_TOKEN or the cached `hf auth login`)")
    push.add_argument("--message", help="commit message")
    push.add_argument("--weights-dtype", choices=tuple(WEIGHT_DTYPES), default="float32",
                      help="how the uploaded model.safetensors stores the weights (float32, float16, bfloat16 or "
                           "int8: weight matrices as int8 with a scale per row)")
    push.add_argument("--gan-name", help="the line naming the GAN on the model card (default: its source)")
    push.set_defaults(handler=handler)


def _amount(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a finite number such as 2 or -1.5, got {_shown(text)}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number such as 2 or -1.5, got {_shown(text)}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1) such as 0.25, got {_shown(text)}")
    return value


def _conditional(text: str) -> tuple[str, list[str]]:
    """``--conditional A:B,C``: label A's direction holds labels B and C fixed."""
    label, sep, others = text.partition(":")
    held = [name.strip() for name in others.split(",")]
    if not sep or not label.strip() or not all(held):
        raise argparse.ArgumentTypeError(f"expected LABEL:OTHER[,OTHER...] such as shirt:t-shirt,pullover, got "
                                         f"{_shown(text)}")
    return label.strip(), held


_DIRECTIONS_HELP = """Direction sets are .safetensors files (discinvert.DirectionSet): named unit directions of
G's latent space with their spreads (an amount of 1 moves a code by one spread of the
prior's codes along it), how they were found, the space, and G's fingerprint; a set is
refused for another G. docs/cli.md, "Editing directions".

examples:
  discinvert directions find --gan zoo:dcgan-fashion-mnist --method sefa --k 10 --out sefa.safetensors
  discinvert directions learn --gan zoo:dcgan-fashion-mnist --labelled labelled/ --out labels.safetensors
  discinvert directions apply --gan zoo:dcgan-fashion-mnist --directions sefa.safetensors --name sefa-0 \\
      --images photos/ --amount -2 --amount 2 --out edits/
  discinvert directions list sefa.safetensors
  discinvert directions list hub:org/dcgan-inverter
"""


def _add_directions(commands: Any, handler: Handler) -> None:
    directions = commands.add_parser(
        "directions", formatter_class=_RAW, help="find, learn, apply and list named edit directions of G's codes",
        description=_wrap("Direction sets: find directions from G alone (SeFa, GANSpace PCA), learn one per label "
                          "from labelled pictures, edit pictures along one, or list a set's directions."),
        epilog=_DIRECTIONS_HELP,
    )
    actions = directions.add_subparsers(dest="directions_command", metavar="ACTION", required=True)
    find = actions.add_parser(
        "find", parents=[_gan_parent()], formatter_class=_RAW, help="directions from G alone (SeFa or PCA)",
        description=_wrap("Find K directions from the generator alone, ranked by how much they change its images: "
                          "sefa factorises the weight of the layer that first takes the code; pca takes principal "
                          "components of W codes, or of an early layer's outputs carried back to Z. Deterministic "
                          "for a seed."),
        epilog="example:\n  discinvert directions find --gan zoo:dcgan-fashion-mnist --k 10 --out sefa.safetensors")
    find.add_argument("--method", choices=("sefa", "pca"), default="sefa", help="(default %(default)s)")
    find.add_argument("--k", type=_count, default=10, help="directions to keep (default %(default)s)")
    find.add_argument("--layer", action="append", metavar="NAME",
                      help="sefa: a module of G whose weight to factorise instead of the detected one (repeatable); "
                           "pca in Z: the module whose outputs to analyse")
    find.add_argument("--samples", type=_integer(8), default=2000,
                      help="prior codes drawn for the spreads, the typical set and PCA (default %(default)s)")
    find.add_argument("--seed", type=_seed, default=0, help="seed of every draw (default %(default)s)")
    find.add_argument("--out", required=True, type=Path, metavar="FILE", help="the direction set, a .safetensors file")
    learn = actions.add_parser(
        "learn", parents=[_gan_parent(with_shape=False), _image_parent()], formatter_class=_RAW,
        help="one direction per label, from labelled pictures",
        description=_wrap("Invert labelled pictures and fit one linear classifier per label on their codes; its "
                          "normal is the label's direction (as InterFaceGAN). Prints how separable each label is: "
                          "the balanced accuracy on a held-out part of the codes. About 20 pictures per label "
                          "suffice."),
        epilog=_RANGE_HELP + "\nexample:\n  discinvert directions learn --gan zoo:dcgan-fashion-mnist --labelled "
               "labelled/ --conditional shirt:t-shirt --out labels.safetensors")
    _inverter_option(learn, optional_text=_DEFAULT_INVERTER)
    _refine_option(learn)
    learn.add_argument("--labelled", required=True, metavar="DIR",
                       help="a folder of sub-folders of pictures, one per label (the sub-folder's name)")
    learn.add_argument("--conditional", type=_conditional, action="append", metavar="LABEL:OTHER[,OTHER]",
                       help="LABEL's direction holds OTHER labels fixed (their directions projected out; repeatable)")
    learn.add_argument("--holdout", type=_fraction, default=0.25,
                       help="fraction of each label's pictures held out to measure the accuracy (default %(default)s)")
    learn.add_argument("--seed", type=_seed, default=0, help="seed of the held-out split (default %(default)s)")
    learn.add_argument("--out", required=True, type=Path, metavar="FILE", help="the direction set, a .safetensors file")
    apply = actions.add_parser(
        "apply", parents=[_gan_parent(with_shape=False), _image_parent()], formatter_class=_RAW,
        help="edit pictures along one direction and write them",
        description=_wrap("Encode pictures, move their codes along one direction of a set by each --amount (in "
                          "spreads of the prior's codes), and write the edited pictures (one PNG per picture and "
                          "amount) and grids of original | reconstruction | each amount."),
        epilog=_RANGE_HELP + "\nexample:\n  discinvert directions apply --gan zoo:dcgan-fashion-mnist --directions "
               "sefa.safetensors --name sefa-0 \\\n      --images zoo:dcgan-fashion-mnist --amount -2 --amount 2 "
               "--out edits/")
    _inverter_option(apply, optional_text=_DEFAULT_INVERTER)
    _refine_option(apply)
    apply.add_argument("--directions", required=True, metavar="SET",
                       help="the direction set: a .safetensors file, or hub:ORG/NAME:SET (a set beside an inverter "
                            "on the Hub)")
    apply.add_argument("--name", required=True, help="the direction to apply (`discinvert directions list` names them)")
    apply.add_argument("--amount", type=_amount, action="append", required=True, metavar="A",
                       help="how far to move, in spreads of the prior's codes along the direction (repeatable)")
    apply.add_argument("--images", required=True, metavar="SRC",
                       help="a folder of PNG/JPEG files, one image file, an .npy array, or zoo:NAME")
    apply.add_argument("--out", required=True, type=Path, metavar="DIR", help="folder for the edited pictures")
    apply.add_argument("--per-grid", type=_count, default=64, help="pictures per grid file (default %(default)s)")
    apply.add_argument("--scale", type=_count, default=1, help="integer upscaling of the grids (default %(default)s)")
    apply.add_argument("--token", help="Hub token for hub:ORG/NAME:SET (default: $HF_TOKEN or `hf auth login`)")
    listing = actions.add_parser(
        "list", formatter_class=_RAW, help="print a set's directions",
        description=_wrap("Print a direction set's method, space, settings, and each direction's spread and what "
                          "was measured of it (image change, eigenvalue or explained variance; for labels the "
                          "held-out balanced accuracy)."),
        epilog="examples:\n  discinvert directions list sefa.safetensors\n"
               "  discinvert directions list hub:org/dcgan-inverter      (every set beside the inverter)")
    listing.add_argument("source", metavar="SET",
                         help="a .safetensors file, an inverter directory (Inverter.save_pretrained), or hub:ORG/NAME "
                              "(its sets) or hub:ORG/NAME:SET (one)")
    listing.add_argument("--token", help="Hub token (default: $HF_TOKEN or `hf auth login`)")
    listing.add_argument("--revision", help="a Hub branch, tag or commit (default: main)")
    for action in actions.choices.values():
        action.set_defaults(handler=handler, _parser=action)


def _add_demo(commands: Any, handler: Handler) -> None:
    demo = commands.add_parser("demo", help="invert real Fashion-MNIST test images with a bundled GAN (the DCGAN by default)",
                               description="Encode, refine and edit the bundled real test images; write a picture and metrics.")
    demo.add_argument("--out", type=Path, default=Path("out/demo"), help="output folder (default: %(default)s)")
    demo.add_argument("--gan", type=_zoo_name, default=f"zoo:{DEMO_ENTRY}", metavar="zoo:NAME",
                      help="the bundled GAN: zoo:dcgan-fashion-mnist (default) or zoo:stylegan2-fashion-mnist")
    demo.add_argument("--fit", action="store_true", help="fit a fresh inverter instead of loading the bundled one")
    demo.add_argument("--steps", type=_count, default=None, help="steps of the fresh fit (default: the library's)")
    demo.add_argument("--n-images", type=_up_to(DEMO_IMAGES, "the bundled test images"), default=DEMO_IMAGES,
                      help=f"bundled test images to encode, 1 to {DEMO_IMAGES} (default {DEMO_IMAGES})")
    demo.add_argument("--refine-images", type=_positive, default=200,
                      help="how many of them to refine (default %(default)s)")
    demo.add_argument("--refine-steps", type=_positive, default=50, help="refinement steps (default %(default)s)")
    demo.add_argument("--seed", type=_seed, default=0,
                      help=f"seed of the fresh fit, in [0, {MAX_SEED_TEXT}) (default %(default)s)")
    demo.set_defaults(handler=handler)


def _add_serve(commands: Any, handler: Handler) -> None:
    serve = commands.add_parser(
        "serve", parents=[_gan_parent(with_shape=False)], formatter_class=_RAW,
        help="an interactive page to invert, refine, edit and interpolate pictures (needs discinvert[web])",
        description=_wrap("Serve a local page (and its JSON API under /api/, docs/web.md): pick or upload a picture, "
                          "see its feed-forward reconstruction, refine it live, move latent-arithmetic sliders, "
                          "interpolate to another picture, download the code. Needs pip install "
                          "\"discinvert[web]\"."),
        epilog="examples:\n  discinvert serve --gan zoo:dcgan-fashion-mnist\n"
               "  discinvert serve --gan runs/dcgan --inverter inv.safetensors --examples photos/ --labelled labelled/\n"
               "\nWith a zoo GAN the page offers its bundled test pictures and one direction per class\n"
               "(learned from them), and a picker of GANs offering every bundled entry\n"
               "(zoo:dcgan-fashion-mnist, zoo:stylegan2-fashion-mnist) with their own pictures and\n"
               "directions; elsewhere --examples, --labelled (sub-folders of pictures, one per label) and\n"
               "--directions (a direction set file, or a .safetensors file of named latent-shape tensors)\n"
               "give them, and without either the sliders are 8 directions found from G alone (SeFa).\n"
               "The page can also learn a new slider from uploaded labelled pictures.",
    )
    _inverter_option(serve, optional_text=" (default with --gan zoo:NAME: the entry's best, its real-images inverter)")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default %(default)s: this machine only; another address makes the "
                            "page reachable by anyone who can reach it, without authentication)")
    serve.add_argument("--port", type=_integer(0, 65536, "65536"), default=8000,
                       help="port (default %(default)s; 0 picks a free one)")
    serve.add_argument("--examples", metavar="SRC",
                       help="pictures to pick from: a folder of PNG/JPEG files, an .npy array, an IDX file or zoo:NAME "
                            "(default: a zoo GAN's test pictures)")
    serve.add_argument("--labelled", metavar="DIR",
                       help="a folder of sub-folders of pictures, one per label: one edit direction per label")
    serve.add_argument("--directions", metavar="FILE",
                       help="a direction set file (discinvert directions find|learn, or DirectionSet.save; refused "
                            "for another G), or a .safetensors file of named tensors of the inverter's latent shape")
    serve.add_argument("--max-upload-mb", type=_float, default=5.0, help="largest upload in MB (default %(default)g)")
    serve.add_argument("--max-refine-steps", type=_integer(1), default=500,
                       help="most refinement steps one request may ask for (default %(default)s)")
    serve.add_argument("--queue", type=_integer(0), default=16,
                       help="requests that may wait for the models while one runs; more get HTTP 503 (default %(default)s)")
    serve.set_defaults(handler=handler)


def build_parser(handlers: Mapping[str, Handler]) -> argparse.ArgumentParser:
    """The whole ``discinvert`` parser; ``handlers`` maps each command to the function that runs it."""
    parser = argparse.ArgumentParser(
        prog="discinvert",
        description="Inverse mappings (image -> latent) for pretrained GANs, from their discriminators.",
        epilog=_GAN_HELP + "\nRun `discinvert COMMAND --help` for a command's options.",
        formatter_class=_RAW,
    )
    parser.add_argument("--version", action="version", version=f"discinvert {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress messages")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, add in (("layers", _add_layers), ("fit", _add_fit), ("encode", _add_encode),
                      ("reconstruct", _add_reconstruct), ("evaluate", _add_evaluate), ("push", _add_push),
                      ("directions", _add_directions), ("demo", _add_demo), ("serve", _add_serve)):
        add(commands, handlers[name])
    for sub in commands.choices.values():
        sub.set_defaults(_parser=sub)
    return parser
