# One image for web, worker, beat and the optional on-premise agent (docker-compose.yml
# picks the command).
FROM python:3.13-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PORTAL_VAR_DIR=/app/var
WORKDIR /app

# The locked dependencies (every file checked against its hash) in a layer of their own, then
# the portal itself, resolving nothing more.
COPY requirements/lock.txt requirements/lock.txt
RUN pip install --require-hashes -r requirements/lock.txt
COPY pyproject.toml README.md ./
COPY portal portal
COPY connectors connectors
COPY flows flows
COPY agent agent
COPY templates templates
COPY manage.py ./
RUN pip install --no-deps . && pip check \
    && useradd --system --uid 1000 --home /app portal \
    && mkdir -p /app/var/metrics /app/var/agent && chown -R portal /app/var && chmod 700 /app/var/agent

USER portal
# collectstatic needs settings but no database; these placeholders never serve a request.
RUN DEBUG=0 SECRET_KEY=collectstatic-only-placeholder-key-that-is-long-enough-1234567890 \
    PORTAL_ENCRYPTION_KEYS=build:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= \
    python manage.py collectstatic --no-input --verbosity 0

EXPOSE 8000
CMD ["gunicorn", "portal.wsgi", "-c", "python:portal.ops.gunicorn_config", "--bind", "0.0.0.0:8000", "--timeout", "60", "--access-logfile", "-"]
