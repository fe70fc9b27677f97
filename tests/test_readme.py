"""The README says how to install mlf as a user: every extra, what it brings, the CPU build of
PyTorch, a wheel or a checkout without -e; the Quick start stays two commands and the tests."""

from __future__ import annotations

import re
import tomllib

from tests.conftest import ROOT


def _section(title: str) -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(rf"^## {title}\n(.*?)(?=^## )", text, flags=re.M | re.S)
    assert match, f"README has no '## {title}' section"
    return match.group(1)


def _name(requirement: str) -> str:
    return re.split(r"[<>=\[ ;]", requirement, maxsplit=1)[0]


def test_install_lists_every_extra_and_what_it_brings():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    rows = {
        m.group(1): m.group(2)
        for m in re.finditer(r"^\| `([\w-]+)` \| (.*?) \|", _section("Install"), flags=re.M)
    }
    for extra, requirements in extras.items():
        assert extra in rows, f"extra {extra!r} is not in the README's Install table"
        for requirement in requirements:
            if requirement.startswith("mlforecast-cli["):  # an extra made of extras
                for inner in requirement[len("mlforecast-cli[") : -1].split(","):
                    assert f"`{inner}`" in rows[extra], (extra, inner)
            else:
                assert _name(requirement) in rows[extra], (extra, requirement)


def test_install_says_how_to_install_without_e_and_the_cpu_torch():
    install = _section("Install")
    blocks = re.findall(r"```bash\n(.*?)```", install, flags=re.S)
    commands = [line for block in blocks for line in block.splitlines() if line.strip()]
    assert any(re.match(r'pip install "\.\[all\]"', c) for c in commands)  # a checkout, no -e
    assert any(re.match(r'pip install "dist/mlforecast_cli-.*\.whl\[', c) for c in commands)
    assert any("torch==2.13.0" in c and "whl/cpu" in c for c in commands)
    assert not any(" -e " in c for c in commands)


def test_quick_start_is_set_up_main_job_and_tests():
    blocks = re.findall(r"```bash\n(.*?)```", _section("Quick start"), flags=re.S)
    assert [b.strip() for b in blocks] == [
        'pip install -e ".[all,dev]"',
        "mlf optimize lightgbm --trials 30",
        "python -m pytest -q -n 2",
    ]
