"""The generated API reference is current, and the docs link only to files that exist."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_api_reference_is_up_to_date() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "gen_api_docs.py"), "--check"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_doc_links_resolve() -> None:
    for page in (ROOT / "docs").glob("*.md"):
        for target in re.findall(r"\]\(([^)#:]+\.(?:md|png))\)", page.read_text()):
            assert (page.parent / target).is_file(), f"{page.name} links to missing {target}"


def test_fit_speed_figures_in_prose_come_from_the_committed_run() -> None:
    """The README's and fit_speed.md's prose quote docs/results/fit_speed-cpu.json, not typed-in figures."""
    import json

    rows = {row["config"]: row for row in json.loads((ROOT / "docs" / "results" / "fit_speed-cpu.json").read_text())["rows"]}
    default, fast = round(rows["default"]["seconds"]), round(rows["bf16+cl"]["seconds"])
    readme = (ROOT / "README.md").read_text()
    assert f"from {default} s to {fast} s" in readme
    page = (ROOT / "docs" / "fit_speed.md").read_text()
    assert f"from {default} s to {fast} s" in page
    assert f"**missed** in the table below\n({rows['bf16+cl']['seconds_to_2pct_of_reference']:.1f} s)" in page


def test_reliability_page_names_real_tests() -> None:
    """docs/reliability.md says which test checks each guarantee: every test it names must exist."""
    import ast

    page = (ROOT / "docs" / "reliability.md").read_text()
    references = set(re.findall(r"`(tests/test_\w+\.py)(?:::(test_\w+))?`", page))
    assert len(references) > 40
    missing = []
    for path, name in references:
        file = ROOT / path
        if not file.is_file():
            missing.append(path)
            continue
        functions = {node.name for node in ast.walk(ast.parse(file.read_text())) if isinstance(node, ast.FunctionDef)}
        if name and name not in functions:
            missing.append(f"{path}::{name}")
    assert not missing, missing
