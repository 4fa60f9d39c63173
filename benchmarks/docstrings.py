"""Docstring coverage of public functions, classes and methods, per package.

    python benchmarks/docstrings.py [--missing]

Public: the name has no leading underscore, and so have the module and every
class it sits in; nested functions do not count; ``@property`` getters and
dunder methods do not count either. Prints covered/total and the percentage per
package and per module (``--missing`` lists what lacks one)."""
from __future__ import annotations

import argparse
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("simulator", "damage_ops", "harness")


def public_defs(path: Path) -> list[tuple[str, bool]]:
    """(qualified name, has a docstring) of each public function, class and method of one module."""
    tree = ast.parse(path.read_text())
    out = []

    def visit(body, prefix: str) -> None:
        for n in body:
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                if n.name.startswith("_"):
                    continue
                if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and any(
                        isinstance(d, ast.Name) and d.id == "property" or
                        isinstance(d, ast.Attribute) and d.attr in ("setter", "deleter") for d in n.decorator_list):
                    continue
                out.append((prefix + n.name, ast.get_docstring(n) is not None))
                if isinstance(n, ast.ClassDef):
                    visit(n.body, prefix + n.name + ".")

    visit(tree.body, "")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--missing", action="store_true")
    a = ap.parse_args()
    for pkg in PACKAGES:
        tot = cov = 0
        rows = []
        for p in sorted((ROOT / pkg).rglob("*.py")):
            if any(part.startswith("_") and part != "__init__.py" for part in p.relative_to(ROOT).parts):
                continue
            defs = public_defs(p)
            c = sum(d for _, d in defs)
            tot, cov = tot + len(defs), cov + c
            if defs:
                rows.append((p.relative_to(ROOT), c, len(defs), [n for n, d in defs if not d]))
        print(f"{pkg}: {cov}/{tot} = {100 * cov / max(tot, 1):.0f}%")
        for rel, c, t, miss in rows:
            if a.missing and miss:
                print(f"  {rel}: {c}/{t}  missing: {', '.join(miss)}")


if __name__ == "__main__":
    main()
