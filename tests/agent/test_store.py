"""The agent's store: secrets sealed under the key file, each bound to its row and field."""

from __future__ import annotations

from tests.agent.conftest import agent_python

CANARY = "canary-token-7f3a9c1e5b2d4f60"

SAVE_TWO = f"""
from agent.local import store
a = store.save_connection(application="calendly", name="a", fields={{}},
                          secrets={{"personal_access_token": "{CANARY}"}})
b = store.save_connection(application="calendly", name="b", fields={{}},
                          secrets={{"personal_access_token": "another-token-0123456789"}})
"""


def test_a_saved_token_opens_again_with_the_key_file(agent_data):
    result = agent_python(
        agent_data,
        SAVE_TWO + "print(store.open_connection(a).credentials.secret('personal_access_token') == "
        f"{CANARY!r})",
    )
    assert result.stdout.strip() == "True", result.stderr


def test_a_saved_token_is_not_in_the_data_folder_in_clear(agent_data):
    result = agent_python(agent_data, SAVE_TWO)
    assert result.returncode == 0, result.stderr
    stored = b"".join(p.read_bytes() for p in agent_data.iterdir() if p.is_file())
    assert CANARY.encode() not in stored


def test_a_ciphertext_moved_to_another_row_does_not_open(agent_data):
    result = agent_python(
        agent_data,
        SAVE_TWO
        + """
import flows
b.sealed = a.sealed
b.save()
try:
    store.open_connection(b)
except flows.CredentialUnavailable as error:
    print("refused:", error)
""",
    )
    assert result.stdout.startswith("refused: This connection's secrets cannot be decrypted")
    assert CANARY not in result.stdout + result.stderr


def test_a_ciphertext_moved_to_another_field_does_not_open(agent_data):
    result = agent_python(
        agent_data,
        """
from agent.local import store
from flows import envelope
sealed = store.seal("value", kind="connection", uid="u1", field="token")
try:
    store.unseal(sealed, kind="connection", uid="u1", field="other")
except envelope.DecryptionError:
    print("refused")
""",
    )
    assert result.stdout.strip() == "refused", result.stderr


def test_a_store_opened_with_another_key_file_cannot_read_its_secrets(agent_data):
    agent_python(agent_data, SAVE_TWO)
    (agent_data / "agent.key").unlink()  # a new key is made at the next start
    result = agent_python(
        agent_data,
        """
import flows
from agent.local import store
from agent.local.models import Connection
try:
    store.open_connection(Connection.objects.get(name="a"))
except flows.CredentialUnavailable:
    print("refused")
""",
    )
    assert result.stdout.strip() == "refused", result.stderr


def test_a_name_differing_only_in_case_is_refused(agent_data):
    result = agent_python(
        agent_data,
        SAVE_TWO
        + """
try:
    store.save_connection(
        application="calendly", name="A", fields={}, secrets={"personal_access_token": "x" * 20}
    )
except store.InputProblem as error:
    print(error.problems["name"][0])
""",
    )
    assert "A Calendly connection named 'a' already exists" in result.stdout, result.stderr
