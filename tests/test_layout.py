"""The architecture, as the imports show it.

A service's runtime code (everything but its tests and its ``testing.py`` fixtures) may
import the standard library, third-party packages, ``common``, ``contracts`` and itself —
never the dev tooling, pytest or another service. ``common`` and ``contracts`` import no
service; ``contracts`` holds models and constants, so no web framework and no database.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Top-level package → the folder it lives in.
SERVICES = {
    "gateway": ROOT / "api-gateway" / "gateway",
    "users": ROOT / "users" / "users",
    "courses": ROOT / "courses" / "courses",
    "enrolments": ROOT / "enrolments" / "enrolments",
    "learning": ROOT / "learning" / "learning",
    "fakturownia_sandbox": ROOT / "fakturownia-sandbox" / "fakturownia_sandbox",
}
SHARED = {"common": ROOT / "common" / "common", "contracts": ROOT / "contracts" / "contracts"}
TOOLING = {"devtools", "pytest", "_pytest"}
# What a contract may not need: it crosses a boundary as data.
FRAMEWORKS = {"flask", "werkzeug", "sqlalchemy", "pymongo", "alembic", "flask_migrate", "httpx"}


def runtime_modules(package_dir: Path) -> list[Path]:
    return sorted(
        path
        for path in package_dir.rglob("*.py")
        if path.name != "testing.py" and "tests" not in path.relative_to(package_dir).parts
    )


def imported_packages(path: Path) -> set[str]:
    """Top-level names of every absolute import, at any depth (also inside functions)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def violations(package: str, package_dir: Path, forbidden: set[str]) -> list[str]:
    found = []
    for path in runtime_modules(package_dir):
        for name in sorted(imported_packages(path) & (forbidden - {package})):
            found.append(f"{path.relative_to(ROOT)} imports {name}")
    return found


def test_every_package_is_walked() -> None:
    top_level = {path.parent.name for path in ROOT.glob("*/*/__init__.py")}
    assert top_level == {*SERVICES, *SHARED, "devtools"}, "add the new package to this test"
    for package_dir in (*SERVICES.values(), *SHARED.values()):
        assert runtime_modules(package_dir), package_dir


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_a_service_imports_no_tooling_and_no_other_service(service: str) -> None:
    assert violations(service, SERVICES[service], TOOLING | set(SERVICES)) == []


@pytest.mark.parametrize("package", sorted(SHARED))
def test_shared_packages_import_no_service_and_no_tooling(package: str) -> None:
    forbidden = TOOLING | set(SERVICES)
    if package == "contracts":
        forbidden |= FRAMEWORKS
    if package == "common":
        forbidden |= {"contracts"}  # contracts builds on common, never the other way round
    assert violations(package, SHARED[package], forbidden) == []


def test_the_walk_sees_imports_inside_functions(tmp_path: Path) -> None:
    module = tmp_path / "late.py"
    module.write_text("def f():\n    from devtools.devservers import free_port\n    import users\n")
    assert imported_packages(module) == {"devtools", "users"}
