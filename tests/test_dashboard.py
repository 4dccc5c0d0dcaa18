"""The dashboard: runs per hour and per day as charts, events received, recent failures
with links, and the credentials and subscriptions that need attention."""

from __future__ import annotations

import re
from datetime import timedelta

from django.utils import timezone

from portal.processflows.models import Run, RunStatus
from portal.vault.models import Credential, CredentialStatus
from tests.factories import (
    every,
    make_credential,
    make_deployment,
    make_event,
    make_processflow,
    make_run,
)


def dashboard(login, user) -> str:
    response = login(user).get("/o/acme/")
    assert response.status_code == 200
    return response.content.decode()


def test_the_charts_count_succeeded_and_failed_runs_per_hour_and_day(acme, owner, login):
    flow = make_processflow(acme, make_credential(acme))
    deployment = make_deployment(flow)
    for n, status in enumerate([RunStatus.SUCCEEDED, RunStatus.SUCCEEDED, RunStatus.FAILED]):
        make_run(make_event(deployment, dedupe_key=f"k{n}"), status=status)
    old = make_run(make_event(deployment, dedupe_key="old"), status=RunStatus.SUCCEEDED)
    every(Run).filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=3))

    html = dashboard(login, owner)

    hourly = html.split('id="chart-hourly"')[1].split("</svg>")[0]
    daily = html.split('id="chart-daily"')[1].split("</svg>")[0]
    assert hourly.count('<rect class="ok"') == 24
    assert daily.count('<rect class="ok"') == 14
    assert re.search(r"<title>\d\d:00: 2 succeeded, 1 failed</title>", hourly)
    assert re.search(r"<title>\d\d \w+: 1 succeeded, 0 failed</title>", daily)
    assert '<span class="tile-value">4</span><span class="tile-label">events received' in html


def test_recent_failures_link_to_their_runs(acme, owner, login):
    flow = make_processflow(acme, make_credential(acme))
    run = make_run(make_event(make_deployment(flow)), status=RunStatus.FAILED, error="boom 400")

    html = dashboard(login, owner)

    failures = html.split('id="recent-failures"')[1]
    assert f'<a href="/o/acme/runs/{run.pk}/">#{run.pk}</a>' in failures
    assert "boom 400" in failures


def test_an_invalid_credential_and_a_failed_subscription_need_attention(acme, owner, login):
    credential = make_credential(acme, name="Revoked")
    every(Credential).filter(pk=credential.pk).update(
        status=CredentialStatus.INVALID, status_message="Calendly rejected it (401)."
    )
    flow = make_processflow(acme, credential, name="Hooks")
    make_deployment(flow, registration_state="failed", registration_message="403 upgrade")

    html = dashboard(login, owner)

    attention = html.split('id="attention"')[1].split("</section>")[0]
    assert f'<a href="/o/acme/manage/credentials/{credential.pk}/">Revoked</a>' in attention
    assert "Calendly rejected it (401)." in attention
    assert "Hooks</a>" in attention
    assert "403 upgrade" in attention


def test_nothing_needs_attention_when_all_is_well(acme, owner, login):
    make_credential(acme)
    every(Credential).update(status=CredentialStatus.VALID)

    assert 'id="attention"' not in dashboard(login, owner)
