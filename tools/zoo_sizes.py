#!/usr/bin/env python
"""What each bundled zoo entry ships: its own files' sizes and their total, and the test images it shares.

    python -m tools.zoo_sizes [NAME ...]     # default: every entry

An entry whose ``test_images.json`` points to another entry's ``test_images.safetensors``
(``discinvert.zoo.test_images``) counts the pointer, not the file it shares (that is counted once, in the entry
that stores it). The figures the docs quote for an entry's size are this tool's ``total`` line.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from discinvert import zoo
from discinvert.zoo.test_images import POINTER, images_file


def entry_sizes(folder: Path) -> dict[str, Any]:
    """``files``: each of the entry folder's own files (relative POSIX path → bytes); ``total_bytes``: their sum;
    ``shared``: the other entry's test-images file its pointer reads (path and bytes), or ``None``.

    Raises:
        ValueError: a bad ``test_images.json`` (as :func:`discinvert.zoo.read_test_images`).
    """
    files = {p.relative_to(folder).as_posix(): p.stat().st_size for p in sorted(folder.rglob("*")) if p.is_file()}
    shared = None
    if (folder / POINTER).is_file():
        source = images_file(folder)
        shared = {"file": source.relative_to(folder.parent).as_posix(), "bytes": source.stat().st_size}
    return {"files": files, "total_bytes": sum(files.values()), "shared": shared}


def report(name: str, sizes: dict[str, Any]) -> str:
    """The printed lines of one entry: each file in MB, the total, and what it shares."""
    lines = [f"{name}:"] + [f"  {size / 1e6:8.3f} MB  {path}" for path, size in sizes["files"].items()]
    lines.append(f"  total {sizes['total_bytes'] / 1e6:.2f} MB ({sizes['total_bytes']:,} bytes)")
    if sizes["shared"] is not None:
        lines.append(f"  shares {sizes['shared']['file']} ({sizes['shared']['bytes'] / 1e6:.2f} MB, counted in that "
                     f"entry) through {POINTER}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", metavar="NAME", help="zoo entries (default: every one)")
    args = parser.parse_args(argv)
    results = {}
    for name in args.names or zoo.available():
        results[name] = entry_sizes(zoo.path(name))
        print(report(name, results[name]), flush=True)
    return results


if __name__ == "__main__":
    main()
