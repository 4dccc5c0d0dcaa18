"""Connect Portal settings, read from the environment (12-factor).

With no environment at all the portal runs embedded: SQLite and a file-system Celery broker
under ``var/``, a generated development secret key and encryption key kept in ``var/``.
Production (``DEBUG=0``) refuses to start unless ``SECRET_KEY`` and ``PORTAL_ENCRYPTION_KEYS``
are set, and is hardened enough that ``manage.py check --deploy`` reports nothing.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("PORTAL_VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool) -> bool:
    """Read a boolean the way operators write it: 1/0, true/false, yes/no, on/off."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be 1/0, true/false, yes/no or on/off, not {raw!r}.")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {raw!r}.") from None


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, not {raw!r}.") from None


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name, "")
    items = [item.strip() for item in raw.split(",") if item.strip()]
    return items or default


def _dev_file_secret(filename: str, make) -> str:
    """A development-only secret generated once and kept under var/ (never used with DEBUG=0)."""
    path = VAR_DIR / filename
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(make())
        path.chmod(0o600)
    return path.read_text().strip()


DEBUG = env_bool("DEBUG", True)

SECRET_KEY = os.environ.get("SECRET_KEY", "").strip()
PORTAL_ENCRYPTION_KEYS = os.environ.get("PORTAL_ENCRYPTION_KEYS", "").strip()
if not DEBUG:
    missing = [
        name
        for name, value in (
            ("SECRET_KEY", SECRET_KEY),
            ("PORTAL_ENCRYPTION_KEYS", PORTAL_ENCRYPTION_KEYS),
        )
        if not value
    ]
    if missing:
        raise ImproperlyConfigured(
            f"Refusing to start with DEBUG=0: {' and '.join(missing)} must be set. "
            "See README.md, section Configuration."
        )
if not SECRET_KEY:
    SECRET_KEY = _dev_file_secret("dev-secret-key", lambda: secrets.token_urlsafe(50))
if not PORTAL_ENCRYPTION_KEYS:
    # One development KEK, id "dev1"; production keys never come from disk or the database.
    PORTAL_ENCRYPTION_KEYS = _dev_file_secret(
        "dev-encryption-keys",
        lambda: "dev1:" + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
    )

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"] if DEBUG else [])
PORTAL_BASE_URL = os.environ.get("PORTAL_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [PORTAL_BASE_URL])

# Patience with applications' APIs: every outbound request has both timeouts.
PORTAL_CONNECTOR_CONNECT_TIMEOUT = env_float("PORTAL_CONNECTOR_CONNECT_TIMEOUT", 5.0)
PORTAL_CONNECTOR_READ_TIMEOUT = env_float("PORTAL_CONNECTOR_READ_TIMEOUT", 30.0)
# While a person waits (Validate), at most this read timeout and one retry.
PORTAL_INTERACTIVE_READ_TIMEOUT = env_float("PORTAL_INTERACTIVE_READ_TIMEOUT", 10.0)
# A request that would wait longer than this for the shared per-credential rate budget
# fails as rate limited (a run retries it later) instead of holding a worker.
PORTAL_RATE_BUDGET_MAX_WAIT_SECONDS = env_float("PORTAL_RATE_BUDGET_MAX_WAIT_SECONDS", 5.0)

# Hosts or networks (CIDR) that the generic REST connector may reach although they are
# private or loopback: for on-premise destinations and tests. Empty: public addresses only.
PORTAL_ALLOWED_PRIVATE_HOSTS = env_list("PORTAL_ALLOWED_PRIVATE_HOSTS", [])
# At most one alert per processflow (or credential) and kind within this many seconds.
PORTAL_ALERT_QUIET_SECONDS = env_int("PORTAL_ALERT_QUIET_SECONDS", 3600)
# How long an Idempotency-Key's answer is kept for a repeated create.
PORTAL_IDEMPOTENCY_HOURS = env_int("PORTAL_IDEMPOTENCY_HOURS", 24)

# How many reverse proxies stand in front of the portal and append to X-Forwarded-For.
# Zero (the default) means the header is ignored: a client cannot forge its own address.
PORTAL_TRUSTED_PROXY_COUNT = env_int("PORTAL_TRUSTED_PROXY_COUNT", 0)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "django_htmx",
    "portal.accounts",
    "portal.tenancy",
    "portal.api",
    "portal.ops",
    "portal.dashboard",
    "portal.vault",
    "portal.processflows",
    "portal.notifications",
    "portal.agents",
    "uikit",  # the stylesheet and form partials shared with the agent
]

MIDDLEWARE = [
    "portal.ops.metrics.DeliveryCountingMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "portal.api.middleware.RequestSizeLimitMiddleware",
    "portal.api.middleware.UnstorableInputMiddleware",
    # After the refusal of headers nothing can store (a NUL in X-Request-ID is refused, not
    # replaced): every request that gets further has an id for its log lines.
    "portal.ops.logcontext.RequestIdMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"
AUTH_USER_MODEL = "accounts.User"
# The only backend: every password check, at any door, goes through the login lockout.
AUTHENTICATION_BACKENDS = ["portal.accounts.backends.ThrottledModelBackend"]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "accounts:login"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "portal.tenancy.context_processors.tenancy",
            ],
        },
    },
]

# --- Database --------------------------------------------------------------------------------
_sqlite_path = VAR_DIR / "portal.sqlite3"
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{_sqlite_path}",
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web server and the Celery worker use one SQLite file at the same time.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # A file (not :memory:) so worker processes started by tests share the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-portal.sqlite3")}
    VAR_DIR.mkdir(parents=True, exist_ok=True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: broker and cache -----------------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "").strip()
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "portal",
        }
    }
else:
    # A file cache, not local memory: API throttling must count across server processes.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }

# --- Celery ----------------------------------------------------------------------------------
# The file broker ignores the host; naming one keeps kombu from warning on every start.
CELERY_BROKER_URL = REDIS_URL or "filesystem://localhost//"
if not REDIS_URL:
    _broker_dir = VAR_DIR / "celery"
    for _sub in ("queue", "control", "processed"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "control_folder": str(_broker_dir / "control"),
        "processed_folder": str(_broker_dir / "processed"),
        "store_processed": False,
    }
else:
    # A task that is neither acknowledged nor rejected within this bound is redelivered,
    # so a worker killed with SIGKILL delays its tasks instead of losing them.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 900),
        # Fail fast when Redis is down: intake must answer, and the outbox keeps the work.
        "socket_connect_timeout": 2,
        "socket_timeout": 5,
    }
CELERY_TASK_DEFAULT_QUEUE = "maintenance"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 240)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 300)
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A worker that loses the broker reconnects by itself, forever (Celery's default gives up after
# 100 attempts and exits), trying at most every few seconds (portal.celery.Consumer).
CELERY_BROKER_CONNECTION_RETRY = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_BROKER_RECONNECT_MAX_SECONDS = env_int("CELERY_BROKER_RECONNECT_MAX_SECONDS", 5)
CELERY_WORKER_CONSUMER = "portal.celery:Consumer"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Keep a worker's database connection across tasks (Celery's Django fixup otherwise closes
# it around every task, so each event would open two new PostgreSQL connections).
CELERY_DB_REUSE_MAX = env_int("CELERY_DB_REUSE_MAX", 100)
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_BEAT_SCHEDULE = {
    "health": {"task": "portal.health", "schedule": 60.0},
    "sweep-outbox": {
        "task": "portal.maintenance.sweep",
        "schedule": float(env_int("PORTAL_SWEEP_SECONDS", 10)),
        # A sweep the workers did not take before the next one is due is dropped: beat must
        # not pile them up while the workers are down, to run all at once when they return.
        "options": {"expire_seconds": max(1, env_int("PORTAL_SWEEP_SECONDS", 10))},
    },
    "reconcile-subscriptions": {
        "task": "portal.maintenance.reconcile_subscriptions",
        "schedule": float(env_int("PORTAL_RECONCILE_SECONDS", 900)),
    },
    "revalidate-credentials": {
        "task": "portal.maintenance.revalidate_credentials",
        "schedule": float(env_int("PORTAL_CREDENTIAL_REVALIDATION_HOURS", 24) * 3600),
    },
}
CELERY_TIMEZONE = "UTC"

# --- REST API --------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "portal.api.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": [
        "portal.api.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "portal.api.pagination.PagePagination",
    "DEFAULT_SCHEMA_CLASS": "portal.api.schema.PortalAutoSchema",
    "EXCEPTION_HANDLER": "portal.api.errors.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": os.environ.get("PORTAL_API_ANON_RATE", "60/min"),
        "user": os.environ.get("PORTAL_API_USER_RATE", "1200/min"),
    },
    # X-Forwarded-For is trusted only as far as the operator says proxies append to it.
    "NUM_PROXIES": PORTAL_TRUSTED_PROXY_COUNT,
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Connect Portal API",
    "DESCRIPTION": (
        "Everything the portal's pages do, for automation. Authenticate with "
        "`Authorization: Bearer <personal API token>`; a token acts in the one "
        "organization it was created in."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    # Several resources have a "status"; name each choice set after what it is the status of.
    "ENUM_NAME_OVERRIDES": {
        "CredentialStatusEnum": "portal.vault.models.CredentialStatus",
        "RunStatusEnum": "portal.processflows.models.RunStatus",
        "RegistrationStateEnum": "portal.processflows.models.RegistrationState",
        "AgentStateEnum": "portal.agents.models.AgentState",
    },
}

# Requests larger than this are refused with 413 before any view reads them.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("PORTAL_MAX_REQUEST_BYTES", 1024 * 1024)

# --- Accounts --------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
PORTAL_LOGIN_MAX_FAILURES_PER_ACCOUNT = env_int("PORTAL_LOGIN_MAX_FAILURES_PER_ACCOUNT", 5)
PORTAL_LOGIN_MAX_FAILURES_PER_CLIENT = env_int("PORTAL_LOGIN_MAX_FAILURES_PER_CLIENT", 20)
PORTAL_LOGIN_LOCKOUT_SECONDS = env_int("PORTAL_LOGIN_LOCKOUT_SECONDS", 15 * 60)
PORTAL_INVITATION_DAYS = env_int("PORTAL_INVITATION_DAYS", 7)
PORTAL_API_TOKEN_MAX_DAYS = env_int("PORTAL_API_TOKEN_MAX_DAYS", 366)

# --- Processflows ----------------------------------------------------------------------------
PORTAL_WEBHOOK_MAX_BYTES = env_int("PORTAL_WEBHOOK_MAX_BYTES", 256 * 1024)
PORTAL_WEBHOOK_TOLERANCE_SECONDS = env_int("PORTAL_WEBHOOK_TOLERANCE_SECONDS", 180)
# After a redeploy, deliveries signed for the previous subscription are accepted this long.
PORTAL_WEBHOOK_KEY_GRACE_SECONDS = env_int("PORTAL_WEBHOOK_KEY_GRACE_SECONDS", 86400)
# Refused deliveries stored per deployment per minute; the rest are only counted.
PORTAL_REJECTED_DELIVERIES_PER_MINUTE = max(0, env_int("PORTAL_REJECTED_DELIVERIES_PER_MINUTE", 20))
# An outbox entry or queued run not done within this bound is published again.
PORTAL_OUTBOX_REDELIVERY_SECONDS = env_int("PORTAL_OUTBOX_REDELIVERY_SECONDS", 60)
# A worker holds a run for this long, renewed before each step; a killed worker's run is
# taken over after it. Longer than a task may live, so a live worker never loses its run.
PORTAL_RUN_LEASE_SECONDS = env_int("PORTAL_RUN_LEASE_SECONDS", CELERY_TASK_TIME_LIMIT + 60)
# Agent long-polls one process holds waiting at once (each holds a request thread up to 25 s):
# keep it below gunicorn's threads (12, portal/ops/gunicorn_config.py), so intake finds some.
PORTAL_AGENT_LONG_POLLS = env_int("PORTAL_AGENT_LONG_POLLS", 4)
# Requests one on-premise agent may send (a runaway agent is throttled with 429).
PORTAL_AGENT_RATE = os.environ.get("PORTAL_AGENT_RATE", "12000/min")
PORTAL_RUN_MAX_ATTEMPTS = env_int("PORTAL_RUN_MAX_ATTEMPTS", 5)
PORTAL_RUN_RETRY_BASE_SECONDS = env_int("PORTAL_RUN_RETRY_BASE_SECONDS", 10)
PORTAL_RUN_RETRY_MAX_SECONDS = env_int("PORTAL_RUN_RETRY_MAX_SECONDS", 600)
# Accepted events go to the workers this many to a message; a worker creates their runs
# together and executes them in the same task, PORTAL_WORKER_RUN_THREADS at a time (steps
# mostly wait on remote APIs). The threads hold no database connection: one writer thread
# per worker process commits their writes together (portal/processflows/writer.py), so a
# worker process uses two connections however many threads it has.
PORTAL_EVENTS_PER_TASK = env_int("PORTAL_EVENTS_PER_TASK", 32)
PORTAL_WORKER_RUN_THREADS = env_int("PORTAL_WORKER_RUN_THREADS", 32)
# The nice value the Celery worker, beat and the outbox relay give themselves at start, so the
# web server (intake) gets the CPU first on a busy machine (portal/ops/priority.py); 0: as is.
PORTAL_WORKER_NICE = env_int("PORTAL_WORKER_NICE", 5)

# --- Monitoring: /metrics and logs ------------------------------------------------------------
# Where every process of this installation keeps its counters for /metrics (one directory,
# shared by all of them; see portal/ops/metrics.py).
PROMETHEUS_MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "").strip() or str(
    VAR_DIR / "metrics"
)
# /metrics answers a request that carries ``Authorization: Bearer <this token>``, or comes
# from one of these addresses or networks (the peer's own address, never X-Forwarded-For).
# Anything else gets 401 when a token is set, 404 when none is (the endpoint is off).
PORTAL_METRICS_TOKEN = os.environ.get("PORTAL_METRICS_TOKEN", "").strip()
if PORTAL_METRICS_TOKEN and len(PORTAL_METRICS_TOKEN) < 16:
    raise ImproperlyConfigured("PORTAL_METRICS_TOKEN must be at least 16 characters long.")
PORTAL_METRICS_ALLOWED_ADDRESSES = env_list("PORTAL_METRICS_ALLOWED_ADDRESSES", [])
for _network in PORTAL_METRICS_ALLOWED_ADDRESSES:
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError:
        raise ImproperlyConfigured(
            f"PORTAL_METRICS_ALLOWED_ADDRESSES: {_network!r} is not an address or a network."
        ) from None
# "json": one JSON object per log line; "plain" (the default): text for people.
LOG_FORMAT = os.environ.get("LOG_FORMAT", "plain").strip().lower() or "plain"
if LOG_FORMAT not in {"plain", "json"}:
    raise ImproperlyConfigured(f"LOG_FORMAT must be plain or json, not {LOG_FORMAT!r}.")

EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "Connect Portal <portal@localhost>")

# --- Internationalisation, static files -------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "portal" / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# --- Security --------------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = False  # htmx reads the token from the page, not the cookie
X_FRAME_OPTIONS = "DENY"
# Pages load scripts and styles from the portal only: no inline script can run, so an
# injected value cannot become code. (The API docs page overrides this for Swagger UI.)
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
    "form-action": [CSP.SELF],
    "base-uri": [CSP.NONE],
    "object-src": [CSP.NONE],
}
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if PORTAL_TRUSTED_PROXY_COUNT > 0:
    # Only a proxy of ours may say the client spoke HTTPS; a client that reaches the server
    # directly could otherwise claim it and get secure treatment over plain HTTP.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    # /healthz and /metrics are probed over plain HTTP by orchestrators inside the network.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)

# --- Logging: structured enough to grep, never a secret ----------------------------------------
LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO").upper()
# Every line carries the request, event and run ids it is about (portal/ops/logcontext.py);
# LOG_FORMAT=json writes one JSON object per line.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"ids": {"()": "portal.ops.logcontext.ContextFilter"}},
    "formatters": {
        "plain": {"()": "portal.ops.logcontext.PlainFormatter"},
        "json": {"()": "portal.ops.logcontext.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["ids"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Request bodies never reach the log: a failed request logs its path only.
        "django.request": {"level": "ERROR"},
    },
}
