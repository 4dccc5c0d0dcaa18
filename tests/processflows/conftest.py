"""Fixtures for processflow tests: the Calendly and GitHub sandboxes, and destination servers."""

from __future__ import annotations

from contextlib import ExitStack

import pytest

from tests.connectors.conftest import (  # noqa: F401
    calendly_sandbox,
    calendly_sandbox_session,
    github_sandbox,
    github_sandbox_session,
)
from tests.processflows.reliability.support import ScriptedDestination, scripted_destination


@pytest.fixture
def destination_factory():
    """``destination_factory(201)`` or ``(500, 201)`` -> a running ``ScriptedDestination``
    (a JSON API on loopback that honours Idempotency-Key), stopped after the test."""
    with ExitStack() as stack:
        yield lambda *statuses: stack.enter_context(scripted_destination(*statuses))


@pytest.fixture
def destination(destination_factory) -> ScriptedDestination:
    """A destination that answers 201 to everything."""
    return destination_factory(201)
