"""The package's shape, read from the source: modules per folder, the import graph's floors
(the longest chain of imports) and arrows, and the functions with the most parameters and the
most lines.

    python benchmarks/layout.py [PACKAGE_DIR]

Imports inside functions and under ``TYPE_CHECKING`` count as arrows, as in tests/test_layers.py.
"""

from __future__ import annotations

import ast
import functools
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from test_layers import imports, modules, room  # noqa: E402


def functions(package: Path) -> list[tuple[int, int, str]]:
    """``(parameters, lines, "file:line name")`` of every function (``self``/``cls`` aside)."""
    rows = []
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                a = node.args
                names = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs]
                count = len([n for n in names if n not in ("self", "cls")])
                where = f"{path.relative_to(package.parent)}:{node.lineno} {node.name}"
                rows.append((count, node.end_lineno - node.lineno + 1, where))
    return rows


def main(argv: list[str]) -> None:
    package = Path(argv[0]) if argv else ROOT / "mlforecast_cli"
    mods = modules(package)
    edges, _ = imports(mods)

    @functools.cache
    def floor(m: str) -> int:
        return 1 + max((floor(t) for t in edges[m]), default=0)

    folders = Counter(str(p.parent.relative_to(package.parent)) for p in package.rglob("*.py"))
    print("| folder | modules |\n| --- | ---: |")
    for folder, n in sorted(folders.items()):
        print(f"| {folder} | {n} |")
    print(
        f"\nmodules {len(mods)}, arrows {sum(map(len, edges.values()))}, "
        f"floors {max(map(floor, mods))}"
    )
    rooms = {(room(m), room(t)) for m, ts in edges.items() for t in ts if room(m) != room(t)}
    print(f"rooms {len({room(m) for m in mods})}, arrows between rooms {len(rooms)}")
    core = [r for r in functions(package) if "/cli/" not in r[2]]
    print(f"\ncore functions with more than 6 parameters: {sum(r[0] > 6 for r in core)}")
    print("| parameters | lines | function |\n| ---: | ---: | --- |")
    for r in sorted(core, reverse=True)[:8]:
        print(f"| {r[0]} | {r[1]} | {r[2]} |")
    print("\n| lines | parameters | function |\n| ---: | ---: | --- |")
    for r in sorted(core, key=lambda r: -r[1])[:8]:
        print(f"| {r[1]} | {r[0]} | {r[2]} |")


if __name__ == "__main__":
    main(sys.argv[1:])
