"""Secrets open in one place: the vault's audited opener, once per use, with who and why."""

from __future__ import annotations

import ast
import logging
from pathlib import Path

import pytest

import flows
from portal.processflows.signing import new_signing_key, signing_key
from portal.vault import opener
from portal.vault.models import CredentialEvent
from tests.factories import make_credential, make_deployment, make_processflow

ROOT = Path(__file__).resolve().parents[2]
LOW_LEVEL = {"decrypt_secret", "open_secrets", "decrypt_value", "unwrap_data_key", "unwrap"}
# Inside the vault: the opener itself, the key module that defines these, rotation and the
# re-sealing of kept secrets when a credential moves to a new data key (re-encryption).
VAULT_ALLOWED = {"opener.py", "keys.py", "crypto.py", "rotation.py", "services.py"}


def _callers(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and "vault" in node.module:
            names |= {alias.name for alias in node.names if alias.name in LOW_LEVEL}
        elif isinstance(node, ast.Attribute) and node.attr in LOW_LEVEL:
            names.add(node.attr)
    return names


def test_no_code_outside_the_vault_decrypts_without_the_audited_opener():
    offenders = {}
    for package in ("portal", "connectors", "flows", "agent"):
        for path in (ROOT / package).rglob("*.py"):
            inside_vault = path.parent == ROOT / "portal" / "vault"
            if inside_vault and path.name in VAULT_ALLOWED:
                continue
            if found := _callers(path):
                offenders[str(path.relative_to(ROOT))] = sorted(found)
    assert offenders == {}


def test_opening_a_credential_records_who_used_it_what_for_and_the_outcome(acme):
    credential = make_credential(acme, name="Sales")

    with opener.open_credential(credential, purpose="processflow 'Sync', run 7") as opened:
        assert opened.credentials.secret("personal_access_token")
        opened.report(action="users/me", ok=True, status=200)

    used = CredentialEvent.objects.for_tenant(acme).filter(
        credential=credential, action=CredentialEvent.Action.USED
    )
    assert [(e.actor_label, e.detail) for e in used] == [
        (
            "system: processflow 'Sync', run 7",
            {"step_action": "users/me", "ok": True, "status": 200},
        )
    ]


def test_a_credential_that_cannot_be_decrypted_is_refused_and_audited(acme, settings):
    credential = make_credential(acme, name="Broken")
    credential.secret_values = {"personal_access_token": "bm90IGEgY2lwaGVydGV4dA=="}

    with (
        pytest.raises(flows.CredentialUnavailable, match="cannot be decrypted"),
        opener.open_credential(credential, purpose="a test"),
    ):
        pass

    actions = CredentialEvent.objects.for_tenant(acme).filter(credential=credential)
    assert CredentialEvent.Action.DECRYPT_FAILED in {e.action for e in actions}


def test_a_signing_key_use_is_logged_with_its_purpose_once_an_hour(acme, caplog):
    credential = make_credential(acme)
    deployment = make_deployment(make_processflow(acme, credential))
    key = new_signing_key(deployment)
    deployment.save()
    opener._sealed_logged.clear()

    with caplog.at_level(logging.INFO, logger="portal.vault.audit"):
        for _ in range(3):
            assert signing_key(deployment, purpose="verifying webhook deliveries") == key
        signing_key(deployment, purpose="kept by a redeployment")

    lines = [r.getMessage() for r in caplog.records if r.name == "portal.vault.audit"]
    assert lines == [
        f"signing_key of Deployment {deployment.pk} of organization {acme.pk} opened by the "
        "system: verifying webhook deliveries",
        f"signing_key of Deployment {deployment.pk} of organization {acme.pk} opened by the "
        "system: kept by a redeployment",
    ]
    assert key not in caplog.text
