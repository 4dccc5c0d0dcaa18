"""Connect Portal: the Django project.

The Celery app is imported here so that ``@shared_task`` functions bind to it whenever
Django starts (web server, worker or management command).
"""

from portal.celery import app as celery_app

__all__ = ["celery_app"]
