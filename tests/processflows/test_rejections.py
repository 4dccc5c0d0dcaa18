"""Refused deliveries are written down, but only so many a minute per deployment: anyone who
knows a Processflow URL can send unsigned requests, and must not be able to fill the database
with them. The rest are counted, and the count is shown where rejections are listed."""

from __future__ import annotations

import re
import threading
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.utils import timezone

from portal.processflows import rejections
from portal.processflows.models import Deployment, RejectedDelivery
from tests.factories import every, make_credential, make_processflow
from tests.processflows.reliability.support import Hook, delivery, deploy_hook

CAP = 3
UNSIGNED = {"Content-Type": "application/json"}


@pytest.fixture
def cap(settings):
    settings.PORTAL_REJECTED_DELIVERIES_PER_MINUTE = CAP
    return CAP


@pytest.fixture
def hook(owner, acme) -> Hook:
    return deploy_hook(make_processflow(acme, make_credential(acme)))


def written(hook: Hook) -> tuple[list[RejectedDelivery], list[RejectedDelivery]]:
    """(rows for single rejections, rows standing for the rest of a minute)."""
    rows = list(every(RejectedDelivery).filter(deployment=hook.deployment))
    return (
        [r for r in rows if r.unstored_minute is None],
        [r for r in rows if r.unstored_minute is not None],
    )


def unstored_shown(client, hook: Hook) -> int:
    """The counts the processflow's page shows for refusals that were not stored."""
    html = client.get(f"/o/acme/processflows/{hook.flow.pk}/").content.decode()
    return sum(int(n) for n in re.findall(r"and (\d+) more refused in the minute", html))


def test_only_so_many_refused_deliveries_a_minute_are_stored_and_the_rest_counted(
    client, hook, cap, login, owner
):
    sent = 4 * cap + 2
    answers = [hook.post(client, delivery(), headers=UNSIGNED) for _ in range(sent)]

    assert {a.status_code for a in answers} == {401}
    assert all(a.json()["status"] == "rejected" for a in answers)
    single, standing = written(hook)
    # The requests may straddle a minute boundary: per minute, `cap` rows and one for the rest.
    assert cap <= len(single) <= 2 * cap
    assert 1 <= len(standing) <= 2
    assert every(Deployment).get(pk=hook.deployment.pk).bad_signature_count == len(single)
    assert len(single) + unstored_shown(login(owner), hook) == sent


def test_the_count_of_a_finished_minute_is_written_to_its_row(client, hook, cap, login, owner):
    sent = 3 * cap
    for _ in range(sent):
        hook.post(client, delivery(), headers=UNSIGNED)
    later = timezone.now() + timedelta(minutes=2)

    rows = rejections.with_unstored_counts(
        every(RejectedDelivery).filter(deployment=hook.deployment), now=later
    )

    single, standing = written(hook)
    assert all(r.unstored_count for r in standing)
    assert len(single) + sum(r.unstored_count for r in standing) == sent
    assert sum(r.unstored for r in rows if r.unstored_minute) == sent - len(single)
    for row in standing:  # the counters are gone: the page still knows
        cache.delete(f"intake-rejections:{row.deployment_id}:{row.unstored_minute.timestamp():.0f}")
    assert unstored_shown(login(owner), hook) == sent - len(single)


def test_a_minute_whose_count_was_lost_still_says_more_were_refused(hook, login, owner):
    RejectedDelivery.objects.create(
        organization_id=hook.deployment.organization_id,
        deployment=hook.deployment,
        reason="More than 20 refused in this minute: the rest are counted, not stored.",
        status_code=401,
        size=0,
        unstored_minute=timezone.now() - timedelta(days=30),
    )

    html = login(owner).get("/o/acme/events/").content.decode()

    assert "More refused in the minute from" in html


def test_many_web_workers_at_once_store_no_more_than_the_cap(transactional_db, owner, acme, cap):
    hook = deploy_hook(make_processflow(acme, make_credential(acme)))
    threads, per_thread = 8, 5
    statuses = []

    def send():
        client = Client()
        try:
            for _ in range(per_thread):
                statuses.append(hook.post(client, delivery(), headers=UNSIGNED).status_code)
        finally:
            connection.close()

    workers = [threading.Thread(target=send) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    assert statuses == [401] * threads * per_thread
    single, standing = written(hook)
    assert len(single) <= 2 * cap  # at most two minutes' worth, however many workers
    assert 1 <= len(standing) <= 2
