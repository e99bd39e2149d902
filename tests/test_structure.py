"""The package keeps the shape docs/architecture.md describes (the rules of tools/structure.py)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def structure():
    spec = importlib.util.spec_from_file_location("structure", ROOT / "tools" / "structure.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["structure"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_no_rule_is_broken(structure) -> None:
    assert structure.problems() == []


def test_the_checks_catch_what_they_are_for(structure) -> None:
    assert structure.cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert structure.cycles({"a": {"b"}, "b": set()}) == []
    longest = structure.functions()[0]
    assert longest.lines <= structure.MAX_FUNCTION_LINES and longest.lines > 50  # measured, not vacuous
    graph, private = structure.import_graph()
    assert "discinvert.inverter" in graph["discinvert.fitting.fit"] and not private


def test_every_public_name_still_imports() -> None:
    import discinvert

    names = ["CNConfig", "Conditioning", "ConnectionNetwork", "FingerprintMismatchError", "Inverter", "InverterConfig",
             "LayerInfo", "LayerNotReachedError", "__version__", "fit_inverter", "list_layers"]  # __all__ at c1dd570
    assert set(names) <= set(discinvert.__all__)
    for name in discinvert.__all__:
        assert getattr(discinvert, name) is not None


def test_the_command_line_lists_its_commands() -> None:
    out = subprocess.run([sys.executable, "-m", "discinvert", "--help"], capture_output=True, text=True, timeout=120,
                         check=True).stdout
    import re

    listed = re.findall(r"^    (\w+) ", out, flags=re.MULTILINE)
    assert listed == ["layers", "fit", "encode", "reconstruct", "evaluate", "push", "demo", "serve"]


@pytest.mark.parametrize("name", ["architectures", "datasets"])
def test_moved_modules_keep_their_old_names_with_a_deprecation_warning(name: str) -> None:
    code = (f"import warnings; warnings.simplefilter('error')\n"
            f"try:\n    import discinvert.{name}\nexcept DeprecationWarning as w:\n    print('warned', w)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True).stdout
    assert out.startswith(f"warned discinvert.{name} moved to discinvert.zoo.{name}")
    import importlib
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old, new = importlib.import_module(f"discinvert.{name}"), importlib.import_module(f"discinvert.zoo.{name}")
    assert old.__all__ == new.__all__ and all(getattr(old, n) is getattr(new, n) for n in new.__all__)
