"""Plumbing shared by the benchmark scripts: the command line they print, devices, doc sections.

Scripts run as ``python benchmarks/NAME.py`` (this folder is then on ``sys.path``); the
ones under ``benchmarks/rivals/`` add this folder themselves.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import torch


def command_line(argv: list[str] | None) -> str:
    """The command that ran this script, quoted so it can be pasted back into a shell."""
    return "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv if argv is not None else sys.argv[1:])])


def pick_device(choice: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU; ``cuda`` without CUDA ends the script with a message."""
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda requested but torch.cuda.is_available() is False")
    return torch.device(choice)


def write_marked_section(path: Path, name: str, key: str, block_lines: list[str], title: str) -> None:
    """Put ``block_lines`` between ``<!-- name:key:start/end -->`` markers in ``path``.

    Replaces that section when it exists, appends it otherwise, and creates the file with
    ``title`` when missing, so one document can hold a section per device.
    """
    start, end = f"<!-- {name}:{key}:start -->", f"<!-- {name}:{key}:end -->"
    block = "\n".join([start, *block_lines, end])
    text = path.read_text() if path.is_file() else title
    if start in text:
        head, rest = text.split(start, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
