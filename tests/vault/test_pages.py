"""Manage > App: the installed applications with their Credential > REST nodes, forms
generated from each connector's fields (secrets as password inputs never filled back in),
saving, the credential page with its masked secret and history, editing, deleting, and what
a viewer may see but not do."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from connectors.calendly.sandbox import seed
from flows.definition import installed_applications
from portal.vault.keys import open_secrets
from portal.vault.models import Credential, CredentialEvent, CredentialStatus
from tests.factories import every, make_credential
from tests.vault.conftest import TOKEN_FIELD

# Every installed application, as error messages list them (by display name).
INSTALLED = ", ".join(app.name for app in installed_applications())

TOKEN = seed.OWNER_TOKEN
SAVED = "Connection Saved Successfully!"
APPS = reverse("vault:apps", kwargs={"org": "acme"})


def new_url(application: str = "calendly") -> str:
    return reverse("vault:credential_new", kwargs={"org": "acme", "application": application})


def url(name: str, credential) -> str:
    return reverse(name, kwargs={"org": "acme", "credential_id": credential.pk})


def html_of(response, status: int = 200) -> str:
    assert response.status_code == status, response.status_code
    return response.content.decode()


def inputs(html: str) -> dict[str, str]:
    """``{name: the whole <input> tag}`` of every named input."""
    return {
        re.search(r'name="([^"]+)"', tag).group(1): tag
        for tag in re.findall(r"<input[^>]*>", html)
        if 'name="' in tag
    }


def value_of(tag: str) -> str:
    found = re.search(r'value="([^"]*)"', tag)
    return found.group(1) if found else ""


def messages_of(html: str) -> list[str]:
    return re.findall(r'<li class="message[^"]*" role="status">([^<]*)</li>', html)


# --- The tree ----------------------------------------------------------------------------------


def test_manage_app_lists_the_installed_applications_with_credential_and_rest_nodes(login, owner):
    html = html_of(login(owner).get(APPS))

    assert "<h1>Manage › App</h1>" in html
    for app, display in (("calendly", "Calendly"), ("github", "GitHub"), ("rest", "REST API")):
        assert f'<details class="app-node" id="app-{app}">' in html
        assert f"<summary>{display} <span" in html
        assert f'id="credential-{app}"' in html
        assert f'id="node-{app}-rest"' in html
        assert f'hx-get="{new_url(app)}?type=rest"' in html
    # One per credential type of every installed application, whichever are installed.
    types = sum(len(app.credential_types) for app in installed_applications())
    assert html.count(">Add New Credential</a>") == types


def test_manage_app_lists_each_applications_actions_and_webhook_events(login, owner):
    html = html_of(login(owner).get(APPS))

    assert "<strong>Get Current User</strong><br><code>users/me</code>" in html
    assert "<code>GET /scheduled_events</code>" in html
    assert "<strong>POST JSON</strong><br><code>post_json</code>" in html
    assert "<code>invitee.created</code>" in html


def test_a_saved_credential_is_listed_under_its_application_and_type(acme, login, owner):
    credential = make_credential(acme, name="Sales team")

    html = html_of(login(owner).get(f"{APPS}?open=calendly&type=rest"))

    assert '<details class="type-node" id="node-calendly-rest" open>' in html
    assert f'<a href="{url("vault:credential", credential)}">Sales team</a>' in html
    assert "1 credential</span>" in html
    assert TOKEN not in html


def test_the_tree_costs_the_same_queries_for_1_or_50_credentials(acme, login, owner):
    client = login(owner)
    make_credential(acme, name="Credential 0")
    client.get(APPS)  # the session and the like settle on the first visit

    with CaptureQueriesContext(connection) as one:
        html_of(client.get(APPS))
    for n in range(1, 50):
        make_credential(acme, name=f"Credential {n}")
    with CaptureQueriesContext(connection) as fifty:
        html = html_of(client.get(APPS))

    assert html.count(">Open</a></td>") == 50  # one row per credential
    assert len(fifty) == len(one), [q["sql"] for q in fifty.captured_queries]


# --- The new-credential form -------------------------------------------------------------------


def test_the_new_calendly_form_is_generated_from_the_connectors_fields(login, owner):
    html = html_of(login(owner).get(f"{new_url()}?type=rest", HTTP_HX_REQUEST="true"))

    assert "<html" not in html  # htmx loads it into the tree
    assert "New Calendly REST credential" in html
    fields = inputs(html)
    assert set(fields) == {"csrfmiddlewaretoken", "type", "name", TOKEN_FIELD}
    assert 'type="password"' in fields[TOKEN_FIELD]
    assert 'autocomplete="off"' in fields[TOKEN_FIELD]
    assert "Personal Access Token</label>" in html
    assert "Integrations &amp; apps &gt; API and webhooks" in html  # the field's help text
    assert ">Validate</button>" in html
    assert ">Save</button>" in html


def test_the_new_rest_api_form_has_plain_and_secret_fields_as_declared(login, owner):
    html = html_of(login(owner).get(f"{new_url('rest')}?type=rest"))

    fields = inputs(html)
    assert {"base_url", "auth_type", "username", "token", "password", "api_key"} <= set(fields)
    for secret in ("token", "password", "api_key"):
        assert 'type="password"' in fields[secret]
    for plain in ("base_url", "auth_type", "username"):
        assert 'type="text"' in fields[plain]
    assert 'value="none"' in fields["auth_type"]  # the declared default


CONNECTED = (
    f"{SAVED} Connected to Calendly as Olivia Owner (olivia.owner@example.com), organization "
)


def test_saving_a_working_credential_says_connection_saved_successfully_and_who_it_reaches(
    acme, login, owner, calendly
):
    response = login(owner).post(
        f"{new_url()}?type=rest",
        {"type": "rest", "name": "Sales team", TOKEN_FIELD: TOKEN},
        follow=True,
    )

    html = html_of(response)
    [message] = messages_of(html)
    assert message.startswith(CONNECTED)
    assert response.redirect_chain[-1][0] == f"{APPS}?open=calendly&type=rest#node-calendly-rest"
    credential = Credential.objects.for_tenant(acme).select_related("data_key").get()
    assert (credential.name, open_secrets(credential)) == ("Sales team", {TOKEN_FIELD: TOKEN})
    assert TOKEN not in html


def test_a_refused_form_never_shows_the_typed_token_again(acme, login, owner):
    make_credential(acme, name="Sales team")

    html = html_of(
        login(owner).post(
            f"{new_url()}?type=rest",
            {"type": "rest", "name": "sales team", TOKEN_FIELD: seed.ADMIN_TOKEN},
        ),
        400,
    )

    assert "already exists" in html
    assert seed.ADMIN_TOKEN not in html
    assert "value=" not in inputs(html)[TOKEN_FIELD]
    assert every(Credential).count() == 1


def test_an_unusable_token_is_explained_next_to_its_field(login, owner):
    html = html_of(
        login(owner).post(
            f"{new_url()}?type=rest", {"type": "rest", "name": "Sales team", TOKEN_FIELD: "  "}
        ),
        400,
    )

    assert '<small class="field-error">The Personal Access Token is empty.</small>' in html
    assert not every(Credential).exists()


def test_an_unknown_application_has_no_form(login, owner):
    html = html_of(login(owner).get(new_url("calendlyy")), 404)

    assert f"Unknown application &#x27;calendlyy&#x27;; installed: {INSTALLED}." in html


# --- The credential page -----------------------------------------------------------------------


def test_the_credential_page_shows_the_masked_secret_and_the_history(acme, login, owner):
    credential = make_credential(acme, name="Sales team")

    html = html_of(login(owner).get(url("vault:credential", credential)))

    assert "<code>••••" + TOKEN[-4:] + "</code>" in html
    assert TOKEN not in html
    assert "value=" not in inputs(html)[TOKEN_FIELD]
    assert "<h2>History</h2>" in html
    assert "<td>Created</td><td>system: tests</td>" in html


def test_editing_replaces_the_secret(acme, login, owner, calendly):
    credential = make_credential(acme)

    response = login(owner).post(
        url("vault:credential", credential),
        {"name": "Sales team", TOKEN_FIELD: seed.ADMIN_TOKEN},
        follow=True,
    )

    html = html_of(response)
    [message] = messages_of(html)
    assert message.startswith(f"{SAVED} Connected to Calendly as ")
    assert "<code>••••" + seed.ADMIN_TOKEN[-4:] + "</code>" in html
    assert f"<td>Secret replaced</td><td>{owner.email}</td>" in html
    stored = every(Credential).select_related("data_key").get(pk=credential.pk)
    assert open_secrets(stored) == {TOKEN_FIELD: seed.ADMIN_TOKEN}


def test_editing_with_the_secret_left_empty_keeps_it(acme, login, owner):
    credential = make_credential(acme)

    login(owner).post(url("vault:credential", credential), {"name": "Renamed", TOKEN_FIELD: ""})

    stored = every(Credential).select_related("data_key").get(pk=credential.pk)
    assert (stored.name, open_secrets(stored)) == ("Renamed", {TOKEN_FIELD: TOKEN})
    assert not every(CredentialEvent).filter(action="secret_replaced").exists()


def test_saving_an_unchanged_edit_form_keeps_the_status(acme, login, owner):
    credential = make_credential(
        acme,
        name="Forwarder",
        application="rest",
        fields={"base_url": "https://api.example.com/v1"},
    )
    every(Credential).filter(pk=credential.pk).update(status=CredentialStatus.VALID)
    client = login(owner)
    page = html_of(client.get(url("vault:credential", credential)))
    posted = {name: value_of(tag) for name, tag in inputs(page).items()}  # as a browser would

    response = client.post(url("vault:credential", credential), posted)

    assert response.status_code == 302
    stored = every(Credential).get(pk=credential.pk)
    assert stored.status == CredentialStatus.VALID
    assert stored.fields["base_url"] == "https://api.example.com/v1"


def test_deleting_asks_for_confirmation_first(acme, login, owner):
    credential = make_credential(acme)

    html = html_of(login(owner).get(url("vault:credential_delete", credential)))

    assert "<h1>Delete Sales team?</h1>" in html
    assert ">Delete credential</button>" in html
    assert every(Credential).filter(pk=credential.pk).exists()


def test_confirming_deletes_the_credential_and_keeps_its_history(acme, login, owner):
    credential = make_credential(acme)

    response = login(owner).post(url("vault:credential_delete", credential), follow=True)

    assert messages_of(html_of(response)) == ["Credential Sales team deleted."]
    assert not every(Credential).filter(pk=credential.pk).exists()
    assert every(CredentialEvent).filter(credential_name="Sales team", action="deleted").exists()


# --- Viewers -----------------------------------------------------------------------------------


def test_a_viewer_sees_the_tree_without_add_controls(acme, login, viewer):
    make_credential(acme)

    html = html_of(login(viewer).get(APPS))

    assert 'id="node-calendly-rest"' in html
    assert ">Sales team</a>" in html
    assert "Add New Credential" not in html


def test_a_viewer_sees_a_credential_without_save_validate_or_delete(acme, login, viewer):
    credential = make_credential(acme)

    html = html_of(login(viewer).get(url("vault:credential", credential)))

    assert "<code>••••" + TOKEN[-4:] + "</code>" in html
    assert "<h2>History</h2>" in html
    for control in (">Save</button>", ">Validate</button>", "Re-validate", "Delete…", "<form"):
        assert control not in html.split("</header>", 1)[1], control


def test_a_viewer_sees_the_delete_page_without_its_button(acme, login, viewer):
    credential = make_credential(acme)

    html = html_of(login(viewer).get(url("vault:credential_delete", credential)))

    assert ">Delete credential</button>" not in html


@pytest.mark.parametrize(
    "target",
    ["new", "credential", "credential_delete", "credential_validate", "credential_detail_check"],
)
def test_a_viewers_posts_are_refused(acme, login, viewer, target):
    credential = make_credential(acme)
    path = f"{new_url()}?type=rest" if target == "new" else url(f"vault:{target}", credential)

    response = login(viewer).post(
        path, {"type": "rest", "name": "Viewer's", TOKEN_FIELD: seed.ADMIN_TOKEN}
    )

    assert response.status_code == 403
    stored = every(Credential).select_related("data_key").get()
    assert (stored.name, open_secrets(stored)) == ("Sales team", {TOKEN_FIELD: TOKEN})
    assert stored.checked_at is None
