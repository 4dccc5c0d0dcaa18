"""Redaction of documents before they are stored with a run."""

from __future__ import annotations

import re
from collections.abc import Collection

SENSITIVE_KEY = re.compile(
    r"(token|secret|password|passwd|passphrase|signing_key|private[_-]?key|authorization"
    r"|api[_-]?key|cookie|credential)",
    re.I,
)
REDACTED = "[redacted]"


def redact(value, *, secrets: Collection[str] = ()):
    """A copy of ``value`` with sensitive keys' values and any known secret string replaced.

    Stored run inputs, outputs and step records go through this; the unredacted document
    only ever lives in the worker's memory while the run needs it. A secret inside a longer
    text (an error message quoting it) is cut out of that text, which keeps the rest.
    """
    if isinstance(value, dict):
        return {
            key: REDACTED if SENSITIVE_KEY.search(str(key)) else redact(item, secrets=secrets)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact(item, secrets=secrets) for item in value]
    if isinstance(value, str) and secrets:
        for secret in secrets:
            if secret and secret in value:
                value = value.replace(secret, REDACTED)
    return value
