"""Django for the benchmarks, on a throwaway database so a run never touches a developer's data.

With ``DATABASE_URL`` set (PostgreSQL), a ``<name>_bench`` database next to it is created,
migrated and dropped afterwards; with no ``DATABASE_URL``, SQLite in a temporary
``PORTAL_VAR_DIR`` (also removed). ``REDIS_URL`` is ignored: nothing measured uses the cache
or the broker, and a developer's Redis stays untouched.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _postgres(url: str, statement: str) -> None:
    import psycopg

    admin = urlunsplit(urlsplit(url)._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(statement)


@contextmanager
def throwaway_django() -> Iterator[str]:
    """Set Django up on a fresh, migrated database; yields a description of that database."""
    var_dir = tempfile.mkdtemp(prefix="portal-bench-")
    url = os.environ.get("DATABASE_URL", "").strip()
    bench_name = ""
    if url:
        parts = urlsplit(url)
        if not parts.scheme.startswith("postgres"):
            raise SystemExit("DATABASE_URL must point at PostgreSQL (or be unset for SQLite).")
        bench_name = parts.path.lstrip("/") + "_bench"
        bench_url = urlunsplit(parts._replace(path="/" + bench_name))
        _postgres(bench_url, f'DROP DATABASE IF EXISTS "{bench_name}" WITH (FORCE)')
        _postgres(bench_url, f'CREATE DATABASE "{bench_name}"')
        os.environ["DATABASE_URL"] = bench_url
    os.environ["PORTAL_VAR_DIR"] = var_dir
    os.environ.pop("REDIS_URL", None)
    os.environ["DJANGO_SETTINGS_MODULE"] = "portal.settings"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    try:
        import django
        from django.conf import settings
        from django.core.management import call_command

        django.setup()
        # As in production: no query log kept on every cursor, templates not in debug mode.
        # Set before anything (the system checks of migrate) builds the template engines.
        settings.DEBUG = False
        call_command("migrate", verbosity=0)
        yield f"PostgreSQL database {bench_name}" if bench_name else "SQLite, temporary"
    finally:
        if "django.db" in sys.modules:
            from django.db import connections

            connections.close_all()
        if bench_name:
            _postgres(bench_url, f'DROP DATABASE IF EXISTS "{bench_name}" WITH (FORCE)')
        shutil.rmtree(var_dir, ignore_errors=True)


def percentiles(samples_us: list[float]) -> dict[str, float]:
    """p50, p95, p99 and mean of timings in microseconds."""
    import statistics

    cuts = statistics.quantiles(samples_us, n=100)
    return {
        "p50": statistics.median(samples_us),
        "p95": cuts[94],
        "p99": cuts[98],
        "mean": statistics.fmean(samples_us),
    }
