"""Background processes yield the CPU to intake.

On a small machine the Celery worker, beat and the outbox relay share the cores with the web
server. A webhook sender waits for intake's answer (and gives up, or retries, when it is slow),
while the backlog behind it only has to drain soon. So those background processes lower their
own scheduling priority when they start (``PORTAL_WORKER_NICE``, a Unix nice value, 5 by
default): when the cores are busy intake runs first, and when they are idle the worker still
gets all the CPU there is. Raising one's own nice value needs no privilege; the value is a
floor (a process started nicer than that keeps its value), and 0 leaves the priority alone.
5 rather than more: against a busy web server the worker keeps about a quarter of a core's
share (CFS weights 335 to 1024), so a burst's backlog still moves while intake answers it.

Linux with ``sched_autogroup`` (most desktop and many server kernels) shares the CPU between
sessions first and applies nice values only within a session: a worker started in a session
of its own (``setsid``, as a supervisor or a benchmark starts its children) would compete
with the web server's session as an equal whatever its nice value. So a process that leads
its own session also sets its session's autogroup nice value (``/proc/self/autogroup``);
one that shares a session (``runall``'s children) needs only its own nice value, and never
lowers the session's, which holds the web server too. Under Compose each container is a CPU
group of its own: there ``cpu_shares`` does the same (docker-compose.yml).
"""

from __future__ import annotations

import logging
import os

logger = logging.getLogger(__name__)


def lower_own_priority(niceness: int | None = None) -> int:
    """Make this process (and the children and threads it starts afterwards) at least as
    nice as ``niceness`` (default: ``settings.PORTAL_WORKER_NICE``); returns the nice value
    it runs at now."""
    if niceness is None:
        from django.conf import settings

        niceness = settings.PORTAL_WORKER_NICE
    current = os.nice(0)
    wanted = max(0, min(19, niceness))
    if wanted > current:
        current = os.nice(wanted - current)
        logger.info("running at nice %d, so intake comes first for the CPU", current)
    if wanted and os.getsid(0) == os.getpid():
        _lower_autogroup(wanted)
    return current


def _lower_autogroup(niceness: int) -> None:
    """Set the nice value of this session's autogroup, where the kernel has them."""
    path = "/proc/self/autogroup"
    try:
        with open(path) as autogroup:  # "/autogroup-123 nice 0"
            current = int(autogroup.read().split()[-1])
        if niceness > current:
            with open(path, "w") as autogroup:
                autogroup.write(str(niceness))
    except (OSError, ValueError, IndexError):
        pass  # no autogroups (or no /proc): the process's own nice value is what counts
