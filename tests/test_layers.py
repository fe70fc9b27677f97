"""The package's layers, read from the source and from ``docs/architecture.md``: the rooms
(subpackages and the few top-level modules) in the order the document's table gives, bottom
to top; no import against that order, no import cycle (imports inside functions and under
``TYPE_CHECKING`` count), no private name imported across modules; every room in the table
and every room of the table in the package.

``python tests/test_layers.py`` prints the same findings.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "mlforecast_cli"
ARCHITECTURE = ROOT / "docs" / "architecture.md"
ORDER_HEADING = "## The rooms, bottom to top"
TOP_LEVEL = {"__init__", "__main__", "errors", "testing"}
"""The modules allowed at the package's top level: the public API, ``python -m``, the
public exceptions and the plugin authors' contract kit."""


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


def documented_order(text: str) -> list[tuple[str, str]]:
    """``(room, role)`` rows of the table under :data:`ORDER_HEADING`, bottom to top; a room
    is a subpackage (```data/```), a top-level module (```errors.py```) or the public API
    (```__init__.py```)."""
    body = text.split(ORDER_HEADING, 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in body.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and (match := re.fullmatch(r"`([\w.]+?)(/|\.py)`", cells[1])):
            rows.append((match.group(1), cells[2]))
    return rows


def room(module: str) -> str:
    """The room a dotted module lives in: its subpackage, or its own name at the top level
    (``__init__`` for the package itself)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def against_order(edges: dict[str, set[str]], order: list[str]) -> list[str]:
    """Imports from a room to one above it in ``order``."""
    rank = {name: k for k, name in enumerate(order)}
    return sorted(
        f"{m} -> {t}"
        for m, targets in edges.items()
        for t in targets
        if rank.get(room(m), -1) < rank.get(room(t), -1)
    )


def rooms(package: Path = PACKAGE) -> set[str]:
    """The package's rooms: its subpackages and its top-level modules."""
    subpackages = {p.parent.name for p in package.glob("*/__init__.py")}
    return subpackages | {p.stem for p in package.glob("*.py")}


def upward(edges: dict[str, set[str]]) -> list[str]:
    """Imports from the core into ``cli/`` (``__main__`` runs the CLI: it may)."""
    cli = "mlforecast_cli.cli"
    return [
        f"{m} -> {t}"
        for m, targets in edges.items()
        for t in targets
        if t.startswith(cli) and not m.startswith(cli) and m != "mlforecast_cli.__main__"
    ]


def test_the_documented_order_holds_every_room_once():
    order = [name for name, _ in documented_order(ARCHITECTURE.read_text())]
    assert len(order) == len(set(order)), order
    assert set(order) == rooms(), (
        f"in the package, not the table: {sorted(rooms() - set(order))}; "
        f"in the table, not the package: {sorted(set(order) - rooms())}"
    )


def test_every_room_has_a_role():
    for name, role in documented_order(ARCHITECTURE.read_text()):
        assert len(role.split()) >= 4, f"{name}: its role in docs/architecture.md is {role!r}"


def test_no_import_goes_against_the_documented_order():
    order = [name for name, _ in documented_order(ARCHITECTURE.read_text())]
    assert against_order(imports(modules())[0], order) == []


def named_in(text: str) -> list[str]:
    """The dotted names of the package that ``text`` writes in backticks (```trials.fit```,
    ```optimize.study_run.StudyRun.plan```), module first."""
    found = re.findall(r"`((?:[a-z_]+)\.[\w.]+)", text)
    return sorted({n for n in found if n.split(".")[0] in rooms() and not n.endswith(".py")})


def resolves(name: str) -> bool:
    """Whether ``mlforecast_cli.<name>`` is a module, or a name inside one."""
    import importlib

    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module("mlforecast_cli." + ".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def test_every_name_the_document_gives_exists():
    text = ARCHITECTURE.read_text()
    assert named_in(text), "the document names no module"
    assert [n for n in named_in(text) if not resolves(n)] == []


def test_only_the_public_entry_points_sit_at_the_top_level():
    assert {p.stem for p in PACKAGE.glob("*.py")} <= TOP_LEVEL


MAX_PARAMETERS = 6


def widest_functions(package: Path = PACKAGE) -> list[str]:
    """Core functions (``cli/`` aside) taking more than :data:`MAX_PARAMETERS` parameters,
    ``self`` and ``cls`` not counted."""
    wide = []
    for path in sorted(package.rglob("*.py")):
        if "cli" in path.relative_to(package).parts[:-1]:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                a = node.args
                names = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs]
                count = len([n for n in names if n not in ("self", "cls")])
                if count > MAX_PARAMETERS:
                    wide.append(f"{path.relative_to(package)}:{node.lineno} {node.name} ({count})")
    return wide


def test_no_core_function_takes_more_than_six_parameters():
    assert widest_functions() == []


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


def test_the_order_check_sees_an_import_upward_and_reads_the_table(tmp_path):
    table = f"""{ORDER_HEADING}

| # | room | role |
| --- | --- | --- |
| 1 | `low/` | the bottom room of all |
| 2 | `errors.py` | a module at the top level |
| 3 | `high/` | the top room of all |

## Next
"""
    assert documented_order(table) == [
        ("low", "the bottom room of all"),
        ("errors", "a module at the top level"),
        ("high", "the top room of all"),
    ]
    edges = {"mlforecast_cli.low.a": {"mlforecast_cli.high.b"}, "mlforecast_cli.high.b": set()}
    assert against_order(edges, ["low", "errors", "high"]) == [
        "mlforecast_cli.low.a -> mlforecast_cli.high.b"
    ]
    assert against_order(edges, ["high", "errors", "low"]) == []


def test_old_module_names_still_import_with_a_warning():
    import importlib
    import sys
    import warnings

    from mlforecast_cli import MOVED

    for old, new in MOVED.items():
        sys.modules.pop(f"mlforecast_cli.{old}", None)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            module = importlib.import_module(f"mlforecast_cli.{old}")
        assert any(f"moved to mlforecast_cli.{new}" in str(w.message) for w in caught), old
        target = importlib.import_module(f"mlforecast_cli.{new}")
        public = [n for n in vars(target) if not n.startswith("_")]
        assert all(getattr(module, n) is getattr(target, n) for n in public), old


if __name__ == "__main__":
    edges, private = imports(modules())
    order = [name for name, _ in documented_order(ARCHITECTURE.read_text())]
    print("imports against docs/architecture.md's order:", against_order(edges, order) or "none")
    print("import cycles:", cycles(edges) or "none")
    print("core -> cli imports:", upward(edges) or "none")
    print("private names across modules:", private or "none")
