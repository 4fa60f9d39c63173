"""The import graph of the project's packages, read from the source with ast.

Every import counts: module level, inside functions and methods, under
``if TYPE_CHECKING``, relative ones resolved against the importing module's
package. An edge A -> B means module A imports module B (``from B import x``
adds the edge A -> B.x when ``B.x`` is itself a module of the project, as in
``from simulator.core import errors``; otherwise A -> B). Importing a package
also runs its ``__init__``, so ``A -> p.q.r`` adds A -> p and A -> p.q too."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGES = ("simulator", "damage_ops", "harness")


def module_name(root: Path, path: Path) -> str:
    """``simulator/core/errors.py`` -> ``simulator.core.errors``; a package's ``__init__.py`` -> the package."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(root: Path, packages=PACKAGES) -> dict[str, Path]:
    """Every module of ``packages`` under ``root``: {dotted name: file}."""
    out = {}
    for pkg in packages:
        for p in sorted((root / pkg).rglob("*.py")):
            if "__pycache__" not in p.parts:
                out[module_name(root, p)] = p
    return out


def _resolve(importer: str, is_package: bool, level: int, module: str | None) -> str:
    base = importer.split(".") if is_package else importer.split(".")[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def import_edges(root: Path, packages=PACKAGES) -> list[tuple[str, str, int, bool]]:
    """(importer, imported, line, at module level) for every import between
    project modules. ``at module level`` is False for imports inside a def."""
    mods = modules(root, packages)
    edges = []
    for name, path in mods.items():
        tree = ast.parse(path.read_text(), str(path))
        local_lines = set()
        for fn in ast.walk(tree):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                for n in ast.walk(fn):
                    if isinstance(n, (ast.Import, ast.ImportFrom)):
                        local_lines.add(n.lineno)
        for node in ast.walk(tree):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(name, path.name == "__init__.py", node.level, node.module) if node.level else node.module
                for a in node.names:
                    sub = f"{base}.{a.name}"
                    targets.append(sub if sub in mods else base)
            for t in targets:
                # the module itself and every package above it run on import
                parts = t.split(".")
                for k in range(1, len(parts) + 1):
                    m = ".".join(parts[:k])
                    if m in mods and m != name and not name.startswith(m + "."):
                        edges.append((name, m, node.lineno, node.lineno not in local_lines))
    return edges


def find_cycle(edges) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None when the graph is acyclic."""
    graph: dict[str, set[str]] = {}
    for a, b, *_ in edges:
        graph.setdefault(a, set()).add(b)
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(u: str) -> list[str] | None:
        state[u] = 1
        stack.append(u)
        for v in sorted(graph.get(u, ())):
            if state.get(v) == 1:
                return stack[stack.index(v):] + [v]
            if v not in state:
                c = visit(v)
                if c:
                    return c
        stack.pop()
        state[u] = 2
        return None

    for u in sorted(graph):
        if u not in state:
            c = visit(u)
            if c:
                return c
    return None
