"""A new application is a short declaration: the kit carries the weight. Measured as the
issue states it: lines after ``ruff format``, without the sandbox and the vendored spec."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NEW_CONNECTORS = ("github", "figma")
DECLARATION_LIMIT = 80
SANDBOX_LIMIT = 200


def formatted_lines(files: list[Path], tmp_path: Path) -> int:
    copies = []
    for number, path in enumerate(files):
        copy = tmp_path / f"{number}_{path.name}"
        shutil.copyfile(path, copy)
        copies.append(copy)
    config = str(ROOT / "pyproject.toml")
    command = [sys.executable, "-m", "ruff", "format", "--quiet", "--config", config]
    subprocess.run([*command, *map(str, copies)], check=True, timeout=60)
    return sum(len(copy.read_text().splitlines()) for copy in copies)


def declaration(name: str) -> list[Path]:
    package = ROOT / "connectors" / name
    return [p for p in package.rglob("*.py") if not {"sandbox", "openapi"} & set(p.parts)]


@pytest.mark.parametrize("name", NEW_CONNECTORS)
def test_a_new_connectors_declaration_is_at_most_80_lines_after_ruff_format(name, tmp_path):
    assert declaration(name), f"connectors/{name} has no declaration"

    assert formatted_lines(declaration(name), tmp_path) <= DECLARATION_LIMIT


@pytest.mark.parametrize("name", NEW_CONNECTORS)
def test_a_new_connectors_sandbox_is_at_most_200_lines_after_ruff_format(name, tmp_path):
    sandbox = sorted((ROOT / "connectors" / name / "sandbox").rglob("*.py"))

    assert formatted_lines(sandbox, tmp_path) <= SANDBOX_LIMIT


def test_the_portal_names_no_application_outside_migrations_and_data():
    found = subprocess.run(
        ["git", "grep", "-il", "calendly", "--", "portal/"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    ).stdout.split()  # fmt: skip

    assert [p for p in found if "/migrations/" not in p and not p.endswith(".json")] == []
