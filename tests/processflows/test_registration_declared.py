"""Registration reads what an application declares, nothing else: here an application (a
connector folder made by the test, with a sandbox on the kit) that makes the signing secret
itself and answers it when the subscription is created, as some applications do. The portal
stores that secret, encrypted, and verifies the deliveries with it."""

from __future__ import annotations

import sys
import textwrap

import pytest

import connectors
from portal.applications import deliveries
from portal.processflows import services, tasks
from portal.processflows.models import RegistrationState
from portal.processflows.signing import signing_key
from tests.factories import make_credential, make_processflow, owner_of

DECLARATION = '''
"""An application that makes its own webhook signing secrets (exists only for a test)."""
from connectors import kit
from connectors.sandbox import Sandbox, route

LIST = {"type": "array", "items": {"type": "string"}}
action = lambda name, method, path, *params: kit.Action(
    name=name, label=name, method=method, path=path,
    params=tuple(kit.Param(p, "path" if "{" + p + "}" in path else "body",
                           LIST if p == "events" else {"type": "string"}) for p in params))
connector = kit.Connector(
    name="acme_hooks", display_name="Acme Hooks", base_url="http://127.0.0.1:9",
    credential_types=[kit.token("token", "API token")],
    actions=[action("me", "GET", "/me"), action("create_hook", "POST", "/hooks", "url", "events"),
             action("list_hooks", "GET", "/hooks"),
             action("delete_hook", "DELETE", "/hooks/{hook_id}", "hook_id")],
    validation_action="me", account=kit.account(uri="id"),
    webhooks=kit.ActionWebhooks(
        events=["thing.created"], create="create_hook", list="list_hooks", delete="delete_hook",
        body={"url": "{url}", "events": "{events}"}, signing_key_by="application",
        signing_key_path="secret", shape=kit.SubscriptionShape(uri="href"),
        signature=kit.HmacSignature("X-Acme-Signature"), event_name=kit.EventName(body="event"),
        dedupe=kit.DedupeKey("acme", header="X-Acme-Delivery")))


class AcmeSandbox(Sandbox):
    def seed(self):
        self.tokens, self.hooks = {"tok-acme": "ada"}, []

    @route("GET", "/me")
    def me(self, request, user):
        return {"id": user}

    @route("POST", "/hooks")
    def create(self, request, user):
        data, number = self.body(request), str(len(self.hooks) + 1)
        hook = {"id": number, "href": f"{self.url}/hooks/{number}", "url": data["url"],
                "events": data["events"], "state": "active", "secret": f"made-by-acme-{number}"}
        self.hooks.append(hook)
        return hook

    @route("GET", "/hooks")
    def list(self, request, user):
        return [{k: v for k, v in h.items() if k != "secret"} for h in self.hooks]

    @route("DELETE", "/hooks/{hook_id}")
    def delete(self, request, user, hook_id):
        self.hooks.remove(self.one(self.hooks, id=hook_id))
        return None
'''


@pytest.fixture
def acme_hooks(tmp_path, monkeypatch, settings):
    """The application installed as a folder outside the repository, its sandbox running."""
    package = tmp_path / "connectors" / "acme_hooks"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(textwrap.dedent(DECLARATION))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(connectors, "__path__", list(connectors.__path__))
    connectors.refresh()
    assert connectors.get_connector("acme_hooks").webhooks.signing_key_by == "application"
    from connectors.acme_hooks import AcmeSandbox

    settings.PORTAL_BASE_URL = "http://127.0.0.1:9"
    with AcmeSandbox() as sandbox:
        monkeypatch.setenv("ACME_HOOKS_API_BASE_URL", sandbox.url)
        yield sandbox
    for name in [m for m in sys.modules if m.startswith("connectors.acme_hooks")]:
        monkeypatch.delitem(sys.modules, name)
    connectors.refresh()


def test_the_secret_an_application_makes_is_stored_and_verifies_its_deliveries(
    acme_hooks, acme, owner
):
    credential = make_credential(acme, application="acme_hooks", secrets={"token": "tok-acme"})
    definition = {
        "trigger": {"type": "webhook", "application": "acme_hooks", "credential": credential.pk,
                    "events": ["thing.created"]},
        "steps": [{"name": "note", "type": "map", "mapping": {"id": "{{ trigger.id }}"}}],
    }  # fmt: skip
    flow = make_processflow(acme, credential, definition=definition)

    deployment = services.deploy(acme, actor=owner_of(acme), processflow_id=flow.pk)
    tasks.register_subscription(acme.pk, deployment.pk)
    deployment.refresh_from_db()

    assert deployment.registration_state == RegistrationState.ACTIVE, (
        deployment.registration_message
    )
    assert deployment.subscription_uri == f"{acme_hooks.url}/hooks/1"
    key = signing_key(deployment, purpose="a test")
    assert key == "made-by-acme-1"
    body = b'{"event": "thing.created", "id": 7}'
    signature = connectors.get_connector("acme_hooks").webhooks.signature.sign(key, body)
    verification = deliveries.verify_delivery(
        "acme_hooks", headers={"X-Acme-Signature": signature}, raw_body=body, signing_key=key,
        tolerance=60,
    )  # fmt: skip
    assert verification.ok
    assert "made-by-acme" not in deployment.registration_message
