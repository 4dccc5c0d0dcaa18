"""Webhook intake at /hooks/<id>/: verify the signature over the raw body, store the event and
its outbox entry in one transaction, and answer 2xx only after that commit."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from connectors.calendly.webhooks import SIGNATURE_HEADER, signature
from portal.processflows.models import (
    Deployment,
    Outbox,
    RejectedDelivery,
    Run,
    RunStatus,
    TriggerEvent,
)
from portal.processflows.relay import relay_once
from tests.factories import every, make_credential, make_processflow
from tests.processflows.reliability.support import (
    Hook,
    delivery,
    deploy_hook,
    eager_tasks,
    signed,
)


@pytest.fixture
def relay(django_capture_on_commit_callbacks):
    """``relay()`` does what the relay process and a worker do with stored events: publish
    them, and run the tasks (here, inline)."""

    def publish_and_work() -> int:
        with eager_tasks(), django_capture_on_commit_callbacks(execute=True):
            return relay_once()

    return publish_and_work


@pytest.fixture
def hook(owner, acme) -> Hook:
    credential = make_credential(acme)
    return deploy_hook(make_processflow(acme, credential))


def stored(hook: Hook) -> int:
    return every(TriggerEvent).filter(deployment=hook.deployment).count()


def rejections(hook: Hook) -> list[tuple[int, str]]:
    return list(
        every(RejectedDelivery)
        .filter(deployment=hook.deployment)
        .values_list("status_code", "reason")
    )


def bad_signatures(hook: Hook) -> int:
    return every(Deployment).get(pk=hook.deployment.pk).bad_signature_count


# --- Accepting ---------------------------------------------------------------------------------


def test_a_signed_delivery_is_answered_202_with_its_event_and_outbox_entry_committed(
    transactional_db, owner, acme
):
    hook = deploy_hook(make_processflow(acme, make_credential(acme)))
    body = delivery(email="grace@example.com")
    from django.test import Client

    response = hook.post(Client(), body)

    assert response.status_code == 202
    event_id = response.json()["event"]
    # Another connection (another thread) sees both rows: they were committed before 202.
    seen = {}

    def look():
        seen["event"] = every(TriggerEvent).filter(pk=event_id).values_list("body", flat=True)[0]
        seen["outbox"] = Outbox.objects.filter(event_id=event_id, done_at=None).count()
        connection.close()

    thread = threading.Thread(target=look)
    thread.start()
    thread.join()
    assert bytes(seen["event"]) == body
    assert seen["outbox"] == 1


def test_an_accepted_event_keeps_its_name_and_the_headers_that_matter_but_no_credentials(
    client, hook
):
    body = delivery()
    headers = {**signed(hook.key, body), "Authorization": "Bearer abc", "Cookie": "s=1"}

    response = hook.post(client, body, headers=headers)

    assert response.status_code == 202
    event = every(TriggerEvent).get(pk=response.json()["event"])
    assert event.event_name == "invitee.created"
    assert event.source == TriggerEvent.Source.WEBHOOK
    assert SIGNATURE_HEADER.lower() in {name.lower() for name in event.headers}
    assert not {"authorization", "cookie"} & {name.lower() for name in event.headers}


def test_a_redelivery_of_one_event_is_stored_once_and_counted_as_a_duplicate(client, hook):
    body = delivery()
    first = hook.post(client, body, at=time.time() - 60)
    again = hook.post(client, body)  # the sender's retry: same body, signed afresh

    assert first.status_code == 202
    assert again.status_code == 200
    assert stored(hook) == 1
    assert every(TriggerEvent).get(deployment=hook.deployment).duplicates == 1
    assert Outbox.objects.filter(event__deployment=hook.deployment).count() == 1


def test_a_redelivered_event_is_processed_once(client, hook, relay):
    body = delivery(email="ada@example.com")
    assert hook.post(client, body).status_code == 202
    assert hook.post(client, body).status_code == 200

    relay()

    runs = every(Run).filter(processflow=hook.flow)
    assert [run.status for run in runs] == [RunStatus.SUCCEEDED]
    assert runs[0].output == {"email": "ada@example.com"}


def test_two_events_on_the_same_invitee_are_two_events(client, hook):
    invitee = json.loads(delivery())
    created = json.dumps(invitee).encode()
    canceled = json.dumps({**invitee, "event": "invitee.canceled"}).encode()

    assert hook.post(client, created).status_code == 202
    assert hook.post(client, canceled).status_code == 202
    assert stored(hook) == 2


def test_an_event_the_flow_does_not_subscribe_to_is_accepted_but_starts_no_run(client, hook, relay):
    response = hook.post(client, delivery("invitee.canceled"))
    relay()

    assert response.status_code == 202
    assert not every(Run).filter(processflow=hook.flow).exists()
    assert Outbox.objects.get(event_id=response.json()["event"]).done_at is not None


# --- Signatures --------------------------------------------------------------------------------


def _header(key: str, body: bytes, case: str) -> dict[str, str]:
    now = int(time.time())
    good = f"t={now},v1={signature(key, body, now)}"
    return {
        "wrong key": signed("not-the-key", body),
        "stale": signed(key, body, at=now - 181),
        "future": signed(key, body, at=now + 181),
        "absent": {},
        "empty": {SIGNATURE_HEADER: ""},
        "no v1": {SIGNATURE_HEADER: f"t={now}"},
        "no timestamp": {SIGNATURE_HEADER: f"v1={signature(key, body, now)}"},
        "timestamp not a number": {SIGNATURE_HEADER: f"t=soon,v1={signature(key, body, now)}"},
        "v1 not hex": {SIGNATURE_HEADER: f"t={now},v1=zz{'0' * 62}"},
        "repeated part": {SIGNATURE_HEADER: f"{good},t={now}"},
        "garbage": {SIGNATURE_HEADER: "\u00e9\u00e9\u00e9"},
    }[case]


@pytest.mark.parametrize(
    "case",
    [
        "wrong key",
        "stale",
        "future",
        "absent",
        "empty",
        "no v1",
        "no timestamp",
        "timestamp not a number",
        "v1 not hex",
        "repeated part",
        "garbage",
    ],
)
def test_a_delivery_without_a_valid_fresh_signature_is_refused_401_counted_and_not_stored(
    client, hook, case
):
    body = delivery()

    response = hook.post(client, body, headers=_header(hook.key, body, case))

    assert response.status_code == 401
    assert response.json()["status"] == "rejected"
    assert stored(hook) == 0
    assert bad_signatures(hook) == 1
    assert [status for status, _ in rejections(hook)] == [401]


def test_a_body_changed_after_signing_is_refused_401(client, hook):
    body = delivery(email="ada@example.com")
    headers = signed(hook.key, body)
    tampered = body.replace(b"ada@", b"eve@")

    response = hook.post(client, tampered, headers=headers)

    assert response.status_code == 401
    assert rejections(hook) == [(401, "the signature does not match the body")]
    assert stored(hook) == 0


def test_the_timestamp_tolerance_is_the_configured_one(client, hook, settings):
    settings.PORTAL_WEBHOOK_TOLERANCE_SECONDS = 10
    body = delivery()

    assert hook.post(client, body, at=time.time() - 30).status_code == 401
    assert hook.post(client, body, at=time.time() - 5).status_code == 202


def test_a_deployment_whose_subscription_has_no_key_yet_refuses_deliveries(client, owner, acme):
    flow = make_processflow(acme, make_credential(acme))
    deployment = Deployment.objects.create(
        organization=acme, processflow=flow, version=flow.versions.first()
    )
    hook = Hook(flow, deployment, "some-key")

    response = hook.post(client, delivery())

    assert response.status_code == 401
    assert "not registered" in response.json()["message"]
    assert stored(hook) == 0


def test_deliveries_signed_with_the_previous_deployments_key_are_accepted_during_the_grace(
    client, owner, acme, settings
):
    flow = make_processflow(acme, make_credential(acme))
    old = deploy_hook(flow, state="undeployed", undeployed_at=timezone.now())
    new = deploy_hook(flow)

    response = new.post(client, delivery(), key=old.key)

    assert response.status_code == 202
    assert every(TriggerEvent).get(pk=response.json()["event"]).deployment == new.deployment


def test_deliveries_signed_with_a_key_retired_before_the_grace_period_are_refused(
    client, owner, acme, settings
):
    settings.PORTAL_WEBHOOK_KEY_GRACE_SECONDS = 3600
    flow = make_processflow(acme, make_credential(acme))
    retired = timezone.now() - timedelta(hours=2)
    old = deploy_hook(flow, state="undeployed", undeployed_at=retired)
    new = deploy_hook(flow)

    response = new.post(client, delivery(), key=old.key)

    assert response.status_code == 401
    # The reason shown is the current deployment's, not the retired one's.
    assert rejections(new) == [(401, "the signature does not match the body")]


# --- What a server process remembers between deliveries -------------------------------------


def test_a_flow_undeployed_after_a_delivery_refuses_the_next_one_at_once(client, hook):
    assert hook.post(client, delivery(email="first@example.com")).status_code == 202
    every(Deployment).filter(pk=hook.deployment.pk).update(
        state="undeployed", undeployed_at=timezone.now()
    )

    response = hook.post(client, delivery(email="second@example.com"))

    assert response.status_code == 404
    assert stored(hook) == 1


def test_a_redeployed_flow_accepts_deliveries_signed_with_its_new_key_at_once(client, owner, acme):
    flow = make_processflow(acme, make_credential(acme))
    old = deploy_hook(flow)
    assert old.post(client, delivery(email="before@example.com")).status_code == 202
    every(Deployment).filter(pk=old.deployment.pk).update(
        state="undeployed", undeployed_at=timezone.now() - timedelta(days=2)
    )
    new = deploy_hook(flow)

    response = new.post(client, delivery(email="after@example.com"))

    assert response.status_code == 202
    assert every(TriggerEvent).get(pk=response.json()["event"]).deployment == new.deployment
    assert rejections(new) == []


# --- Bodies ------------------------------------------------------------------------------------

UNSTORABLE = "Body holds a NUL character or an unpaired surrogate."


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<xml>not json</xml>", "Body is not JSON."),
        (b"", "Body is not JSON."),
        (b'{"event": "invitee.created", "payload": {"email": "\xff\xfe"}}', "Body is not UTF-8."),
        (b'["invitee.created"]', "Body is not a JSON object."),
        (b'"invitee.created"', "Body is not a JSON object."),
        (b"null", "Body is not a JSON object."),
        (b"[" * 100_000 + b"]" * 100_000, "Body is not JSON."),
        (b'{"event": "invitee.created", "payload": {"a": "\\ud800"}}', UNSTORABLE),
        (b'{"event": "invitee.\\u0000created", "payload": {}}', UNSTORABLE),
        (b'{"event": "invitee.created", "payload": {"\\u0000": 1}}', UNSTORABLE),
        (b'{"event": "invitee.created"} trailing', "Body is not JSON."),
        (b'{"event": "invitee.created", "payload": {"score": NaN}}', "Body is not JSON."),
        (b'{"a": ' + b"[" * 100 + b"]" * 100 + b"}", "Body is nested deeper than 64 levels."),
    ],
    ids=[
        "xml",
        "empty",
        "latin-1",
        "array",
        "string",
        "null",
        "deeply nested",
        "lone surrogate",
        "NUL character",
        "NUL in a key",
        "trailing data",
        "NaN",
        "nested 100 deep",
    ],
)
def test_a_verified_but_malformed_body_is_refused_400_and_not_stored(client, hook, body, reason):
    response = hook.post(client, body)

    assert response.status_code == 400
    assert response.json()["message"] == reason
    assert rejections(hook) == [(400, reason)]
    assert stored(hook) == 0
    assert bad_signatures(hook) == 0


def test_a_malformed_body_with_a_bad_signature_is_refused_as_a_bad_signature(client, hook):
    response = hook.post(client, b"not json", headers=signed("not-the-key", b"not json"))

    assert response.status_code == 401
    assert bad_signatures(hook) == 1


def test_a_body_over_the_webhook_limit_is_refused_413_and_not_stored(client, hook, settings):
    settings.PORTAL_WEBHOOK_MAX_BYTES = 2048
    body = delivery(notes="x" * 2048)

    response = hook.post(client, body)

    assert response.status_code == 413
    assert [status for status, _ in rejections(hook)] == [413]
    assert stored(hook) == 0


def test_a_body_at_the_webhook_limit_is_accepted(client, hook, settings):
    body = delivery(notes="")
    body = delivery(notes="x" * (2048 - len(body)))
    assert len(body) == 2048
    settings.PORTAL_WEBHOOK_MAX_BYTES = 2048

    assert hook.post(client, body).status_code == 202


def test_a_body_over_the_request_limit_is_refused_413_before_it_is_read(client, hook, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 4096
    body = delivery(notes="x" * 8192)

    response = hook.post(client, body)

    assert response.status_code == 413
    assert stored(hook) == 0


# --- Addresses and methods ---------------------------------------------------------------------


def test_an_unknown_processflow_url_is_404(client, hook):
    body = delivery()
    response = client.post(
        "/hooks/no-such-hook/", data=body, content_type="application/json",
        headers=signed(hook.key, body),
    )  # fmt: skip

    assert response.status_code == 404
    assert not every(RejectedDelivery).exists()


def test_an_undeployed_processflow_url_is_404(client, hook):
    every(Deployment).filter(pk=hook.deployment.pk).update(
        state=Deployment.State.UNDEPLOYED, undeployed_at=timezone.now()
    )

    response = hook.post(client, delivery())

    assert response.status_code == 404
    assert stored(hook) == 0


def test_a_polling_processflow_has_no_webhook_url(client, owner, acme):
    credential = make_credential(acme)
    flow = make_processflow(
        acme,
        credential,
        name="Every minute",
        definition={
            "trigger": {"type": "polling", "schedule": {"every_seconds": 60}},
            "steps": [{"name": "tick", "type": "map", "mapping": {"at": "{{ trigger.tick }}"}}],
        },
    )
    hook = deploy_hook(flow)

    assert hook.post(client, delivery()).status_code == 404


@pytest.mark.parametrize("method", ["get", "put", "patch", "delete", "head"])
def test_only_post_is_accepted(client, hook, method):
    response = getattr(client, method)(hook.path)

    assert response.status_code == 405
    assert response["Allow"] == "POST"
