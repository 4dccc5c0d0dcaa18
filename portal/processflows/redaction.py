"""Redaction of documents before they are stored with a run."""

from __future__ import annotations

import re

SENSITIVE_KEY = re.compile(
    r"(token|secret|password|passwd|signing_key|authorization|api[_-]?key|cookie)", re.I
)
REDACTED = "[redacted]"


def redact(value, *, secrets: frozenset[str] = frozenset()):
    """A copy of ``value`` with sensitive keys' values and any known secret string replaced.

    Stored run inputs, outputs and step records go through this; the unredacted document
    only ever lives in the worker's memory while the run needs it.
    """
    if isinstance(value, dict):
        return {
            key: REDACTED if SENSITIVE_KEY.search(str(key)) else redact(item, secrets=secrets)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact(item, secrets=secrets) for item in value]
    if isinstance(value, str) and secrets and any(secret in value for secret in secrets if secret):
        return REDACTED
    return value
