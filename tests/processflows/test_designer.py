"""The processflow designer: only the chosen trigger's fields, steps added, removed and
moved, inputs generated from each action's declared parameters, samples to pick mapping
paths from, Test step (a real, audited call that creates no run), and the definition as
JSON to import and export."""

from __future__ import annotations

import json

import pytest

from connectors.calendly.sandbox import seed
from portal.processflows.models import Processflow, Run
from portal.processflows.registration import processflow_url
from portal.vault.models import Credential, CredentialEvent, CredentialStatus
from tests.factories import every, make_credential, make_deployment, make_event, make_processflow
from tests.processflows.test_pages import form_data

NEW = "/o/acme/processflows/new/"


@pytest.fixture
def credential(acme):
    return make_credential(acme)


@pytest.fixture
def as_member(login, cast):
    return login(cast["member"])


@pytest.fixture
def sandbox(calendly_sandbox, monkeypatch):
    monkeypatch.setenv("CALENDLY_API_BASE_URL", calendly_sandbox.url)
    return calendly_sandbox


def post(client, data: dict, status: int = 200):
    response = client.post(NEW, data)
    assert response.status_code == status, response.content[:300]
    return response


def test_a_new_processflow_shows_only_the_webhook_triggers_fields(as_member, credential):
    html = as_member.get(NEW).content.decode()

    assert 'name="t-events"' in html
    assert 'value="invitee.created"' in html
    assert 'name="schedule_kind"' not in html
    assert "No step yet." in html


def test_choosing_polling_shows_the_schedule_instead_of_the_events(as_member, credential):
    html = post(as_member, {"trigger_type": "polling", "step-count": "0"}).content.decode()

    assert 'name="schedule_kind"' in html
    assert 'name="every_seconds"' in html
    assert "t-events" not in html


def test_steps_are_added_moved_and_removed(as_member, credential):
    data = form_data(credential, op="add-action")
    added = post(as_member, data).context["draft"].steps
    assert [s["name"] for s in added] == ["event", "document", "step_3"]

    moved = post(as_member, form_data(credential, op="up-1")).context["draft"].steps
    assert [s["name"] for s in moved] == ["document", "event"]

    removed = post(as_member, form_data(credential, op="remove-0")).context["draft"].steps
    assert [s["name"] for s in removed] == ["document"]


def test_an_actions_inputs_come_from_its_declared_parameters(as_member, credential):
    data = form_data(credential, op="refresh", **{"step-0-action": "scheduled_events"})
    html = post(as_member, data).content.decode()

    # an enum is a choice, an integer a number with its bounds, a required key is marked
    assert '<select name="step-0-f-status" id="step-0-f-status">' in html
    assert '<option value="canceled">canceled</option>' in html
    assert (
        'type="number" name="step-0-f-count" id="step-0-f-count" value="" min="1" max="100"' in html
    )
    single = post(as_member, form_data(credential, op="refresh")).content.decode()
    assert 'UUID or URI <abbr title="required" class="req">*</abbr>' in single


def test_a_repeated_key_is_a_list_of_choices(as_member, credential):
    data = form_data(
        credential,
        op="refresh",
        **{"step-0-action": "webhook_subscription", "step-0-f-events[]": ["invitee.created"]},
    )
    html = post(as_member, data).content.decode()

    assert 'type="checkbox" name="step-0-f-events[]" value="invitee.created" checked' in html
    assert 'type="checkbox" name="step-0-f-events[]" value="invitee.canceled">' in html


def test_invalid_credentials_are_not_offered(as_member, acme, credential):
    broken = make_credential(acme, name="Revoked")
    every(Credential).filter(pk=broken.pk).update(status=CredentialStatus.INVALID)

    html = post(as_member, form_data(credential, op="refresh")).content.decode()

    assert f'<option value="{credential.pk}"' in html
    assert f'<option value="{broken.pk}"' not in html


def test_resource_functions_and_other_flows_urls_are_offered_as_values(as_member, acme, credential):
    other = make_processflow(acme, credential, name="Child")

    html = post(as_member, form_data(credential, op="refresh")).content.decode()

    assert '<option value="~{GetOrganizationUrl}~">' in html
    assert f'<option value="{processflow_url(other)}">Processflow URL of Child</option>' in html


def test_saving_creates_version_1_with_the_rows_typed(as_member, credential):
    response = as_member.post(NEW, form_data(credential))

    flow = every(Processflow).get()
    assert response.status_code == 302
    assert response["Location"] == f"/o/acme/processflows/{flow.pk}/"
    definition = flow.versions.get().definition
    assert definition["steps"][0]["filters"] == [
        ["uuid", "{{ trigger.payload.scheduled_event.uri }}"]
    ]
    assert definition["steps"][1]["mapping"] == {
        "email": "{{ trigger.payload.email }}",
        "title": "{{ steps.event.resource.name }}",
    }


def test_a_problem_is_shown_on_its_step_and_what_was_typed_is_kept(as_member, credential):
    data = form_data(
        credential, **{"step-1-mval": ["{{ steps.nope.name }}", "{{ steps.event.resource.name }}"]}
    )
    response = post(as_member, data, status=400)

    [error] = response.context["errors"]
    assert error["where"] == "step-1"
    assert "refers to no earlier step" in error["message"]
    assert "{{ steps.nope.name }}" in response.content.decode()
    assert not every(Processflow).exists()


def test_a_missing_trigger_credential_is_shown_on_the_trigger(as_member, credential):
    response = post(as_member, form_data(credential, **{"t-credential": ""}), status=400)

    assert response.context["errors"] == [
        {
            "where": "trigger",
            "path": "trigger.credential",
            "message": "Choose a credential.",
        }
    ]


def test_editing_opens_the_saved_definition_and_saves_version_2(as_member, acme, credential):
    flow = make_processflow(acme, credential)
    url = f"/o/acme/processflows/{flow.pk}/edit/"
    assert "{{ trigger.payload.email }}" in as_member.get(url).content.decode()

    response = as_member.post(url, form_data(credential, **{"t-events": ["invitee.canceled"]}))

    assert response.status_code == 302
    assert flow.versions.first().number == 2


def test_the_webhook_sample_is_the_documented_example_until_an_event_arrives(as_member, credential):
    response = post(as_member, form_data(credential, op="sample"))

    assert response.context["draft"].samples["trigger"]["payload"]["email"] == "test@example.com"
    assert ("trigger.payload.email", '"test@example.com"') in response.context["trigger_paths"]
    assert 'data-pick="{{ trigger.payload.email }}"' in response.content.decode()


def test_an_edited_flows_sample_is_its_last_received_event(as_member, acme, credential):
    flow = make_processflow(acme, credential)
    event = make_event(
        make_deployment(flow), {"event": "invitee.created", "payload": {"email": "grace@x.io"}}
    )

    response = as_member.get(f"/o/acme/processflows/{flow.pk}/edit/")

    assert response.context["draft"].samples["trigger_from"] == f"event #{event.pk}"
    assert ("trigger.payload.email", '"grace@x.io"') in response.context["trigger_paths"]


def test_test_step_runs_the_action_shows_its_answer_and_creates_no_run(
    as_member, credential, sandbox
):
    data = form_data(
        credential,
        op="test-0",
        **{"step-0-action": "users/me", "step-0-f-uuid": None},
    )

    response = post(as_member, data)

    result = response.context["tests"][0]
    assert result["ok"] is True
    assert result["status"] == 200
    sample = response.context["draft"].samples["steps"]["event"]
    assert sample["resource"]["email"] == "olivia.owner@example.com"
    html = response.content.decode()
    assert "olivia.owner@example.com" in html
    assert 'data-pick="{{ steps.event.resource.email }}"' in html
    assert not every(Run).exists()
    [used] = every(CredentialEvent).filter(action="used")
    assert used.actor.email == "member@acme.test"
    assert used.detail["step_action"] == "users/me"


def test_a_test_step_refused_by_the_application_says_why(as_member, acme, sandbox):
    revoked = make_credential(acme, name="Old", token="revoked-token-0123456789")
    data = form_data(revoked, op="test-0", **{"step-0-action": "users/me", "step-0-f-uuid": None})

    result = post(as_member, data).context["tests"][0]

    assert result["ok"] is False
    assert result["status"] == 401
    assert "rejected the Personal Access Token" in result["message"]


def test_the_definition_is_shown_as_json_and_can_be_imported(as_member, credential):
    shown = post(as_member, form_data(credential, op="refresh")).context["definition_json"]
    document = json.loads(shown)
    document["steps"][1]["mapping"]["source"] = "calendly"

    imported = post(as_member, {"op": "import", "import": json.dumps(document)})

    assert imported.context["draft"].definition == document
    assert 'value="source"' in imported.content.decode()


def test_an_import_that_is_not_json_says_so_and_keeps_the_draft(as_member, credential):
    response = post(as_member, form_data(credential, op="import", **{"import": "{nope"}))

    [error] = response.context["errors"]
    assert error["message"].startswith("That is not JSON")
    assert [s["name"] for s in response.context["draft"].steps] == ["event", "document"]


def test_the_saved_definition_is_exported_as_the_document_the_api_takes(
    as_member, acme, credential
):
    flow = make_processflow(acme, credential)

    response = as_member.get(f"/o/acme/processflows/{flow.pk}/definition.json")

    assert response["Content-Disposition"] == f'attachment; filename="processflow-{flow.pk}.json"'
    assert json.loads(response.content) == flow.versions.first().definition


def test_a_viewer_cannot_use_the_designer(login, cast, credential):
    viewer = login(cast["viewer"])

    assert viewer.post(NEW, form_data(credential, op="test-0")).status_code == 403


def test_the_seeds_token_is_never_shown(as_member, credential, sandbox):
    html = post(as_member, form_data(credential, op="test-0")).content.decode()

    assert seed.OWNER_TOKEN not in html
