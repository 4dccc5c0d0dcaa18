"""WSGI entry point (gunicorn portal.wsgi; runserver uses it too)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

application = get_wsgi_application()

# Refuse to serve with encryption keys that cannot decrypt the stored credentials, naming
# the missing or wrong key id, rather than failing later on every credential.
from portal.vault.checks import refuse_to_start_without_keys  # noqa: E402

refuse_to_start_without_keys()
