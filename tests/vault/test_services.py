"""The vault's services: credentials are stored encrypted, checked strictly on the way in,
replaced without being read, deleted with their history kept, written only by members who
may change things, and audited without ever a secret in the log."""

from __future__ import annotations

import base64
import json

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from connectors.calendly.sandbox import seed
from flows.definition import installed_applications
from portal.vault import calls, services
from portal.vault.keys import data_key_cache, open_secrets
from portal.vault.models import Credential, CredentialEvent, CredentialStatus
from portal.vault.opener import CANNOT_DECRYPT
from tests.factories import every, make_credential
from tests.vault.conftest import TOKEN_FIELD, stored_row

# Every installed application, as error messages list them (by display name).
INSTALLED = ", ".join(app.name for app in installed_applications())

TOKEN = seed.OWNER_TOKEN
Action = CredentialEvent.Action


def create(organization, actor, *, name="Sales team", **kw):
    kw.setdefault("secrets", {TOKEN_FIELD: TOKEN})
    return services.create_credential(
        organization, actor=actor, application=kw.pop("application", "calendly"), name=name, **kw
    )


def problems(error: ValidationError) -> dict[str, list[str]]:
    return error.value.message_dict


def corrupt(credential: Credential, field: str = TOKEN_FIELD) -> None:
    """Flip one bit of the stored ciphertext: still base64, no longer authentic."""
    sealed = bytearray(base64.b64decode(credential.secret_values[field]))
    sealed[-1] ^= 0x01
    values = {**credential.secret_values, field: base64.b64encode(bytes(sealed)).decode()}
    every(Credential).filter(pk=credential.pk).update(secret_values=values)
    data_key_cache.clear()


def events(credential_name: str) -> list[str]:
    return list(
        every(CredentialEvent)
        .filter(credential_name=credential_name)
        .order_by("created_at", "pk")
        .values_list("action", flat=True)
    )


# --- Create ------------------------------------------------------------------------------------


def test_a_created_credential_never_holds_the_token_in_its_database_row(acme, owner, as_member):
    credential = create(acme, as_member(owner))

    row = stored_row(credential)
    assert TOKEN not in row
    assert TOKEN[-20:] not in row
    assert set(credential.secret_values) == {TOKEN_FIELD}


def test_a_created_credential_opens_back_to_its_token(acme, owner, as_member):
    credential = create(acme, as_member(owner))

    data_key_cache.clear()  # decrypt from the stored, wrapped data key
    stored = every(Credential).select_related("data_key").get(pk=credential.pk)
    assert open_secrets(stored) == {TOKEN_FIELD: TOKEN}


def test_a_new_credential_starts_unvalidated_and_audited_as_created(acme, owner, as_member):
    credential = create(acme, as_member(owner))

    assert credential.status == CredentialStatus.UNVALIDATED
    event = every(CredentialEvent).get(credential=credential)
    assert (event.action, event.actor, event.actor_label) == (Action.CREATED, owner, owner.email)


def test_the_masked_secret_is_four_bullets_and_the_last_four_characters(acme, owner, as_member):
    credential = create(acme, as_member(owner))

    assert credential.masked_secrets() == {TOKEN_FIELD: "••••" + TOKEN[-4:]}


def test_surrounding_whitespace_of_a_pasted_token_is_dropped(acme, owner, as_member):
    credential = create(acme, as_member(owner), secrets={TOKEN_FIELD: f"  {TOKEN}\n"})

    assert open_secrets(credential) == {TOKEN_FIELD: TOKEN}


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("", "The Personal Access Token is empty."),
        ("   \t ", "The Personal Access Token is empty."),
        (
            "x" * 10 * 1024,
            "The Personal Access Token is too long (10240 characters; at most 4096). "
            "Check that you pasted only the token.",
        ),
        (
            TOKEN[:40] + "é" + TOKEN[40:],
            "The Personal Access Token contains non-ASCII characters (such as accented letters "
            "or curly quotes), which it cannot contain. Check that you pasted the value itself.",
        ),
        (
            TOKEN[:40] + " " + TOKEN[40:],
            "The Personal Access Token contains spaces, line breaks or control characters.",
        ),
    ],
    ids=["empty", "whitespace", "10-KB", "non-ASCII", "inner-space"],
)
def test_an_unusable_token_is_refused_with_a_clear_message_and_nothing_is_stored(
    acme, owner, as_member, token, message
):
    with pytest.raises(ValidationError) as error:
        create(acme, as_member(owner), secrets={TOKEN_FIELD: token})

    assert problems(error) == {TOKEN_FIELD: [message]}
    assert not every(Credential).exists()
    assert not every(CredentialEvent).exists()


def test_a_missing_token_is_refused_as_required(acme, owner, as_member):
    with pytest.raises(ValidationError) as error:
        create(acme, as_member(owner), secrets={})

    assert problems(error) == {TOKEN_FIELD: ["The Personal Access Token is required."]}
    assert not every(Credential).exists()


def test_an_unknown_application_is_refused_naming_the_installed_ones(acme, owner, as_member):
    with pytest.raises(ValidationError) as error:
        create(acme, as_member(owner), application="calendlyy")

    assert problems(error) == {
        "application": [f"Unknown application 'calendlyy'; installed: {INSTALLED}."]
    }
    assert not every(Credential).exists()


def test_a_field_the_connector_does_not_declare_is_refused(acme, owner, as_member):
    with pytest.raises(ValidationError) as error:
        create(acme, as_member(owner), secrets={TOKEN_FIELD: TOKEN, "api_key": "abcd1234efgh"})

    assert problems(error) == {
        "api_key": [
            "Calendly's REST credential has no field 'api_key'; it has: personal_access_token."
        ]
    }
    assert not every(Credential).exists()


def test_a_secret_sent_as_a_plain_field_is_refused_and_not_stored(acme, owner, as_member):
    with pytest.raises(ValidationError) as error:
        create(acme, as_member(owner), fields={TOKEN_FIELD: TOKEN}, secrets={})

    assert problems(error) == {
        TOKEN_FIELD: ["The Personal Access Token is secret: send it in secrets, not in fields."]
    }
    assert not every(Credential).exists()
    assert TOKEN not in str(error.value)


def test_a_duplicate_name_is_refused_whatever_its_case(acme, owner, as_member):
    create(acme, as_member(owner), name="Sales team")

    with pytest.raises(ValidationError) as error:
        create(acme, as_member(owner), name="  SALES TEAM ")

    assert problems(error) == {
        "name": [
            "A Calendly credential named 'Sales team' already exists; names differ by more "
            "than upper and lower case. Choose another name."
        ]
    }
    assert every(Credential).count() == 1


def test_every_problem_of_one_request_is_reported_together(acme, owner, as_member):
    with pytest.raises(ValidationError) as error:
        create(acme, as_member(owner), name=" ", secrets={TOKEN_FIELD: ""})

    assert problems(error) == {
        "name": ["Give the credential a name, e.g. 'Sales team'."],
        TOKEN_FIELD: ["The Personal Access Token is empty."],
    }


def test_a_plain_field_left_out_takes_its_declared_default(acme, owner, as_member):
    credential = create(
        acme,
        as_member(owner),
        application="rest",
        name="Forwarder",
        fields={"base_url": "https://api.example.com/v1"},
        secrets={},
    )

    assert credential.fields["auth_type"] == "none"
    assert credential.fields["base_url"] == "https://api.example.com/v1"


def test_a_plain_field_outside_its_declared_choices_is_refused(acme, owner, as_member):
    with pytest.raises(ValidationError) as error:
        create(
            acme,
            as_member(owner),
            application="rest",
            name="Forwarder",
            fields={"base_url": "https://api.example.com", "auth_type": "oauth"},
            secrets={},
        )

    assert problems(error) == {
        "auth_type": ["The Authentication must be one of: none, bearer, basic, api_key."]
    }


def test_an_organization_keeps_several_credentials_of_one_application(acme, owner, as_member):
    actor = as_member(owner)
    create(acme, actor, name="Sales team")
    create(acme, actor, name="Support", secrets={TOKEN_FIELD: seed.ADMIN_TOKEN})
    create(acme, actor, name="Marketing", secrets={TOKEN_FIELD: seed.MEMBER_TOKEN})

    stored = Credential.objects.for_tenant(acme).filter(application="calendly")
    assert sorted(stored.values_list("name", flat=True)) == ["Marketing", "Sales team", "Support"]


def test_another_organization_may_use_the_same_name(acme, globex, owner, outsider, as_member):
    from portal.tenancy.models import Membership

    create(acme, as_member(owner), name="Sales team")
    create(globex, every(Membership).get(user=outsider), name="Sales team")

    assert every(Credential).filter(name="Sales team").count() == 2


# --- Update ------------------------------------------------------------------------------------


def test_renaming_keeps_the_secret_and_the_status(acme, owner, as_member):
    credential = create(acme, as_member(owner))
    every(Credential).filter(pk=credential.pk).update(status=CredentialStatus.VALID)

    renamed = services.update_credential(
        acme, actor=as_member(owner), credential_id=credential.pk, name="Sales (EMEA)"
    )

    assert renamed.name == "Sales (EMEA)"
    assert renamed.status == CredentialStatus.VALID
    assert open_secrets(renamed) == {TOKEN_FIELD: TOKEN}
    assert events("Sales (EMEA)")[-1] == Action.UPDATED


def test_renaming_to_another_credentials_name_is_refused(acme, owner, as_member):
    actor = as_member(owner)
    create(acme, actor, name="Sales team")
    support = create(acme, actor, name="Support")

    with pytest.raises(ValidationError) as error:
        services.update_credential(acme, actor=actor, credential_id=support.pk, name="sales TEAM")

    assert "already exists" in problems(error)["name"][0]
    assert every(Credential).get(pk=support.pk).name == "Support"


def test_replacing_the_secret_resets_the_status_and_is_audited(acme, owner, as_member):
    credential = create(acme, as_member(owner))
    every(Credential).filter(pk=credential.pk).update(
        status=CredentialStatus.VALID, account={"name": "Olivia Owner"}
    )

    updated = services.update_credential(
        acme,
        actor=as_member(owner),
        credential_id=credential.pk,
        secrets={TOKEN_FIELD: seed.ADMIN_TOKEN},
    )

    stored = every(Credential).select_related("data_key").get(pk=credential.pk)
    assert open_secrets(stored) == {TOKEN_FIELD: seed.ADMIN_TOKEN}
    assert (stored.status, stored.account) == (CredentialStatus.UNVALIDATED, {})
    assert updated.masked_secrets() == {TOKEN_FIELD: "••••" + seed.ADMIN_TOKEN[-4:]}
    replaced = every(CredentialEvent).get(credential=credential, action=Action.SECRET_REPLACED)
    assert (replaced.actor, replaced.detail) == (owner, {"fields": [TOKEN_FIELD]})


def test_replacing_a_secret_never_decrypts_the_old_one(acme, owner, as_member):
    credential = create(acme, as_member(owner))
    corrupt(credential)  # the old secret can no longer be read by anyone

    services.update_credential(
        acme,
        actor=as_member(owner),
        credential_id=credential.pk,
        secrets={TOKEN_FIELD: seed.ADMIN_TOKEN},
    )

    stored = every(Credential).select_related("data_key").get(pk=credential.pk)
    assert open_secrets(stored) == {TOKEN_FIELD: seed.ADMIN_TOKEN}
    assert not every(CredentialEvent).filter(action=Action.DECRYPT_FAILED).exists()


def test_an_update_with_an_unusable_secret_changes_nothing(acme, owner, as_member):
    credential = create(acme, as_member(owner))

    with pytest.raises(ValidationError):
        services.update_credential(
            acme,
            actor=as_member(owner),
            credential_id=credential.pk,
            name="Renamed",
            secrets={TOKEN_FIELD: "  "},
        )

    stored = every(Credential).select_related("data_key").get(pk=credential.pk)
    assert (stored.name, open_secrets(stored)) == ("Sales team", {TOKEN_FIELD: TOKEN})


def test_changing_a_plain_field_resets_the_status(acme, owner, as_member):
    credential = create(
        acme,
        as_member(owner),
        application="rest",
        name="Forwarder",
        fields={"base_url": "https://api.example.com/v1"},
        secrets={},
    )
    every(Credential).filter(pk=credential.pk).update(status=CredentialStatus.VALID)

    updated = services.update_credential(
        acme,
        actor=as_member(owner),
        credential_id=credential.pk,
        fields={"base_url": "https://api.example.com/v2"},
    )

    assert updated.fields["base_url"] == "https://api.example.com/v2"
    assert updated.status == CredentialStatus.UNVALIDATED
    assert every(CredentialEvent).get(action=Action.UPDATED).detail == {"changed": ["fields"]}


# --- Delete ------------------------------------------------------------------------------------


def test_deleting_removes_the_row_and_keeps_its_history(acme, owner, as_member):
    credential = create(acme, as_member(owner))

    services.delete_credential(acme, actor=as_member(owner), credential_id=credential.pk)

    assert not every(Credential).filter(pk=credential.pk).exists()
    history = CredentialEvent.objects.for_tenant(acme).order_by("created_at", "pk")
    assert [(e.action, e.credential_name, e.credential_id) for e in history] == [
        (Action.CREATED, "Sales team", None),
        (Action.DELETED, "Sales team", None),
    ]


# --- Permissions -------------------------------------------------------------------------------


def test_a_viewer_cannot_create_a_credential(acme, viewer, as_member):
    with pytest.raises(PermissionDenied, match=r"Your role \(viewer\) does not allow"):
        create(acme, as_member(viewer))

    assert not every(Credential).exists()


def test_a_viewer_cannot_update_a_credential(acme, viewer, as_member):
    credential = make_credential(acme)

    with pytest.raises(PermissionDenied):
        services.update_credential(
            acme,
            actor=as_member(viewer),
            credential_id=credential.pk,
            name="Mine now",
            secrets={TOKEN_FIELD: seed.ADMIN_TOKEN},
        )

    stored = every(Credential).select_related("data_key").get(pk=credential.pk)
    assert (stored.name, open_secrets(stored)) == ("Sales team", {TOKEN_FIELD: TOKEN})


def test_a_viewer_cannot_delete_a_credential(acme, viewer, as_member):
    credential = make_credential(acme)

    with pytest.raises(PermissionDenied):
        services.delete_credential(acme, actor=as_member(viewer), credential_id=credential.pk)

    assert every(Credential).filter(pk=credential.pk).exists()
    assert not every(CredentialEvent).filter(action=Action.DELETED).exists()


def test_a_member_may_create_a_credential(acme, member, as_member):
    credential = create(acme, as_member(member))

    assert credential.created_by == member


# --- Audit -------------------------------------------------------------------------------------


def test_the_audit_log_records_each_step_with_actor_and_time_and_never_the_secret(
    acme, owner, admin, as_member, calendly
):
    credential = create(acme, as_member(owner))
    services.validate_credential(acme, actor=as_member(admin), credential_id=credential.pk)
    services.update_credential(
        acme,
        actor=as_member(owner),
        credential_id=credential.pk,
        secrets={TOKEN_FIELD: seed.ADMIN_TOKEN},
    )
    calls.run_action(every(Credential).select_related("data_key").get(pk=credential.pk), "users/me")
    services.delete_credential(acme, actor=as_member(admin), credential_id=credential.pk)

    history = list(CredentialEvent.objects.for_tenant(acme).order_by("created_at", "pk"))
    assert [(e.action, e.actor_label) for e in history] == [
        (Action.CREATED, owner.email),
        (Action.VALIDATED, admin.email),
        (Action.SECRET_REPLACED, owner.email),
        (Action.USED, "system: action"),
        (Action.DELETED, admin.email),
    ]
    assert [e.actor for e in history] == [owner, admin, owner, None, admin]
    assert all(e.created_at is not None for e in history)
    assert history[1].detail["ok"] is True
    assert history[3].detail == {"step_action": "users/me", "ok": True, "status": 200}
    logged = json.dumps([[e.action, e.actor_label, e.detail, e.credential_name] for e in history])
    for secret in (TOKEN, seed.ADMIN_TOKEN):
        assert secret not in logged
        assert secret[-12:] not in logged


# --- Corrupted ciphertext ----------------------------------------------------------------------


def test_a_corrupted_credential_reports_it_cannot_be_decrypted_when_validated(
    acme, owner, as_member, calendly
):
    credential = create(acme, as_member(owner))
    corrupt(credential)

    outcome = services.validate_credential(
        acme, actor=as_member(owner), credential_id=credential.pk
    )

    assert (outcome.ok, outcome.message) == (
        False,
        "The stored secret cannot be decrypted. Replace the secret to use this credential again.",
    )
    stored = every(Credential).get(pk=credential.pk)
    assert (stored.status, stored.status_message) == (CredentialStatus.INVALID, outcome.message)
    assert Action.DECRYPT_FAILED in events("Sales team")
    assert calendly.exchanges == []  # nothing was sent on its behalf


def test_other_credentials_keep_working_beside_a_corrupted_one(acme, owner, as_member, calendly):
    broken = create(acme, as_member(owner), name="Broken")
    healthy = create(acme, as_member(owner), name="Healthy")
    corrupt(broken)

    outcome = services.validate_credential(acme, actor=as_member(owner), credential_id=healthy.pk)

    assert outcome.ok, outcome.message
    assert every(Credential).get(pk=healthy.pk).status == CredentialStatus.VALID
    assert calls.run_action(
        every(Credential).select_related("data_key").get(pk=healthy.pk), "users/me"
    ).ok


def test_running_an_action_with_a_corrupted_credential_fails_with_the_decrypt_message(
    acme, owner, as_member, calendly
):
    credential = create(acme, as_member(owner))
    corrupt(credential)

    outcome = calls.run_action(
        every(Credential).select_related("data_key").get(pk=credential.pk), "users/me"
    )

    assert (outcome.ok, outcome.message) == (False, CANNOT_DECRYPT)
    assert calendly.exchanges == []


def test_checking_a_corrupted_credential_without_a_new_token_says_it_cannot_be_decrypted(
    acme, owner, as_member, calendly
):
    credential = create(acme, as_member(owner))
    corrupt(credential)

    with pytest.raises(ValidationError) as error:
        services.check_connection(acme, actor=as_member(owner), credential_id=credential.pk)

    assert problems(error) == {TOKEN_FIELD: [CANNOT_DECRYPT]}


def test_checking_a_corrupted_credential_with_a_new_token_uses_only_the_new_one(
    acme, owner, as_member, calendly
):
    credential = create(acme, as_member(owner))
    corrupt(credential)

    outcome = services.check_connection(
        acme,
        actor=as_member(owner),
        credential_id=credential.pk,
        secrets={TOKEN_FIELD: seed.ADMIN_TOKEN},
    )

    assert outcome.ok, outcome.message
    assert "Connected to Calendly as" in outcome.message
