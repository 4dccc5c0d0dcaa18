"""gunicorn's settings: its own log lines (master, workers, access log) in the portal's format.

With ``LOG_FORMAT=json`` they are JSON lines like every other line the portal writes; the
access log's line is the ``message``. Used as ``gunicorn -c python:portal.ops.gunicorn_config``
(docker-compose.yml, Dockerfile); command-line options still apply on top of it.
"""

import os

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
