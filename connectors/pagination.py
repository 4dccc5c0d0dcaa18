"""Pagination styles: how one page of a list leads to the next, as small reusable strategies.

APIs chain their pages in a handful of ways; an action declares which one it uses and
``Connector.run_action`` follows the pages until the end, the caller's limit or the Runtime's
page cap:

``CursorPagination``      an opaque token in the body, sent back as a query parameter
                          (Calendly: ``pagination.next_page_token`` -> ``page_token``).
``PageNumberPagination``  ``page=1, 2, …`` until a short or empty page.
``OffsetPagination``      ``offset=0, n, 2n, …`` until a short or empty page.
``LinkHeaderPagination``  the next page's URL in the ``Link`` header (RFC 8288,
                          ``rel="next"``; GitHub). It must stay on the API's own origin.
``NextUrlPagination``     the next page's URL in the body (Figma's
                          ``pagination.next_page``), on the same origin too.

Each strategy reads the items of a page (``items``) and says what to ask next
(``next_query``): the full query of the next page, an absolute URL, or None at the end.
``size_param``, when set, is given the caller's limit (capped at ``max_size``) if that is
smaller than a page and the caller chose no page size.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from requests.utils import parse_header_links

from . import paths

Query = list[tuple[str, str]]


class Pagination(Protocol):
    """How an action's answers chain into pages."""

    kind: str
    items_path: str
    size_param: str | None
    max_size: int

    @property
    def controlled(self) -> frozenset[str]:
        """Query parameters this strategy sets (logged in request summaries)."""
        ...

    def items(self, body: Any) -> Any: ...

    def next_query(
        self, body: Any, headers: Mapping[str, str], query: Query, items: Sequence[Any]
    ) -> Query | str | None: ...

    def as_dict(self) -> dict[str, Any]: ...


def _items(body: Any, items_path: str) -> Any:
    return paths.get(body, items_path) if items_path else body


def _with(query: Query, name: str, value: str) -> Query:
    return [(k, v) for k, v in query if k != name] + [(name, value)]


def _value(query: Query, name: str | None) -> str | None:
    return next((v for k, v in query if k == name), None) if name else None


def _short(query: Query, size_param: str | None, items: Sequence[Any]) -> bool:
    """An empty page, or fewer items than the page size that was asked for, is the last."""
    size = _value(query, size_param)
    return not items or (size is not None and size.isdigit() and len(items) < int(size))


@dataclass(frozen=True)
class CursorPagination:
    """Items at ``items_path``, the next page's token at ``next_path``, sent back as the
    ``token_param`` query parameter; ``count_param`` is the page size (Calendly's
    defaults)."""

    items_path: str = "collection"
    next_path: str = "pagination.next_page_token"
    token_param: str = "page_token"  # noqa: S105 (a parameter name, not a password)
    count_param: str | None = "count"
    max_count: int = 100
    kind: str = "cursor"

    @property
    def size_param(self) -> str | None:
        return self.count_param

    @property
    def max_size(self) -> int:
        return self.max_count

    @property
    def controlled(self) -> frozenset[str]:
        return frozenset({self.token_param})

    def items(self, body: Any) -> Any:
        return _items(body, self.items_path)

    def next_token(self, body: Any) -> str | None:
        token = paths.get(body, self.next_path)
        return token if isinstance(token, str) and token else None

    def next_query(self, body, headers, query, items) -> Query | None:
        token = self.next_token(body)
        return _with(query, self.token_param, token) if token else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "type": self.kind,
            "items": self.items_path,
            "next": self.next_path,
            "token_param": self.token_param,
            "count_param": self.count_param,
            "max_count": self.max_count,
        }


@dataclass(frozen=True)
class PageNumberPagination:
    """``page_param`` counts pages from ``first``; a short or empty page is the last."""

    items_path: str = ""
    page_param: str = "page"
    size_param: str | None = "per_page"
    max_size: int = 100
    first: int = 1
    kind: str = "page"

    @property
    def controlled(self) -> frozenset[str]:
        return frozenset({self.page_param})

    def items(self, body: Any) -> Any:
        return _items(body, self.items_path)

    def next_query(self, body, headers, query, items) -> Query | None:
        if _short(query, self.size_param, items):
            return None
        page = _value(query, self.page_param)
        current = int(page) if page and page.isdigit() else self.first
        return _with(query, self.page_param, str(current + 1))

    def as_dict(self) -> dict[str, Any]:
        return {"type": self.kind, "items": self.items_path, "page_param": self.page_param,
                "size_param": self.size_param, "max_size": self.max_size}  # fmt: skip


@dataclass(frozen=True)
class OffsetPagination:
    """``offset_param`` skips the items already read; a short or empty page is the last."""

    items_path: str = ""
    offset_param: str = "offset"
    size_param: str | None = "limit"
    max_size: int = 100
    kind: str = "offset"

    @property
    def controlled(self) -> frozenset[str]:
        return frozenset({self.offset_param})

    def items(self, body: Any) -> Any:
        return _items(body, self.items_path)

    def next_query(self, body, headers, query, items) -> Query | None:
        if _short(query, self.size_param, items):
            return None
        offset = _value(query, self.offset_param)
        start = int(offset) if offset and offset.isdigit() else 0
        return _with(query, self.offset_param, str(start + len(items)))

    def as_dict(self) -> dict[str, Any]:
        return {"type": self.kind, "items": self.items_path, "offset_param": self.offset_param,
                "size_param": self.size_param, "max_size": self.max_size}  # fmt: skip


def next_link(headers: Mapping[str, str]) -> str | None:
    """The ``rel="next"`` target of a ``Link`` header (RFC 8288), or None."""
    value = next((v for k, v in headers.items() if k.lower() == "link"), "")
    for link in parse_header_links(value) if value else []:
        if "next" in str(link.get("rel", "")).split():
            return link.get("url") or None
    return None


@dataclass(frozen=True)
class LinkHeaderPagination:
    """The next page is the ``Link`` header's ``rel="next"`` URL (GitHub); it is followed
    only on the API's own origin, so a credential never leaves for another host."""

    items_path: str = ""
    size_param: str | None = "per_page"
    max_size: int = 100
    kind: str = "link"

    @property
    def controlled(self) -> frozenset[str]:
        return frozenset({"page", "cursor", "after", "before"})

    def items(self, body: Any) -> Any:
        return _items(body, self.items_path)

    def next_query(self, body, headers, query, items) -> str | None:
        return next_link(headers)

    def as_dict(self) -> dict[str, Any]:
        return {"type": self.kind, "items": self.items_path, "size_param": self.size_param,
                "max_size": self.max_size}  # fmt: skip


@dataclass(frozen=True)
class NextUrlPagination:
    """The next page's URL is in the body at ``next_path`` (Figma); followed only on the
    API's own origin."""

    items_path: str
    next_path: str = "pagination.next_page"
    size_param: str | None = None
    max_size: int = 100
    kind: str = "next_url"

    @property
    def controlled(self) -> frozenset[str]:
        return frozenset({"cursor", "before", "after", "page"})

    def items(self, body: Any) -> Any:
        return _items(body, self.items_path)

    def next_query(self, body, headers, query, items) -> str | None:
        url = paths.get(body, self.next_path)
        return url if isinstance(url, str) and url and items else None

    def as_dict(self) -> dict[str, Any]:
        return {"type": self.kind, "items": self.items_path, "next": self.next_path,
                "size_param": self.size_param, "max_size": self.max_size}  # fmt: skip
