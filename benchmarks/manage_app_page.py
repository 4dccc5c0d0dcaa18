"""Manage > App (``GET /o/<org>/manage/apps/``) with many credentials: SQL queries and time.

On a throwaway database (see ``benchmarks/_django.py``) creates one organization per size
(10, 100 and 1,000 credentials by default), each credential sealed as the vault does and
inserted in bulk, and a member of all of them. Logged in as that member, a
``django.test.Client`` requests each organization's page: the SQL queries of one request
(``CaptureQueriesContext``), then the median and p95 time of R requests after a warm-up.

    .venv/bin/python benchmarks/manage_app_page.py [--sizes 10,100,1000] [-r 20] [--json]

With no environment it runs on SQLite in a temporary directory; with ``DATABASE_URL`` set, on a
``<name>_bench`` PostgreSQL database created and dropped for the run. The test client keeps
one database connection, so connecting is not part of the time.
Target: the same number of queries whatever the number of credentials.
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import sys
import time

from _django import percentiles, throwaway_django


def make_organization(size: int, user) -> str:
    """An organization with ``size`` Calendly credentials and ``user`` as a member; its slug."""
    from portal.tenancy.models import Membership, Organization, Role
    from portal.vault.keys import active_data_key, seal_secrets
    from portal.vault.models import Credential, CredentialStatus

    organization = Organization.objects.create(name=f"Bench {size}", slug=f"bench-{size}")
    Membership.objects.create(organization=organization, user=user, role=Role.MEMBER)
    data_key = active_data_key(organization)
    rows = []
    for n in range(size):
        credential = Credential(
            organization=organization, application="calendly", name=f"Team {n:04d}",
            status=CredentialStatus.VALID,
            account={"name": f"User {n}", "email": f"user{n}@example.com"},
        )  # fmt: skip
        seal_secrets(credential, {"personal_access_token": secrets.token_urlsafe(32)}, data_key)
        rows.append(credential)
    Credential.objects.bulk_create(rows, batch_size=1000)
    return organization.slug


def measure_page(client, url: str, requests: int) -> dict[str, object]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    try:
        client.get(url)  # warm-up; also the session's first write of the current organization
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url)
    except Exception as error:  # the page is broken: report why, measure the other sizes
        return {"error": f"{type(error).__name__}: {error}"}
    # Read now: the next request's request_started signal empties the connection's query log.
    sql = [query["sql"] for query in queries.captured_queries]
    timings = []
    for _ in range(requests):
        started = time.perf_counter_ns()
        client.get(url)
        timings.append((time.perf_counter_ns() - started) / 1e6)
    figures = percentiles(timings)
    return {
        "status": response.status_code,
        "bytes": len(response.content),
        "credentials_shown": len(set(re.findall(rb"Team \d+", response.content))),
        "queries": len(sql),
        "sql": sql,
        "median_ms": figures["p50"],
        "p95_ms": figures["p95"],
    }


def measure(sizes: list[int], requests: int) -> dict[str, object]:
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.urls import reverse

    user = get_user_model().objects.create_user(email="member@example.com", password=None)
    client = Client(SERVER_NAME="localhost")  # a host the settings allow, as a browser's would
    client.force_login(user)
    pages = {}
    for size in sizes:
        url = reverse("vault:apps", kwargs={"org": make_organization(size, user)})
        pages[size] = measure_page(client, url, requests)
    counts = {page["queries"] for page in pages.values() if "queries" in page}
    return {
        "requests": requests,
        "pages": pages,
        "constant_queries": len(counts) == 1 and all("queries" in p for p in pages.values()),
    }


def table(report: dict[str, object], database: str) -> str:
    lines = [
        f"GET /o/<org>/manage/apps/ as a member, {report['requests']} requests per size, "
        f"{database}",
        "",
        f"{'credentials':>11}{'shown':>7}{'status':>8}{'KiB':>6}{'queries':>9}"
        f"{'median ms':>11}{'p95 ms':>9}",
    ]
    for size, page in report["pages"].items():
        if "error" in page:
            lines.append(f"{size:>11}  error: {page['error']}")
            continue
        lines.append(
            f"{size:>11}{page['credentials_shown']:>7}{page['status']:>8}"
            f"{page['bytes'] / 1024:>6.0f}{page['queries']:>9}"
            f"{page['median_ms']:>11.1f}{page['p95_ms']:>9.1f}"
        )
    verdict = "met" if report["constant_queries"] else "NOT met"
    lines.append(f"\ntarget: the same number of queries for every size: {verdict}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", default="10,100,1000", help="credentials per organization (default 10,100,1000)"
    )
    parser.add_argument("-r", "--requests", type=int, default=20, help="timed requests per size")
    parser.add_argument("--json", action="store_true", help="print the report (with SQL) as JSON")
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",")]

    with throwaway_django() as database:
        report = measure(sizes, args.requests)
    report["database"] = database
    print(json.dumps(report, indent=2) if args.json else table(report, database))
    return 0


if __name__ == "__main__":
    sys.exit(main())
