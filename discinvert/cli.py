"""The ``discinvert`` command line (also ``python -m discinvert``).

The parser is built inside :func:`main`, never at import time. Exit codes: 0 success,
2 usage errors, 1 failures; user mistakes print one line, not a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from discinvert._version import __version__

__all__ = ["main"]


def _demo(args: argparse.Namespace) -> int:
    from discinvert.demo import DemoOptions, run_demo

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


def _positive(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an int >= 0, got {text}")
    return value


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="discinvert",
        description="Inverse mappings (image -> latent) for pretrained GANs, from their discriminators.",
    )
    parser.add_argument("--version", action="version", version=f"discinvert {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress messages")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = commands.add_parser("demo", help="invert real Fashion-MNIST test images with the bundled DCGAN",
                               description="Encode, refine and edit the bundled real test images; write a picture and metrics.")
    demo.add_argument("--out", type=Path, default=Path("out/demo"), help="output folder (default: out/demo)")
    demo.add_argument("--fit", action="store_true", help="fit a fresh inverter instead of loading the bundled one")
    demo.add_argument("--steps", type=_positive, default=None, help="steps of the fresh fit (default: the library's)")
    demo.add_argument("--n-images", type=_positive, default=1000, help="bundled test images to encode (max 1000)")
    demo.add_argument("--refine-images", type=_positive, default=200, help="how many of them to refine (default 200)")
    demo.add_argument("--refine-steps", type=_positive, default=50, help="refinement steps (default 50)")
    demo.add_argument("--seed", type=_positive, default=0, help="seed of the fresh fit")
    demo.set_defaults(handler=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 success, 2 usage error, 1 failure)."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if getattr(args, "steps", 0) is None:
        from discinvert.fit import DEFAULT_STEPS

        args.steps = DEFAULT_STEPS
    try:
        return int(args.handler(args))
    except (ValueError, FileNotFoundError, OSError) as error:
        print(f"discinvert {args.command}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"discinvert {args.command}: interrupted", file=sys.stderr)
        return 130
