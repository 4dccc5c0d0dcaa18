"""The repository carries what it needs: a clone with nothing beside it works."""

from __future__ import annotations

import re
from pathlib import Path

from tests.processes import run

ROOT = Path(__file__).resolve().parent.parent

# A path that climbs out of the checkout into the sibling folder that only developers have.
_OUTSIDE = re.compile(r"""\.\./shared|parents?\[\d\]\s*/\s*["']shared["']|["']shared["']\s*/""")


def _tracked_files() -> list[Path]:
    listed = run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=60
    ).stdout.split(b"\0")
    return [ROOT / name.decode() for name in listed if name]


def test_no_code_or_script_reads_a_folder_outside_the_repository():
    offenders = []
    for path in _tracked_files():
        if path.suffix not in {".py", ".sh", ".toml", ".yml", ".yaml", ".cfg", ""}:
            continue
        if path.suffix == ".yaml" and "openapi" in path.parts:
            continue  # vendored data, not code
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        offenders += [
            f"{path.relative_to(ROOT)}:{number}"
            for number, line in enumerate(text.splitlines(), 1)
            if _OUTSIDE.search(line)
        ]
    assert offenders == []


def test_calendlys_openapi_document_is_vendored_with_its_licence():
    folder = ROOT / "connectors" / "calendly" / "openapi"
    assert (folder / "openapi.yaml").read_text().startswith("openapi: 3.0.0")
    assert "MIT License" in (folder / "LICENSE").read_text()
    assert "speakeasy-sdks/calendly-python" in (folder / "SOURCE.md").read_text()
