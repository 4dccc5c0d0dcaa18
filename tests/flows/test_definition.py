"""The engine checks a definition the same way for every host; only references differ."""

from __future__ import annotations

import pytest
from celery.schedules import crontab

import flows
from flows.schedule import FIELDS, CronError, check_cron, check_field
from tests.flows.conftest import MemoryHost, StoredCredential


@pytest.fixture
def catalog():
    memory = MemoryHost({})
    memory.credentials["sales"] = StoredCredential(
        "calendly", "Sales", {"personal_access_token": "x"}
    )
    memory.credentials["crm"] = StoredCredential(
        "rest", "CRM", {"token": "y"}, {"base_url": "https://crm.example"}
    )
    memory.credentials["octo"] = StoredCredential("github", "Octo", {"token": "z"})
    return memory


def webhook(**trigger) -> dict:
    return {
        "trigger": {"type": "webhook", "application": "calendly", "credential": "sales",
                    "events": ["invitee.created"], **trigger},
        "steps": [{"name": "document", "type": "map",
                   "mapping": {"email": "{{ trigger.payload.email }}"}}],
    }  # fmt: skip


def test_a_host_names_its_credentials_as_it_likes(catalog):
    cleaned = flows.check(webhook(), credentials=catalog)

    assert cleaned["trigger"]["credential"] == "sales"
    assert cleaned["trigger"]["options"] == {"scope": "organization"}
    assert cleaned["trigger"]["registration"] == "automatic"


def test_subscription_options_are_the_applications_declared_ones_with_defaults(catalog):
    github = webhook(application="github", credential="octo", events=["issues.opened"],
                     options={"owner": "octocat", "repo": "hello-world"})  # fmt: skip

    assert flows.check(github, credentials=catalog)["trigger"]["options"] == {
        "owner": "octocat", "repo": "hello-world",
    }  # fmt: skip
    assert flows.check(webhook(options={"scope": "user"}), credentials=catalog)["trigger"][
        "options"
    ] == {"scope": "user"}


def test_a_definition_saved_before_options_keeps_its_calendly_scope(catalog):
    cleaned = flows.check(webhook(scope="user"), credentials=catalog)

    assert cleaned["trigger"]["options"] == {"scope": "user"}
    assert flows.definition.trigger_options({"scope": "user", "events": []}) == {"scope": "user"}


@pytest.mark.parametrize(
    ("trigger", "where", "message"),
    [
        ({"options": {"scope": "everyone"}}, "trigger.options.scope",
         "The Scope is 'organization' or 'user'."),
        ({"application": "github", "credential": "octo", "events": ["issues.opened"],
          "options": {"owner": "octocat"}}, "trigger.options.repo",
         "Give the Repository (repo) to subscribe to."),
        ({"application": "github", "credential": "octo", "events": ["issues.opened"],
          "options": {"owner": "o", "repo": "r", "scope": "user"}}, "trigger.options.scope",
         "GitHub subscriptions take no option 'scope'; they take: owner, repo."),
    ],
)  # fmt: skip
def test_options_an_application_does_not_declare_or_allow_are_refused(
    catalog, trigger, where, message
):
    with pytest.raises(flows.DefinitionError) as caught:
        flows.check(webhook(**trigger), credentials=catalog)

    assert (caught.value.where, caught.value.message) == (where, message)


def test_the_hosts_message_is_given_for_a_credential_it_does_not_have(catalog):
    with pytest.raises(flows.DefinitionError) as caught:
        flows.check(webhook(credential="nope"), credentials=catalog)

    assert (caught.value.where, caught.value.message) == (
        "trigger.credential",
        "Choose a credential configured on this host.",
    )


def test_a_credential_of_another_application_is_refused_naming_both(catalog):
    with pytest.raises(flows.DefinitionError) as caught:
        flows.check(webhook(credential="crm"), credentials=catalog)

    assert caught.value.message == "Credential 'CRM' is for REST API, not Calendly."


def test_every_credential_a_definition_uses_is_listed_once_trigger_first(catalog):
    definition = webhook()
    definition["steps"].append(
        {"name": "forward", "application": "rest", "credential": "crm", "action": "post_json",
         "filters": [["path", "/x"]], "document": "{{ steps.document }}"}
    )  # fmt: skip
    cleaned = flows.check(definition, credentials=catalog)

    assert flows.definition.credentials_used(cleaned) == ["sales", "crm"]


CRON_EXPRESSIONS = [
    "*/5 * * * *", "0 8-18 * * mon-fri", "15,45 */2 1 jan,jul sun", "0 0 31 12 6",
    "1-5/2 * * * *", "5-1 * * * *", "60 * * * *", "0 24 * * *", "0 0 0 * *", "0 0 * 13 *",
    "0 0 * * 7", "*/0 * * * *", "0 0 * * xyz", "1,,2 * * * *", "-1 * * * *", "* * * * Monday",
    "*/ * * * *",
]  # fmt: skip


def _beat_accepts(expression: str) -> bool:
    try:
        crontab(**dict(zip(FIELDS, expression.split(), strict=True)))
    except Exception:
        return False
    return True


def _engine_accepts(expression: str) -> bool:
    try:
        check_cron(expression)
    except CronError:
        return False
    return True


@pytest.mark.parametrize("expression", CRON_EXPRESSIONS)
def test_a_cron_expression_is_accepted_exactly_when_the_scheduler_accepts_it(expression):
    assert _engine_accepts(expression) == _beat_accepts(expression)


def test_a_cron_field_out_of_range_says_by_how_much():
    with pytest.raises(CronError, match=r"^Invalid end range: 61 > 59\.$"):
        check_field("minute", "61")
