"""The work waiting, read at scrape time from the database and the broker, for ``/metrics``.

These are states, not events: read when Prometheus asks, they are exact whatever the number
of processes, and cost a few indexed queries per scrape. When the database or the broker
cannot be reached, its figures are left out and ``portal_metrics_source_up`` says so: a
scrape never fails because of what it observes.
"""

from __future__ import annotations

import logging

from django.db.models import Count, Min
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from portal.celery import QUEUES, app
from portal.processflows.models import Outbox, Run, RunStatus

logger = logging.getLogger(__name__)

UNFINISHED = (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.RETRYING)


class BacklogCollector(Collector):
    """Outbox backlog, unfinished runs by status and queue depth, read on each scrape."""

    def collect(self):
        up = GaugeMetricFamily(
            "portal_metrics_source_up",
            "Whether this scrape could read the source (1) or not (0).",
            labels=["source"],
        )
        database = _read("database", _database_families)
        broker = _read("broker", _broker_families)
        up.add_metric(["database"], 0 if database is None else 1)
        up.add_metric(["broker"], 0 if broker is None else 1)
        yield up
        yield from database or ()
        yield from broker or ()


def _read(source: str, read):
    try:
        return list(read())
    except Exception as error:  # an outage shows as a 0 in portal_metrics_source_up
        logger.warning("metrics: %s unreadable (%s)", source, type(error).__name__)
        return None


def _database_families():
    pending = Outbox.objects.filter(done_at__isnull=True).aggregate(
        count=Count("pk"), oldest=Min("created_at")
    )
    unpublished = Outbox.objects.filter(published_at__isnull=True, done_at__isnull=True).count()
    oldest = pending["oldest"]
    age = max(0.0, (timezone.now() - oldest).total_seconds()) if oldest else 0.0
    yield GaugeMetricFamily(
        "portal_outbox_backlog",
        "Accepted events whose run is not created yet (outbox entries not done).",
        value=pending["count"],
    )
    yield GaugeMetricFamily(
        "portal_outbox_unpublished",
        "Outbox entries the relay has not handed to the broker yet.",
        value=unpublished,
    )
    yield GaugeMetricFamily(
        "portal_outbox_oldest_pending_age_seconds",
        "Age of the oldest outbox entry not done (0 when there is none).",
        value=age,
    )
    counts = dict.fromkeys(UNFINISHED, 0)
    rows = (
        Run.objects.unscoped("metrics count every organization's unfinished runs")
        .filter(status__in=UNFINISHED)
        .values_list("status")
        .annotate(count=Count("pk"))
        .order_by()
    )
    counts.update(dict(rows))
    runs = GaugeMetricFamily(
        "portal_runs",
        "Runs not finished yet, by status (finished ones: portal_run_duration_seconds_count).",
        labels=["status"],
    )
    for status, count in counts.items():
        runs.add_metric([str(status)], count)
    yield runs


def _broker_families():
    messages = GaugeMetricFamily(
        "portal_queue_messages",
        "Messages waiting in a Celery queue (not yet delivered to a worker).",
        labels=["queue"],
    )
    unacked = None
    with app.connection_for_read() as connection:
        connection.ensure_connection(max_retries=1, timeout=2)
        channel = connection.default_channel
        for queue in QUEUES:
            try:
                count = channel.queue_declare(queue=queue, passive=True).message_count
            except connection.channel_errors:  # never declared: nothing was ever sent to it
                count = 0
            messages.add_metric([queue], count)
        if hasattr(channel, "unacked_key"):  # Redis: delivered, not acknowledged yet
            unacked = GaugeMetricFamily(
                "portal_queue_unacked_messages",
                "Messages delivered to workers and not acknowledged yet (Redis broker only).",
                value=channel.client.hlen(channel.unacked_key),
            )
    yield messages
    if unacked is not None:
        yield unacked
