"""A missing or wrong key-encryption key stops the portal at start-up, naming the key id."""

import base64
import secrets
import sys

import pytest

from portal.vault.keys import active_data_key
from tests.processes import ROOT, child_env, run


def key(kek_id):
    return f"{kek_id}:{base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()}"


def start(env, *args):
    return run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def stored_under_k1(transactional_db, acme, settings):
    settings.PORTAL_ENCRYPTION_KEYS = k1 = key("k1")
    active_data_key(acme)
    return k1


WSGI = ["-c", "import portal.wsgi"]


def test_the_wsgi_application_starts_with_the_key_that_wrapped_the_data(stored_under_k1):
    result = start(child_env(PORTAL_ENCRYPTION_KEYS=stored_under_k1), *WSGI)
    assert result.returncode == 0, result.stderr


def test_a_missing_key_id_stops_the_wsgi_application_and_is_named(stored_under_k1):
    result = start(child_env(PORTAL_ENCRYPTION_KEYS=key("k2")), *WSGI)
    assert result.returncode != 0
    assert (
        "Encryption key 'k1' wraps 1 data key(s) but is missing from PORTAL_ENCRYPTION_KEYS"
        in result.stderr
    )


def test_a_wrong_key_under_the_right_id_stops_the_wsgi_application(stored_under_k1):
    result = start(child_env(PORTAL_ENCRYPTION_KEYS=key("k1")), *WSGI)
    assert result.returncode != 0
    assert "'k1' in PORTAL_ENCRYPTION_KEYS is not the key that wrapped" in result.stderr


def test_manage_py_check_reports_the_missing_key(stored_under_k1):
    result = start(
        child_env(PORTAL_ENCRYPTION_KEYS=key("k2")), "manage.py", "check", "--database", "default"
    )
    assert result.returncode != 0
    assert "vault.E001" in result.stderr


def test_no_key_material_is_printed_when_refusing(stored_under_k1):
    wrong = key("k1")
    result = start(child_env(PORTAL_ENCRYPTION_KEYS=wrong), *WSGI)
    assert wrong.split(":", 1)[1] not in result.stderr + result.stdout
    assert stored_under_k1.split(":", 1)[1] not in result.stderr + result.stdout
