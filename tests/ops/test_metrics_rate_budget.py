"""Rate-budget waits reach ``/metrics``: a request that waited for the budget's next window,
and one given up because that window was too far away, each under its application."""

from __future__ import annotations

import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from portal.applications.ratebudget import BudgetExhausted, SharedRateBudget


@pytest.fixture
def scrape(client, settings, db):
    settings.PORTAL_METRICS_TOKEN = ""
    settings.PORTAL_METRICS_ALLOWED_ADDRESSES = ["127.0.0.1"]

    def sample(name: str, **labels) -> float:
        text = client.get("/metrics", REMOTE_ADDR="127.0.0.1").content.decode()
        for family in text_string_to_metric_families(text):
            for found in family.samples:
                if found.name == name and found.labels == labels:
                    return found.value
        return 0.0

    return sample


def test_a_request_that_waits_for_the_next_window_is_counted(scrape):
    application = f"app{uuid.uuid4().hex[:8]}"
    budget = SharedRateBudget(1, max_wait=30, window=1.0)

    # One request per window: the second waits, unless a window began just between the two;
    # then the third, which follows the second at once, does.
    for _ in range(3):
        budget.acquire(f"{application}:credential-1")

    assert scrape("portal_rate_budget_waits_total", application=application) >= 1
    assert scrape("portal_rate_budget_wait_seconds_total", application=application) > 0


def test_a_request_given_up_for_a_budget_used_up_too_long_is_counted(scrape):
    application = f"app{uuid.uuid4().hex[:8]}"
    budget = SharedRateBudget(1, max_wait=0, window=3600.0)
    budget.acquire(f"{application}:credential-1")

    with pytest.raises(BudgetExhausted):
        budget.acquire(f"{application}:credential-1")

    assert scrape("portal_rate_budget_exhausted_total", application=application) == 1
    assert scrape("portal_rate_budget_waits_total", application=application) == 0
