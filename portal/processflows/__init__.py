"""Processflows: triggered and polling flows, their versions and deployments, webhook intake
that never loses an accepted event, and runs executed by Celery workers."""
