"""Who may read ``/metrics``: the bearer of ``PORTAL_METRICS_TOKEN``, or a peer address in
``PORTAL_METRICS_ALLOWED_ADDRESSES``. Without a token configured the endpoint does not exist
for anyone else (404); with one, anyone else is refused (401)."""

from __future__ import annotations

import os
import sys

import pytest

from tests.processes import ROOT, run

TOKEN = "metrics-token-0123456789abcdef"


@pytest.fixture
def metrics_on(settings, db):
    settings.PORTAL_METRICS_TOKEN = TOKEN
    settings.PORTAL_METRICS_ALLOWED_ADDRESSES = []


def test_metrics_do_not_exist_when_neither_a_token_nor_an_address_is_configured(
    client, settings, db
):
    settings.PORTAL_METRICS_TOKEN = ""
    settings.PORTAL_METRICS_ALLOWED_ADDRESSES = []

    assert client.get("/metrics").status_code == 404


def test_metrics_refuse_a_scrape_without_the_token(client, metrics_on):
    response = client.get("/metrics")

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert b"portal_" not in response.content


def test_metrics_refuse_a_wrong_token(client, metrics_on):
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}x"})

    assert response.status_code == 401


def test_metrics_answer_the_bearer_of_the_token(client, metrics_on):
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert b"portal_outbox_backlog" in response.content


def test_metrics_answer_an_allowed_network_without_a_token(client, settings, db):
    settings.PORTAL_METRICS_TOKEN = ""
    settings.PORTAL_METRICS_ALLOWED_ADDRESSES = ["127.0.0.0/8"]

    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 404


def test_a_forwarded_for_header_does_not_make_an_address_allowed(client, settings, db):
    settings.PORTAL_METRICS_TOKEN = ""
    settings.PORTAL_METRICS_ALLOWED_ADDRESSES = ["127.0.0.1"]

    response = client.get("/metrics", REMOTE_ADDR="10.1.2.3", HTTP_X_FORWARDED_FOR="127.0.0.1")

    assert response.status_code == 404


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("PORTAL_METRICS_TOKEN", "short", "at least 16 characters"),
        ("PORTAL_METRICS_ALLOWED_ADDRESSES", "10.0.0.0/8,intranet", "'intranet' is not an"),
    ],
)
def test_a_weak_token_or_an_address_that_is_none_refuses_to_start(name, value, says):
    result = run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={**os.environ, name: value},
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode != 0
    assert says in result.stderr
