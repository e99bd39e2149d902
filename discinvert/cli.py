"""The ``discinvert`` command line.

The entry point is reserved here; subcommands (``layers``, ``fit``, ``encode``,
``demo``, ``evaluate``, ``push``) arrive with their issues. The parser is built inside
:func:`main`, never at import time.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from discinvert._version import __version__

__all__ = ["main"]


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="discinvert",
        description="Inverse mappings (image -> latent) for pretrained GANs, from their discriminators.",
    )
    parser.add_argument("--version", action="version", version=f"discinvert {__version__}")
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code (0 success, 2 usage error)."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return 0  # pragma: no cover - no subcommand is registered yet
