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
# What PostgreSQL cannot store in text or jsonb: NUL and unpaired surrogates. The portal
# refuses them in requests; an application's answer or a polled record may still hold them.
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
REPLACEMENT = "\ufffd"


def redact(value, *, secrets: Collection[str] = ()):
    """A copy of ``value`` with sensitive keys' values and any known secret string replaced,
    and characters the database cannot store (NUL, unpaired surrogates) shown as U+FFFD.

    Stored run inputs, outputs and step records go through this; the unredacted document
    only ever lives in the worker's memory while the run needs it, so later steps and
    destinations still get every character. A secret inside a longer text (an error
    message quoting it) is cut out of that text, which keeps the rest.
    """
    if isinstance(value, dict):
        copy = {}
        for key, item in value.items():
            sensitive = SENSITIVE_KEY.search(str(key))
            stored_key = _storable(key) if isinstance(key, str) else key
            copy[stored_key] = REDACTED if sensitive else redact(item, secrets=secrets)
        return copy
    if isinstance(value, list):
        return [redact(item, secrets=secrets) for item in value]
    if isinstance(value, str):
        for secret in secrets:
            if secret and secret in value:
                value = value.replace(secret, REDACTED)
        return _storable(value)
    return value


def _storable(text: str) -> str:
    return UNSTORABLE.sub(REPLACEMENT, text) if UNSTORABLE.search(text) else text
