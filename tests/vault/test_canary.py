"""A canary token goes through a credential's whole life (create, validate, use, periodic
re-validation, delete) through the pages and through the API, and surfaces nowhere but in
the requests to Calendly: not in a page or an API answer, a log record at DEBUG, an SQL
statement, a database row, a Celery message, or the cache and broker storage; nor does any
hash of it that can be computed without a key appear in a cache or broker key's name."""

from __future__ import annotations

import hashlib
import logging
import shutil
import uuid
from pathlib import Path

import pytest
from celery import signals
from django.conf import settings as django_settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from connectors.calendly.sandbox import seed
from portal.vault import calls
from portal.vault.models import Credential
from portal.vault.tasks import revalidate_credential, revalidate_credentials
from tests.factories import every
from tests.processes import child_database_url as database_url
from tests.processes import purge_queues, run
from tests.vault.conftest import TOKEN_FIELD

MAINTENANCE_TASKS = {
    "portal.maintenance.revalidate_credentials",
    "portal.maintenance.revalidate_credential",
}


class Witness:
    """Everything the portal produced during a test, by where it was seen."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str]] = []  # (category, where, text)
        self.queries: CaptureQueriesContext | None = None

    def add(self, category: str, where: str, text) -> None:
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        self.seen.append((category, where, text if isinstance(text, str) else repr(text)))

    def response(self, where: str, response):
        """Keep an HTML page or API answer (body, headers, cookies) and return it."""
        self.add("answers", where, response.content)
        self.add("answers", f"{where} headers", repr(dict(response.headers)))
        self.add("answers", f"{where} cookies", response.cookies.output())
        return response

    def texts(self, category: str) -> list[str]:
        return [text for kind, _, text in self.seen if kind == category]

    def leaks(self, category: str, needle: str) -> list[str]:
        return [where for kind, where, text in self.seen if kind == category and needle in text]


@pytest.fixture
def canary(calendly) -> str:
    """A token no test has used before, accepted by the sandbox as the seed's owner."""
    token = f"CANARY-{uuid.uuid4().hex}-{uuid.uuid4().hex[:8]}"
    calendly.add_token(token, seed.OWNER_USER_UUID)
    return token


@pytest.fixture
def witness(transactional_db, caplog):
    """Records answers (added by the test), every log record at DEBUG from every logger,
    every SQL statement with its parameters, and every Celery message published."""
    purge_queues()
    caplog.set_level(logging.DEBUG)
    for name in list(logging.root.manager.loggerDict):
        if isinstance(logging.root.manager.loggerDict[name], logging.Logger):
            caplog.set_level(logging.DEBUG, logger=name)
    lonely = [  # loggers that do not propagate to the root, where caplog listens
        logger
        for logger in logging.root.manager.loggerDict.values()
        if isinstance(logger, logging.Logger) and not logger.propagate
    ]
    for logger in lonely:
        logger.addHandler(caplog.handler)
    witness = Witness()

    def published(sender=None, body=None, headers=None, exchange=None, routing_key=None, **kw):
        witness.add("messages", f"{sender} body", repr(body))
        witness.add("messages", f"{sender} headers", repr(headers))
        witness.add("messages", f"{sender} routing", repr((exchange, routing_key, kw)))

    signals.before_task_publish.connect(published, weak=False)
    with CaptureQueriesContext(connection) as witness.queries:
        yield witness
    signals.before_task_publish.disconnect(published)
    for logger in lonely:
        logger.removeHandler(caplog.handler)
    purge_queues()


def collect_logs(witness: Witness, caplog) -> None:
    witness.add("logs", "caplog text", caplog.text)
    for record in caplog.records:
        witness.add("logs", record.name, f"{record.getMessage()} {record.args!r}")
        if record.exc_text:
            witness.add("logs", f"{record.name} traceback", record.exc_text)


def dump_database(witness: Witness, moment: str) -> None:
    """Every row of every table, as the database holds it."""
    if connection.vendor == "postgresql" and shutil.which("pg_dump"):
        dump = run(
            ["pg_dump", "--data-only", "--no-owner", f"--dbname={database_url()}"],
            capture_output=True,
            check=True,
            timeout=120,
        ).stdout.decode("utf-8", "replace")
    elif connection.vendor == "sqlite":
        connection.ensure_connection()
        dump = "\n".join(connection.connection.iterdump())
    else:
        rows = []
        with connection.cursor() as cursor:
            for table in connection.introspection.table_names():
                cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608
                rows.extend(repr(row) for row in cursor.fetchall())
        dump = "\n".join(rows)
    witness.add("database", f"dump {moment}", dump)


def scan_storage(witness: Witness) -> None:
    """The broker's and the cache's own storage: every key of our Redis database in CI,
    the broker's and the cache's files in the embedded mode."""
    if django_settings.REDIS_URL:
        import redis

        client = redis.Redis.from_url(django_settings.REDIS_URL)
        readers = {
            b"string": client.get,
            b"list": lambda key: client.lrange(key, 0, -1),
            b"hash": client.hgetall,
            b"set": client.smembers,
            b"zset": lambda key: client.zrange(key, 0, -1),
        }
        for key in client.scan_iter(count=1000):
            kind = client.type(key)
            value = readers[kind](key) if kind in readers else b""
            witness.add("storage", f"redis {key!r}", repr(key) + repr(value))
            witness.add("keys", "redis", key)
    else:
        var = Path(django_settings.VAR_DIR)
        for folder in (var / "celery", var / "cache"):
            for path in folder.rglob("*"):
                if path.is_file():
                    witness.add("storage", str(path), path.read_bytes())
                    witness.add("keys", "file", str(path))


def republish_and_revalidate(witness: Witness) -> None:
    """What the scheduler does: the periodic task goes through the broker; running it queues
    one re-validation per credential (published too); one of those is run here."""
    revalidate_credentials.delay()
    assert revalidate_credentials.apply().get() >= 1
    for organization_id, pk in every(Credential).values_list("organization_id", "pk"):
        revalidate_credential.apply(args=[organization_id, pk])
    scan_storage(witness)


def use(credential_id: int) -> None:
    """Run an action and one that needs a resource function, as a processflow step would."""
    credential = every(Credential).select_related("data_key").get(pk=credential_id)
    assert calls.run_action(credential, "users/me", purpose="canary").ok
    result = calls.run_action(
        credential, "scheduled_events", filters=[("user", "~{GetUserUrl}~")], limit=5
    )
    assert result.ok, result.message
    assert result.items


def guessable_digests(canary: str) -> set[str]:
    """Hex digests anyone can compute from a guessed token, without a key: common hashes of
    it, and the unkeyed credential fingerprint cache keys used to carry."""
    raw = canary.encode()
    names = ("md5", "sha1", "sha224", "sha256", "sha384", "sha512", "blake2b", "blake2s")
    digests = {hashlib.new(name, raw).hexdigest() for name in names}
    digests |= {hashlib.new(name, raw).hexdigest() for name in ("sha3_256", "sha3_512")}
    fingerprint = hashlib.blake2b(digest_size=8, person=b"connectors-cred")
    fingerprint.update(b"rest")
    fingerprint.update(f"\0s{TOKEN_FIELD}\0{canary}".encode())
    return digests | {fingerprint.hexdigest()}


def assert_no_key_name_holds_a_hash_of(canary: str, witness: Witness) -> None:
    names = witness.texts("keys")
    if django_settings.REDIS_URL:  # the file cache names its files by a hash of the key
        assert any(":connectors:calendly:" in name for name in names)  # looked at real keys
    # Any prefix of 8 characters or more of a digest would confirm a guess.
    found = {name for name in names for d in guessable_digests(canary) if d[:8] in name}
    assert found == set()


def assert_hidden(witness: Witness, canary: str, calendly, caplog) -> None:
    assert_no_key_name_holds_a_hash_of(canary, witness)
    collect_logs(witness, caplog)
    statements = witness.queries.captured_queries
    witness.add("sql", "every statement", "\n".join(q["sql"] for q in statements))
    core = canary.split("-")[1]  # the random part: catches a truncated or re-prefixed token
    categories = ("answers", "logs", "sql", "database", "messages", "storage")
    assert all(witness.texts(category) for category in categories)
    leaks = {
        category: sorted({*witness.leaks(category, canary), *witness.leaks(category, core)})
        for category in categories
    }
    assert leaks == {key: [] for key in categories}
    # The checks above looked at real material.
    assert any("connectors.http" in text for text in witness.texts("logs"))
    sent = {where.split(" ")[0] for kind, where, _ in witness.seen if kind == "messages"}
    assert sent >= MAINTENANCE_TASKS
    # The one place the token must go: Calendly, as the bearer token of each request.
    exchanges = calendly.exchanges
    assert exchanges
    assert {e.request_headers.get("Authorization") for e in exchanges} == {f"Bearer {canary}"}
    assert all(e.status == 200 and e.user_uuid == seed.OWNER_USER_UUID for e in exchanges)


def test_the_canary_never_surfaces_through_the_pages(
    witness, canary, calendly, caplog, login, owner
):
    client = login(owner)
    apps = reverse("vault:apps", kwargs={"org": "acme"})
    new = reverse("vault:credential_new", kwargs={"org": "acme", "application": "calendly"})
    check = reverse("vault:credential_check", kwargs={"org": "acme", "application": "calendly"})
    form = {"type": "rest", "name": "Canary", TOKEN_FIELD: canary}

    witness.response("tree", client.get(apps))
    witness.response("form", client.get(f"{new}?type=rest", HTTP_HX_REQUEST="true"))
    checked = witness.response("validate", client.post(check, form, HTTP_HX_REQUEST="true"))
    assert b"Connected to Calendly as Olivia Owner" in checked.content
    refused = witness.response(
        "refused save", client.post(f"{new}?type=rest", {**form, "name": ""})
    )
    assert refused.status_code == 400
    saved = witness.response("save", client.post(f"{new}?type=rest", form, follow=True))
    assert b"Connection Saved Successfully! Connected to Calendly as" in saved.content
    credential = every(Credential).get(name="Canary")
    page = reverse("vault:credential", kwargs={"org": "acme", "credential_id": credential.pk})
    action = page + "{}/"
    witness.response("detail", client.get(page))
    witness.response("edit check", client.post(action.format("check"), {"name": "Canary"}))
    validated = witness.response(
        "revalidate", client.post(action.format("validate"), HTTP_HX_REQUEST="true")
    )
    assert b"alert success" in validated.content
    use(credential.pk)
    republish_and_revalidate(witness)
    witness.response("detail after use", client.get(page))
    dump_database(witness, "while the credential exists")
    witness.response("delete page", client.get(action.format("delete")))
    witness.response("deleted", client.post(action.format("delete"), follow=True))
    assert not every(Credential).exists()
    dump_database(witness, "after deletion")

    assert_hidden(witness, canary, calendly, caplog)


def test_the_canary_never_surfaces_through_the_api(
    witness, canary, calendly, caplog, api, acme, owner
):
    client = api(owner, acme)
    base = "/api/v1/organizations/acme/credentials/"
    body = {"application": "calendly", "name": "Canary", "secrets": {TOKEN_FIELD: canary}}

    witness.response("applications", client.get("/api/v1/applications/"))
    checked = witness.response("check", client.post(f"{base}check/", body, format="json"))
    assert checked.json()["ok"] is True
    refused = witness.response(
        "refused create", client.post(base, {**body, "name": ""}, format="json")
    )
    assert refused.status_code == 400
    created = witness.response("create", client.post(base, body, format="json"))
    assert created.status_code == 201
    item = f"{base}{created.json()['id']}/"
    witness.response("list", client.get(base))
    witness.response("retrieve", client.get(item))
    validated = witness.response("validate", client.post(f"{item}validate/"))
    assert validated.json()["ok"] is True
    witness.response("rename", client.patch(item, {"name": "Canary (renamed)"}, format="json"))
    use(created.json()["id"])
    republish_and_revalidate(witness)
    witness.response("events", client.get(f"{item}events/"))
    dump_database(witness, "while the credential exists")
    assert witness.response("delete", client.delete(item)).status_code == 204
    dump_database(witness, "after deletion")

    assert_hidden(witness, canary, calendly, caplog)
