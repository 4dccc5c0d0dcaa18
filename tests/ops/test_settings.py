"""Production settings refuse to start without their secrets and pass Django's deployment
checks; the embedded default needs no environment at all."""

import base64
import os
import secrets
import sys

from tests.processes import ROOT, run


def run_manage(*args, **env):
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in {"SECRET_KEY", "PORTAL_ENCRYPTION_KEYS", "DEBUG"}
    }
    return run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def production_env(**overrides):
    key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    env = {
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(64),
        "PORTAL_ENCRYPTION_KEYS": f"k1:{key}",
        "ALLOWED_HOSTS": "portal.example.com",
        "PORTAL_BASE_URL": "https://portal.example.com",
    }
    env.update(overrides)
    return env


def test_production_settings_pass_check_deploy_without_warnings():
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", **production_env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret_key():
    env = production_env()
    del env["SECRET_KEY"]
    result = run_manage("check", **env)
    assert result.returncode != 0
    assert "Refusing to start with DEBUG=0: SECRET_KEY must be set" in result.stderr


def test_production_refuses_to_start_without_encryption_keys():
    env = production_env()
    del env["PORTAL_ENCRYPTION_KEYS"]
    result = run_manage("check", **env)
    assert result.returncode != 0
    assert "PORTAL_ENCRYPTION_KEYS must be set" in result.stderr


def test_the_embedded_default_runs_on_sqlite_and_a_file_broker_without_any_environment(tmp_path):
    clean = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    script = (
        "import django, os\n"
        "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'portal.settings')\n"
        "django.setup()\n"
        "from django.conf import settings as s\n"
        "print(s.DATABASES['default']['ENGINE'], s.CELERY_BROKER_URL,"
        " s.CACHES['default']['BACKEND'])"
    )
    result = run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**clean, "PORTAL_VAR_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    engine, broker, cache = result.stdout.split()
    assert engine == "django.db.backends.sqlite3"
    assert broker.startswith("filesystem://")
    assert cache.endswith("FileBasedCache")
    assert (tmp_path / "dev-encryption-keys").exists()


def forwarded_https_is_trusted(**env) -> bool:
    """Whether production settings (with ``env``) take ``X-Forwarded-Proto: https`` from a
    request at its word, asked of a fresh process as the server would load them."""
    script = (
        "import django, os\n"
        "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'portal.settings')\n"
        "django.setup()\n"
        "from django.test import RequestFactory\n"
        "request = RequestFactory().get('/', HTTP_X_FORWARDED_PROTO='https')\n"
        "print(request.is_secure())"
    )
    base = {k: v for k, v in os.environ.items() if k != "PORTAL_TRUSTED_PROXY_COUNT"}
    result = run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**base, **production_env(**env)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return {"True": True, "False": False}[result.stdout.strip()]


def test_x_forwarded_proto_is_ignored_without_a_trusted_proxy():
    # A client talking plain HTTP straight to the server cannot claim its request was HTTPS.
    assert forwarded_https_is_trusted() is False
    assert forwarded_https_is_trusted(PORTAL_TRUSTED_PROXY_COUNT="0") is False


def test_x_forwarded_proto_is_trusted_behind_a_trusted_proxy():
    assert forwarded_https_is_trusted(PORTAL_TRUSTED_PROXY_COUNT="1") is True
