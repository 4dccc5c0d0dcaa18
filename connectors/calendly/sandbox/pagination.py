"""Calendly's cursor pagination: ``count`` plus an opaque ``page_token``.

Tokens look like Calendly's (32 alphanumerics) and are bound to the query they came from: a
token replayed with different filters is rejected with 400, as a real cursor would be. They are
derived deterministically from (path, filters, offset), so the token map is a pure cache that
survives ``reset()`` and a client may resume paging across a reset of unrelated state.
"""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import urlencode

from .params import QueryParams

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_CURSOR_PARAMS = ("count", "page_token")


def _filters(query: dict[str, list[str]]) -> list[tuple[str, str]]:
    return sorted(
        (name, value)
        for name, values in query.items()
        if name not in _CURSOR_PARAMS
        for value in values
    )


def _fingerprint(path: str, query: dict[str, list[str]]) -> str:
    return f"{path}?{urlencode(_filters(query))}"


def _token(fingerprint: str, offset: int) -> str:
    number = int.from_bytes(hashlib.sha256(f"{fingerprint}#{offset}".encode()).digest(), "big")
    chars = []
    for _ in range(32):
        number, digit = divmod(number, len(_ALPHABET))
        chars.append(_ALPHABET[digit])
    return "".join(chars)


class Paginator:
    """Slices collections into pages and remembers which token means which offset."""

    def __init__(self) -> None:
        self._tokens: dict[str, tuple[str, int]] = {}

    def offset(self, params: QueryParams, path: str) -> int:
        """The offset the request's page_token points at (0 without one); records bad tokens."""
        token = params.raw("page_token")
        if not token:
            return 0
        known = self._tokens.get(token)
        if known is None or known[0] != _fingerprint(path, params.query):
            params.problem("page_token", "is invalid or does not match the other parameters")
            return 0
        return known[1]

    def page(
        self,
        items: list[Any],
        *,
        offset: int,
        count: int,
        base_url: str,
        path: str,
        query: dict[str, list[str]],
    ) -> tuple[list[Any], dict[str, Any]]:
        """The page's items and Calendly's ``pagination`` object for it."""
        fingerprint = _fingerprint(path, query)
        page = items[offset : offset + count]
        next_token = previous_token = None
        if offset + count < len(items):
            next_token = self._remember(fingerprint, offset + count)
        if offset > 0:
            previous_token = self._remember(fingerprint, max(0, offset - count))

        def link(token: str | None) -> str | None:
            if token is None:
                return None
            params = sorted([*_filters(query), ("count", str(count)), ("page_token", token)])
            return f"{base_url}{path}?{urlencode(params)}"

        return page, {
            "count": len(page),
            "next_page": link(next_token),
            "previous_page": link(previous_token),
            "next_page_token": next_token,
            "previous_page_token": previous_token,
        }

    def _remember(self, fingerprint: str, offset: int) -> str:
        token = _token(fingerprint, offset)
        self._tokens[token] = (fingerprint, offset)
        return token
