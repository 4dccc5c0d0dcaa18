"""Generated: a malformed id or organization in any tenant URL, API or page, on any method,
is a 404 (in the API's error format on /api/), never a 500.

Ids are numbers: text in their place matches no route, and a number beyond what the
database holds finds nothing. The routes come from the URLconf, so a new route is covered
without touching this file.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest
from django.urls import reverse

from tests.api.test_errors import assert_error
from tests.routes import tenant_routes

METHODS = ["get", "post", "put", "patch", "delete"]
PAGE_METHODS = ["get", "post"]  # what pages answer to
PLACEHOLDER = 987_654_321
MALFORMED_IDS = [
    "abc",
    "null,null",
    "1.5",
    "-1",
    "\u0663",  # ARABIC-INDIC DIGIT THREE: a digit to str.isdigit(), not to int()'s routes
    "99999999999999999999",  # beyond a 64-bit integer column
]
MALFORMED_SLUGS = ["null,null", "a.b"]
# URL keywords naming what every tenant shares (an installed application), not an id.
SHARED_KEYWORDS = {"application": "calendly"}

OBJECT_ROUTES = [r for r in tenant_routes() if set(r.kwargs) - {"org", *SHARED_KEYWORDS}]


def _url(route, *, org: str = "acme") -> str:
    kwargs = {
        name: SHARED_KEYWORDS.get(name, PLACEHOLDER) for name in route.kwargs if name != "org"
    }
    return reverse(route.name, kwargs={"org": org, **kwargs})


@pytest.fixture
def callers(acme, cast, client, api):
    """The owner of Acme: with a token for the API, through a session for pages."""
    client.force_login(cast["owner"])
    return {"session": client, "token": api(cast["owner"], acme)}


def _assert_not_found(route, url, callers):
    caller = callers["token"] if route.is_api else callers["session"]
    for method in METHODS if route.is_api else PAGE_METHODS:
        response = getattr(caller, method)(url)
        # 405 only where the route matched but has no such method (a page's GET).
        assert response.status_code in (404, 405), (
            f"{method.upper()} {url} -> {response.status_code}"
        )
        if route.is_api:
            assert_error(response, response.status_code)


def test_every_object_route_is_covered():
    assert any(route.is_api for route in OBJECT_ROUTES)
    assert any(not route.is_api for route in OBJECT_ROUTES)


@pytest.mark.parametrize("route", OBJECT_ROUTES, ids=lambda r: r.name)
def test_a_malformed_id_is_404_on_every_method_never_500(route, callers):
    url = _url(route)
    for malformed in MALFORMED_IDS:
        _assert_not_found(route, url.replace(f"/{PLACEHOLDER}/", f"/{quote(malformed)}/"), callers)


@pytest.mark.parametrize("route", OBJECT_ROUTES, ids=lambda r: r.name)
def test_a_malformed_organization_is_404_on_every_method_never_500(route, callers):
    for malformed in MALFORMED_SLUGS:
        url = _url(route).replace("/acme/", f"/{quote(malformed)}/", 1)
        _assert_not_found(route, url, callers)


@pytest.mark.parametrize(
    "path",
    ["tokens/abc/", "memberships/abc/", "invitations/null,null/"],
)
def test_the_reported_deletes_answer_404_in_the_error_format(path, api, acme, cast):
    response = api(cast["owner"], acme).delete(f"/api/v1/organizations/acme/{path}")

    error = assert_error(response, 404)
    assert error["code"] == "not_found"


def test_the_schema_says_ids_are_integers(client, db):
    import yaml

    schema = yaml.safe_load(client.get("/api/schema/").content)
    parameters = schema["paths"]["/api/v1/organizations/{org}/tokens/{id}/"]["delete"]["parameters"]
    assert {"in": "path", "name": "id", "schema": {"type": "integer"}}.items() <= next(
        p for p in parameters if p["name"] == "id"
    ).items()


@pytest.mark.parametrize("listing", ["runs", "events"])
@pytest.mark.parametrize("value", ["\u00b2", "\u0663", "1.5", "abc"])
def test_a_processflow_filter_that_is_not_an_id_is_400_never_500(listing, value, api, acme, cast):
    response = api(cast["owner"], acme).get(
        f"/api/v1/organizations/acme/{listing}/", {"processflow": value}
    )

    error = assert_error(response, 400)
    assert error["fields"] == {"processflow": ["A processflow is given by its id."]}


def test_the_run_list_page_explains_a_processflow_filter_that_is_not_an_id(login, cast):
    response = login(cast["member"]).get("/o/acme/runs/", {"processflow": "\u00b2"})

    assert response.status_code == 200
    assert "A processflow is given by its id." in response.content.decode()
