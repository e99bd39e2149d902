"""The ``discinvert`` command line (also ``python -m discinvert``).

Subcommands: ``layers``, ``fit``, ``encode``, ``reconstruct``, ``evaluate``, ``push``,
``demo`` and ``serve`` (the interactive page, :mod:`discinvert.web`, with the ``web`` extra);
``discinvert COMMAND --help`` describes each.

The parser is built inside :func:`main`, never at import time. Exit codes: 0 success,
2 usage errors (argparse, or options that do not go together), 1 failures, 130 Ctrl-C;
user mistakes (a bad path, factory string, layer name, image shape, zoo entry), a full
disk, an unwritable output and running out of memory print one line, not a traceback.
Every output file is written atomically (:func:`discinvert.files.atomic_write`):
a failed write leaves the previous file as it was. Outputs are checked to be writable
before any long work starts.

The package: :mod:`~discinvert.cli.options` (the parser), :mod:`~discinvert.cli.commands`
(what each command does), :mod:`~discinvert.cli.sources` (GANs and inverters named on the
command line), :mod:`~discinvert.cli.images` (its ranges, range warnings and PNG grids; image files are
read by :mod:`discinvert.pixels`) and
:mod:`~discinvert.cli.demo`. Importing it imports no torch: that happens inside
:func:`main`, where a Ctrl-C is answered with one line.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["main"]


def _setup_logging(verbose: bool) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    # huggingface_hub prints its own warnings (its logger has a handler): do not print them twice
    handler.addFilter(lambda record: not record.name.startswith("huggingface_hub"))
    level = logging.INFO if verbose else logging.WARNING
    handler.setLevel(level)  # a command may lower discinvert's logger for its own progress lines (fit in a pipe)
    logging.basicConfig(level=level, handlers=[handler])


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
    from discinvert.cli import commands, options

    try:
        if args.command == "demo" and args.steps is None:
            from discinvert.fitting.fit import DEFAULT_STEPS

            args.steps = DEFAULT_STEPS
        return int(args.handler(args))
    except options.UsageError as error:
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
        if not commands.is_network_error(error):
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
        from discinvert.cli.commands import HANDLERS
        from discinvert.cli.options import build_parser

        parser = build_parser(HANDLERS)
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

