"""Envelope encryption: values round-trip, and every way of tampering with, moving or
mis-keying a ciphertext raises instead of returning anything."""

import base64
import secrets

import pytest

from flows import envelope as crypto


def key_string(*ids):
    return ",".join(
        f"{i}:{base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()}" for i in ids
    )


@pytest.fixture
def ring():
    return crypto.KeyRing.parse(key_string("k1", "k0"))


def seal(dek, value="pat-0123456789abcdef", org=1, cred="c-1", field="personal_access_token"):
    return crypto.encrypt_value(dek, value, organization_id=org, credential_id=cred, field=field)


def test_a_value_round_trips_as_json():
    dek = crypto.new_data_key()
    value = {"token": "pat-ÿ-123", "n": 3}
    sealed = crypto.encrypt_value(dek, value, organization_id=7, credential_id="c", field="f")
    assert (
        crypto.decrypt_value(dek, sealed, organization_id=7, credential_id="c", field="f") == value
    )
    assert b"pat-" not in sealed


def test_the_same_value_encrypts_differently_each_time():
    dek = crypto.new_data_key()
    assert seal(dek) != seal(dek)


def test_a_flipped_bit_is_detected():
    dek = crypto.new_data_key()
    sealed = bytearray(seal(dek))
    sealed[-5] ^= 0x01
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt_value(
            dek,
            bytes(sealed),
            organization_id=1,
            credential_id="c-1",
            field="personal_access_token",
        )


@pytest.mark.parametrize(
    ("org", "cred", "field"),
    [
        (2, "c-1", "personal_access_token"),
        (1, "c-2", "personal_access_token"),
        (1, "c-1", "password"),
    ],
    ids=["another-tenant", "another-credential", "another-field"],
)
def test_a_ciphertext_moved_to_another_binding_fails(org, cred, field):
    dek = crypto.new_data_key()
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt_value(dek, seal(dek), organization_id=org, credential_id=cred, field=field)


def test_the_wrong_data_key_raises():
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt_value(
            crypto.new_data_key(),
            seal(crypto.new_data_key()),
            organization_id=1,
            credential_id="c-1",
            field="personal_access_token",
        )


def test_a_truncated_ciphertext_raises():
    dek = crypto.new_data_key()
    with pytest.raises(crypto.DecryptionError, match="truncated"):
        crypto.decrypt_value(
            dek,
            seal(dek)[:10],
            organization_id=1,
            credential_id="c-1",
            field="personal_access_token",
        )


def test_a_data_key_wrapped_for_one_organization_does_not_unwrap_for_another(ring):
    kek_id, wrapped = crypto.wrap_data_key(ring, crypto.new_data_key(), organization_id=1)
    with pytest.raises(crypto.DecryptionError):
        crypto.unwrap_data_key(ring, kek_id, wrapped, organization_id=2)


def test_the_first_key_wraps_and_every_key_unwraps(ring):
    dek = crypto.new_data_key()
    kek_id, wrapped = crypto.wrap_data_key(ring, dek, organization_id=1)
    assert kek_id == "k1"
    older = crypto.KeyRing.parse(key_string("k9")).keys + ring.keys
    assert crypto.unwrap_data_key(crypto.KeyRing(older), "k1", wrapped, organization_id=1) == dek


def test_a_missing_kek_is_named():
    ring = crypto.KeyRing.parse(key_string("k1"))
    with pytest.raises(crypto.MissingKeyError, match="'gone'"):
        ring.get("gone")


def test_a_wrong_kek_under_the_same_id_raises(ring):
    kek_id, wrapped = crypto.wrap_data_key(ring, crypto.new_data_key(), organization_id=1)
    impostor = crypto.KeyRing.parse(key_string("k1"))
    with pytest.raises(crypto.DecryptionError):
        crypto.unwrap_data_key(impostor, kek_id, wrapped, organization_id=1)


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("", "empty"),
        ("nocolon", "must look like"),
        ("k1:not base64!!", "not valid base64"),
        ("k1:" + base64.urlsafe_b64encode(b"short").decode(), "must decode to 32 bytes"),
        (
            "k1:"
            + base64.urlsafe_b64encode(bytes(32)).decode()
            + ",k1:"
            + base64.urlsafe_b64encode(bytes(32)).decode(),
            "twice",
        ),
    ],
)
def test_a_malformed_key_setting_is_a_clear_error_that_never_shows_key_material(value, words):
    with pytest.raises(crypto.KeyConfigurationError, match=words) as raised:
        crypto.KeyRing.parse(value)
    assert "AAAA" not in str(raised.value)


def test_a_key_ring_never_shows_its_keys(ring):
    assert "k1" in repr(ring)
    assert base64.urlsafe_b64encode(ring.get("k1")).decode() not in repr(ring)
