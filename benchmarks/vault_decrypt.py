"""What decrypting a stored credential costs, with the organization's data key cached.

On a throwaway database (see ``benchmarks/_django.py``) creates an organization and one
Calendly credential through ``portal.vault.services.create_credential``, loads it the way the
portal does (``select_related("data_key")``, so no query while decrypting) and, after a
warm-up, times N calls of ``portal.vault.keys.open_secrets`` one by one. For comparison:

* cold: the data-key cache cleared before each call, so the data key is unwrapped under the
  key-encryption key too (the first use of an organization's key in a process);
* seal: ``portal.vault.keys.seal_secrets`` of the same secret, data key cached.

    .venv/bin/python benchmarks/vault_decrypt.py [-n 20000] [--json]

With no environment it runs on SQLite in a temporary directory; with ``DATABASE_URL`` set, on a
``<name>_bench`` PostgreSQL database created and dropped for the run.
Target: p95 of a decrypt with the data key cached under 50 µs.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import time
from collections.abc import Callable

from _django import percentiles, throwaway_django

TARGET_P95_US = 50.0


def sample(call: Callable[[], object], n: int, before: Callable[[], object] | None = None):
    """Timings of ``n`` calls in microseconds; ``before`` runs untimed ahead of each call."""
    timings = []
    for _ in range(n):
        if before is not None:
            before()
        started = time.perf_counter_ns()
        call()
        timings.append((time.perf_counter_ns() - started) / 1000)
    return timings


def measure(n: int) -> dict[str, object]:
    from portal.tenancy.models import Organization
    from portal.vault.audit import Actor
    from portal.vault.keys import data_key_cache, open_secrets, seal_secrets
    from portal.vault.models import Credential
    from portal.vault.services import create_credential

    organization = Organization.objects.create(name="Bench", slug="bench")
    token = secrets.token_urlsafe(200)  # about the length of a Calendly personal access token
    created = create_credential(
        organization, actor=Actor.system("benchmark"), application="calendly", name="bench",
        secrets={"personal_access_token": token},
    )  # fmt: skip
    credential = (
        Credential.objects.for_tenant(organization).select_related("data_key").get(pk=created.pk)
    )
    unsaved = Credential(organization=organization, application="calendly", name="sealed")

    def seal() -> None:
        seal_secrets(unsaved, {"personal_access_token": token}, credential.data_key)

    def decrypt() -> None:
        open_secrets(credential)

    sample(decrypt, max(1000, n // 10))  # warm-up: caches, allocator, branch predictors
    sample(seal, max(1000, n // 10))
    results = {
        "cached": percentiles(sample(decrypt, n)),
        "cold": percentiles(sample(decrypt, n, before=data_key_cache.clear)),
        "seal": percentiles(sample(seal, n)),
    }
    return {
        "iterations": n,
        "secret_fields": len(credential.secret_values),
        "secret_length": len(token),
        "us": results,
        "target_p95_us": TARGET_P95_US,
        "within_target": results["cached"]["p95"] < TARGET_P95_US,
    }


LABELS = {
    "cached": "open_secrets, data key cached",
    "cold": "open_secrets, cache cleared each call",
    "seal": "seal_secrets, data key cached",
}


def table(report: dict[str, object], database: str) -> str:
    lines = [
        f"{report['iterations']} calls each, one secret field of {report['secret_length']} "
        f"characters, {database}",
        "",
        f"{'operation':<40}{'p50':>8}{'p95':>8}{'p99':>8}{'mean':>8}   (µs)",
    ]
    for name, label in LABELS.items():
        figures = report["us"][name]
        lines.append(f"{label:<40}" + "".join(f"{figures[k]:>8.1f}" for k in figures))
    verdict = "met" if report["within_target"] else "NOT met"
    lines.append(f"\ntarget: cached p95 < {TARGET_P95_US:.0f} µs: {verdict}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=20000, help="calls per operation (default 20000)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)

    with throwaway_django() as database:
        report = measure(args.n)
    report["database"] = database
    print(json.dumps(report, indent=2) if args.json else table(report, database))
    return 0


if __name__ == "__main__":
    sys.exit(main())
