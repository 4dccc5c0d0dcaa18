"""The processflow pages: list, editor, detail with the deployment panel, run history and run
detail with replay, received events, and the dashboard tile; viewers read only."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from portal.processflows import tasks
from portal.processflows.models import (
    Deployment,
    Processflow,
    RejectedDelivery,
    Run,
    RunStatus,
    StepRun,
)
from portal.processflows.registration import processflow_url
from tests.factories import (
    every,
    make_credential,
    make_deployment,
    make_event,
    make_processflow,
    make_run,
)


@pytest.fixture
def sandbox(monkeypatch, calendly_sandbox, settings, destination):
    monkeypatch.setenv("CALENDLY_API_BASE_URL", calendly_sandbox.url)
    settings.PORTAL_BASE_URL = destination.url
    return calendly_sandbox


@pytest.fixture
def credential(acme):
    return make_credential(acme)


@pytest.fixture
def flow(acme, owner, credential):
    return make_processflow(acme, credential)


@pytest.fixture
def as_member(login, cast):
    return login(cast["member"])


@pytest.fixture
def as_viewer(login, cast):
    return login(cast["viewer"])


def page(client, path, status=200) -> str:
    response = client.get(path)
    assert response.status_code == status, response.content[:500]
    return response.content.decode()


def form_data(credential, **overrides) -> dict:
    """What the designer posts to save a triggered flow with one fetch step and one map step."""
    data = {
        "op": "save",
        "name": "Bookings",
        "description": "",
        "trigger_type": "webhook",
        "t-application": "calendly",
        "t-credential": str(credential.pk),
        "t-events": ["invitee.created"],
        "t-option-scope": "organization",
        "t-registration": "automatic",
        "step-count": "2",
        "step-0-name": "event",
        "step-0-type": "action",
        "step-0-application": "calendly",
        "step-0-action": "scheduled_event",
        "step-0-credential": str(credential.pk),
        "step-0-f-uuid": "{{ trigger.payload.scheduled_event.uri }}",
        "step-1-name": "document",
        "step-1-type": "map",
        "step-1-mkey": ["email", "title", ""],
        "step-1-mval": ["{{ trigger.payload.email }}", "{{ steps.event.resource.name }}", ""],
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


# --- List and editor ------------------------------------------------------------------------


def test_the_list_shows_each_flow_with_its_url_and_deployment(sandbox, acme, as_member, flow):
    html = page(as_member, "/o/acme/processflows/")
    assert "Bookings" in html
    assert processflow_url(flow) in html
    assert 'data-copy="#url-' in html
    assert "New processflow" in html
    deployment = make_deployment(flow, registration_state="active")
    html = page(as_member, "/o/acme/processflows/")
    assert f"v{deployment.version.number}" in html
    assert "Active" in html


# --- Detail and deployment ------------------------------------------------------------------


def test_the_detail_shows_the_processflow_url_with_a_copy_button(as_member, flow):
    html = page(as_member, f"/o/acme/processflows/{flow.pk}/")
    assert f'<code id="processflow-url">{processflow_url(flow)}</code>' in html
    assert 'data-copy="#processflow-url"' in html
    assert "Not deployed" in html
    assert ">Deploy</button>" in html


def test_deploying_from_the_page_shows_the_registration_state(sandbox, as_member, flow):
    response = as_member.post(f"/o/acme/processflows/{flow.pk}/deploy/")
    assert response.status_code == 302
    html = page(as_member, response["Location"])
    assert "Deployed version 1 to the Cloud agent." in html
    assert 'id="registration-state"><span class="badge pending">Pending' in html
    assert 'hx-trigger="every 2s"' in html  # the panel refreshes while pending

    tasks.register_subscription(flow.organization_id, flow.deployments.get().pk)
    panel = page(as_member, f"/o/acme/processflows/{flow.pk}/state/")
    assert '<span class="badge active">Active</span>' in panel
    assert sandbox.subscriptions[0]["uri"] in panel
    assert "hx-trigger" not in panel
    assert ">Undeploy</button>" in panel


def test_a_failed_registration_shows_the_apis_message(sandbox, acme, as_member):
    from connectors.calendly.sandbox import seed

    free = make_credential(acme, name="Freelancer", token=seed.FREE_PLAN_TOKEN)
    flow = make_processflow(acme, free)
    as_member.post(f"/o/acme/processflows/{flow.pk}/deploy/")
    tasks.register_subscription(flow.organization_id, flow.deployments.get().pk)
    html = page(as_member, f"/o/acme/processflows/{flow.pk}/")
    assert '<span class="badge failed">Failed</span>' in html
    assert "upgrade" in html.lower()


def test_deploying_with_an_invalid_credential_is_refused_on_the_page(sandbox, as_member, flow):
    from connectors.calendly.sandbox import seed

    sandbox.revoke_token(seed.OWNER_TOKEN)
    response = as_member.post(f"/o/acme/processflows/{flow.pk}/deploy/", follow=True)
    html = response.content.decode()
    assert "Credential &#x27;Sales team&#x27; (Calendly) is not valid" in html
    assert not every(Deployment).exists()


def test_undeploying_from_the_page(sandbox, as_member, flow):
    as_member.post(f"/o/acme/processflows/{flow.pk}/deploy/")
    response = as_member.post(f"/o/acme/processflows/{flow.pk}/undeploy/", follow=True)
    html = response.content.decode()
    assert "Undeployed. The Processflow URL no longer accepts events." in html
    assert "Not deployed" in html
    assert flow.deployments.get().state == Deployment.State.UNDEPLOYED


def test_deleting_a_deployed_flow_is_refused_on_the_page(sandbox, as_member, flow):
    as_member.post(f"/o/acme/processflows/{flow.pk}/deploy/")
    response = as_member.post(f"/o/acme/processflows/{flow.pk}/delete/", follow=True)
    assert "Undeploy the processflow before deleting it." in response.content.decode()
    assert every(Processflow).filter(pk=flow.pk).exists()


def test_deleting_an_undeployed_flow_from_the_page(as_member, flow):
    assert "Delete processflow" in page(as_member, f"/o/acme/processflows/{flow.pk}/delete/")
    response = as_member.post(f"/o/acme/processflows/{flow.pk}/delete/")
    assert response["Location"] == "/o/acme/processflows/"
    assert not every(Processflow).exists()


# --- Runs and events ------------------------------------------------------------------------


@pytest.fixture
def runs(acme, credential, flow):
    deployment = make_deployment(flow)
    ok = make_run(make_event(deployment), status=RunStatus.SUCCEEDED)
    failed = make_run(make_event(deployment), status=RunStatus.FAILED, error="Step 'forward': 500")
    StepRun.objects.create(
        run=failed,
        position=0,
        name="forward",
        status=RunStatus.FAILED,
        request={"method": "POST", "url": "https://bookings.example.com/bookings"},
        response_status=500,
        duration_ms=12,
        error="The destination answered 500.",
    )
    return {"ok": ok, "failed": failed}


def run_links(html) -> set[int]:
    import re

    return {int(n) for n in re.findall(r'/o/acme/runs/(\d+)/"', html)}


def test_the_run_history_filters_by_status(as_member, runs):
    assert run_links(page(as_member, "/o/acme/runs/")) == {runs["ok"].pk, runs["failed"].pk}
    assert run_links(page(as_member, "/o/acme/runs/?status=failed")) == {runs["failed"].pk}


def test_the_run_history_filters_by_flow_and_time(acme, as_member, credential, runs, flow):
    every(Run).filter(pk=runs["ok"].pk).update(created_at=timezone.now() - timedelta(days=2))
    since = (timezone.localtime() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    assert run_links(page(as_member, f"/o/acme/runs/?since={since}")) == {runs["failed"].pk}
    other = make_processflow(acme, credential, name="Other")
    assert run_links(page(as_member, f"/o/acme/runs/?processflow={other.pk}")) == set()


def test_a_bad_filter_is_reported_and_ignored(as_member, runs):
    html = page(as_member, "/o/acme/runs/?since=yesterday")
    assert "Since: Give a time as ISO 8601" in html
    assert run_links(html) == {runs["ok"].pk, runs["failed"].pk}


def test_a_failed_run_shows_its_steps_and_a_replay_button(as_member, runs):
    html = page(as_member, f"/o/acme/runs/{runs['failed'].pk}/")
    assert "POST https://bookings.example.com/bookings" in html
    assert "The destination answered 500." in html
    assert "12 ms" in html
    assert ">Replay</button>" in html
    assert ">Replay</button>" not in page(as_member, f"/o/acme/runs/{runs['ok'].pk}/")


def test_replaying_from_the_page_opens_the_new_run(as_member, runs):
    response = as_member.post(f"/o/acme/runs/{runs['failed'].pk}/replay/")
    new = every(Run).get(replay_of=runs["failed"])
    assert response["Location"] == f"/o/acme/runs/{new.pk}/"
    html = page(as_member, response["Location"])
    assert f"Replaying as run {new.pk}." in html
    assert f'<a href="/o/acme/runs/{runs["failed"].pk}/" id="replay-of">' in html
    original = page(as_member, f"/o/acme/runs/{runs['failed'].pk}/")
    assert f'<dd id="replays"><a href="/o/acme/runs/{new.pk}/">run #{new.pk}</a>' in original


def test_received_events_show_their_verification_result(as_member, flow):
    deployment = make_deployment(flow)
    event = make_event(deployment)
    RejectedDelivery.objects.create(
        organization_id=deployment.organization_id,
        deployment=deployment,
        reason="the signature does not match the body",
        status_code=401,
        size=321,
    )
    html = page(as_member, "/o/acme/events/")
    assert f"invitee.created #{event.pk}" in html
    assert "signature valid" in html
    assert "the signature does not match the body" in html
    assert '<span class="badge invalid">401</span>' in html
    detail = page(as_member, f"/o/acme/events/{event.pk}/")
    assert "signature verified" in detail
    assert "ada@example.com" in detail


# --- Viewers, tenants, the dashboard --------------------------------------------------------


def test_a_viewer_sees_the_pages_without_write_controls(as_viewer, flow, runs):
    for path in (
        "/o/acme/processflows/",
        f"/o/acme/processflows/{flow.pk}/",
        f"/o/acme/runs/{runs['failed'].pk}/",
        f"/o/acme/processflows/{flow.pk}/edit/",
    ):
        html = page(as_viewer, path)
        for control in (
            "New processflow",
            ">Deploy</button>",
            ">Undeploy</button>",
            ">Replay</button>",
            ">Edit</a>",
            ">Save",
            "Delete processflow",
        ):
            assert control not in html, (path, control)


def test_a_viewers_posts_are_refused(as_viewer, credential, flow, runs):
    for path, data in (
        ("/o/acme/processflows/new/", form_data(credential, name="Nope")),
        (f"/o/acme/processflows/{flow.pk}/edit/", form_data(credential, name="Nope")),
        (f"/o/acme/processflows/{flow.pk}/deploy/", {}),
        (f"/o/acme/processflows/{flow.pk}/delete/", {}),
        (f"/o/acme/runs/{runs['failed'].pk}/replay/", {}),
    ):
        assert as_viewer.post(path, data).status_code == 403, path
    assert every(Processflow).get().name == "Bookings"
    assert not every(Run).filter(replay_of__isnull=False).exists()


def test_another_organizations_pages_are_not_found(login, cast, flow, runs):
    outsider = login(cast["outsider"])
    assert outsider.get(f"/o/acme/processflows/{flow.pk}/").status_code == 404
    assert outsider.get(f"/o/globex/processflows/{flow.pk}/").status_code == 404
    assert outsider.get(f"/o/globex/runs/{runs['failed'].pk}/").status_code == 404
    assert outsider.post(f"/o/globex/runs/{runs['failed'].pk}/replay/").status_code == 404


def test_the_dashboard_counts_runs_of_the_last_24_hours_by_status(as_member, runs, flow):
    old = make_run(make_event(flow.deployments.get()), status=RunStatus.SUCCEEDED)
    every(Run).filter(pk=old.pk).update(created_at=timezone.now() - timedelta(hours=25))
    response = as_member.get("/o/acme/")
    assert response.status_code == 200
    counts = {value: count for value, _, count in response.context["runs_by_status"]}
    assert counts == {"queued": 0, "running": 0, "retrying": 0, "succeeded": 1, "failed": 1}
    html = response.content.decode()
    assert 'href="/o/acme/runs/?status=failed"' in html


def test_no_page_reveals_the_signing_key(sandbox, as_member, flow):
    from portal.processflows.signing import signing_key

    as_member.post(f"/o/acme/processflows/{flow.pk}/deploy/")
    deployment = flow.deployments.get()
    tasks.register_subscription(deployment.organization_id, deployment.pk)
    deployment.refresh_from_db()
    key = signing_key(deployment, purpose="a test")
    for path in (
        "/o/acme/processflows/",
        f"/o/acme/processflows/{flow.pk}/",
        f"/o/acme/processflows/{flow.pk}/state/",
    ):
        assert key not in page(as_member, path)


def test_a_run_page_shows_json_not_python_and_folds_it(as_member, runs):
    every(Run).filter(pk=runs["ok"].pk).update(
        input={"payload": {"email": "a@b.c", "rescheduled": False, "old_invitee": None}}
    )

    html = page(as_member, f"/o/acme/runs/{runs['ok'].pk}/")

    assert (
        '<span class="j-key">&quot;rescheduled&quot;: </span><span class="j-bool">false</span>'
        in html
    )
    assert '<span class="j-null">null</span>' in html
    assert '<details class="j-node" open>' in html
    assert "False" not in html.split("<h2>Input</h2>")[1]


def test_a_step_shows_its_request_line_with_the_query_string(as_member, runs):
    run = runs["ok"]
    run.steps.create(
        position=0,
        name="events",
        status="succeeded",
        request={
            "method": "GET",
            "url": "https://api.calendly.com/scheduled_events",
            "query": [["count", "20"], ["status", "active"]],
        },
        response_status=200,
    )

    html = page(as_member, f"/o/acme/runs/{run.pk}/")

    assert (
        '<code class="request-line">GET https://api.calendly.com/scheduled_events'
        "?count=20&amp;status=active</code>" in html
    )


def test_an_unfinished_run_page_refreshes_itself_and_a_finished_one_does_not(as_member, runs):
    every(Run).filter(pk=runs["ok"].pk).update(status="running")

    running = page(as_member, f"/o/acme/runs/{runs['ok'].pk}/")
    failed = page(as_member, f"/o/acme/runs/{runs['failed'].pk}/")

    assert 'hx-trigger="every 2s" hx-select="#run-live"' in running
    assert "hx-trigger" not in failed.split('id="run-live"')[1].split(">")[0]
