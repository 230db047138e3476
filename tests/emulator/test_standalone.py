"""The emulator is the stand-in for ComfyUI that the balancer is checked
against: it must share no code with the balancer, or a bug in that code would
show on both sides and no test could see it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import balancer.emulator

PACKAGE = Path(balancer.emulator.__file__).parent


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in one emulator file;
    relative imports resolved against the emulator package."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                found.append((node.lineno, node.module or ""))
            elif node.level == 1:
                found.append((node.lineno, f"balancer.emulator.{node.module or ''}".rstrip(".")))
            else:
                found.append((node.lineno, "balancer." + "." * (node.level - 2) + "(outside)"))
    return found


def test_the_emulator_imports_nothing_of_the_balancer_outside_itself() -> None:
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 10
    outside = [
        f"{path.relative_to(PACKAGE)}:{line}: {module}"
        for path in files
        for line, module in imported_modules(path)
        if module.split(".")[0] == "balancer" and not module.startswith("balancer.emulator")
    ]
    assert outside == []


def test_the_import_walker_sees_an_import_of_the_balancer(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import balancer.files\nfrom balancer.userdata import x\nfrom .. import y\n"
        "from . import ok\ndef f():\n    from balancer.runner import start\n"
    )
    modules = [module for _, module in imported_modules(sample)]
    assert modules == [
        "balancer.files",
        "balancer.userdata",
        "balancer.(outside)",
        "balancer.emulator",
        "balancer.runner",
    ]


def test_importing_the_emulator_loads_no_balancer_module() -> None:
    code = (
        "import sys, balancer.emulator, balancer.emulator.cli;"
        "print(sorted(m for m in sys.modules if m.startswith('balancer')"
        " and m != 'balancer' and not m.startswith('balancer.emulator')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
