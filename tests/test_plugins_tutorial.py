"""docs/plugins.md cannot rot: every block is run, docs/example-plugin is its output, and
docs/hooks.md is generated from models/hookspecs.py and models/contract.py.

Blocks of docs/plugins.md: ```bash runs (all of them, in order, in one shell, from an empty
folder); a block with title="PATH" is written to PATH (relative to the shell's folder at that
point); ```text blocks are pictures (a folder tree). Nothing else is allowed.

Regenerate docs/hooks.md with ``python tests/test_plugins_tutorial.py``.
"""

from __future__ import annotations

import ast
import inspect
import os
import posixpath
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = ROOT / "docs" / "plugins.md"
HOOKS = ROOT / "docs" / "hooks.md"
EXAMPLE = ROOT / "docs" / "example-plugin"
PACKAGE_FOLDER = "mlf-lag-ridge"
"""The folder the tutorial builds the package in (docs/example-plugin is its copy)."""
IGNORED = {"build", "dist", "__pycache__", ".pytest_cache", ".mlf", "mlruns", ".ruff_cache"}
EOF_MARK = "MLF_TUTORIAL_EOF"
BEGIN = "<!-- BEGIN GENERATED: python tests/test_plugins_tutorial.py -->"
END = "<!-- END GENERATED -->"


# --------------------------------------------------------------------------- parsing


@dataclass(frozen=True)
class Block:
    lang: str
    title: str | None
    body: str
    line: int


def parse_blocks(text: str) -> list[Block]:
    """The fenced code blocks of a Markdown text (``` or ~~~, any length, not indented)."""
    blocks = []
    lines = text.splitlines(keepends=True)
    i = 0
    while i < len(lines):
        opening = re.match(r"^(`{3,}|~{3,})(.*)$", lines[i].rstrip("\n"))
        if not opening:
            i += 1
            continue
        fence, info = opening.group(1), opening.group(2).strip()
        body, j = [], i + 1
        while j < len(lines) and not re.fullmatch(
            re.escape(fence[0]) + f"{{{len(fence)},}}", lines[j].strip()
        ):
            body.append(lines[j])
            j += 1
        assert j < len(lines), f"{TUTORIAL.name}:{i + 1}: the code block is never closed"
        title = re.search(r'title="([^"]+)"', info)
        lang = info.split()[0] if info else ""
        blocks.append(Block(lang, title.group(1) if title else None, "".join(body), i + 1))
        i = j + 1
    return blocks


def tutorial_blocks() -> list[Block]:
    return parse_blocks(TUTORIAL.read_text(encoding="utf-8"))


def written_files(blocks: list[Block]) -> dict[str, str]:
    """Path (from the starting folder) → content of every file the tutorial writes, following
    the `cd` commands of its bash blocks; a later block for the same path wins."""
    cwd, files = ".", {}
    for block in blocks:
        if block.title:
            files[posixpath.normpath(posixpath.join(cwd, block.title))] = block.body
        elif block.lang == "bash":
            for line in block.body.splitlines():
                words = shlex.split(line, comments=True)
                if words[:1] == ["cd"]:
                    assert len(words) == 2, f"keep `cd` lines simple: {line!r}"
                    cwd = posixpath.normpath(posixpath.join(cwd, words[1]))
    return files


def shell_script(blocks: list[Block]) -> str:
    """One bash script doing what the tutorial says, in order."""
    parts = ["set -euo pipefail", "set -x"]
    for block in blocks:
        where = f"docs/plugins.md line {block.line}"
        if block.title:
            assert EOF_MARK not in block.body
            path = shlex.quote(block.title)
            parts += [
                f": write {path} from {shlex.quote(where)}",
                f'mkdir -p "$(dirname {path})"',
                f"cat > {path} <<'{EOF_MARK}'\n{block.body}{EOF_MARK}",
            ]
        elif block.lang == "bash":
            parts += [f": run {shlex.quote(where)}", block.body]
    return "\n".join(parts) + "\n"


# --------------------------------------------------------------------------- the tutorial


def test_every_block_is_run_or_written():
    blocks = tutorial_blocks()
    assert len(blocks) > 10
    for block in blocks:
        assert block.title or block.lang in ("bash", "text"), (
            f'docs/plugins.md:{block.line}: a ```{block.lang} block without title="PATH" '
            "is neither run nor written; give it a title or make it a ```bash block"
        )
        if block.lang == "text":
            assert not block.title
    commands = "".join(b.body for b in blocks if b.lang == "bash")
    for needed in (
        "pip install .",
        "python -m pytest",
        "mlf plugins",
        "mlf list-models",
        "mlf optimize lag_ridge",
        "MLF_LOAD_PLUGINS=",
        "--plugins-dir",
        "MLF_PLUGINS_DIR=",
        "mlf optimize ses",
    ):
        assert needed in commands, f"the tutorial no longer shows {needed!r}"


def test_the_example_plugin_is_the_tutorial_to_the_letter():
    files = written_files(tutorial_blocks())
    prefix = PACKAGE_FOLDER + "/"
    package = {path[len(prefix) :]: text for path, text in files.items() if path.startswith(prefix)}
    assert {"pyproject.toml", "src/mlf_lag_ridge/__init__.py", "tests/test_lag_ridge.py"} <= set(
        package
    )
    example = {
        path.relative_to(EXAMPLE).as_posix(): path.read_text(encoding="utf-8")
        for path in EXAMPLE.rglob("*")
        if path.is_file()
        and not IGNORED & set(path.relative_to(EXAMPLE).parts)
        and not any(part.endswith(".egg-info") for part in path.parts)
        and path.suffix != ".pyc"
    }
    assert sorted(example) == sorted(package), (
        "docs/example-plugin and the tutorial list other files"
    )
    for path, text in package.items():
        assert example[path] == text, (
            f"docs/example-plugin/{path} differs from its block in docs/plugins.md: change both"
        )


def test_the_tutorial_pyproject_registers_the_entry_point():
    import tomllib

    pyproject = tomllib.loads(written_files(tutorial_blocks())[f"{PACKAGE_FOLDER}/pyproject.toml"])
    assert pyproject["project"]["entry-points"]["mlf"] == {"lag_ridge": "mlf_lag_ridge"}
    assert pyproject["tool"]["setuptools"]["package-data"] == {"mlf_lag_ridge": ["*.yaml"]}


@pytest.mark.slow
def test_the_tutorial_runs_from_an_empty_folder(tmp_path, mlflow_uri):
    from mlflow.tracking import MlflowClient

    from tests.test_example_plugin import make_venv

    bin_dir = make_venv(tmp_path / "venv")
    # the checkout under test, not whichever mlf the system site-packages hold
    subprocess.run(
        [str(bin_dir / "python"), "-m", "pip", "install", "-q", "--no-deps"]
        + ["--no-build-isolation", "--no-index", "-e", str(ROOT)],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        timeout=600,
    )
    work = tmp_path / "work"
    work.mkdir()
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "VIRTUAL_ENV": str(bin_dir.parent),
        "PIP_NO_BUILD_ISOLATION": "0",  # pip reads "0" as: do not isolate (nothing downloaded)
        "PIP_NO_INDEX": "1",
        "MLF_HOME": str(tmp_path / "mlf-home"),
    }
    proc = subprocess.run(
        ["bash", "-c", shell_script(tutorial_blocks())],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, (
        f"--- stdout\n{proc.stdout[-5000:]}\n--- stderr\n{proc.stderr[-5000:]}"
    )
    out = proc.stdout
    assert "lag_ridge" in out and "drift" in out
    assert "mlf_lag_ridge/space.yaml" in out, "the wheel lacks the space"
    site = subprocess.run(
        [str(bin_dir / "python"), "-c", "import mlf_lag_ridge; print(mlf_lag_ridge.__file__)"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert str(bin_dir.parent) in site, "the package went somewhere else than the venv"

    client = MlflowClient(mlflow_uri)
    studies = {
        run.data.tags["mlf.model"]
        for experiment in client.search_experiments()
        for run in client.search_runs([experiment.experiment_id], "tags.`mlf.role` = 'study'")
    }
    assert {"lag_ridge", "seasonal_naive", "drift", "ses"} <= studies


# --------------------------------------------------------------------------- hooks.md


def render_hooks_reference() -> str:
    """The generated part of docs/hooks.md: each hook spec, then the types a plugin uses."""
    from mlforecast_cli.models import contract, hookspecs

    out = ["## Hooks", ""]
    specs = [
        (name, fn)
        for name, fn in vars(hookspecs).items()
        if inspect.isfunction(fn) and hasattr(fn, "mlf_spec")
    ]
    specs.sort(key=lambda item: inspect.getsourcelines(item[1])[1])
    for name, fn in specs:
        options = {k: v for k, v in fn.mlf_spec.items() if v}
        out += [
            f"### `{name}`",
            "",
            "```python",
            "@hookimpl",
            f"def {name}{_signature(fn)}:",
            "```",
            "",
        ]
        out += [inspect.getdoc(fn) or "(undocumented)", ""]
        if options:
            out += ["Options: " + ", ".join(f"`{k}={v!r}`" for k, v in options.items()), ""]
    out += ["## Types", ""]
    tree = ast.parse(inspect.getsource(contract))
    classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
    for name in ("ModelSpec", "Forecaster", "Windows", "SeriesForecaster", "Histories", "TaskInfo"):
        out += _class_doc(getattr(contract, name), classes[name])
    report = next(
        node for node in tree.body if isinstance(node, ast.Assign) and _target(node) == "ReportFn"
    )
    out += ["### `ReportFn`", "", "```python", ast.unparse(report), "```", ""]
    out += [_docstring_after(tree.body, report) or "", ""]
    return "\n".join(out).rstrip() + "\n"


def _signature(fn) -> str:
    parts = []
    for p in inspect.signature(fn).parameters.values():
        parts.append(f"{p.name}: {p.annotation}" if p.annotation is not p.empty else p.name)
    returns = inspect.signature(fn).return_annotation
    return f"({', '.join(parts)})" + (
        f" -> {returns}" if returns is not inspect.Signature.empty else ""
    )


def _target(node: ast.AST) -> str | None:
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return node.target.id
    if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
        return node.targets[0].id
    return None


def _docstring_after(body: list[ast.stmt], node: ast.stmt) -> str | None:
    i = body.index(node)
    if i + 1 < len(body):
        after = body[i + 1]
        value = after.value if isinstance(after, ast.Expr) else None
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            return inspect.cleandoc(value.value)
    return None


def _class_doc(cls, node: ast.ClassDef) -> list[str]:
    out = [f"### `{cls.__name__}`", "", inspect.getdoc(cls) or "", ""]
    for item in node.body:
        if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
            default = f" = {ast.unparse(item.value)}" if item.value is not None else ""
            line = f"- `{item.target.id}: {ast.unparse(item.annotation)}{default}`"
            doc = _docstring_after(node.body, item)
            out.append(line + (f": {' '.join(doc.split())}" if doc else ""))
        elif isinstance(item, ast.FunctionDef) and not item.name.startswith("_"):
            if any(isinstance(d, ast.Name) and d.id == "property" for d in item.decorator_list):
                returns = f" -> {ast.unparse(item.returns)}" if item.returns else ""
                out.append(f"- `{item.name}{returns}` (property)")
                continue
            args = ast.unparse(item.args)
            returns = f" -> {ast.unparse(item.returns)}" if item.returns else ""
            doc = ast.get_docstring(item)
            out.append(
                f"- `{item.name}({args}){returns}`" + (f": {' '.join(doc.split())}" if doc else "")
            )
    return out + [""]


def hooks_text() -> str:
    text = HOOKS.read_text(encoding="utf-8")
    assert BEGIN in text and END in text, f"{HOOKS} lost its generated-section markers"
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n\n{render_hooks_reference()}\n{END}{tail}"


def test_hooks_doc_matches_hookspecs():
    assert HOOKS.read_text(encoding="utf-8") == hooks_text(), (
        "docs/hooks.md is out of date with mlforecast_cli/models/hookspecs.py or contract.py: run "
        "python tests/test_plugins_tutorial.py"
    )


def test_hooks_doc_names_every_hook_and_its_arguments():
    from mlforecast_cli.models import hookspecs

    text = HOOKS.read_text(encoding="utf-8")
    for name, fn in vars(hookspecs).items():
        if inspect.isfunction(fn) and hasattr(fn, "mlf_spec"):
            assert f"def {name}(" in text
            for arg in inspect.signature(fn).parameters:
                assert arg in text


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    HOOKS.write_text(hooks_text(), encoding="utf-8")
    print(f"wrote {HOOKS}")
