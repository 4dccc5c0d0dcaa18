"""The local UI's WSGI application (served by ``connect-agent run``)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ["DJANGO_SETTINGS_MODULE"] = "agent.settings"
application = get_wsgi_application()
