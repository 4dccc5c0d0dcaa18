"""Action filters: rows become a typed, validated input before any request is sent.

The rows are the Calendly connector's (real declarations). Every call here points at a port
nobody listens on: a test that got as far as sending would fail with TransportError, which
proves each refusal happened before the network.
"""

from __future__ import annotations

import pytest

from connectors import Action, Credentials, Param, Runtime, Unlimited, get_connector
from connectors.errors import FilterError
from connectors.filters import build_input, render

CREDENTIALS = Credentials(type="rest", secrets={"personal_access_token": "t" * 40}, key="c:1")
OFFLINE = Runtime(
    base_urls={"calendly": "http://127.0.0.1:9"}, rate_limiter=Unlimited(), max_retries=0
)
ORG = "https://api.calendly.com/organizations/AAAA"


@pytest.fixture
def calendly():
    return get_connector("calendly")


def known_functions(name: str, key: str) -> str:
    """Resource function values as a credential would resolve them."""
    return {"GetOrganizationUrl": ORG, "GetUserUrl": "https://api.calendly.com/users/U1"}[name]


def build(calendly, action: str, rows, context=None):
    return build_input(
        calendly.action(action),
        rows,
        context=context,
        resolve=known_functions,
        functions=calendly.resource_functions,
    )


def refusal(calendly, action: str, rows, **options) -> FilterError:
    with pytest.raises(FilterError) as caught:
        calendly.run_action(action, CREDENTIALS, filters=rows, runtime=OFFLINE, **options)
    return caught.value


# Building values ------------------------------------------------------------------------------
def test_repeated_list_rows_build_a_list_in_order(calendly):
    values = build(
        calendly,
        "webhook_subscription",
        [
            ("events[]", "invitee.created"),
            ("events[]", "invitee.canceled"),
            ("scope", "organization"),
            ("organization", "~{GetOrganizationUrl}~"),
            ("url", "https://portal.example.com/hooks/abc"),
        ],
    )

    assert values == {
        "events": ["invitee.created", "invitee.canceled"],
        "scope": "organization",
        "organization": ORG,
        "url": "https://portal.example.com/hooks/abc",
    }


def test_defaults_may_be_placeholders(calendly):
    values = build(calendly, "webhook_subscriptions", [("scope", "organization")])

    assert values["organization"] == ORG


def test_a_whole_value_reference_keeps_its_type(calendly):
    context = {"trigger": {"payload": {"events": ["invitee.created", "invitee.canceled"]}}}

    values = build(
        calendly,
        "webhook_subscription",
        [
            ("events", "{{ trigger.payload.events }}"),
            ("scope", "organization"),
            ("url", "https://portal.example.com/hooks/abc"),
        ],
        context,
    )

    assert values["events"] == ["invitee.created", "invitee.canceled"]


def test_references_inside_text_are_interpolated(calendly):
    context = {"steps": {"fetch": {"collection": [{"uri": "https://api.calendly.com/x/EV9"}]}}}

    values = build(
        calendly,
        "users",
        [("uuid", "{{ steps.fetch.collection[0].uri }}")],
        context,
    )
    path, _, _ = render(calendly.action("users"), {"uuid": "prefix-{{ a }}"})

    assert values["uuid"] == "https://api.calendly.com/x/EV9"
    assert path == "/users/prefix-%7B%7B%20a%20%7D%7D"  # never evaluated twice: encoded


def test_dotted_list_indexes_work_like_brackets(calendly):
    context = {"trigger": {"payload": {"invitees": [{"email": "a@example.com"}]}}}

    values = build(
        calendly,
        "scheduled_events",
        [("user", "~{GetUserUrl}~"), ("invitee_email", "{{ trigger.payload.invitees.0.email }}")],
        context,
    )

    assert values["invitee_email"] == "a@example.com"


def test_a_placeholder_arriving_in_the_payload_is_not_resolved(calendly):
    context = {"trigger": {"payload": {"email": "~{GetOrganizationUrl}~"}}}

    with pytest.raises(FilterError) as caught:
        build(
            calendly,
            "scheduled_events",
            [("user", "~{GetUserUrl}~"), ("invitee_email", "{{ trigger.payload.email }}")],
            context,
        )

    assert "'~{GetOrganizationUrl}~'" in str(caught.value)  # taken literally, then invalid


def test_values_are_coerced_to_the_declared_types(calendly):
    values = build(
        calendly,
        "event_types",
        [("user", "~{GetUserUrl}~"), ("count", " 10 "), ("active", "TRUE")],
    )

    assert values["count"] == 10
    assert values["active"] is True


def test_empty_rows_mean_not_given(calendly):
    values = build(
        calendly, "event_types", [("user", "~{GetUserUrl}~"), ("count", ""), ("sort", None)]
    )

    assert set(values) == {"user"}


def test_rows_may_be_dicts_or_a_mapping(calendly):
    as_dicts = build(calendly, "users", [{"key": "uuid", "value": "U1"}])
    as_mapping = build(calendly, "users", {"uuid": "U1"})

    assert as_dicts == as_mapping == {"uuid": "U1"}


# Refusals -------------------------------------------------------------------------------------
def test_an_unknown_key_is_named_with_the_allowed_keys(calendly):
    error = refusal(calendly, "scheduled_events", [("user", "~{GetUserUrl}~"), ("colour", "red")])

    assert error.key == "colour"
    assert "user, organization, invitee_email, status, sort" in str(error)
    assert "colour" in str(error)


def test_a_missing_required_key_is_named(calendly):
    error = refusal(calendly, "scheduled_event", [])

    assert error.key == "uuid"
    assert str(error).startswith("scheduled_event needs `uuid`")


def test_one_of_several_keys_is_required():
    action = Action(
        name="lookup",
        label="Lookup",
        method="GET",
        path="/lookup",
        params=(Param("email", "query"), Param("phone", "query")),
        requires_any=(("email", "phone"),),
    )

    with pytest.raises(FilterError) as caught:
        build_input(action, [("phone", "")], resolve=known_functions)

    assert str(caught.value) == "lookup needs one of: email, phone."
    assert caught.value.allowed == ("email", "phone")


def test_a_default_can_give_way_to_another_key(calendly):
    mine = build(calendly, "scheduled_events", [("status", "active")])
    organization = build(calendly, "scheduled_events", [("organization", ORG)])

    assert mine["user"] == "https://api.calendly.com/users/U1"
    assert "user" not in organization


def test_an_unknown_placeholder_lists_the_resource_functions(calendly):
    error = refusal(calendly, "event_types", [("user", "~{GetMe}~")])

    assert error.key == "user"
    assert "~{GetMe}~" in str(error)
    assert error.allowed == ("GetOrganizationUrl", "GetUserUrl")


def test_a_missing_context_path_is_named_with_what_is_there(calendly):
    context = {"trigger": {"payload": {"event": "invitee.created", "email": "a@example.com"}}}

    error = refusal(
        calendly,
        "scheduled_events",
        [("user", "~{GetUserUrl}~"), ("invitee_email", "{{ trigger.payload.mail }}")],
        context=context,
    )

    assert "trigger.payload.mail" in str(error)
    assert error.allowed == ("event", "email")


def test_a_bad_enum_value_lists_the_allowed_ones(calendly):
    error = refusal(calendly, "scheduled_events", [("user", "~{GetUserUrl}~"), ("status", "done")])

    assert error.key == "status"
    assert error.allowed == ("active", "canceled")
    assert str(error) == "`status` must be one of: active, canceled; got 'done'."


def test_a_bad_list_item_is_refused_with_the_allowed_events(calendly):
    error = refusal(
        calendly,
        "webhook_subscription",
        [("events[]", "invitee.created"), ("events[]", "meeting.started"), ("scope", "user"),
         ("url", "https://portal.example.com/h")],
    )  # fmt: skip

    assert error.key == "events[]"
    assert "routing_form_submission.created" in error.allowed


def test_a_number_out_of_range_is_refused(calendly):
    error = refusal(calendly, "scheduled_events", [("user", "~{GetUserUrl}~"), ("count", "500")])

    assert error.key == "count"
    assert "100" in str(error)


def test_a_single_value_key_given_twice_is_refused(calendly):
    error = refusal(calendly, "users", [("uuid", "A"), ("uuid", "B")])

    assert "given twice" in str(error)


def test_a_document_is_refused_by_actions_that_take_none(calendly):
    error = refusal(calendly, "users", [("uuid", "A")], document={"x": 1})

    assert "takes no document" in str(error)


@pytest.mark.parametrize(
    "value",
    ["", "  ", "a/b", "..", "../users/me", "a..b", "..%2F", "x\\y", "?x", "a\x00b"],
)
def test_path_parameters_cannot_climb_out_of_their_segment(calendly, value):
    with pytest.raises(FilterError) as caught:
        render(calendly.action("scheduled_event"), {"uuid": value})

    assert caught.value.key == "uuid"


def test_a_full_uri_is_accepted_for_a_uuid_but_only_of_its_collection(calendly):
    action = calendly.action("scheduled_event")

    path, _, _ = render(action, {"uuid": "https://api.calendly.com/scheduled_events/EV%20X"})
    with pytest.raises(FilterError) as caught:
        render(action, {"uuid": "https://api.calendly.com/users/EV1"})

    assert path == "/scheduled_events/EV%20X"
    assert "scheduled_events URI" in str(caught.value)


def test_path_parameters_are_percent_encoded(calendly):
    path, _, _ = render(calendly.action("users"), {"uuid": "a b#c?d"})

    assert path == "/users/a%20b%23c%3Fd"


# Checking without running ---------------------------------------------------------------------
def test_check_filters_reports_what_is_certainly_wrong(calendly):
    problems = calendly.check_filters(
        "webhook_subscription",
        [("events[]", "invitee.created"), ("scope", "everyone"), ("organization", "~{Nope}~")],
    )

    assert any("~{Nope}~" in p for p in problems)
    assert any("`scope` must be one of" in p for p in problems)
    assert any("needs `url`" in p for p in problems)


def test_check_filters_accepts_references_it_cannot_evaluate_yet(calendly):
    problems = calendly.check_filters(
        "scheduled_events",
        [("user", "~{GetUserUrl}~"), ("count", "{{ trigger.payload.count }}")],
    )

    assert problems == []
