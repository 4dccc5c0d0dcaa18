"""The sandbox's own requests: a webhook delivery POSTed to a subscriber, once."""

from __future__ import annotations

import http.client
from urllib.parse import urlsplit


def post_once(
    url: str, body: bytes, headers: dict[str, str], *, connect_timeout: float, read_timeout: float
) -> int | str:
    """One attempt: the HTTP status, or the error text if no answer came."""
    parts = urlsplit(url)
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = kind(parts.hostname, parts.port, timeout=connect_timeout)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        connection.connect()
        connection.sock.settimeout(read_timeout)
        connection.request("POST", target, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status
    except (OSError, http.client.HTTPException) as error:
        return f"{type(error).__name__}: {error}"
    finally:
        connection.close()
