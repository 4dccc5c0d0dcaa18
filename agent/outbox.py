"""Reports for the portal, kept in SQLite until the portal acknowledges them.

Every step record, run finish and job result is written here first, then sent. A run's
records and its finish go as one report (``runs/<id>/report``) when the run ends: its step
records are not sent on their own, except by the background flusher for a run still going
after a few seconds. A report the portal answers 2xx is deleted; 409 (the run's lease is no
longer ours) deletes every report of that run; when the portal cannot be reached the report
stays and is sent again later, in order, by whichever thread flushes next (a sender thread
right away, the background flusher after that, and again after a restart). Nothing is lost
and nothing is sent out of order within a run. Runs do not wait for their reports to be
sent: a run slot is free again as soon as the engine is done, while senders deliver (one
run's reports in order, several runs at once).
"""

from __future__ import annotations

import json
import logging
import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from agent.client import LeaseLost, PortalClient, PortalUnavailable, Rejected, Unauthorized
from agent.local.models import OutboxItem

logger = logging.getLogger(__name__)

JOB_RESULTS = 0  # run id under which job results queue (one ordered lane)
#: Step records in one report at most (in JSON bytes; a single larger record goes alone).
REPORT_BYTES = 256 * 1024


def jsonable(value: Any) -> Any:
    """``value`` with datetimes as ISO text (what JSON and the portal take)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


class Outbox:
    """The queue of reports and the one way to send them."""

    def __init__(self, client: PortalClient, *, senders: int = 8):
        self.client = client
        self._locks: dict[int, threading.Lock] = defaultdict(threading.Lock)
        self._guard = threading.Lock()
        self._senders = ThreadPoolExecutor(senders, thread_name_prefix="agent-report")
        self._scheduled: set[int] = set()
        self._again: set[int] = set()
        #: Leases the portal said are no longer ours. By lease, not by run: the portal may
        #: lease the same run to this agent again (a lease that expired while the portal
        #: could not be reached), and that new attempt must run and report.
        self.lost_leases: set[str] = set()
        self.revoked = threading.Event()

    def kick(self, run_id: int | None) -> None:
        """Have a sender deliver the run's (or the job results') reports now."""
        lane = JOB_RESULTS if run_id is None else run_id
        with self._guard:
            if lane in self._scheduled:
                self._again.add(lane)  # the sender on it looks once more before it stops
                return
            self._scheduled.add(lane)
        try:
            self._senders.submit(self._send, lane)
        except RuntimeError:  # shutting down: the final flush sends it
            with self._guard:
                self._scheduled.discard(lane)

    def _send(self, lane: int) -> None:
        while True:
            try:
                ok = self.flush_lane(lane)
            except Exception:  # the database busy or a bug: the background flusher retries
                logger.exception("sending reports of lane %s failed", lane)
                ok = False
            with self._guard:
                if ok and lane in self._again:
                    self._again.discard(lane)
                    continue
                self._again.discard(lane)
                self._scheduled.discard(lane)
                return

    def close(self) -> None:
        """Let the senders finish what they are sending."""
        self._senders.shutdown(wait=True)

    def _lock(self, lane: int) -> threading.Lock:
        with self._guard:
            return self._locks[lane]

    def add_step(self, run_id: int, lease: str, record: dict) -> None:
        """Keep a step record of a run for its next report."""
        OutboxItem.objects.create(
            path=f"runs/{run_id}/report", body=jsonable({"lease": lease, "record": record}),
            run_id=run_id,
        )  # fmt: skip

    def add_finish(self, run_id: int, lease: str, finish: dict) -> None:
        """Keep a run's outcome; it ends the run's report (:meth:`kick` sends it)."""
        OutboxItem.objects.create(
            path=f"runs/{run_id}/report", body=jsonable({"lease": lease, "finish": finish}),
            run_id=run_id,
        )  # fmt: skip

    def add_result(self, job_id: str, result: dict) -> None:
        """Keep a subscribe, unsubscribe or poll job's result."""
        OutboxItem.objects.create(
            path=f"jobs/{job_id}/result", body=jsonable(result), run_id=JOB_RESULTS
        )

    def drop_run(self, run_id: int, lease: str | None) -> None:
        """Forget a run's unsent reports made under ``lease`` (lost: nothing more may be
        written with it); those of a newer lease of the same run stay."""
        if lease is None:
            OutboxItem.objects.filter(run_id=run_id).delete()
            return
        self.lost_leases.add(lease)
        stale = [
            item.pk
            for item in OutboxItem.objects.filter(run_id=run_id).only("pk", "body")
            if item.body.get("lease") == lease
        ]
        OutboxItem.objects.filter(pk__in=stale).delete()

    def pending(self) -> int:
        return OutboxItem.objects.count()

    def flush_lane(self, lane: int) -> bool:
        """Send the lane's reports in order; False when the portal could not be reached
        (what is left stays for later)."""
        with self._lock(lane):
            items = []
            for item in OutboxItem.objects.filter(run_id=lane).order_by("id"):
                if item.body.get("lease") in self.lost_leases:  # dropped meanwhile
                    item.delete()
                else:
                    items.append(item)
            batches = [([item], item.body) for item in items] if lane == JOB_RESULTS else (
                _reports(items))  # fmt: skip
            for batch, body in batches:
                if body.get("lease") in self.lost_leases:  # an earlier part of it was refused
                    continue
                try:
                    self.client.post(batch[0].path, body)
                except LeaseLost:
                    logger.info("run %s: the lease is no longer ours; its reports dropped", lane)
                    self.drop_run(lane, body.get("lease"))
                    continue  # reports of a newer lease of the run may follow
                except Unauthorized as error:
                    self.revoked.set()
                    self._failed(batch[0], str(error))
                    return False
                except Rejected as error:
                    # The portal will never take this report (a run it no longer knows): it
                    # cannot block the ones after it.
                    logger.warning("report %s refused for good: %s", batch[0].path, error)
                except PortalUnavailable as error:
                    self._failed(batch[0], str(error))
                    return False
                OutboxItem.objects.filter(pk__in=[item.pk for item in batch]).delete()
        return True

    def flush(self, *, older_than: float = 0) -> bool:
        """Send every pending report, lane by lane (``older_than``: only lanes holding a
        report kept at least that many seconds); False when the portal could not be
        reached."""
        pending = OutboxItem.objects.all()
        if older_than:
            pending = pending.filter(created_at__lte=timezone.now() - timedelta(seconds=older_than))
        lanes = pending.values_list("run_id", flat=True).distinct().order_by("run_id")
        ok = True
        for lane in list(lanes):
            ok = self.flush_lane(lane) and ok
            if not ok:
                break
        return ok

    @staticmethod
    def _failed(item: OutboxItem, error: str) -> None:
        with transaction.atomic():
            OutboxItem.objects.filter(pk=item.pk).update(attempts=item.attempts + 1,
                                                         last_error=error[:500])  # fmt: skip


def _reports(items: list[OutboxItem]) -> list[tuple[list[OutboxItem], dict]]:
    """A run's kept items as reports: ``{"lease", "steps", "finish"}``, each holding the
    items of one lease in order up to the finish, and at most about ``REPORT_BYTES`` of
    records (the portal caps a request's size)."""
    reports: list[tuple[list[OutboxItem], dict]] = []
    size = 0
    for item in items:
        lease, record = item.body.get("lease"), item.body.get("record")
        grown = len(json.dumps(record)) if record is not None else 0
        last = reports[-1][1] if reports else None
        if (
            last is None
            or last["lease"] != lease
            or "finish" in last
            or (last["steps"] and size + grown > REPORT_BYTES)
        ):
            reports.append(([], {"lease": lease, "steps": []}))
            last, size = reports[-1][1], 0
        reports[-1][0].append(item)
        if record is not None:
            last["steps"].append(record)
            size += grown
        if "finish" in item.body:
            last["finish"] = item.body["finish"]
    return reports
