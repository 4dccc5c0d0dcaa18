"""GitHub fixtures: the owner's credential, a Runtime pointed at the sandbox, and the check
that every exchange conforms to GitHub's own OpenAPI description."""

from __future__ import annotations

import json

import pytest

import connectors
from connectors import github
from connectors.github.sandbox import OTHER_TOKEN, OWNER_TOKEN

# Errors any operation may answer although not every one declares them.
GENERIC_ERRORS = (401, 403, 404, 422, 429)


@pytest.fixture
def gh():
    return connectors.get_connector("github")


@pytest.fixture
def runtime(github_sandbox):
    return connectors.Runtime(base_urls={"github": github_sandbox.url}, sleep=lambda s: None)


@pytest.fixture
def owner():
    return connectors.Credentials(type="rest", secrets={"token": OWNER_TOKEN}, key="gh:owner")


@pytest.fixture
def other():
    return connectors.Credentials(type="rest", secrets={"token": OTHER_TOKEN}, key="gh:other")


def problems(exchanges) -> list[str]:
    """What in these exchanges GitHub's OpenAPI description does not allow."""
    found = []
    for exchange in exchanges:
        if exchange.faulted:
            continue
        request = json.loads(exchange.request_body) if exchange.request_body else None
        response = json.loads(exchange.response_body) if exchange.response_body else None
        listed = github.rest.problems(
            exchange.method, exchange.path, query=exchange.query, request_body=request,
            status=exchange.status, response_body=response,
        )  # fmt: skip
        if exchange.status in GENERIC_ERRORS:
            listed = [p for p in listed if "declares no answer" not in p]
        found += [f"{exchange!r}: {p}" for p in listed]
    return found
