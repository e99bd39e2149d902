"""Structural facts about the package: modules and lines per layer, the longest functions, import cycles,
private names imported across modules, and benchmark scripts that edit sys.path.

    python tools/structure.py            # the report
    python tools/structure.py --check    # exit 1 when a rule of docs/architecture.md is broken

The same checks run in tests/test_structure.py.
"""

from __future__ import annotations

import argparse
import ast
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "discinvert"
MAX_FUNCTION_LINES = 150
MAX_FIT_BODY_LINES = 120


@dataclass(frozen=True)
class Function:
    module: str
    name: str
    lines: int
    body_lines: int


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer_of(name: str) -> str:
    if name.startswith("discinvert.cli"):
        return "cli"
    if name.startswith("discinvert.zoo"):
        return "zoo"
    return "core"


def imports(path: Path, name: str, known: set[str]) -> list[tuple[str, list[str]]]:
    """(module imported, names imported from it) for every discinvert import in ``path``, at any depth."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("discinvert"):
                continue
            names = [alias.name for alias in node.names]
            submodules = [f"{target}.{n}" for n in names if f"{target}.{n}" in known]
            if submodules:
                found += [(s, []) for s in submodules]
                names = [n for n in names if f"{target}.{n}" not in known]
            if names:
                found.append((target, names))
        elif isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names if alias.name.startswith("discinvert")]
    return found


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
        for w in graph.get(v, ()):
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


def import_graph() -> tuple[dict[str, set[str]], list[str]]:
    """Module → modules it imports (package roots count as their __init__), and private cross-module imports."""
    modules = package_modules()
    known = set(modules)
    graph: dict[str, set[str]] = {}
    private = []
    for name, path in modules.items():
        edges = set()
        for target, names in imports(path, name, known):
            if target in known and target != name:
                edges.add(target)
            for imported in names:
                if imported.startswith("_") and not imported.startswith("__"):
                    private.append(f"{name} imports {target}.{imported}")
        graph[name] = edges
    return graph, private


def functions() -> list[Function]:
    found = []
    for name, path in package_modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                body = node.body
                first = body[1] if len(body) > 1 and isinstance(body[0], ast.Expr) and isinstance(
                    getattr(body[0], "value", None), ast.Constant) and isinstance(body[0].value.value, str) else body[0]
                found.append(Function(name, node.name, node.end_lineno - node.lineno + 1,
                                      node.end_lineno - first.lineno + 1))
    return sorted(found, key=lambda f: -f.lines)


def benchmark_path_edits() -> list[str]:
    bench = ROOT / "benchmarks"
    edits = []
    for path in sorted(bench.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "path" and isinstance(node.value, ast.Name) and node.value.id == "sys":
                edits.append(str(path.relative_to(ROOT)))
                break
    return edits


def problems() -> list[str]:
    graph, private = import_graph()
    found = [f"import cycle: {' <-> '.join(c)}" for c in cycles(graph)]
    found += [f"private import: {p}" for p in private]
    found += [f"{f.module}.{f.name} is {f.lines} lines (max {MAX_FUNCTION_LINES})" for f in functions() if f.lines > MAX_FUNCTION_LINES]
    fit = [f for f in functions() if f.module == "discinvert.fitting.fit" and f.name == "fit_inverter"]
    if fit and fit[0].body_lines >= MAX_FIT_BODY_LINES:
        found.append(f"fit_inverter's body is {fit[0].body_lines} lines (max {MAX_FIT_BODY_LINES - 1})")
    if not (PACKAGE / "cli" / "__init__.py").is_file():
        found.append("the command line is not in discinvert/cli/")
    if not (ROOT / "benchmarks" / "README.md").is_file():
        found.append("benchmarks/README.md is missing")
    found += [f"{p} edits sys.path" for p in benchmark_path_edits()]
    return found


def report() -> str:
    modules = package_modules()
    lines = []
    for layer in ("core", "cli", "zoo"):
        members = {n: p for n, p in modules.items() if layer_of(n) == layer}
        total = sum(len(p.read_text().splitlines()) for p in members.values())
        lines.append(f"{layer}: {len(members)} modules, {total} lines")
    top = functions()[:5]
    lines.append("longest functions: " + ", ".join(f"{f.module}.{f.name} {f.lines}" for f in top))
    fit = [f for f in functions() if f.module == "discinvert.fitting.fit" and f.name == "fit_inverter"]
    if fit:
        lines.append(f"fit_inverter: {fit[0].lines} lines, body {fit[0].body_lines}")
    issues = problems()
    lines.append("problems:" + ("".join(f"\n  {p}" for p in issues) if issues else " none"))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when a rule is broken")
    args = parser.parse_args(argv)
    print(report())
    return 1 if args.check and problems() else 0


if __name__ == "__main__":
    sys.exit(main())
