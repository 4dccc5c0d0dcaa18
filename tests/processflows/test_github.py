"""GitHub end to end through the portal, nothing in ``portal/`` knowing GitHub: the pages and
the API add a credential (Validate, Save), a triggered flow on ``issues.opened`` for
owner/repo is deployed (the repository webhook is created at the sandbox), an issue opened
in the sandbox runs the flow (which comments on it); a polling flow walks every page of
``list_repos`` through ``Link`` headers.

Real processes: the portal over HTTP (pytest-django's live server), the outbox relay and a
Celery worker; the GitHub sandbox over loopback.
"""

from __future__ import annotations

import json
import re

import pytest
import requests
from django.urls import reverse

from connectors.github.sandbox import OWNER_TOKEN
from portal.processflows import polling
from portal.processflows.models import (
    Deployment,
    Processflow,
    RegistrationState,
    Run,
    RunStatus,
    StepRun,
    TriggerEvent,
)
from portal.vault.models import Credential
from tests.factories import every, make_credential
from tests.processes import purge_queues, start_worker, wait_for
from tests.processflows.reliability.support import start_relay

REPO = "octocat/hello-world"
THANKS = [
    ["owner", "octocat"],
    ["repo", "hello-world"],
    ["issue_number", "{{ trigger.issue.number }}"],
    ["body", "Thanks for reporting {{ trigger.issue.title }}!"],
]


def thanks_step(credential_id) -> dict:
    return {"name": "thank", "type": "action", "application": "github",
            "credential": credential_id, "action": "comment_issue", "filters": THANKS}  # fmt: skip


def designer_form(credential_id, **overrides) -> dict:
    """What the designer posts to save a flow on GitHub's issues.opened for owner/repo that
    thanks the reporter in a comment."""
    data = {
        "op": "save", "name": "Thank reporters", "description": "", "trigger_type": "webhook",
        "t-application": "github", "t-credential": str(credential_id),
        "t-events": ["issues.opened"], "t-option-owner": "octocat",
        "t-option-repo": "hello-world", "t-registration": "automatic", "step-count": "1",
        "step-0-name": "thank", "step-0-type": "action", "step-0-application": "github",
        "step-0-action": "comment_issue", "step-0-credential": str(credential_id),
        **{f"step-0-f-{key}": value for key, value in THANKS},
    }  # fmt: skip
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


@pytest.fixture
def github_portal(monkeypatch, transactional_db, live_server, github_sandbox, settings):
    """The portal at ``live_server.url`` with the relay and a worker, all pointed at the
    GitHub sandbox by the one variable every connector reads, GITHUB_API_BASE_URL."""
    monkeypatch.setenv("GITHUB_API_BASE_URL", github_sandbox.url)
    settings.PORTAL_BASE_URL = live_server.url
    purge_queues()
    relay = start_relay()
    worker = start_worker(extra_env={"PORTAL_BASE_URL": live_server.url})
    yield worker
    worker.stop()
    relay.stop()


def open_issue(sandbox, title: str) -> dict:
    """Open an issue as a person would: through GitHub's API."""
    answer = requests.post(
        f"{sandbox.url}/repos/{REPO}/issues",
        json={"title": title},
        headers={"Authorization": f"Bearer {OWNER_TOKEN}"},
        timeout=10,
    )
    assert answer.status_code == 201, answer.text
    return answer.json()


def failures(flow: Processflow) -> str:
    """Why the flow's runs failed (for assertion messages)."""
    steps = StepRun.objects.filter(run__processflow=flow).values_list("name", "status", "error")
    return repr([*every(Run).filter(processflow=flow).values_list("status", "error"), *steps])


def finished(flow: Processflow) -> Run | None:
    ended = (RunStatus.SUCCEEDED, RunStatus.FAILED)
    return every(Run).filter(processflow=flow, status__in=ended).first()


def registered(flow: Processflow) -> bool:
    deployment = flow.deployments.filter(state=Deployment.State.ACTIVE).first()
    return deployment is not None and deployment.registration_state == RegistrationState.ACTIVE


def assert_thanked(github_sandbox, issue: dict, run: Run) -> None:
    [comment] = github_sandbox.issues[REPO][issue["number"] - 1]["comment_list"]
    assert comment["body"] == f"Thanks for reporting {issue['title']}!"
    event = run.event
    assert event.event_name == "issues.opened"
    headers = {k.lower(): v for k, v in event.headers.items()}
    assert event.dedupe_key == f"github:{headers['x-github-delivery']}"
    assert headers["x-github-event"] == "issues"
    assert headers["x-hub-signature-256"].startswith("sha256=")
    # GitHub pings a new hook: accepted and kept, but it starts no run.
    ping = every(TriggerEvent).get(deployment=event.deployment, event_name="ping")
    assert not every(Run).filter(event=ping).exists()


@pytest.mark.services
def test_github_through_the_pages_credential_deploy_issue_run(
    github_portal, github_sandbox, live_server, login, owner, acme
):
    client = login(owner)
    typed = {"type": "rest", "name": "Octo", "token": OWNER_TOKEN}
    check = reverse("vault:credential_check", kwargs={"org": "acme", "application": "github"})
    new = reverse("vault:credential_new", kwargs={"org": "acme", "application": "github"})

    validated = client.post(check, typed).content.decode()
    saved = client.post(f"{new}?type=rest", typed, follow=True).content.decode()

    assert "Connected to GitHub as octocat" in validated
    assert "Connection Saved Successfully!" in saved
    credential = Credential.objects.for_tenant(acme).get(application="github")
    new_flow = reverse("processflows:new", kwargs={"org": "acme"})
    form = client.post(new_flow, designer_form(credential.pk, op="refresh")).content.decode()
    assert "Repository" in form
    assert 'name="t-option-repo"' in form
    created = client.post(new_flow, designer_form(credential.pk))
    assert created.status_code == 302, created.content.decode()[:2000]
    flow = Processflow.objects.for_tenant(acme).get(name="Thank reporters")

    client.post(reverse("processflows:deploy", kwargs={"org": "acme", "processflow_id": flow.pk}))

    wait_for(lambda: registered(flow), message=f"not registered:\n{github_portal.output()}")
    [hook] = github_sandbox.hooks[REPO]
    assert hook["config"]["url"] == f"{live_server.url}/hooks/{flow.hook_id}/"
    assert hook["events"] == ["issues"]
    page = client.get(
        reverse("processflows:detail", kwargs={"org": "acme", "processflow_id": flow.pk})
    )
    trigger = re.search(r"<strong>Trigger:</strong>(.*?)</p>", page.content.decode(), re.S)[1]
    assert "owner octocat" in trigger
    assert "repo hello-world" in trigger

    issue = open_issue(github_sandbox, "Broken build")

    run = wait_for(lambda: finished(flow), message=f"no run ended:\n{github_portal.output()}")
    assert run.status == RunStatus.SUCCEEDED, failures(flow)
    assert_thanked(github_sandbox, issue, run)


@pytest.mark.services
def test_github_through_the_api_credential_deploy_issue_run(
    github_portal, github_sandbox, live_server, api, owner, acme
):
    client = api(owner, acme)
    base = "/api/v1/organizations/acme"

    made = client.post(f"{base}/credentials/", {"application": "github", "name": "Octo",
                       "secrets": {"token": OWNER_TOKEN}}, format="json")  # fmt: skip
    assert made.status_code == 201, made.content
    validated = client.post(f"{base}/credentials/{made.json()['id']}/validate/")
    assert validated.status_code == 200, validated.content
    assert validated.json()["status"] == "valid"
    definition = {
        "trigger": {"type": "webhook", "application": "github", "credential": made.json()["id"],
                    "events": ["issues.opened"],
                    "options": {"owner": "octocat", "repo": "hello-world"}},
        "steps": [thanks_step(made.json()["id"])],
    }  # fmt: skip
    flow = client.post(f"{base}/processflows/", {"name": "Thanks", "definition": definition},
                       format="json")  # fmt: skip
    assert flow.status_code == 201, flow.content
    assert flow.json()["latest_version"]["definition"]["trigger"]["options"] == {
        "owner": "octocat",
        "repo": "hello-world",
    }
    deployed = client.post(f"{base}/processflows/{flow.json()['id']}/deploy/")
    assert deployed.status_code == 201, deployed.content

    processflow = every(Processflow).get(pk=flow.json()["id"])
    wait_for(lambda: registered(processflow), message=f"not registered:\n{github_portal.output()}")
    issue = open_issue(github_sandbox, "Typo on the home page")

    def succeeded():
        runs = client.get(f"{base}/runs/", {"processflow": processflow.pk, "status": "succeeded"})
        return runs.json()["results"]

    [listed] = wait_for(succeeded, message=f"no run succeeded:\n{github_portal.output()}")
    assert_thanked(github_sandbox, issue, every(Run).get(pk=listed["id"]))
    events = client.get(f"{base}/events/").json()["results"]
    assert {e["event_name"] for e in events} == {"ping", "issues.opened"}


def test_a_missing_repository_option_is_refused_on_its_field(login, owner, acme):
    credential = make_credential(acme, application="github", secrets={"token": OWNER_TOKEN})
    form = designer_form(credential.pk, name="No repo", **{"t-option-repo": None})

    response = login(owner).post(reverse("processflows:new", kwargs={"org": "acme"}), form)

    assert response.status_code == 400
    assert response.context["errors"] == [
        {
            "where": "trigger",
            "path": "trigger.options.repo",
            "message": "Give the Repository (repo) to subscribe to.",
        }
    ]


def test_an_event_github_does_not_send_is_refused_for_a_github_trigger(login, owner, acme):
    credential = make_credential(acme, application="github", secrets={"token": OWNER_TOKEN})
    form = designer_form(credential.pk, name="Mixed", **{"t-events": ["invitee.created"]})

    response = login(owner).post(reverse("processflows:new", kwargs={"org": "acme"}), form)

    assert response.status_code == 400
    [error] = response.context["errors"]
    assert error["path"] == "trigger.events"
    assert error["message"].startswith("Unknown event(s) invitee.created; choose from ")


def test_a_polling_flow_walks_every_page_of_list_repos_by_link_headers(
    monkeypatch, github_sandbox, api, acme, owner
):
    """Made and deployed through the API; each poll (what the scheduler runs) follows the
    ``Link`` header's next page to the end and stores every repository once."""
    monkeypatch.setenv("GITHUB_API_BASE_URL", github_sandbox.url)
    client, base = api(owner, acme), "/api/v1/organizations/acme"
    credential = make_credential(acme, application="github", secrets={"token": OWNER_TOKEN})
    source = {"application": "github", "credential": credential.pk, "action": "list_repos",
              "filters": [["per_page", "10"]]}  # fmt: skip
    definition = {
        "trigger": {"type": "polling", "schedule": {"every_seconds": 60}, "source": source},
        "steps": [{"name": "note", "type": "map", "mapping": {"repo": "{{ trigger.full_name }}"}}],
    }
    made = client.post(f"{base}/processflows/", {"name": "Repositories", "definition": definition},
                       format="json")  # fmt: skip
    deployed = client.post(f"{base}/processflows/{made.json()['id']}/deploy/")
    assert deployed.status_code == 201, deployed.content

    assert polling.poll(acme.pk, deployed.json()["id"]) == 35
    assert polling.poll(acme.pk, deployed.json()["id"]) == 0
    listed = [e for e in github_sandbox.exchanges if e.path == "/user/repos"]
    pages = [e.query.get("page", ["1"])[0] for e in listed]
    assert pages == ["1", "2", "3", "4", "1", "2", "3", "4"]
    events = client.get(f"{base}/events/", {"page_size": 100}).json()
    assert events["count"] == 35
    names = {json.loads(bytes(e.body))["full_name"] for e in every(TriggerEvent)}
    assert len(names) == 35
    assert {n for n in names if re.fullmatch(r"octocat/(hello-world|project-\d\d)", n)} == names
