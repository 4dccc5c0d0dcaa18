"""Fixtures for connector tests: one sandbox per application per session, reset before every
test (``calendly_sandbox``, ``github_sandbox``, ``figma_sandbox``).

``calendly_sandbox`` is the one to use: a running ``CalendlySandbox`` back at its seed state
(no server restart, so it costs a few milliseconds). Its webhook retries are fast (tenths of a
second) so a test can watch a subscription get disabled. ``no_internet`` makes any attempt to
connect beyond loopback fail loudly; the sandbox's own tests use it.
"""

from __future__ import annotations

import ipaddress
import socket

import pytest

from connectors.calendly.sandbox import CalendlySandbox
from connectors.figma.sandbox import FigmaSandbox
from connectors.github.sandbox import GitHubSandbox

# Delays between webhook delivery attempts in tests (Calendly's are hours; tests have seconds).
TEST_RETRY_DELAYS = (0.05, 0.1, 0.2)
TEST_DELIVERY_TIMEOUT = (2.0, 3.0)


@pytest.fixture(scope="session")
def calendly_sandbox_session():
    """The session's sandbox server; prefer ``calendly_sandbox``, which resets it first."""
    sandbox = CalendlySandbox(
        delivery_retry_delays=TEST_RETRY_DELAYS, delivery_timeout=TEST_DELIVERY_TIMEOUT
    )
    sandbox.start()
    yield sandbox
    sandbox.stop()


@pytest.fixture
def calendly_sandbox(calendly_sandbox_session):
    """The running sandbox at its seed state; reset again afterwards so that no delivery of
    this test keeps retrying into the next one."""
    calendly_sandbox_session.reset()
    yield calendly_sandbox_session
    calendly_sandbox_session.reset()


@pytest.fixture(scope="session")
def github_sandbox_session():
    """The session's GitHub sandbox; prefer ``github_sandbox``, which resets it first."""
    sandbox = GitHubSandbox(
        delivery_retry_delays=TEST_RETRY_DELAYS, delivery_timeout=TEST_DELIVERY_TIMEOUT
    )
    sandbox.start()
    yield sandbox
    sandbox.stop()


@pytest.fixture
def github_sandbox(github_sandbox_session):
    """The running GitHub sandbox at its seed state (reset again afterwards)."""
    github_sandbox_session.reset()
    yield github_sandbox_session
    github_sandbox_session.reset()


@pytest.fixture(scope="session")
def figma_sandbox_session():
    sandbox = FigmaSandbox(
        delivery_retry_delays=TEST_RETRY_DELAYS, delivery_timeout=TEST_DELIVERY_TIMEOUT
    )
    sandbox.start()
    yield sandbox
    sandbox.stop()


@pytest.fixture
def figma_sandbox(figma_sandbox_session):
    """The running Figma sandbox at its seed state (reset again afterwards)."""
    figma_sandbox_session.reset()
    yield figma_sandbox_session
    figma_sandbox_session.reset()


def _is_loopback(address: object) -> bool:
    host = address[0] if isinstance(address, tuple) else None
    if not isinstance(host, str):
        return True  # AF_UNIX paths and the like never leave the machine
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False  # a host name: resolving and reaching it would need the network


@pytest.fixture
def no_internet(monkeypatch):
    """Refuse socket connections to anything but loopback for the duration of a test."""
    original = socket.socket.connect

    def connect(self, address):
        if not _is_loopback(address):
            raise RuntimeError(f"test tried to reach {address!r}; tests must stay on loopback")
        return original(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
