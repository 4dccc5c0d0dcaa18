"""gunicorn's settings: its own log lines (master, workers, access log) in the portal's format.

With ``LOG_FORMAT=json`` they are JSON lines like every other line the portal writes; the
access log's line is the ``message``. Used as ``gunicorn -c python:portal.ops.gunicorn_config``
(docker-compose.yml, Dockerfile); command-line options still apply on top of it.
"""

import os

# Worker processes and threads (options on the command line take precedence). A webhook
# delivery's thread spends most of its time waiting for PostgreSQL to flush its commit, so a
# process needs more threads than it has CPU: with fewer threads than senders keeping
# connections open, deliveries queue for a thread. Measured with 32 senders during a burst
# (benchmarks/runs_throughput.py): 3 x 4 threads gave intake p99 0.4-0.7 s, almost all of it
# waiting for a thread (the time inside gunicorn was p99 ~0.1 s); 3 x 12 gave 120 ms.
# Each thread may hold a PostgreSQL connection: 36 in all.
workers = 3
threads = 12

if os.environ.get("LOG_FORMAT", "").strip().lower() == "json":
    logconfig_dict = {
        "formatters": {"json": {"()": "portal.ops.logcontext.JsonFormatter"}},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stdout",
            }
        },
        "loggers": {
            name: {"handlers": ["console"], "level": "INFO", "propagate": False}
            for name in ("gunicorn.error", "gunicorn.access")
        },
    }

# gunicorn's usual access line, with the request id the portal answered with.
access_log_format = (
    '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" request_id=%({x-request-id}o)s'
)
