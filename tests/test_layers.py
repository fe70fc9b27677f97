"""The package's layers, read from the source: no import cycle (imports inside functions
count), no import from the core up to ``cli/``, no private name imported across modules.

``python tests/test_layers.py`` prints the same findings.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "mlforecast_cli"


def modules(package: Path = PACKAGE) -> dict[str, Path]:
    """Dotted module name → file."""
    out = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports(mods: dict[str, Path]) -> tuple[dict[str, set[str]], list[str]]:
    """Each module's imports of other package modules, and private names imported."""
    edges: dict[str, set[str]] = {m: set() for m in mods}
    private = []
    for mod, path in mods.items():
        package = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                edges[mod] |= {a.name for a in node.names if a.name in mods}
            if not isinstance(node, ast.ImportFrom):
                continue
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:
                if f"{target}.{alias.name}" in mods:
                    edges[mod].add(f"{target}.{alias.name}")
                elif target in mods:
                    edges[mod].add(target)
                    name = alias.name
                    if name.startswith("_") and not name.startswith("__") and target != mod:
                        private.append(f"{mod} imports {target}.{name}")
        edges[mod].discard(mod)
    return edges, private


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Groups of modules that import each other, directly or around a loop (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in edges:
        if v not in index:
            visit(v)
    return found


def upward(edges: dict[str, set[str]]) -> list[str]:
    """Imports from the core into ``cli/`` (``__main__`` runs the CLI: it may)."""
    cli = "mlforecast_cli.cli"
    return [
        f"{m} -> {t}"
        for m, targets in edges.items()
        for t in targets
        if t.startswith(cli) and not m.startswith(cli) and m != "mlforecast_cli.__main__"
    ]


def test_no_import_cycle():
    assert cycles(imports(modules())[0]) == []


def test_the_core_never_imports_the_cli():
    assert upward(imports(modules())[0]) == []


def test_no_private_name_crosses_modules():
    assert imports(modules())[1] == []


def test_the_checks_see_a_cycle_and_a_private_import(tmp_path):
    pkg = tmp_path / "mlforecast_cli"
    (pkg / "cli").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "cli" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from .b import _g\n")
    (pkg / "b.py").write_text("from . import a\nfrom .cli import x\n")
    edges, private = imports(modules(pkg))
    assert cycles(edges) == [["mlforecast_cli.a", "mlforecast_cli.b"]]
    assert private == ["mlforecast_cli.a imports mlforecast_cli.b._g"]
    assert upward(edges) == ["mlforecast_cli.b -> mlforecast_cli.cli"]


if __name__ == "__main__":
    edges, private = imports(modules())
    print("import cycles:", cycles(edges) or "none")
    print("core -> cli imports:", upward(edges) or "none")
    print("private names across modules:", private or "none")
