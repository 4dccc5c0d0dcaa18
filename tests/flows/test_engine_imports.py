"""The engine is plain Python on top of the connectors: any host can run it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENGINE = ROOT / "flows"


def test_the_engine_imports_without_django_celery_or_a_database_driver():
    probe = (
        "import sys, pkgutil, importlib, flows\n"
        "for m in pkgutil.walk_packages(flows.__path__, 'flows.'):\n"
        "    importlib.import_module(m.name)\n"
        "loaded = sorted(n for n in ('django', 'celery', 'kombu', 'redis', 'psycopg', 'sqlite3',"
        " 'rest_framework', 'portal') if n in sys.modules)\n"
        "print(','.join(loaded))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )  # fmt: skip

    assert done.stdout.strip() == ""


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


# Secrets at rest, shared by the portal's vault and the on-premise agent's store: AES-GCM
# from ``cryptography`` (a dependency of every host), in that one module only.
ALSO_ALLOWED = {"flows/envelope.py": {"cryptography"}}


def test_every_engine_module_imports_only_the_standard_library_and_the_connectors():
    allowed = set(sys.stdlib_module_names) | {"connectors", "flows"}
    found = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in sorted(ENGINE.rglob("*.py"))
        for name in _imported_roots(path)
        if name not in allowed | ALSO_ALLOWED.get(str(path.relative_to(ROOT)), set())
    }

    assert found == set()
