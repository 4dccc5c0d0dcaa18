"""Group commit for a worker's run threads: one thread, one database connection, one
transaction for the writes that many runs are waiting on at the same moment.

A run thread mostly waits on a remote API; what it writes (its step records before a call,
its outcome after) is small. Written from each thread, every run held a PostgreSQL
connection of its own for the whole run (so the threads a worker could have were bounded by
the server's connections) and paid a commit per write. Here a run thread hands the write to
the process's writer and waits until it is committed, so what the run relies on is on disk
before it goes on, exactly as before: its "running" record before the call, its outcome
with its last records in one transaction.

Writes waiting together are committed together. If that transaction fails, each write is
tried again in a transaction of its own, so one failing write fails only its own run.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from django.db import close_old_connections, connection, transaction

logger = logging.getLogger(__name__)

# Writes committed in one transaction at most: a bound on how long the first one waits.
MOST_PER_COMMIT = 64


class _Item:
    def __init__(self, payload: Any):
        self.payload = payload
        self.future: Future = Future()


class Writer:
    """A writer thread (see the module's docstring). ``apply(payloads)`` writes a list of
    payloads inside the writer's transaction and returns one result per payload;
    ``undo(payload)`` puts back what ``apply`` changed in memory (primary keys given to new
    rows) when the transaction is rolled back, so that the payload can be tried again."""

    def __init__(
        self,
        apply: Callable[[list[Any]], list[Any]],
        undo: Callable[[Any], None],
    ):
        self.apply = apply
        self.undo = undo
        self.queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._loop, name="run-writer", daemon=True)
        self.thread.start()

    def write(self, payload: Any) -> Any:
        """Commit ``payload`` (with the others waiting now) and return its result; raises
        what writing it raised."""
        item = _Item(payload)
        self.queue.put(item)
        return item.future.result()

    def later(self, payload: Any) -> None:
        """Commit ``payload`` with the next ones, without waiting (an audit entry: what is
        queued after it, such as the run's outcome, commits with it or after it). A failure
        is logged."""
        item = _Item(payload)
        item.future.add_done_callback(_log_failure)
        self.queue.put(item)

    def stop(self) -> None:
        """Commit what is waiting, then end the thread and close its connection."""
        self.queue.put(None)
        self.thread.join()

    def _loop(self) -> None:
        try:
            while True:
                first = self.queue.get()
                if first is None:
                    return
                batch = [first]
                stopping = False
                while len(batch) < MOST_PER_COMMIT:
                    try:
                        item = self.queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is None:
                        stopping = True
                        break
                    batch.append(item)
                self._commit(batch)
                if stopping:
                    return
        finally:
            connection.close()

    def _commit(self, batch: list[_Item]) -> None:
        close_old_connections()  # a connection broken by an earlier outage is replaced
        try:
            with transaction.atomic():
                results = self.apply([item.payload for item in batch])
        except Exception:
            for item in batch:
                self.undo(item.payload)
            for item in batch:
                self._alone(item)
            return
        for item, result in zip(batch, results, strict=True):
            item.future.set_result(result)

    def _alone(self, item: _Item) -> None:
        close_old_connections()
        try:
            with transaction.atomic():
                (result,) = self.apply([item.payload])
        except Exception as error:
            self.undo(item.payload)
            item.future.set_exception(error)
        else:
            item.future.set_result(result)


def _log_failure(future: Future) -> None:
    if future.exception() is not None:
        logger.error("a write nobody waited for failed", exc_info=future.exception())


_writer: Writer | None = None
_lock = threading.Lock()


def writer(apply: Callable[[list[Any]], list[Any]], undo: Callable[[Any], None]) -> Writer:
    """This process's writer, started on first use (in a prefork child, its own)."""
    global _writer
    with _lock:
        if _writer is None:
            _writer = Writer(apply, undo)
        return _writer


def stop() -> None:
    """Stop this process's writer, if it was started (after the run threads ended)."""
    global _writer
    with _lock:
        current, _writer = _writer, None
    if current is not None:
        current.stop()
