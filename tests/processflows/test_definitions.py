"""A definition is checked when it is saved: each problem is a clear error that names where it
is (``steps[1].filters``), and a valid definition is stored normalised."""

from __future__ import annotations

import pytest

from portal.processflows.definitions import DefinitionError, clean_definition
from tests.factories import make_credential, webhook_definition


@pytest.fixture
def calendly(acme):
    return make_credential(acme, name="Sales team")


@pytest.fixture
def rest(acme):
    return make_credential(
        acme,
        application="rest",
        name="Bookings API",
        fields={"base_url": "https://bookings.example.com", "auth_type": "none"},
        secrets={},
    )


def problem(organization, definition) -> dict[str, list[str]]:
    with pytest.raises(DefinitionError) as caught:
        clean_definition(organization, definition)
    return caught.value.message_dict


def fetch_step(credential, **overrides) -> dict:
    return {
        "name": "event",
        "type": "action",
        "application": "calendly",
        "credential": credential.pk,
        "action": "scheduled_event",
        "filters": [["uuid", "{{ trigger.payload.event }}"]],
    } | overrides


def test_a_reference_to_a_missing_step_names_the_step_and_the_earlier_ones(acme, calendly):
    definition = webhook_definition(
        calendly,
        steps=[
            fetch_step(calendly),
            {"name": "document", "type": "map", "mapping": {"title": "{{ steps.nope.x }}"}},
        ],
    )
    errors = problem(acme, definition)
    assert list(errors) == ["steps[1].mapping.title"]
    assert (
        "{{ steps.nope }} refers to no earlier step; earlier steps: event."
        in errors["steps[1].mapping.title"][0]
    )


def test_a_step_cannot_refer_to_a_later_step(acme, calendly):
    definition = webhook_definition(
        calendly,
        steps=[
            fetch_step(calendly, filters=[["uuid", "{{ steps.document.uuid }}"]]),
            {"name": "document", "type": "map", "mapping": {"uuid": "{{ trigger.payload.uri }}"}},
        ],
    )
    errors = problem(acme, definition)
    assert "steps[0].filters.uuid" in errors
    assert "this is the first step" in errors["steps[0].filters.uuid"][0]


def test_a_reference_to_a_field_a_map_step_does_not_produce_is_refused(acme, calendly, rest):
    definition = webhook_definition(
        calendly,
        steps=[
            {
                "name": "document",
                "type": "map",
                "mapping": {"email": "{{ trigger.payload.email }}"},
            },
            {
                "name": "forward",
                "application": "rest",
                "credential": rest.pk,
                "action": "post_json",
                "filters": [["path", "/bookings"]],
                "document": {"who": "{{ steps.document.phone }}"},
            },
        ],
    )
    errors = problem(acme, definition)
    assert errors == {
        "steps[1].document": [
            "{{ steps.document.phone }}: step 'document' has no field 'phone'; it has: email."
        ]
    }


def test_a_reference_to_a_field_an_action_does_not_answer_is_refused(acme, calendly):
    definition = webhook_definition(
        calendly,
        steps=[
            fetch_step(calendly),
            {"name": "document", "type": "map", "mapping": {"title": "{{ steps.event.name }}"}},
        ],
    )
    errors = problem(acme, definition)
    assert errors["steps[1].mapping.title"] == [
        "{{ steps.event.name }}: step 'event' has no field 'name'; it has: resource."
    ]


def test_references_start_with_trigger_or_steps(acme, calendly):
    definition = webhook_definition(
        calendly, steps=[{"name": "document", "type": "map", "mapping": {"x": "{{ env.HOME }}"}}]
    )
    assert problem(acme, definition) == {
        "steps[0].mapping.x": ["References start with trigger. or steps., not env."]
    }


def test_an_unknown_filter_key_fails_the_actions_schema(acme, calendly):
    definition = webhook_definition(
        calendly, steps=[fetch_step(calendly, filters=[["uuid", "X"], ["colour", "red"]])]
    )
    errors = problem(acme, definition)
    assert list(errors) == ["steps[0].filters"]
    assert "colour" in errors["steps[0].filters"][0]


def test_a_missing_required_filter_key_fails_the_actions_schema(acme, calendly):
    definition = webhook_definition(calendly, steps=[fetch_step(calendly, filters=[])])
    errors = problem(acme, definition)
    assert list(errors) == ["steps[0].filters"]
    assert "uuid" in errors["steps[0].filters"][0]


def test_a_literal_of_the_wrong_type_fails_the_actions_schema(acme, calendly):
    step = fetch_step(
        calendly,
        action="scheduled_events",
        filters=[["organization", "~{GetOrganizationUrl}~"], ["count", "lots"]],
    )
    errors = problem(acme, webhook_definition(calendly, steps=[step]))
    assert list(errors) == ["steps[0].filters"]
    assert "count" in errors["steps[0].filters"][0]


def test_filters_are_key_value_text_pairs(acme, calendly):
    step = fetch_step(calendly, filters=[["uuid"]])
    assert problem(acme, webhook_definition(calendly, steps=[step])) == {
        "steps[0].filters": ["Filters are a list of [key, value] text pairs."]
    }


def test_an_unknown_action_lists_the_applications_actions(acme, calendly):
    errors = problem(
        acme, webhook_definition(calendly, steps=[fetch_step(calendly, action="teleport")])
    )
    assert "Calendly has no action 'teleport'" in errors["steps[0].action"][0]
    assert "scheduled_event" in errors["steps[0].action"][0]


def test_an_unknown_application_is_located(acme, calendly):
    errors = problem(
        acme, webhook_definition(calendly, steps=[fetch_step(calendly, application="zoom")])
    )
    assert list(errors) == ["steps[0].application"]
    assert "Unknown application 'zoom'" in errors["steps[0].application"][0]


def test_a_credential_of_another_application_is_refused(acme, calendly, rest):
    errors = problem(acme, webhook_definition(calendly, steps=[fetch_step(rest)]))
    assert errors == {
        "steps[0].credential": ["Credential 'Bookings API' is for REST API, not Calendly."]
    }


def test_a_trigger_credential_of_another_application_is_refused(acme, rest):
    definition = webhook_definition(rest)
    definition["trigger"]["application"] = "calendly"
    assert problem(acme, definition) == {
        "trigger.credential": ["Credential 'Bookings API' is for REST API, not Calendly."]
    }


def test_a_credential_of_another_organization_does_not_exist_here(acme, globex, calendly):
    theirs = make_credential(globex, name="Globex sales")
    errors = problem(acme, webhook_definition(calendly, steps=[fetch_step(theirs)]))
    assert errors == {
        "steps[0].credential": [f"Credential {theirs.pk} does not exist in this organization."]
    }
    assert "Globex sales" not in str(errors)


def test_unknown_events_are_named_with_the_ones_available(acme, calendly):
    definition = webhook_definition(calendly)
    definition["trigger"]["events"] = ["invitee.created", "meeting.started"]
    errors = problem(acme, definition)
    assert list(errors) == ["trigger.events"]
    assert errors["trigger.events"][0].startswith("Unknown event(s) meeting.started; choose from")
    assert "invitee.canceled" in errors["trigger.events"][0]


def test_a_triggered_flow_needs_an_event(acme, calendly):
    definition = webhook_definition(calendly)
    definition["trigger"]["events"] = []
    assert "trigger.events" in problem(acme, definition)


def test_an_application_without_webhooks_cannot_trigger(acme, rest):
    definition = webhook_definition(rest)
    assert problem(acme, definition) == {"trigger.application": ["REST API cannot call webhooks."]}


def polling(schedule, source=None, steps=None) -> dict:
    return {
        "trigger": {"type": "polling", "schedule": schedule, "source": source},
        "steps": steps
        or [{"name": "document", "type": "map", "mapping": {"at": "{{ trigger.tick }}"}}],
    }


def test_an_interval_below_the_minimum_is_refused(acme):
    assert problem(acme, polling({"every_seconds": 5})) == {
        "trigger.schedule.every_seconds": ["Poll at most every 10 seconds (got 5)."]
    }


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("*/5 * * *", "A cron expression has five fields: minute hour day month weekday."),
        ("61 * * * *", "The minute field '61' is not valid: Invalid end range: 61 > 59."),
        ("0 25 * * *", "The hour field '25' is not valid: Invalid end range: 25 > 23."),
        ("0 0 * * ?", "The day of week field '?' is not valid."),
        (
            "*/0 * * * *",
            "The minute field '*/0' is not valid: A step is a whole number above zero, not '0'.",
        ),
    ],
)
def test_a_malformed_cron_expression_is_refused(acme, cron, message):
    assert problem(acme, polling({"cron": cron})) == {"trigger.schedule.cron": [message]}


def test_a_schedule_is_an_interval_a_cron_or_once(acme):
    assert problem(acme, polling("hourly")) == {
        "trigger.schedule": ["Choose an interval, a cron expression or once."]
    }


def test_a_trigger_is_webhook_or_polling(acme, calendly):
    definition = webhook_definition(calendly)
    definition["trigger"]["type"] = "email"
    assert problem(acme, definition) == {"trigger.type": ["The trigger is 'webhook' or 'polling'."]}


def test_step_names_are_unique(acme, calendly):
    step = {"name": "document", "type": "map", "mapping": {"a": "b"}}
    assert problem(acme, webhook_definition(calendly, steps=[step, step])) == {
        "steps[1].name": ["Two steps are named 'document'."]
    }


def test_a_valid_webhook_definition_is_normalised(acme, calendly, rest):
    definition = {
        "trigger": {
            "type": "webhook",
            "application": "calendly",
            "credential": calendly.pk,
            "events": ["invitee.created", "invitee.canceled", "invitee.created"],
            "colour": "ignored",
        },
        "steps": [
            fetch_step(calendly, filters=[[" uuid ", "{{ trigger.payload.event }}"]]),
            {
                "name": "document",
                "type": "map",
                "mapping": {"email": "{{ trigger.payload.email }}"},
            },
            {
                "name": "forward",
                "application": "rest",
                "credential": rest.pk,
                "action": "post_json",
                "filters": [["path", "/bookings"]],
                "document": "{{ steps.document }}",
            },
        ],
    }
    assert clean_definition(acme, definition) == {
        "trigger": {
            "type": "webhook",
            "application": "calendly",
            "credential": calendly.pk,
            "events": ["invitee.created", "invitee.canceled"],
            "options": {"scope": "organization"},
            "registration": "automatic",
        },
        "steps": [
            {
                "name": "event",
                "type": "action",
                "application": "calendly",
                "credential": calendly.pk,
                "action": "scheduled_event",
                "filters": [["uuid", "{{ trigger.payload.event }}"]],
            },
            {
                "name": "document",
                "type": "map",
                "mapping": {"email": "{{ trigger.payload.email }}"},
            },
            {
                "name": "forward",
                "type": "action",
                "application": "rest",
                "credential": rest.pk,
                "action": "post_json",
                "filters": [["path", "/bookings"]],
                "document": "{{ steps.document }}",
            },
        ],
    }


def test_a_valid_polling_definition_is_normalised(acme, calendly):
    definition = polling(
        {"cron": "  */5   *  * * mon-fri "},
        source={
            "type": "action",
            "application": "calendly",
            "credential": calendly.pk,
            "action": "scheduled_events",
            "filters": [["organization", "~{GetOrganizationUrl}~"], ["count", "50"]],
            "document": "dropped",
        },
    )
    assert clean_definition(acme, definition)["trigger"] == {
        "type": "polling",
        "schedule": {"cron": "*/5 * * * mon-fri"},
        "source": {
            "application": "calendly",
            "credential": calendly.pk,
            "action": "scheduled_events",
            "filters": [["organization", "~{GetOrganizationUrl}~"], ["count", "50"]],
        },
    }


def test_a_one_off_schedule_without_a_source_is_valid(acme):
    cleaned = clean_definition(acme, polling({"once": True}))
    assert cleaned["trigger"] == {"type": "polling", "schedule": {"once": True}, "source": None}
