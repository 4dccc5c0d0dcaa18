"""Key rotation re-wraps every data key and, with --reencrypt, re-encrypts every secret;
afterwards the old key can be removed and everything still decrypts."""

import base64
import secrets
from io import StringIO

import pytest
from django.core.management import call_command

from portal.tenancy.models import Organization
from portal.vault.keys import active_data_key, data_key_cache, open_secrets, seal_secrets
from portal.vault.models import Credential, CredentialEvent, DataKey, KeyRotation
from tests.factories import every


def new_key(kek_id):
    return f"{kek_id}:{base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()}"


def make_credentials(organizations, per_org):
    """Credentials with distinct secrets, sealed under each organization's active key."""
    expected = {}
    rows = []
    for org in organizations:
        data_key = active_data_key(org)
        for n in range(per_org):
            credential = Credential(organization=org, application="calendly", name=f"c{n}")
            token = f"token-{org.pk}-{n}-{secrets.token_hex(8)}"
            seal_secrets(credential, {"personal_access_token": token}, data_key)
            rows.append(credential)
            expected[(org.pk, f"c{n}")] = token
    Credential.objects.bulk_create(rows, batch_size=1000)
    return expected


def rotate(*args):
    out = StringIO()
    call_command("rotate_encryption_keys", *args, "--batch-size", "1000", stdout=out)
    return out.getvalue()


def decrypt_all():
    data_key_cache.clear()
    return {
        (c.organization_id, c.name): open_secrets(c)["personal_access_token"]
        for c in every(Credential).select_related("data_key").iterator(chunk_size=2000)
    }


@pytest.mark.django_db
def test_rotating_10000_credentials_reencrypts_all_and_the_old_key_can_go(settings):
    old, new = new_key("old"), new_key("new")
    settings.PORTAL_ENCRYPTION_KEYS = old
    organizations = [
        Organization.objects.create(name=f"Org {n}", slug=f"org-{n}") for n in range(20)
    ]
    expected = make_credentials(organizations, per_org=500)
    before = dict(every(Credential).values_list("pk", "secret_values"))

    settings.PORTAL_ENCRYPTION_KEYS = f"{new},{old}"
    output = rotate("--reencrypt")

    assert (
        "Credentials re-encrypted, by the key id of the data key they left: {'old': 10000}"
        in output
    )
    after = dict(every(Credential).values_list("pk", "secret_values"))
    assert all(after[pk] != before[pk] for pk in before)  # 100% re-encrypted
    assert set(every(DataKey).values_list("kek_id", flat=True)) == {"new"}
    assert every(DataKey).count() == 20  # the retired data keys are gone
    assert KeyRotation.objects.get().finished_at is not None
    assert every(CredentialEvent).filter(action="keys_rotated").count() >= 10000

    settings.PORTAL_ENCRYPTION_KEYS = new  # the old key removed
    assert decrypt_all() == expected


@pytest.mark.django_db
def test_rewrapping_alone_keeps_the_secrets_ciphertext_and_frees_the_old_key(settings, acme):
    old, new = new_key("old"), new_key("new")
    settings.PORTAL_ENCRYPTION_KEYS = old
    expected = make_credentials([acme], per_org=3)
    before = dict(every(Credential).values_list("pk", "secret_values"))
    settings.PORTAL_ENCRYPTION_KEYS = f"{new},{old}"
    rotate()
    assert dict(every(Credential).values_list("pk", "secret_values")) == before
    settings.PORTAL_ENCRYPTION_KEYS = new
    assert decrypt_all() == expected


@pytest.mark.django_db
def test_an_interrupted_reencryption_resumes_without_another_fresh_key(settings, acme):
    old, new = new_key("old"), new_key("new")
    settings.PORTAL_ENCRYPTION_KEYS = old
    expected = make_credentials([acme], per_org=5)
    settings.PORTAL_ENCRYPTION_KEYS = f"{new},{old}"
    rotation = KeyRotation.objects.create()  # a run that started and was interrupted...
    every(DataKey).filter(active=True).update(active=False)
    fresh = active_data_key(acme)  # ...after creating its fresh key
    rotate("--reencrypt")
    assert set(every(Credential).values_list("data_key_id", flat=True)) == {fresh.pk}
    rotation.refresh_from_db()
    assert rotation.finished_at is not None
    settings.PORTAL_ENCRYPTION_KEYS = new
    assert decrypt_all() == expected


@pytest.mark.django_db
def test_rotation_refuses_clearly_when_a_needed_key_is_missing(settings, acme):
    settings.PORTAL_ENCRYPTION_KEYS = new_key("old")
    make_credentials([acme], per_org=1)
    settings.PORTAL_ENCRYPTION_KEYS = new_key("new")
    from django.core.management import CommandError

    with pytest.raises(CommandError, match="'old' is not in PORTAL_ENCRYPTION_KEYS"):
        rotate()
