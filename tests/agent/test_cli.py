"""``connect-agent``'s commands, run as a person runs them."""

from __future__ import annotations

import stat

from tests.agent.conftest import agent_cli
from tests.agent.protocol import KEY, SECRET


def test_the_first_command_creates_the_data_folder_with_private_key_files(agent_data):
    result = agent_cli(agent_data, "status")
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(agent_data.stat().st_mode) == 0o700
    for name in ("agent.key", "ui.key", "agent.sqlite3"):
        assert stat.S_IMODE((agent_data / name).stat().st_mode) == 0o600, name


def test_status_before_registering_says_how_to_register(agent_data):
    result = agent_cli(agent_data, "status")
    assert "Registration: none (connect-agent register --portal URL --key KEY)" in result.stdout


def test_register_pairs_the_agent_and_prints_its_organization_and_group(
    agent_data, protocol_portal
):
    result = agent_cli(
        agent_data, "register", "--portal", protocol_portal.url, "--key", KEY, "--name", "plant-a"
    )
    assert result.returncode == 0, result.stderr
    assert "Registered as agent 'plant-a' of Acme (group 'Plant A')" in result.stdout
    status = agent_cli(agent_data, "status").stdout
    assert "Registration: agent 'plant-a' (id 7)" in status
    assert "Group: Plant A" in status


def test_register_prints_the_local_accounts_password_once(agent_data, protocol_portal):
    first = agent_cli(agent_data, "register", "--portal", protocol_portal.url, "--key", KEY)
    again = agent_cli(agent_data, "status")
    assert "password " in first.stdout
    assert "password" not in again.stdout


def test_a_used_registration_key_is_refused_with_the_portals_message(
    agent_data, tmp_path, protocol_portal
):
    agent_cli(agent_data, "register", "--portal", protocol_portal.url, "--key", KEY)
    second = agent_cli(
        tmp_path / "other", "register", "--portal", protocol_portal.url, "--key", KEY
    )
    assert second.returncode == 1
    assert "This registration key is not valid: it may have expired or been used." in second.stderr


def test_register_against_an_unreachable_portal_fails_clearly(agent_data):
    result = agent_cli(agent_data, "register", "--portal", "http://127.0.0.1:9", "--key", KEY)
    assert result.returncode == 1
    assert "The portal could not be reached" in result.stderr


def test_the_agent_secret_is_never_stored_in_clear(agent_data, protocol_portal):
    agent_cli(agent_data, "register", "--portal", protocol_portal.url, "--key", KEY)
    stored = b"".join(p.read_bytes() for p in agent_data.iterdir() if p.is_file())
    assert SECRET.encode() not in stored
    assert SECRET not in agent_cli(agent_data, "status").stdout


def test_reset_password_prints_a_new_password(agent_data):
    first = agent_cli(agent_data, "reset-password")
    second = agent_cli(agent_data, "reset-password")
    assert first.returncode == second.returncode == 0
    assert first.stdout.split()[4] != second.stdout.split()[4]


def test_a_key_file_others_may_read_is_refused(agent_data):
    agent_cli(agent_data, "status")
    (agent_data / "agent.key").chmod(0o644)
    result = agent_cli(agent_data, "status")
    assert result.returncode == 1
    assert "may be read or written by other users (mode 0644)" in result.stderr
    assert "chmod 600" in result.stderr


def test_register_refuses_a_plain_http_portal_on_another_host(agent_data):
    result = agent_cli(agent_data, "register", "--portal", "http://portal.example", "--key", KEY)
    assert result.returncode == 2
    assert "plain HTTP: the agent's secret would cross the network in clear" in result.stderr
