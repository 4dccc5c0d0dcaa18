"""Fixtures for the On-Premise agent: the agent as real processes in a data folder of its
own (``agent_cli`` for one command, ``agent_process`` for ``connect-agent run``), the
protocol portal, and the Calendly sandbox.

The agent has its own Django settings, which cannot live in this pytest process (it runs the
portal's), so everything of the agent runs in children and is driven over HTTP or its CLI.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import requests

from tests import processes
from tests.agent.protocol import ProtocolPortal
from tests.connectors.conftest import calendly_sandbox, calendly_sandbox_session  # noqa: F401

PASSWORD_LINE = re.compile(r"user 'admin', password (\S+)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def agent_env(**extra: str) -> dict[str, str]:
    env = processes.child_env(CONNECT_AGENT_ALLOWED_PRIVATE_HOSTS="127.0.0.1", **extra)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return env


def printed_password(output: str) -> str:
    """The local account's password a command printed at first start."""
    found = PASSWORD_LINE.search(output)
    assert found, f"no password printed in: {output!r}"
    return found.group(1)


def agent_cli(data: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run one ``python -m agent`` command on ``data``; its output as text."""
    return processes.run(
        [sys.executable, "-m", "agent", *args, "--data", str(data)],
        timeout=processes.READY_SECONDS, capture_output=True, cwd=processes.ROOT,
        env=env or agent_env(), text=True,
    )  # fmt: skip


class RunningAgent:
    """``connect-agent run`` as a child: its UI's URL and the password it printed."""

    def __init__(self, process: processes.Process, url: str, data: Path, password: str = ""):
        self.process = process
        self.url = url
        self.data = data
        self._password = password

    @property
    def password(self) -> str:
        """The password given, else the one ``run`` printed at first start."""
        if self._password:
            return self._password
        found = PASSWORD_LINE.search(self.process.output())
        assert found, "the agent printed no password at first start"
        return found.group(1)

    def login(self) -> requests.Session:
        """A session logged in to the local UI, as a person with the password would."""
        session = requests.Session()
        page = session.get(self.url + "login/", timeout=60)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        answer = session.post(
            self.url + "login/",
            data={"username": "admin", "password": self.password,
                  "csrfmiddlewaretoken": token, "next": "/settings/"},
            headers={"Referer": self.url + "login/"}, timeout=60,
        )  # fmt: skip
        assert answer.url.endswith("/settings/"), answer.text[:500]
        session.headers["X-CSRFToken"] = session.cookies["connect_agent_csrftoken"]
        session.headers["Referer"] = self.url
        return session


@pytest.fixture
def agent_data(tmp_path) -> Path:
    return tmp_path / "agent-data"


@pytest.fixture
def start_agent(agent_data) -> Iterator:
    """``start_agent(env=…, concurrency=…)`` -> a RunningAgent, ended after the test."""
    with ExitStack() as stack:

        def start(*, env: dict | None = None, concurrency: int = 4, data: Path | None = None,
                  password: str = ""):  # fmt: skip
            port = free_port()
            url = f"http://127.0.0.1:{port}/"
            process = processes.start(
                "connect-agent",
                [sys.executable, "-m", "agent", "run", "--data", str(data or agent_data),
                 "--listen", f"127.0.0.1:{port}", "--concurrency", str(concurrency)],
                env=env or agent_env(), ready=processes.answers_http(url + "login/"),
                what="serve its local UI",
            )  # fmt: skip
            stack.callback(process.stop)
            return RunningAgent(process, url, data or agent_data, password)

        yield start


@pytest.fixture
def protocol_portal() -> Iterator[ProtocolPortal]:
    with ProtocolPortal() as portal:
        yield portal


def agent_python(data: Path, code: str, **env: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a child with the agent's Django set up on ``data`` (migrated)."""
    prelude = (
        "import os, django\n"
        f"os.environ['CONNECT_AGENT_DATA'] = {str(data)!r}\n"
        "os.environ['DJANGO_SETTINGS_MODULE'] = 'agent.settings'\n"
        "os.umask(0o077)\n"
        "django.setup()\n"
        "from django.core.management import call_command\n"
        "call_command('migrate', verbosity=0)\n"
    )
    return processes.run(
        [sys.executable, "-c", prelude + code], timeout=processes.READY_SECONDS,
        capture_output=True, cwd=processes.ROOT, env=agent_env(**env), text=True,
    )  # fmt: skip
