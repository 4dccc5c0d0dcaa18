"""A host that keeps everything in memory: what the engine needs, and nothing of the portal.

It is a real implementation of ``flows.host.Host`` (as small as an agent's would be), so the
engine's tests show that a host needs no Django, database or broker.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

import connectors
import flows
from connectors.calendly.sandbox import seed
from tests.connectors.conftest import calendly_sandbox, calendly_sandbox_session  # noqa: F401
from tests.processflows.reliability.support import scripted_destination

DESTINATION_TOKEN = "dest-token-0123456789abcdef"


@dataclass
class StoredCredential:
    application: str
    name: str
    secrets: dict[str, str]
    fields: dict[str, str] = field(default_factory=dict)
    type: str = "rest"


@dataclass
class Target:
    """A flow whose Processflow URL a step subscribes."""

    url: str
    key: str = "target-signing-key-0123456789"
    subscriptions: list[dict] = field(default_factory=list)

    def signing_key(self) -> str:
        return self.key

    def subscribed(self, subscription) -> None:
        self.subscriptions.append(dict(subscription))


class MemoryHost:
    """Credentials by name, records in a list, an audit trail, and a lease that can be lost."""

    def __init__(self, base_urls: dict[str, str]):
        self.credentials: dict[str, StoredCredential] = {}
        self.records: list[flows.StepRecord] = []
        self.audit: list[dict[str, Any]] = []
        self.targets: dict[str, Target] = {}
        self.holding = True
        self.opened = 0
        self._runtime = connectors.Runtime(
            base_urls=base_urls,
            allowed_private_hosts={"127.0.0.1"},
            max_retries=0,
            connect_timeout=5,
            read_timeout=10,
        )

    # flows.definition.CredentialCatalog
    def find(self, ref):
        stored = self.credentials.get(ref) if isinstance(ref, str) else None
        if stored is None:
            return "Choose a credential configured on this host."
        return flows.CredentialInfo(ref, stored.name, stored.application)

    # flows.host.Host
    @contextlib.contextmanager
    def open_credential(self, ref, *, application, purpose):
        stored = self.credentials.get(ref)
        if stored is None:
            raise flows.CredentialUnavailable(f"No credential {ref!r} on this host.")
        self.opened += 1
        opened = flows.OpenedCredential(
            application=stored.application,
            credentials=connectors.Credentials(
                type=stored.type, fields=stored.fields, secrets=stored.secrets, key=ref
            ),
            secret_values=stored.secrets.values(),
        )
        try:
            yield opened
        finally:
            self.audit.append({"credential": ref, "purpose": purpose, **opened.outcome})

    def runtime(self, app):
        return self._runtime

    def callback_target(self, app, url):
        if not url.startswith("https://hooks.example/"):
            return None
        if url not in self.targets:
            raise flows.CallbackUnavailable("Deploy that processflow first.")
        return self.targets[url]

    def now(self):
        return datetime.now(UTC)

    def hold(self) -> bool:
        return self.holding

    def record_step(self, record: flows.StepRecord) -> None:
        self.records.append(flows.StepRecord(**vars(record)))


@pytest.fixture
def host(calendly_sandbox):  # noqa: F811 - the fixture imported above
    memory = MemoryHost({"calendly": calendly_sandbox.url})
    memory.credentials["calendly"] = StoredCredential(
        "calendly", "Sales", {"personal_access_token": seed.OWNER_TOKEN}
    )
    return memory


@pytest.fixture
def destination(host):
    """A loopback JSON API that answers 201, reachable with the ``rest`` credential."""
    with scripted_destination(201) as served:
        host.credentials["rest"] = StoredCredential(
            "rest",
            "Destination",
            {"token": DESTINATION_TOKEN},
            fields={"base_url": served.url, "auth_type": "bearer"},
        )
        yield served
