"""Pagination styles as small strategies: page numbers, offsets, a Link header (RFC 8288),
a next-page URL in the body and Calendly's cursor all walk every page, stop at a short one,
and never follow a next page to another host."""

from __future__ import annotations

import pytest

import connectors
from connectors import (
    Action,
    Connector,
    CredentialType,
    LinkHeaderPagination,
    NextUrlPagination,
    OffsetPagination,
    PageNumberPagination,
    Param,
)
from connectors.auth import NoAuth
from connectors.errors import InvalidResponse
from connectors.testing import RecordingServer, Reply

ITEMS = list(range(1, 24))  # 23 items: pages of 10, 10, 3


def app(pagination, params=()) -> Connector:
    return Connector(
        name="paged",
        display_name="Paged",
        base_url="http://127.0.0.1:9",
        credential_types=[CredentialType("rest", "REST", (), NoAuth())],
        actions=[
            Action(
                name="list",
                label="List",
                method="GET",
                path="/items",
                params=tuple(Param(n, "query", {"type": "integer"}) for n in params),
                pagination=pagination,
            )
        ],
    )


def run(connector, respond, **kw):
    with RecordingServer(respond) as server:
        result = connector.run_action(
            "list", connectors.Credentials(type="rest"),
            runtime=connectors.Runtime(base_urls={"paged": server.url}), **kw,
        )  # fmt: skip
    return result, server.requests


def test_page_numbers_until_a_short_page():
    def respond(request):
        page, size = int(request.query.get("page", ["1"])[0]), int(request.query["per_page"][0])
        return Reply(200, ITEMS[(page - 1) * size : page * size])

    result, requests = run(app(PageNumberPagination(), ["page", "per_page"]), respond,
                           filters=[("per_page", "10")])  # fmt: skip

    assert result.items == ITEMS
    assert [r.query.get("page") for r in requests] == [None, ["2"], ["3"]]


def test_offsets_until_a_short_page():
    def respond(request):
        offset, limit = int(request.query.get("offset", ["0"])[0]), int(request.query["limit"][0])
        return Reply(200, {"data": ITEMS[offset : offset + limit]})

    result, requests = run(app(OffsetPagination(items_path="data"), ["offset", "limit"]), respond,
                           limit=30, filters=[("limit", "10")])  # fmt: skip

    assert result.items == ITEMS
    assert [r.query.get("offset") for r in requests] == [None, ["10"], ["20"]]


def test_the_link_headers_next_until_there_is_none():
    def respond(request):
        page = int(request.query.get("page", ["1"])[0])
        following = f'<{base[0]}/items?page={page + 1}>; rel="next"' if page < 3 else ""
        return Reply(
            200, ITEMS[(page - 1) * 10 : page * 10], {"Link": following} if following else {}
        )

    base = []
    connector = app(LinkHeaderPagination(size_param=None))
    with RecordingServer(respond) as server:
        base.append(server.url)
        result = connector.run_action(
            "list", connectors.Credentials(type="rest"),
            runtime=connectors.Runtime(base_urls={"paged": server.url}),
        )  # fmt: skip

    assert result.items == ITEMS
    assert result.pages == 3


def test_a_next_url_in_the_body_on_another_host_is_refused():
    body = {"items": [1], "pagination": {"next_page": "http://other.invalid/items?page=2"}}

    with pytest.raises(InvalidResponse, match="another host"):
        run(app(NextUrlPagination("items")), lambda request: Reply(200, body))


def test_the_page_cap_stops_an_endless_list_and_says_it_was_truncated():
    def respond(request):
        page = int(request.query.get("page", ["1"])[0])
        return Reply(200, [page])

    with RecordingServer(respond) as server:
        result = app(PageNumberPagination(size_param=None), ["page"]).run_action(
            "list", connectors.Credentials(type="rest"),
            runtime=connectors.Runtime(base_urls={"paged": server.url}, max_pages=5),
        )  # fmt: skip

    assert result.items == [1, 2, 3, 4, 5]
    assert result.truncated is True
