"""depthlab's internal import graph, read from the source with ``ast`` (nothing is imported).

Every ``import depthlab.…`` / ``from depthlab… import …`` / relative import in ``src/depthlab`` becomes an
:class:`Edge` from the importing module to the imported one (``from depthlab.x import y`` points at the
module ``depthlab.x.y`` when there is one, else at ``depthlab.x``), marked when the import sits inside a
function (or a ``TYPE_CHECKING`` block, which runs no code and so is counted apart). :data:`LAYERS` gives each
module its layer, top (cli) to bottom; ``tests/test_layers.py`` checks the rules on this graph, and

    python tests/import_graph.py [SRC_DIR]

prints the figures of issue 24: lines per package, the largest files, internal imports (all and inside
functions), circles and upward imports.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "depthlab"

# The layers, top to bottom: a module may import its own layer and any layer below it. The longest matching
# prefix wins (``depthlab.studies.stats``, before it moved, sat in the studies layer by its prefix), except
# that ``depthlab`` names the package's ``__init__`` alone.
LAYERS: dict[str, int] = {
    "depthlab.__main__": 8,
    "depthlab.cli": 8,
    "depthlab.report": 7,
    "depthlab.studies": 6,
    "depthlab.analysis": 5,
    "depthlab.train": 4,
    "depthlab.models": 3,
    "depthlab.data": 3,
    "depthlab.registry": 3,
    "depthlab.layers": 3,
    "depthlab": 3,  # the package's __init__: create_model and friends
    "depthlab.present": 1,
    "depthlab.stats": 1,
    "depthlab.io": 1,
    "depthlab.errors": 1,
    "depthlab.runtime": 1,
    "depthlab.i18n": 1,
}
LAYER_NAMES = {
    8: "cli",
    7: "report",
    6: "studies",
    5: "analysis",
    4: "train",
    3: "models, data",
    1: "bottom (present, stats, io, errors, runtime, i18n)",
}


@dataclass(frozen=True)
class Edge:
    source: str  # the importing module
    target: str  # the imported module
    line: int
    function: str | None  # the enclosing function's name, None at module level
    type_only: bool  # inside ``if TYPE_CHECKING:``

    @property
    def deferred(self) -> bool:
        """Inside a function: runs when the function is called, not when the module is imported."""
        return self.function is not None


def module_name(path: Path, src: Path = SRC) -> str:
    parts = list(path.relative_to(src.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(src: Path = SRC) -> dict[str, Path]:
    return {module_name(p, src): p for p in sorted(src.rglob("*.py"))}


def layer(module: str) -> int:
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        prefix = ".".join(parts[:n])
        # "depthlab" is the package's __init__ only: a new top-level module must be placed explicitly.
        if prefix in LAYERS and (n > 1 or module == prefix):
            return LAYERS[prefix]
    raise KeyError(f"{module} has no layer: add it to LAYERS in tests/import_graph.py")


def _resolve(name: str, known: Iterable[str]) -> str | None:
    """The module ``name`` denotes, or its longest prefix that is one (``depthlab.x.func`` → ``depthlab.x``)."""
    known = set(known)
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        prefix = ".".join(parts[:n])
        if prefix in known:
            return prefix
    return None


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _is_import_module(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and bool(node.args)
        and (
            (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
            or (isinstance(node.func, ast.Name) and node.func.id == "import_module")
        )
    )


def _prefix(node: ast.AST) -> str | None:
    """The constant start of an f-string (``f"depthlab.cli.{name}"`` → ``depthlab.cli``)."""
    if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
        return str(node.values[0].value).rstrip(".")
    return None


def _edges_of(name: str, package: str, tree: ast.AST, known: set[str]) -> list[Edge]:
    found: list[Edge] = []

    def visit(node: ast.AST, function: str | None, type_only: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                visit(child, function or getattr(child, "name", "<lambda>"), type_only)
                continue
            if isinstance(child, ast.If) and _is_type_checking(child):
                for stmt in child.body:
                    visit(ast.Module(body=[stmt], type_ignores=[]), function, True)
                for stmt in child.orelse:
                    visit(ast.Module(body=[stmt], type_ignores=[]), function, type_only)
                continue
            targets: list[str] = []
            if _is_import_module(child):  # importlib.import_module("depthlab.x"): an import all the same
                first = child.args[0]  # type: ignore[attr-defined]
                text = first.value if isinstance(first, ast.Constant) else _prefix(first)
                targets = [text] if isinstance(text, str) else []
            elif isinstance(child, ast.Import):
                targets = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")
                    base = base[: len(base) - (child.level - 1)]
                    stem = ".".join(base + ([child.module] if child.module else []))
                else:
                    stem = child.module or ""
                targets = [f"{stem}.{alias.name}" for alias in child.names]
            if targets:
                resolved = {_resolve(t, known) for t in targets if t.split(".")[0] == "depthlab"}
                for target in sorted(t for t in resolved if t and t != name):
                    found.append(Edge(name, target, child.lineno, function, type_only))
            visit(child, function, type_only)

    visit(tree, None, False)
    return found


def edges(src: Path = SRC) -> list[Edge]:
    """Every internal import in ``src``, once per (statement, imported module)."""
    mods = modules(src)
    found: list[Edge] = []
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found += _edges_of(name, package, ast.parse(path.read_text(), str(path)), set(mods))
    return found


def circles(found: Iterable[Edge]) -> list[list[str]]:
    """The import circles: strongly connected components of more than one module (runtime imports, module
    level and inside functions alike; ``TYPE_CHECKING`` imports run nothing and are left out)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for e in found:
        if not e.type_only:
            graph[e.source].add(e.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = [0]

    def connect(v: str) -> None:  # Tarjan's algorithm
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
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
                components.append(sorted(component))

    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))
    for v in sorted(graph):
        if v not in index:
            connect(v)
    return sorted(components)


def upward(found: Iterable[Edge]) -> list[Edge]:
    """Imports of a higher layer by a lower one (``TYPE_CHECKING`` imports included: they are arrows too)."""
    return [e for e in found if layer(e.target) > layer(e.source)]


def package_of(module: str) -> str:
    """The room a module lives in: ``depthlab.studies.degradation.study`` → ``depthlab.studies``."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def figures(src: Path = SRC, largest: int = 8) -> str:
    mods = modules(src)
    lines = {m: len(p.read_text().splitlines()) for m, p in mods.items()}
    per_package: dict[str, int] = defaultdict(int)
    for m, n in lines.items():
        per_package[package_of(m)] += n
    found = edges(src)
    runtime = [e for e in found if not e.type_only]
    deferred = [e for e in runtime if e.deferred]
    pairs = {(e.source, e.target) for e in runtime}
    out = [f"lines: {sum(lines.values())} in {len(mods)} modules"]
    out += [f"  {pkg:28} {n:6}" for pkg, n in sorted(per_package.items(), key=lambda kv: -kv[1])]
    out.append("largest files:")
    for m, n in sorted(lines.items(), key=lambda kv: -kv[1])[:largest]:
        out.append(f"  {mods[m].relative_to(src.parent.parent)}: {n}")
    statements = {(e.source, e.line) for e in runtime}
    deferred_statements = {(e.source, e.line) for e in deferred}
    out.append(
        f"internal imports: {len(statements)} statements ({len(runtime)} statement × module, {len(pairs)} "
        f"distinct module pairs); inside functions: {len(deferred_statements)} statements "
        f"({len(deferred)} statement × module); TYPE_CHECKING only: {len(found) - len(runtime)}"
    )
    by_module: dict[str, int] = defaultdict(int)
    for e in deferred:
        by_module[e.source] += 1
    if deferred:
        out.append(
            "  inside functions, by module: "
            + ", ".join(
                f"{m.removeprefix('depthlab.')} {n}"
                for m, n in sorted(by_module.items(), key=lambda kv: -kv[1])
            )
        )
    found_circles = circles(found)
    out.append(f"circles: {len(found_circles)}")
    out += ["  " + " ↔ ".join(m.removeprefix("depthlab.") for m in c) for c in found_circles]
    up = upward(found)
    up_pairs = sorted({(e.source, e.target) for e in up})
    out.append(f"upward imports: {len(up)} statements, {len(up_pairs)} module pairs")
    out += [f"  {s.removeprefix('depthlab.')} → {t.removeprefix('depthlab.')}" for s, t in up_pairs]
    package_pairs = {(package_of(e.source), package_of(e.target)) for e in runtime}
    package_pairs = {(s, t) for s, t in package_pairs if s != t}
    package_up = sorted((s, t) for s, t in package_pairs if layer(t) > layer(s))
    out.append(f"package arrows: {len(package_pairs)}, upward: {len(package_up)}")
    out += [f"  {s.removeprefix('depthlab.')} → {t.removeprefix('depthlab.')}" for s, t in package_up]
    return "\n".join(out)


if __name__ == "__main__":
    print(figures(Path(sys.argv[1]) if len(sys.argv) > 1 else SRC))
