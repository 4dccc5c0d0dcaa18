"""Discovery: connectors are folders; the library stands on its own (no Django)."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

import connectors
from connectors import Action, Connector, CredentialType, Field, Param
from connectors.auth import NoAuth
from connectors.errors import UnknownAction, UnknownConnector
from connectors.testing import RecordingServer, Reply
from tests.processes import run

REPO = Path(__file__).resolve().parents[2]

THROWAWAY = '''
"""A connector that exists only for this test."""
from connectors import Action, Connector, CredentialType, Field, Param
from connectors.auth import BearerToken

connector = Connector(
    name="acme_widgets",
    display_name="Acme Widgets",
    base_url="https://widgets.invalid",
    credential_types=[
        CredentialType(
            name="rest", label="REST",
            fields=(Field("api_token", "API token", secret=True),),
            auth=BearerToken("api_token"),
        )
    ],
    actions=[
        Action(
            name="widget", label="Get Widget", method="GET", path="/widgets/{id}",
            params=(Param("id", "path", required=True),),
        )
    ],
)
'''


@pytest.fixture
def extra_connectors(tmp_path, monkeypatch):
    """A connectors/ folder on sys.path, outside the repository; forgotten afterwards."""
    folder = tmp_path / "connectors"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(connectors, "__path__", list(connectors.__path__))
    yield folder
    for name in [m for m in sys.modules if m.startswith(("connectors.acme_", "connectors.broken"))]:
        monkeypatch.delitem(sys.modules, name)
    connectors.refresh()


KNOWN = {"calendly", "figma", "github", "rest"}


def installed() -> list[str]:
    return [c.name for c in connectors.all_connectors()]


def test_the_known_connectors_are_discovered_among_any_others():
    names = installed()

    assert set(names) >= KNOWN
    assert names == sorted(names)
    assert connectors.get_connector("calendly").display_name == "Calendly"
    assert connectors.get_connector("github").display_name == "GitHub"


def test_an_unknown_connector_is_a_typed_error_listing_the_installed():
    with pytest.raises(UnknownConnector) as caught:
        connectors.get_connector("hubspot")

    assert str(caught.value) == (
        f"No connector is called 'hubspot'; installed: {', '.join(installed())}."
    )
    assert all(name in str(caught.value) for name in KNOWN)


def test_an_unknown_action_is_a_typed_error_listing_the_actions():
    with pytest.raises(UnknownAction) as caught:
        connectors.get_connector("calendly").action("invitees")

    assert "scheduled_event_invitees" in str(caught.value)


def test_a_new_folder_is_a_new_connector_without_editing_anything(extra_connectors):
    package = extra_connectors / "acme_widgets"
    package.mkdir()
    (package / "__init__.py").write_text(THROWAWAY)

    connectors.refresh()
    acme = connectors.get_connector("acme_widgets")
    with RecordingServer(lambda request: Reply(200, {"id": request.path})) as server:
        result = acme.run_action(
            "widget",
            connectors.Credentials(type="rest", secrets={"api_token": "tok-acme"}),
            filters=[("id", "W1")],
            runtime=connectors.Runtime(base_urls={"acme_widgets": server.url}),
        )

    assert {"acme_widgets", *KNOWN} <= set(installed())
    assert result.data == {"id": "/widgets/W1"}
    assert server.requests[0].header("Authorization") == "Bearer tok-acme"


def test_a_broken_connector_is_reported_and_does_not_hide_the_others(extra_connectors):
    package = extra_connectors / "broken_thing"
    package.mkdir()
    (package / "__init__.py").write_text("raise ImportError('missing dependency widgetlib')\n")

    connectors.refresh()

    assert set(installed()) >= KNOWN
    assert "broken_thing" not in installed()
    assert "widgetlib" in connectors.registry.problems()["broken_thing"]


@pytest.mark.parametrize("name", sorted(c.name for c in connectors.all_connectors()))
def test_describe_is_json_the_portal_can_serve(name):
    description = json.loads(json.dumps(connectors.get_connector(name).describe()))

    assert description["name"] == name
    assert description["credential_types"][0]["fields"]
    for action in description["actions"]:
        assert action["input_schema"]["type"] == "object"
        for prop in action["input_schema"]["properties"].values():
            assert prop["x-location"] in ("path", "query", "body")


def test_calendlys_description_has_its_form_functions_and_events():
    description = connectors.get_connector("calendly").describe()

    (credential_type,) = description["credential_types"]
    assert credential_type["name"] == "rest"
    assert credential_type["label"] == "REST"
    assert credential_type["fields"] == [
        {
            "name": "personal_access_token",
            "label": "Personal Access Token",
            "help_text": credential_type["fields"][0]["help_text"],
            "secret": True,
            "required": True,
            "max_length": 4096,
            "default": None,
            "choices": [],
        }
    ]
    assert [f["name"] for f in description["resource_functions"]] == [
        "GetOrganizationUrl",
        "GetUserUrl",
    ]
    assert description["webhooks"]["events"] == [
        "invitee.created",
        "invitee.canceled",
        "invitee_no_show.created",
        "invitee_no_show.deleted",
        "routing_form_submission.created",
    ]
    assert description["rate_limit_per_minute"] == 500
    actions = {a["name"]: a for a in description["actions"]}
    assert actions["webhook_subscription"]["label"] == "Create Webhook Subscription"
    assert actions["webhook_subscription"]["keys"] == [
        "url", "events[]", "scope", "organization", "user", "signing_key",
    ]  # fmt: skip
    assert actions["scheduled_events"]["pagination"]["token_param"] == "page_token"


def test_declarations_are_checked_when_they_are_made():
    with pytest.raises(ValueError, match="path parameters"):
        Action(name="x", label="X", method="GET", path="/things/{id}")
    with pytest.raises(ValueError, match="unknown"):
        Connector(
            name="x",
            display_name="X",
            credential_types=[CredentialType("rest", "REST", (Field("k", "K"),), NoAuth())],
            actions=[
                Action(name="a", label="A", method="GET", path="/a", params=(Param("q", "query"),))
            ],
            validation_action="missing",
        )


def test_the_library_never_imports_django():
    code = textwrap.dedent(
        """
        import sys
        import connectors, connectors.cli, connectors.testing
        for connector in connectors.all_connectors():
            connector.describe()
        loaded = sorted(m for m in sys.modules if m == "django" or m.startswith("django."))
        print(loaded)
        raise SystemExit(1 if loaded else 0)
        """
    )

    completed = run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )

    assert completed.returncode == 0, completed.stdout + completed.stderr
