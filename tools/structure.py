"""Structural facts about the package, and the rules of docs/architecture.md.

    python tools/structure.py                     # the report: rooms, floors, arrows, lines per layer; long and wide functions
    python tools/structure.py --check             # the same; exit 1 when a rule is broken
    python tools/structure.py --root OTHER_CHECKOUT   # measure another checkout (e.g. a commit before a change)

Words of the report. A *room* is a module of ``discinvert/`` (a package counts as its ``__init__.py``);
an *arrow* is one module importing another when it is imported (not counting imports inside functions
or under ``if TYPE_CHECKING:``; the rules count those too); ``from package import name`` points at the
module the package takes ``name`` from, so ``from discinvert import fit_inverter`` is an arrow to
``discinvert.fitting.fit``; *floors* are the rooms on the longest chain of arrows; *lines* are physical
lines of the ``.py`` files. On the commit before issue 33 (1dfbe60) this counts the issue's 156 arrows
and 13 floors.
A function's *length* runs from its ``def`` line to its last line (docstring included, decorators not);
its *width* is its parameters (positional, keyword-only, ``*args`` and ``**kwargs``; not ``self``/``cls``).

The same checks run in tests/test_structure.py, which also shows that each one catches what it is for.
"""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "discinvert"

MAX_FUNCTION_LINES = 100
MAX_PARAMETERS = 10
# Decorators that generate a public signature from a settings object: the functions they decorate take the
# settings as keywords the decorator writes into ``__signature__``, so their width is the settings', not theirs.
GENERATED_SIGNATURES = frozenset({"keyword_settings"})

LAYERS = ("core", "fitting", "cli", "web", "zoo")
# Which layers a layer's modules may import (an arrow to any other is a problem).
MAY_IMPORT = {
    "core": {"core"},
    "fitting": {"core", "fitting"},
    "zoo": {"core", "zoo"},
    "cli": {"core", "fitting", "zoo", "cli", "web"},
    "web": {"core", "fitting", "zoo", "web"},
}
# Core modules outside the layer rules: the package's doors (lazy re-exports, ``python -m discinvert``) and the
# deprecated aliases of modules that moved (each must warn on import; see ``alias_problems``).
DOORS = frozenset({"discinvert", "discinvert.__main__"})
DEPRECATED_ALIASES = {
    "discinvert.settings": "discinvert.fitting.fit_config",
    "discinvert.fit": "discinvert.fitting.fit",
    "discinvert.training": "discinvert.fitting.self_generated_stage",
    "discinvert.config": "discinvert.inverter_config",
    "discinvert.architectures": "discinvert.zoo.architectures",
    "discinvert.datasets": "discinvert.zoo.datasets",
}
# The fitting package's modules, and the names they had beside the core before they moved (issue 33).
FITTING_MODULES = ("fit", "fit_config", "run", "loop", "updates", "self_generated_stage", "real_image_stage",
                   "step_network_stage", "pairs",
                   "pool", "checkpoint", "acceleration", "image_sets")
FORMER_FITTING_NAMES = ("settings", "training", "real_stage", "iterative_stage")
# Modules outside discinvert/fitting/ that run gradient steps (``.backward()``, ``torch.optim``), and why.
OPTIMISATION_OUTSIDE_FITTING = {
    "discinvert.optimize": "refine: per-image optimisation of codes, which a loaded inverter runs (Inverter.refine)",
}
# Folders of scripts that run as ``python -m folder.script`` and so never edit sys.path.
SCRIPT_FOLDERS = ("benchmarks", "tools")


@dataclass(frozen=True)
class Module:
    name: str
    source: str
    is_package: bool

    @property
    def lines(self) -> int:
        return len(self.source.splitlines())

    @cached_property
    def tree(self) -> ast.Module:
        return ast.parse(self.source)


@dataclass(frozen=True)
class Function:
    module: str
    name: str  # qualified within the module: Class.method, outer.inner
    lines: int
    parameters: int
    generated: bool  # decorated by one of GENERATED_SIGNATURES

    def __str__(self) -> str:
        return f"{self.module}.{self.name}"


# --- reading -----------------------------------------------------------------------------------------------------


def read_package(root: Path) -> dict[str, Module]:
    """Every module of ``root/discinvert``, by dotted name."""
    modules = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        package = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if package else parts)
        modules[name] = Module(name, path.read_text(), package)
    return modules


def modules_from(sources: dict[str, str]) -> dict[str, Module]:
    """Synthetic modules for the self-tests: ``{"pkg.__init__": "...", "pkg.a": "..."}``."""
    modules = {}
    for name, source in sources.items():
        package = name.endswith(".__init__")
        name = name.removesuffix(".__init__")
        modules[name] = Module(name, source, package)
    return modules


def layer_of(name: str) -> str:
    for layer in ("fitting", "cli", "web", "zoo"):
        if name == f"{PACKAGE}.{layer}" or name.startswith(f"{PACKAGE}.{layer}."):
            return layer
    return "core"


# --- imports -----------------------------------------------------------------------------------------------------


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imported_names(module: Module) -> list[tuple[str, list[str], bool]]:
    """(module named, names imported from it, whether the import runs when ``module`` is imported) for every import
    of the package in ``module``, at any depth: not at import time are those inside a function or under
    ``if TYPE_CHECKING:``."""
    package = module.name if module.is_package else module.name.rpartition(".")[0]
    found = []

    def visit(node: ast.AST, at_import: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                visit(child, False)
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                visit(child, False)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")
                    base = base[: len(base) - child.level + 1]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                if target.split(".")[0] == PACKAGE:
                    found.append((target, [alias.name for alias in child.names], at_import))
            elif isinstance(child, ast.Import):
                found.extend((alias.name, [], at_import) for alias in child.names
                             if alias.name.split(".")[0] == PACKAGE)
            else:
                visit(child, at_import)

    visit(module.tree, True)
    return found


def _reexports(modules: dict[str, Module]) -> dict[str, dict[str, str]]:
    """For each package: name -> the module its ``__init__`` imports that name from."""
    table: dict[str, dict[str, str]] = {}
    for name, module in modules.items():
        if module.is_package:
            table[name] = {n: target for target, names, _ in imported_names(module) for n in names
                           if target in modules and target != name}
    return table


def _resolve(target: str, imported: str, modules: dict[str, Module], reexports: dict[str, dict[str, str]]) -> str:
    """The module that ``from target import imported`` reaches: a submodule, a re-export's source, or ``target``."""
    for _ in range(len(modules)):
        if f"{target}.{imported}" in modules:
            return f"{target}.{imported}"
        source = reexports.get(target, {}).get(imported)
        if source is None:
            return target
        target = source
    return target


def import_graph(modules: dict[str, Module], at_import: bool = False) -> tuple[dict[str, set[str]], list[str]]:
    """Module -> modules it imports (arrows), and the private names imported across modules.

    ``at_import``: only the imports that run when the module is imported (the report's arrows and floors); the
    rules use every import, lazy ones too."""
    reexports = _reexports(modules)
    graph: dict[str, set[str]] = {}
    private = []
    for name, module in modules.items():
        arrows = set()
        for target, names, runs in imported_names(module):
            if at_import and not runs:
                continue
            reached = [_resolve(target, n, modules, reexports) for n in names] if names else [target]
            arrows.update(r for r in reached if r in modules and r != name)
            for imported in names:
                if imported.startswith("_") and not imported.startswith("__") and f"{target}.{imported}" not in modules:
                    private.append(f"{name} imports {target}.{imported}")
        graph[name] = arrows
    return graph, private


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    result: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                result.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return result


def longest_chain(graph: dict[str, set[str]], members: set[str] | None = None) -> list[str]:
    """The longest chain of arrows among ``members`` (all modules by default): its rooms, importer first.

    An arrow that would close a cycle is not followed (cycles are a problem of their own)."""
    members = set(graph) if members is None else members
    best: dict[str, list[str]] = {}

    def chain(v: str, path: set[str]) -> list[str]:
        if v in best:
            return best[v]
        path.add(v)
        longest: list[str] = []
        for w in sorted(graph.get(v, ())):
            if w in members and w not in path:
                candidate = chain(w, path)
                if len(candidate) > len(longest):
                    longest = candidate
        path.discard(v)
        best[v] = [v, *longest]
        return best[v]

    return max((chain(v, set()) for v in sorted(members)), key=len, default=[])


def layer_arrows(graph: dict[str, set[str]]) -> dict[tuple[str, str], int]:
    counts: dict[tuple[str, str], int] = {}
    for source, targets in graph.items():
        for target in targets:
            key = (layer_of(source), layer_of(target))
            counts[key] = counts.get(key, 0) + 1
    return counts


def arrow_problems(graph: dict[str, set[str]]) -> list[str]:
    """Arrows from a layer to one it may not import (MAY_IMPORT); the doors and deprecated aliases are exempt."""
    found = []
    for source in sorted(graph):
        if source in DOORS or source in DEPRECATED_ALIASES:
            continue
        for target in sorted(graph[source]):
            if layer_of(target) not in MAY_IMPORT[layer_of(source)]:
                found.append(f"arrow from {layer_of(source)} to {layer_of(target)}: {source} imports {target}")
    return found


# --- functions ---------------------------------------------------------------------------------------------------


def _decorator_name(node: ast.expr) -> str:
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Attribute):
        return node.attr
    return node.id if isinstance(node, ast.Name) else ""


def _width(node: ast.FunctionDef | ast.AsyncFunctionDef, in_class: bool) -> int:
    a = node.args
    positional = [*a.posonlyargs, *a.args]
    if in_class and positional and positional[0].arg in ("self", "cls"):
        positional = positional[1:]
    return len(positional) + len(a.kwonlyargs) + (a.vararg is not None) + (a.kwarg is not None)


def module_functions(module: Module) -> list[Function]:
    """Every function and method of ``module`` (nested ones too), with its length and width."""
    found = []

    def visit(node: ast.AST, prefix: str, in_class: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                generated = any(_decorator_name(d) in GENERATED_SIGNATURES for d in child.decorator_list)
                found.append(Function(module.name, prefix + child.name, child.end_lineno - child.lineno + 1,
                                      _width(child, in_class), generated))
                visit(child, f"{prefix}{child.name}.", False)
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.", True)
            else:
                visit(child, prefix, in_class)

    visit(module.tree, "", False)
    return found


def functions(modules: dict[str, Module]) -> list[Function]:
    """Every function of the package, longest first."""
    return sorted((f for m in modules.values() for f in module_functions(m)), key=lambda f: (-f.lines, str(f)))


def long_functions(found: list[Function]) -> list[str]:
    return [f"{f} is {f.lines} lines (max {MAX_FUNCTION_LINES})" for f in found if f.lines > MAX_FUNCTION_LINES]


def wide_functions(found: list[Function]) -> list[str]:
    """Functions over MAX_PARAMETERS parameters, but those whose signature a GENERATED_SIGNATURES decorator writes."""
    return [f"{f} takes {f.parameters} parameters (max {MAX_PARAMETERS})"
            for f in sorted(found, key=lambda f: (-f.parameters, str(f)))
            if f.parameters > MAX_PARAMETERS and not f.generated]


def decorator_problems(modules: dict[str, Module]) -> list[str]:
    """GENERATED_SIGNATURES names only decorators that the package defines."""
    defined = {f.name.rpartition(".")[2] for m in modules.values() for f in module_functions(m)}
    return [f"GENERATED_SIGNATURES names {name}, which no module of the package defines"
            for name in sorted(GENERATED_SIGNATURES - defined)]


# --- the fitting package -----------------------------------------------------------------------------------------


def _warns_deprecation(module: Module) -> bool:
    """Whether the module's top level calls ``warnings.warn(..., DeprecationWarning, ...)``."""
    for node in module.tree.body:
        call = node.value if isinstance(node, ast.Expr) else None
        if isinstance(call, ast.Call) and _decorator_name(call.func) == "warn":
            words = [a for a in [*call.args, *(k.value for k in call.keywords)] if isinstance(a, ast.Name)]
            if any(w.id == "DeprecationWarning" for w in words):
                return True
    return False


def _optimises(module: Module) -> bool:
    """Whether the module runs gradient steps: calls ``.backward()`` or names ``torch.optim``."""
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "backward":
            return True
        if isinstance(node, ast.Attribute) and node.attr == "optim":
            return True
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            named = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            if any(n == "torch.optim" or n.startswith("torch.optim.") for n in named):
                return True
            if isinstance(node, ast.ImportFrom) and node.module == "torch" and any(a.name == "optim" for a in node.names):
                return True
    return False


def fitting_problems(modules: dict[str, Module]) -> list[str]:
    """Fitting code lives in discinvert/fitting/: its modules are there and nowhere beside the core, and no other
    module runs gradient steps but the ones OPTIMISATION_OUTSIDE_FITTING names."""
    found = []
    for stem in FITTING_MODULES:
        if f"{PACKAGE}.fitting.{stem}" not in modules:
            found.append(f"{PACKAGE}/fitting/{stem}.py is missing")
    for stem in (*FITTING_MODULES, *FORMER_FITTING_NAMES):
        name = f"{PACKAGE}.{stem}"
        if name in modules and name not in DEPRECATED_ALIASES:
            found.append(f"{name} is fitting code outside {PACKAGE}/fitting/")
    for name in sorted(modules):
        if layer_of(name) != "fitting" and _optimises(modules[name]) and name not in OPTIMISATION_OUTSIDE_FITTING:
            found.append(f"{name} uses torch.optim or calls backward() outside {PACKAGE}/fitting/")
    for name in sorted(OPTIMISATION_OUTSIDE_FITTING):
        if name not in modules or not _optimises(modules[name]):
            found.append(f"OPTIMISATION_OUTSIDE_FITTING names {name}, which neither uses torch.optim nor calls backward()")
    return found


def alias_problems(modules: dict[str, Module]) -> list[str]:
    """A deprecated alias (exempt from the layer rules) warns on import and imports only its new module."""
    found = []
    graph, _ = import_graph(modules)
    for name, new in sorted(DEPRECATED_ALIASES.items()):
        if name not in modules:
            continue
        if not _warns_deprecation(modules[name]):
            found.append(f"{name} is exempt as a deprecated alias but raises no DeprecationWarning on import")
        if graph[name] - {new}:
            found.append(f"{name} is exempt as a deprecated alias of {new} but imports {sorted(graph[name] - {new})}")
    return found


def fitting_only(modules: dict[str, Module], graph: dict[str, set[str]]) -> list[str]:
    """Core modules that only fitting modules import (candidates for discinvert/fitting/)."""
    importers: dict[str, set[str]] = {}
    for source, targets in graph.items():
        if source in DOORS or source in DEPRECATED_ALIASES:
            continue
        for target in targets:
            importers.setdefault(target, set()).add(layer_of(source))
    return sorted(n for n in modules if layer_of(n) == "core" and importers.get(n) == {"fitting"})


# --- scripts -----------------------------------------------------------------------------------------------------


def path_edits(sources: dict[str, str]) -> list[str]:
    """The files (by label) whose code touches ``sys.path``."""
    edits = []
    for label, source in sorted(sources.items()):
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Attribute) and node.attr == "path" and isinstance(node.value, ast.Name) \
                    and node.value.id == "sys":
                edits.append(label)
                break
    return edits


def script_sources(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for folder in SCRIPT_FOLDERS
            for p in sorted((root / folder).rglob("*.py"))}


def shipping_problems(modules: dict[str, Module], pyproject: str) -> list[str]:
    """Every package of discinvert/ is in pyproject.toml's ``[tool.setuptools] packages`` when that is a list
    (setuptools ships only the listed packages: a package left out is missing from the wheel)."""
    listed = tomllib.loads(pyproject).get("tool", {}).get("setuptools", {}).get("packages")
    if not isinstance(listed, list):
        return []
    return [f"{name} is not in pyproject.toml's [tool.setuptools] packages: the wheel would lack it"
            for name, module in sorted(modules.items()) if module.is_package and name not in listed]


# --- the verdict and the report ----------------------------------------------------------------------------------


def stage_problems(graph: dict[str, set[str]]) -> list[str]:
    """The fit's stages (``discinvert/fitting/*_stage.py``) borrow nothing from each other: what they share lives in
    a named module (``loop``, ``updates``, ``run``, ...)."""
    stages = {name for name in graph if layer_of(name) == "fitting" and name.endswith("_stage")}
    return [f"stage {name} imports stage {target}" for name in sorted(stages) for target in sorted(graph[name] & stages)]


def rules(root: Path = ROOT, modules: dict[str, Module] | None = None) -> dict[str, list[str]]:
    """Each rule of docs/architecture.md, and what breaks it in the checkout at ``root`` (empty: it holds)."""
    modules = read_package(root) if modules is None else modules
    graph, private = import_graph(modules)
    found = functions(modules)
    pyproject = root / "pyproject.toml"
    shape = [] if f"{PACKAGE}.cli" in modules and modules[f"{PACKAGE}.cli"].is_package else \
        [f"the command line is not in {PACKAGE}/cli/"]
    shape += [] if (root / "benchmarks" / "README.md").is_file() else ["benchmarks/README.md is missing"]
    return {
        "no import cycle": [f"import cycle: {' <-> '.join(c)}" for c in cycles(graph)],
        "no private name imported across modules": [f"private import: {p}" for p in private],
        "a layer imports only the layers below it (no core -> fitting, no web -> cli)": arrow_problems(graph),
        "fitting code lives in discinvert/fitting/ only": fitting_problems(modules) + alias_problems(modules),
        "the fit's stages import nothing from each other": stage_problems(graph),
        f"no function over {MAX_FUNCTION_LINES} lines": long_functions(found),
        f"no function over {MAX_PARAMETERS} parameters but generated signatures":
            wide_functions(found) + decorator_problems(modules),
        "the command line in discinvert/cli/, the benchmarks' map in benchmarks/README.md": shape,
        "no script edits sys.path": [f"{p} edits sys.path" for p in path_edits(script_sources(root))],
        "every package ships in the wheel": shipping_problems(modules, pyproject.read_text()) if pyproject.is_file()
        else [],
    }


def problems(root: Path = ROOT) -> list[str]:
    return [p for found in rules(root).values() for p in found]


def _commit(root: Path) -> str:
    try:
        return subprocess.run(["git", "-C", str(root), "log", "-1", "--format=%h %s"], capture_output=True,
                              text=True, timeout=30, check=True).stdout.strip()[:90]
    except (OSError, subprocess.SubprocessError):
        return "not a git checkout"


def report(root: Path = ROOT, top: int = 8) -> str:
    modules = read_package(root)
    graph, _ = import_graph(modules, at_import=True)
    every, _ = import_graph(modules)
    lines = [f"root: {root} ({_commit(root)})", "",
             f"{'layer':<8} {'rooms':>6} {'floors':>7} {'arrows':>7} {'lines':>7}   (arrows: leaving the layer's rooms)"]
    for layer in (*LAYERS, "all"):
        members = {n for n in modules if layer in ("all", layer_of(n))}
        arrows = sum(len(graph[n]) for n in members)
        total = sum(modules[n].lines for n in members)
        lines.append(f"{layer:<8} {len(members):>6} {len(longest_chain(graph, members)):>7} {arrows:>7} {total:>7}")
    lines.append("")
    lines.append(f"arrows and floors count the imports that run when a module is imported; with the ones inside "
                 f"functions and under TYPE_CHECKING (what the rules check): {sum(map(len, every.values()))} arrows, "
                 f"{len(longest_chain(every))} floors")
    counts = layer_arrows(every)
    lines.append("arrows between layers (all imports): " + ", ".join(
        f"{a}->{b} {counts[a, b]}" for a in LAYERS for b in LAYERS if a != b and (a, b) in counts))
    chain = longest_chain(graph)
    lines.append(f"longest chain ({len(chain)} floors): " + " -> ".join(n.removeprefix(PACKAGE + ".") for n in chain))
    lines.append(f"import cycles: {len(cycles(every))}")
    found = functions(modules)
    lines.append(f"functions: {len(found)}; over {MAX_FUNCTION_LINES} lines: "
                 f"{sum(f.lines > MAX_FUNCTION_LINES for f in found)}; over {MAX_PARAMETERS} parameters: "
                 f"{sum(f.parameters > MAX_PARAMETERS and not f.generated for f in found)}")
    lines.append("longest: " + ", ".join(f"{f} {f.lines}" for f in found[:top]))
    widest = sorted(found, key=lambda f: (-f.parameters, str(f)))[:top]
    lines.append("widest: " + ", ".join(f"{f} {f.parameters}" for f in widest))
    generated = [f for f in found if f.generated]
    lines.append("signatures generated (exempt from the width rule): "
                 + (", ".join(f"{f} ({f.parameters} in its source)" for f in generated) or "none"))
    lines.append("core modules only fitting imports: " + (", ".join(fitting_only(modules, every)) or "none"))
    lines.append("")
    verdict = rules(root, modules)
    lines.append(f"rules ({sum(map(len, verdict.values()))} problems):")
    for rule, found in verdict.items():
        lines.append(f"  {rule}: " + ("holds" if not found else f"{len(found)} problems" + "".join(
            f"\n    {p}" for p in found)))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when a rule is broken")
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout to measure (default: this one)")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    if not (root / PACKAGE).is_dir():
        parser.error(f"--root: expected a checkout with a {PACKAGE}/ folder, got {root}")
    print(report(root))
    return 1 if args.check and problems(root) else 0


if __name__ == "__main__":
    sys.exit(main())
