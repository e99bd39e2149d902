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


RULES = ("no import cycle", "no private name imported across modules",
         "a layer imports only the layers below it (no core -> fitting, no web -> cli)",
         "fitting code lives in discinvert/fitting/ only", "the fit's stages import nothing from each other",
         "no function over 100 lines",
         "no function over 10 parameters but generated signatures",
         "the command line in discinvert/cli/, the benchmarks' map in benchmarks/README.md", "no script edits sys.path",
         "every package ships in the wheel")


@pytest.fixture(scope="module")
def verdict(structure):
    return structure.rules()


def test_the_tool_checks_every_rule(structure, verdict) -> None:
    assert tuple(verdict) == RULES
    assert structure.MAX_FUNCTION_LINES == 100 and structure.MAX_PARAMETERS == 10
    assert structure.problems() == [p for found in verdict.values() for p in found]


@pytest.mark.parametrize("rule", RULES)
def test_the_rule_holds(verdict, rule: str) -> None:
    assert verdict[rule] == []


def _package(structure, **extra: str):
    """A synthetic discinvert with every fitting module, plus ``extra`` (dotted names with ``__`` for ``.``)."""
    sources = {"discinvert.__init__": "", "discinvert.fitting.__init__": "", "discinvert.cli.__init__": "",
               **{f"discinvert.fitting.{stem}": "" for stem in structure.FITTING_MODULES}}
    sources.update({name.replace("__", "."): text for name, text in extra.items()})
    return structure.modules_from(sources)


def test_the_graph_checks_catch_what_they_are_for(structure) -> None:
    assert structure.cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert structure.cycles({"a": {"b"}, "b": set()}) == []
    graph = {"a": {"b", "d"}, "b": {"c"}, "c": set(), "d": set(), "e": {"a"}}
    assert structure.longest_chain(graph) == ["e", "a", "b", "c"]
    assert structure.longest_chain(graph, {"a", "b", "d"}) == ["a", "b"]

    # Arrows: relative imports, a name re-exported by a package reaches its module (a lazy __init__'s
    # TYPE_CHECKING import says where), imports inside functions count for the rules but not at import time.
    modules = structure.modules_from({
        "discinvert.__init__": "if TYPE_CHECKING:\n    from discinvert.fitting.fit import fit_inverter\n",
        "discinvert.fitting.__init__": "", "discinvert.fitting.fit": "from ..gan import generate\n",
        "discinvert.gan": "def g():\n    from discinvert import fit_inverter\n",
        "discinvert.inverter": "from discinvert.gan import _private, generate\nfrom discinvert import gan\n",
        "discinvert.cli.__init__": "", "discinvert.cli.images": "",
        "discinvert.web.__init__": "", "discinvert.web.sources": "import discinvert.cli.images\n",
    })
    graph, private = structure.import_graph(modules)
    assert graph["discinvert.fitting.fit"] == {"discinvert.gan"}
    assert graph["discinvert.gan"] == {"discinvert.fitting.fit"}  # through the package's re-export
    assert graph["discinvert"] == {"discinvert.fitting.fit"} and graph["discinvert.inverter"] == {"discinvert.gan"}
    assert private == ["discinvert.inverter imports discinvert.gan._private"]
    at_import, _ = structure.import_graph(modules, at_import=True)
    assert at_import["discinvert.gan"] == set() and at_import["discinvert"] == set()
    assert structure.cycles(graph) == [["discinvert.fitting.fit", "discinvert.gan"]]
    assert structure.arrow_problems(graph) == [
        "arrow from core to fitting: discinvert.gan imports discinvert.fitting.fit",  # the package's door is exempt
        "arrow from web to cli: discinvert.web.sources imports discinvert.cli.images"]
    assert structure.arrow_problems({"discinvert.fitting.pool": {"discinvert.web.app"}, "discinvert.zoo": {
        "discinvert.fitting.fit"}, "discinvert.settings": {"discinvert.fitting.fit_config"}}) == [
        "arrow from fitting to web: discinvert.fitting.pool imports discinvert.web.app",
        "arrow from zoo to fitting: discinvert.zoo imports discinvert.fitting.fit"]  # an alias is exempt


def test_the_function_checks_catch_what_they_are_for(structure) -> None:
    docstring = '    """' + "\n" * 95 + '    """\n'
    source = (
        "def long(a):\n" + docstring + "    return a\n"  # 98 lines, 96 of them its docstring
        "def longer(a):\n" + docstring + "    a += 1\n    a += 1\n    a += 1\n    return a\n"  # 101
        "def wide(a, b, /, c, *args, d, e, f, g, h, **kwargs):\n    pass\n"  # 10
        "def wider(a, b, /, c, *args, d, e, f, g, h, i, **kwargs):\n    def inner(x):\n        pass\n"  # 11
        "class C:\n    def method(self, a, b, c, d, e, f, g, h, i, j):\n        pass\n"  # 10 without self
        "    def unbound(this, a, b, c, d, e, f, g, h, i, j):\n        pass\n"  # 11
        "@keyword_settings(Options)\ndef entry(a, b, c, d, e, f, g, h, i, j, k):\n    pass\n"
        "@keyword_settings.keyword_settings(Options, strict=False)\ndef entry2(a, b, c, d, e, f, g, h, i, j, k):\n    pass\n"
        "@other(x=1)\ndef entry3(a, b, c, d, e, f, g, h, i, j, k):\n    pass\n")
    found = structure.module_functions(structure.Module("m", source, False))
    by_name = {f.name: f for f in found}
    assert (by_name["long"].lines, by_name["longer"].lines) == (98, 101)
    assert set(by_name) >= {"wider.inner", "C.method", "C.unbound"}
    assert [by_name[n].parameters for n in ("wide", "wider", "C.method", "C.unbound", "entry")] == [10, 11, 10, 11, 11]
    assert structure.long_functions(found) == ["m.longer is 101 lines (max 100)"]
    assert structure.wide_functions(found) == ["m.C.unbound takes 11 parameters (max 10)",
                                               "m.entry3 takes 11 parameters (max 10)",
                                               "m.wider takes 11 parameters (max 10)"]
    assert "keyword_settings" in structure.GENERATED_SIGNATURES
    stale = structure.decorator_problems(structure.modules_from({"discinvert.__init__": source}))
    assert stale == [f"GENERATED_SIGNATURES names {n}, which no module of the package defines"
                     for n in sorted(structure.GENERATED_SIGNATURES)]


def test_the_fitting_checks_catch_what_they_are_for(structure) -> None:
    alias = ("import warnings\nfrom discinvert.fitting.fit_config import *\n"
             "warnings.warn('moved', DeprecationWarning, stacklevel=2)\n")
    steps = "def f(loss):\n    loss.backward()\n"
    clean = _package(structure, discinvert__settings=alias, discinvert__optimize=steps)
    assert structure.fitting_problems(clean) == [] and structure.alias_problems(clean) == []

    broken = _package(structure, discinvert__real_stage="", discinvert__pairs="", discinvert__settings="import torch\n",
                      discinvert__datasets="from discinvert.fitting.fit import x\nfrom discinvert.gan import y\n"
                                           "import warnings\nwarnings.warn('moved', category=DeprecationWarning)\n",
                      discinvert__gan="", discinvert__edit=steps, discinvert__metrics="from torch import optim\n",
                      discinvert__web__session="import torch.optim\n", discinvert__optimize="")
    del broken["discinvert.fitting.pool"]
    assert structure.fitting_problems(broken) == [
        "discinvert/fitting/pool.py is missing",
        "discinvert.pairs is fitting code outside discinvert/fitting/",
        "discinvert.real_stage is fitting code outside discinvert/fitting/",
        "discinvert.edit uses torch.optim or calls backward() outside discinvert/fitting/",
        "discinvert.metrics uses torch.optim or calls backward() outside discinvert/fitting/",
        "discinvert.web.session uses torch.optim or calls backward() outside discinvert/fitting/",
        "OPTIMISATION_OUTSIDE_FITTING names discinvert.optimize, which neither uses torch.optim nor calls backward()"]
    assert structure.alias_problems(broken) == [
        "discinvert.datasets is exempt as a deprecated alias of discinvert.zoo.datasets but imports "
        "['discinvert.fitting.fit', 'discinvert.gan']",
        "discinvert.settings is exempt as a deprecated alias but raises no DeprecationWarning on import"]


def test_the_stage_check_catches_what_it_is_for(structure) -> None:
    graph = {"discinvert.fitting.real_image_stage": {"discinvert.fitting.self_generated_stage", "discinvert.fitting.loop"},
             "discinvert.fitting.self_generated_stage": {"discinvert.fitting.updates"},
             "discinvert.fitting.step_network_stage": {"discinvert.fitting.updates", "discinvert.fitting.run"},
             "discinvert.real_stage": {"discinvert.fitting.step_network_stage"}}
    assert structure.stage_problems(graph) == [
        "stage discinvert.fitting.real_image_stage imports stage discinvert.fitting.self_generated_stage"]


def test_the_script_check_catches_what_it_is_for(structure) -> None:
    assert structure.path_edits({"a.py": "import sys\nsys.path.insert(0, 'x')\n", "b.py": "import sys\nsys.argv\n",
                                 "c.py": "from os import path\npath.join('a')\n"}) == ["a.py"]


def test_the_shipping_check_catches_what_it_is_for(structure) -> None:
    modules = _package(structure, discinvert__cli__commands="")
    listed = '[tool.setuptools]\npackages = ["discinvert", "discinvert.cli"]\n'
    assert structure.shipping_problems(modules, listed) == [
        "discinvert.fitting is not in pyproject.toml's [tool.setuptools] packages: the wheel would lack it"]
    assert structure.shipping_problems(modules, listed.replace('"]', '", "discinvert.fitting"]')) == []
    assert structure.shipping_problems(modules, '[tool.setuptools.packages.find]\ninclude = ["discinvert*"]\n') == []


def test_the_measures_are_measured_not_vacuous(structure) -> None:
    modules = structure.read_package(ROOT)
    layers = {structure.layer_of(name) for name in modules}
    assert layers == set(structure.LAYERS)
    assert sum(structure.layer_of(n) == "fitting" for n in modules) >= len(structure.FITTING_MODULES)
    found = structure.functions(modules)
    assert len(found) > 300 and found[0].lines > 50 and max(f.parameters for f in found) > 5
    assert any(f.generated and f.name == "fit_inverter" for f in found)
    graph, _ = structure.import_graph(modules)
    at_import, _ = structure.import_graph(modules, at_import=True)
    assert "discinvert.inverter" in graph["discinvert.fitting.fit"]
    assert "discinvert.fitting.fit" in graph["discinvert.cli.commands"]  # a lazy import, resolved through fitting
    assert sum(map(len, at_import.values())) > 100 and len(structure.longest_chain(at_import)) > 5
    assert all(at_import[n] <= graph[n] for n in graph)
    assert structure.script_sources(ROOT) and "benchmarks/common.py" in structure.script_sources(ROOT)


def test_the_report_measures_another_checkout(structure, tmp_path, capsys) -> None:
    assert structure.main([]) == 0
    out = capsys.readouterr().out
    assert "layer     rooms  floors  arrows   lines" in out and "\nall " in out and "longest chain" in out
    (tmp_path / "discinvert").mkdir()
    (tmp_path / "discinvert" / "__init__.py").write_text("from discinvert import gan\n")
    (tmp_path / "discinvert" / "gan.py").write_text("def f(a, b, c, d, e, f, g, h, i, j, k):\n    pass\n")
    assert structure.main(["--root", str(tmp_path), "--check"]) == 1
    out = capsys.readouterr().out
    assert "\nall           2       2       1       3" in out
    assert "discinvert.gan.f takes 11 parameters (max 10)" in out and "discinvert/fitting/fit.py is missing" in out
    with pytest.raises(SystemExit):
        structure.main(["--root", str(tmp_path / "nowhere")])


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
    assert listed == ["layers", "fit", "encode", "reconstruct", "evaluate", "push", "directions", "demo", "serve"]


@pytest.mark.parametrize(("name", "new_name"), [
    ("architectures", "zoo.architectures"), ("datasets", "zoo.datasets"), ("settings", "fitting.fit_config"),
    ("fit", "fitting.fit"), ("training", "fitting.self_generated_stage"), ("config", "inverter_config")])
def test_moved_modules_keep_their_old_names_with_a_deprecation_warning(name: str, new_name: str) -> None:
    code = (f"import warnings; warnings.simplefilter('error')\n"
            f"try:\n    import discinvert.{name}\nexcept DeprecationWarning as w:\n    print('warned', w)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True).stdout
    assert out.startswith(f"warned discinvert.{name} moved to discinvert.{new_name}")
    import importlib
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old, new = importlib.import_module(f"discinvert.{name}"), importlib.import_module(f"discinvert.{new_name}")
    assert old.__all__ == new.__all__ and all(getattr(old, n) is getattr(new, n) for n in new.__all__)
