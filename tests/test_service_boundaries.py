"""No service imports another: what two services share lives in services/core (DESIGN.md, layout)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SERVICES = Path(__file__).resolve().parents[1] / "services"
SERVICE_PACKAGES = sorted(p.name for p in SERVICES.iterdir() if (p / "__init__.py").exists() and p.name != "core")


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in the file, at any depth (a function-level import counts too)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.extend((node.lineno, f"{node.module}.{alias.name}") for alias in node.names)
    return sorted(found)


def foreign_imports(package: str) -> list[str]:
    """The imports of services/<package> that reach into another service's package."""
    others = {f"services.{name}" for name in SERVICE_PACKAGES if name != package}
    problems = []
    for path in sorted((SERVICES / package).rglob("*.py")):
        for line, module in imported_modules(path):
            if any(module == other or module.startswith(other + ".") for other in others):
                problems.append(f"{path.relative_to(SERVICES.parent)}:{line} imports {module}")
    return problems


@pytest.mark.parametrize("package", SERVICE_PACKAGES)
def test_a_service_imports_no_other_service(package: str) -> None:
    assert foreign_imports(package) == []


def test_the_check_finds_a_foreign_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from services.pose.filters import human_existence\nimport services.core.bus\n")
    assert imported_modules(module) == [(2, "services.pose.filters.human_existence"), (3, "services.core.bus")]
    assert "captioner" in SERVICE_PACKAGES and "core" not in SERVICE_PACKAGES
