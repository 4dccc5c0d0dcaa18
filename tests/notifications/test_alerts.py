"""Alerts: rules by e-mail and by signed outbound webhook, at most one alert per flow and
kind per quiet period, the private-network guard on webhook URLs, and the page that lists
what was sent."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.urls import reverse

from portal.notifications import delivery, services
from portal.notifications.alerts import raise_alert
from portal.notifications.models import Alert, AlertDelivery, AlertKind, AlertRule
from portal.processflows import alerting, execution, runs
from portal.processflows.models import RunStatus
from tests.factories import every, make_credential, make_event, make_processflow, owner_of
from tests.processflows.reliability.support import (
    deploy_hook,
    forward_steps,
    rest_credential,
    scripted_destination,
)

ALERTS = reverse("notifications:alerts", kwargs={"org": "acme"})


class Receiver:
    """A loopback webhook receiver that keeps each request's headers and raw body."""

    def __init__(self, status: int = 204):
        self.requests: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.requests.append({"headers": dict(self.headers.items()), "body": body})
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(settings):
    settings.PORTAL_ALLOWED_PRIVATE_HOSTS = ["127.0.0.1"]
    running = Receiver()
    yield running
    running.close()


def verified(secret: str, request: dict) -> bool:
    """The Standard Webhooks check a receiver makes."""
    headers = {k.lower(): v for k, v in request["headers"].items()}
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + request["body"]
    key = base64.b64decode(secret.removeprefix("whsec_"))
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(
        part.startswith("v1,") and hmac.compare_digest(part[3:], expected)
        for part in headers["webhook-signature"].split()
    )


def send_all() -> None:
    for pk in AlertDelivery.objects.filter(status="pending").values_list("pk", flat=True):
        delivery.deliver(pk)


def email_rule(acme, **kw):
    return services.create_rule(
        acme,
        actor=owner_of(acme),
        name=kw.pop("name", "On call"),
        channel="email",
        kinds=kw.pop("kinds", list(AlertKind.values)),
        email="oncall@acme.test",
    ).rule


def test_a_run_that_fails_for_good_is_mailed_to_the_rule_address(
    acme, owner, settings, monkeypatch
):
    email_rule(acme)
    monkeypatch.setenv("CALENDLY_API_BASE_URL", "http://127.0.0.1:9")
    settings.PORTAL_ALLOWED_PRIVATE_HOSTS = ["127.0.0.1"]
    with scripted_destination(400) as destination:
        rest = rest_credential(acme, destination.url)
        hook = deploy_hook(make_processflow(acme, make_credential(acme), steps=forward_steps(rest)))
        event = make_event(
            hook.deployment, {"event": "invitee.created", "payload": {"email": "a@b.c"}}
        )
        run = runs.start_run_for_event(event.organization_id, event.pk)
        assert execution.execute(run.organization_id, run.pk) == RunStatus.FAILED

    send_all()

    [message] = mail.outbox
    assert message.to == ["oncall@acme.test"]
    assert message.subject == f"[acme] Processflow 'Bookings': run #{run.pk} failed"
    assert "400" in message.body
    assert f"/o/acme/runs/{run.pk}/" in message.body


def test_an_outbound_webhook_alert_is_signed_the_standard_webhooks_way(acme, owner, receiver):
    created = services.create_rule(
        acme,
        actor=owner_of(acme),
        name="Pager",
        channel="webhook",
        kinds=["credential_invalid"],
        url=receiver.url,
    )
    raise_alert(
        acme.pk,
        kind="credential_invalid",
        subject="credential:1",
        title="Credential 'X' is invalid",
    )

    send_all()

    [request] = receiver.requests
    assert verified(created.secret, request)
    body = json.loads(request["body"])
    assert body["type"] == "alert.credential_invalid"
    assert body["data"]["title"] == "Credential 'X' is invalid"
    assert AlertDelivery.objects.get().status == "sent"


def test_a_tampered_body_does_not_verify(acme, owner, receiver):
    created = services.create_rule(
        acme, actor=owner_of(acme), name="Pager", channel="webhook", kinds=["run_failed"],
        url=receiver.url,
    )  # fmt: skip
    raise_alert(acme.pk, kind="run_failed", subject="processflow:1", title="t")
    send_all()

    [request] = receiver.requests
    assert not verified(created.secret, {**request, "body": request["body"] + b" "})


def test_the_signing_secret_is_stored_encrypted_and_shown_once(acme, owner, login, receiver):
    response = login(owner).post(
        ALERTS,
        {"name": "Pager", "channel": "webhook", "kinds": ["run_failed"], "url": receiver.url},
    )
    html = response.content.decode()
    rule = AlertRule.objects.for_tenant(acme).get()
    secret = html.split('<code id="secret-value">')[1].split("</code>")[0]

    assert secret.startswith("whsec_")
    assert secret not in rule.signing_secret_ciphertext
    assert secret not in login(owner).get(ALERTS).content.decode()


def test_one_alert_per_flow_and_kind_per_quiet_period(acme, owner):
    email_rule(acme)
    first = raise_alert(acme.pk, kind="run_failed", subject="processflow:7", title="failed")
    again = raise_alert(acme.pk, kind="run_failed", subject="processflow:7", title="failed")
    other_kind = raise_alert(acme.pk, kind="subscription", subject="processflow:7", title="s")
    other_flow = raise_alert(acme.pk, kind="run_failed", subject="processflow:8", title="f")
    send_all()

    assert first is not None
    assert again is None
    assert other_kind is not None
    assert other_flow is not None
    assert every(Alert).get(pk=first.pk).repeats == 1
    assert len(mail.outbox) == 3


def test_after_the_quiet_period_the_same_trouble_alerts_again(acme, owner, settings):
    email_rule(acme)
    raise_alert(acme.pk, kind="run_failed", subject="processflow:7", title="failed")
    every(Alert).update(created_at="2000-01-01T00:00:00Z")

    assert raise_alert(acme.pk, kind="run_failed", subject="processflow:7", title="x") is not None


def test_a_rule_hears_only_the_kinds_it_chose(acme, owner):
    email_rule(acme, kinds=["credential_invalid"])
    raise_alert(acme.pk, kind="run_failed", subject="processflow:7", title="failed")
    send_all()

    assert mail.outbox == []


def test_a_webhook_url_on_a_private_network_is_refused(acme, owner, settings):
    settings.PORTAL_ALLOWED_PRIVATE_HOSTS = []
    with pytest.raises(ValidationError) as refused:
        services.create_rule(
            acme, actor=owner_of(acme), name="Pager", channel="webhook", kinds=["run_failed"],
            url="http://127.0.0.1:8080/hook",
        )  # fmt: skip

    assert "url" in refused.value.message_dict


def test_a_viewer_cannot_create_a_rule(acme, viewer, login):
    response = login(viewer).post(
        ALERTS, {"name": "x", "channel": "email", "kinds": ["run_failed"], "email": "a@b.c"}
    )

    assert response.status_code == 403
    assert not every(AlertRule).exists()


def test_the_alerts_page_lists_what_was_sent_and_to_whom(acme, owner, login):
    email_rule(acme)
    raise_alert(
        acme.pk,
        kind="credential_invalid",
        subject="credential:3",
        title="Credential 'S' is invalid",
    )
    send_all()

    html = login(owner).get(ALERTS).content.decode()

    assert "Credential &#x27;S&#x27; is invalid" in html
    assert "Sent</span> E-mail oncall@acme.test" in html


def test_another_organizations_rule_is_not_found(acme, globex, outsider, login, owner):
    rule = email_rule(acme)
    url = reverse("notifications:toggle", kwargs={"org": "globex", "rule_id": rule.pk})

    assert login(outsider).post(url).status_code == 404


def test_a_failing_subscription_alerts_once(acme, owner):
    email_rule(acme)
    hook = deploy_hook(make_processflow(acme, make_credential(acme)))
    alerting.subscription_trouble(hook.deployment, "the subscription was disabled")
    alerting.subscription_trouble(hook.deployment, "the subscription was disabled")
    send_all()

    [message] = mail.outbox
    assert "webhook subscription needs attention" in message.subject
