"""Django settings of the agent's local UI and store: SQLite in the data folder, real
sessions, CSRF and password hashing. Nothing here is shared with the portal's settings.

Environment (all optional): ``CONNECT_AGENT_DATA`` (the data folder),
``CONNECT_AGENT_ALLOWED_HOSTS`` (extra host names the UI answers to, comma-separated),
``CONNECT_AGENT_DEBUG`` (1: Django's debug pages; never in production).
"""

from __future__ import annotations

import os
from pathlib import Path

from agent import config

BASE_DIR = Path(__file__).resolve().parent
DATA_DIR = config.data_dir()

SECRET_KEY = config.ui_key(DATA_DIR)
DEBUG = os.environ.get("CONNECT_AGENT_DEBUG") == "1"
ALLOWED_HOSTS = [
    "127.0.0.1",
    "localhost",
    "[::1]",
    *[h.strip() for h in os.environ.get("CONNECT_AGENT_ALLOWED_HOSTS", "").split(",") if h.strip()],
]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "agent.local",
    "uikit",  # the stylesheet and form partials shared with the portal
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "agent.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "agent.local.context.agent",
            ]
        },
    }
]
WSGI_APPLICATION = "agent.wsgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": DATA_DIR / "agent.sqlite3",
        "OPTIONS": {
            # The work loop's threads and the UI write concurrently: WAL lets readers go on
            # while one writes, IMMEDIATE takes the write lock up front (no upgrade deadlock)
            # and the timeout waits for it instead of failing.
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "settings"
LOGOUT_REDIRECT_URL = "login"

# The portal may run on the same host (cookies do not tell ports apart): own cookie names.
SESSION_COOKIE_NAME = "connect_agent_session"
CSRF_COOKIE_NAME = "connect_agent_csrftoken"
SESSION_COOKIE_SAMESITE = "Strict"
CSRF_COOKIE_SAMESITE = "Strict"
SESSION_COOKIE_AGE = 8 * 3600
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en"

STATIC_URL = "/static/"
WHITENOISE_USE_FINDERS = True  # served from the package: nothing to collect at install

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("CONNECT_AGENT_LOG_LEVEL", "INFO")},
    "loggers": {
        # Every request line of the local UI is noise in the agent's log.
        "django.server": {"level": "WARNING"},
        "urllib3": {"level": "WARNING"},
    },
}
