"""Settings for benchmarks: the portal unchanged, plus one bare endpoint as a baseline
(see ``benchmarks/bare_urls.py``). Serve with ``DJANGO_SETTINGS_MODULE=benchmarks.bare_site``.
"""

from portal.settings import *  # noqa: F403

ROOT_URLCONF = "benchmarks.bare_urls"
