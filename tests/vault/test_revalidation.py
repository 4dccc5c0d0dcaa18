"""Periodic re-validation with a real Celery worker: ``portal.maintenance.revalidate_credentials``
queues one check per credential, so a token revoked at Calendly turns invalid (with Calendly's
401 message) before a processflow fails on it, while a good one stays valid."""

from __future__ import annotations

import uuid

import pytest
from celery import signals

from connectors.calendly.sandbox import seed
from portal.vault.models import Credential, CredentialEvent, CredentialStatus
from portal.vault.tasks import revalidate_credential, revalidate_credentials
from tests.factories import every, make_credential
from tests.processes import purge_queues, start_worker, wait_for
from tests.vault.conftest import REJECTED

pytestmark = pytest.mark.services


@pytest.fixture
def worker(transactional_db, calendly):
    purge_queues()
    process = start_worker(queues="maintenance", extra_env={"CALENDLY_API_BASE_URL": calendly.url})
    yield process
    process.stop()
    purge_queues()


def checked(*credentials) -> bool:
    """Whether the periodic validation (not the one right after saving) checked them all."""
    return all(
        every(CredentialEvent)
        .filter(credential_id=c.pk, action="validated", actor_label="system: periodic validation")
        .exists()
        for c in credentials
    )


def test_the_periodic_task_queues_one_revalidation_per_credential(acme):
    credentials = [make_credential(acme, name=f"Credential {n}") for n in range(3)]
    published = []

    def record(sender=None, body=None, **kwargs):
        published.append((sender, body[0] if isinstance(body, tuple) else body))

    signals.before_task_publish.connect(record, weak=False)
    try:
        purge_queues()
        count = revalidate_credentials.apply().get()
    finally:
        signals.before_task_publish.disconnect(record)
        purge_queues()

    assert count == 3
    assert sorted(published) == sorted(
        ("portal.maintenance.revalidate_credential", (c.organization_id, c.pk)) for c in credentials
    )


def test_a_revalidation_names_the_credentials_organization_and_reads_no_other(acme, globex):
    credential = make_credential(acme)

    assert revalidate_credential(globex.pk, credential.pk) is None
    # Messages queued before they carried the organization: skipped (the periodic
    # re-validation checks the credential anyway).
    assert revalidate_credential(credential.pk) is None
    assert revalidate_credential(credential.pk, "validation after saving") is None
    assert not every(CredentialEvent).filter(action="validated").exists()


def test_a_token_revoked_at_calendly_turns_invalid_and_a_good_one_stays_valid(
    worker, calendly, acme
):
    revoked_token = f"eyJhbGciOiJFUzI1NiJ9.revoked-{uuid.uuid4().hex}.c2lnbmF0dXJl"
    calendly.add_token(revoked_token, seed.ADMIN_USER_UUID)
    good = make_credential(acme, name="Good")
    revoked = make_credential(acme, name="Revoked", token=revoked_token)
    every(Credential).update(status=CredentialStatus.VALID)
    calendly.revoke_token(revoked_token)

    revalidate_credentials.delay()

    wait_for(
        lambda: checked(good, revoked),
        timeout=60,
        message=f"the worker did not re-validate both credentials:\n{worker.output()}",
    )
    good.refresh_from_db()
    revoked.refresh_from_db()
    assert (revoked.status, revoked.status_message) == (CredentialStatus.INVALID, REJECTED)
    assert good.status == CredentialStatus.VALID
    assert good.account["email"] == "olivia.owner@example.com"
    event = every(CredentialEvent).filter(credential=revoked, action="validated").latest("pk")
    assert (event.actor, event.actor_label) == (None, "system: periodic validation")
    assert ("/users/me", 401) in {(e.path, e.status) for e in calendly.exchanges}


def test_an_outage_during_periodic_revalidation_marks_nothing_invalid(worker, calendly, acme):
    credential = make_credential(acme)
    every(Credential).update(status=CredentialStatus.VALID)
    calendly.inject_fault("/users/me", "status", times=10, status=503)

    revalidate_credentials.delay()

    wait_for(
        lambda: checked(credential),
        timeout=60,
        message=f"the worker did not re-validate the credential:\n{worker.output()}",
    )
    credential.refresh_from_db()
    assert credential.status == CredentialStatus.VALID
    assert credential.status_message.startswith("Calendly could not be reached: ")


def test_a_saved_credential_is_validated_right_after_saving(worker, calendly, acme):
    credential = make_credential(acme, name="Just saved")

    wait_for(
        lambda: every(Credential).get(pk=credential.pk).status == CredentialStatus.VALID,
        timeout=60,
        message=f"the worker did not validate the saved credential:\n{worker.output()}",
    )
    event = every(CredentialEvent).get(credential=credential, action="validated")
    assert event.actor_label == "system: validation after saving"
