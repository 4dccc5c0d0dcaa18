"""Status that tells the truth: Save says what it found, Validate warns about a plan that
cannot use webhooks, and a call answered 401 marks its credential invalid."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from connectors.calendly.sandbox import seed
from portal.processflows import execution, runs
from portal.processflows.models import RunStatus
from portal.vault import calls
from portal.vault.models import Credential, CredentialStatus
from tests.factories import every, make_credential, make_event, make_processflow
from tests.processflows.reliability.support import (
    deploy_hook,
    forward_steps,
    reach,
    rest_credential,
    scripted_destination,
)
from tests.vault.conftest import REJECTED, TOKEN_FIELD

NEW = reverse("vault:credential_new", kwargs={"org": "acme", "application": "calendly"})
CHECK = reverse("vault:credential_check", kwargs={"org": "acme", "application": "calendly"})
FREE_PLAN = "This account is on a free Calendly plan"


def messages_of(html: str) -> list[tuple[str, str]]:
    return re.findall(r'<li class="message ([^"]*)" role="status">([^<]*)</li>', html)


def save(client, token: str):
    return client.post(
        f"{NEW}?type=rest", {"type": "rest", "name": "Sales", TOKEN_FIELD: token}, follow=True
    )


def test_saving_a_rejected_token_says_saved_but_not_valid_with_the_reason(
    acme, login, owner, calendly
):
    html = save(login(owner), "not-a-calendly-token").content.decode()

    assert messages_of(html) == [("error", f"Saved, but not valid: {REJECTED}")]
    assert "Saved Successfully" not in html
    assert Credential.objects.for_tenant(acme).get().status == CredentialStatus.INVALID


def test_after_save_the_list_shows_the_credential_valid_and_when(acme, login, owner, calendly):
    client = login(owner)
    client.post(CHECK, {"type": "rest", "name": "Sales", TOKEN_FIELD: seed.OWNER_TOKEN})

    html = save(client, seed.OWNER_TOKEN).content.decode()

    credential = Credential.objects.for_tenant(acme).get()
    assert credential.status == CredentialStatus.VALID
    assert credential.validated_at is not None
    assert "Not validated" not in html
    assert '<span class="badge valid" title="Connected to Calendly' in html


def test_validate_warns_that_a_free_calendly_plan_cannot_use_webhooks(login, owner, calendly):
    html = (
        login(owner)
        .post(CHECK, {"type": "rest", "name": "Fred", TOKEN_FIELD: seed.FREE_PLAN_TOKEN})
        .content.decode()
    )

    assert "Connected to Calendly as Fred Free" in html
    assert 'class="alert warning validation-warning"' in html
    assert FREE_PLAN in html
    assert "Professional plan" in html


def test_a_paid_plan_validates_without_a_plan_warning(login, owner, calendly):
    html = (
        login(owner)
        .post(CHECK, {"type": "rest", "name": "Olivia", TOKEN_FIELD: seed.OWNER_TOKEN})
        .content.decode()
    )

    assert "Connected to Calendly as Olivia Owner" in html
    assert FREE_PLAN not in html


def test_saving_a_free_plan_token_warns_beside_the_success_message(acme, login, owner, calendly):
    html = save(login(owner), seed.FREE_PLAN_TOKEN).content.decode()

    kinds = [kind for kind, _ in messages_of(html)]
    assert kinds == ["success", "warning"]
    assert FREE_PLAN in messages_of(html)[1][1]


def test_an_action_answered_401_marks_its_credential_invalid(acme, calendly):
    credential = make_credential(acme, token="revoked-token-0123456789")
    every(Credential).filter(pk=credential.pk).update(status=CredentialStatus.VALID)
    credential.refresh_from_db()

    outcome = calls.run_action(credential, "users/me")

    assert outcome.status == 401
    credential.refresh_from_db()
    assert credential.status == CredentialStatus.INVALID
    assert credential.status_message == REJECTED


@pytest.fixture
def reachable(monkeypatch, settings, calendly_sandbox):
    reach(monkeypatch, settings, calendly_sandbox)


def test_a_run_step_answered_401_marks_its_credential_invalid_on_manage_app(
    acme, owner, login, reachable
):
    calendly_credential = make_credential(acme)
    with scripted_destination(401) as destination:
        rest = rest_credential(acme, destination.url, token="dest-token-0123456789abcdef")
        every(Credential).filter(pk=rest.pk).update(status=CredentialStatus.VALID)
        hook = deploy_hook(make_processflow(acme, calendly_credential, steps=forward_steps(rest)))
        event = make_event(
            hook.deployment, {"event": "invitee.created", "payload": {"email": "a@example.com"}}
        )
        run = runs.start_run_for_event(event.organization_id, event.pk)

        assert execution.execute(run.organization_id, run.pk) == RunStatus.FAILED

    rest.refresh_from_db()
    assert rest.status == CredentialStatus.INVALID
    assert "401" in rest.status_message
    html = login(owner).get(reverse("vault:apps", kwargs={"org": "acme"})).content.decode()
    row = re.search(r"<tr[^>]*>(?:(?!</tr>).)*Destination(?:(?!</tr>).)*</tr>", html, re.S)
    assert row is not None
    assert '<span class="badge invalid"' in row.group(0)
