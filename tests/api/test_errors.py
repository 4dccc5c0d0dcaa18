"""Every 4xx/5xx of the API has one format: {"error": {status, code, message, fields}}."""

from rest_framework.test import APIClient


def assert_error(response, status):
    assert response.status_code == status
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["status"] == status
    assert body["error"]["message"]
    assert isinstance(body["error"]["fields"], dict)
    return body["error"]


def test_401_without_credentials():
    assert_error(APIClient().get("/api/v1/me/"), 401)


def test_404_for_an_unknown_api_path(api, acme, cast):
    assert_error(api(cast["member"], acme).get("/api/v1/nothing/here/"), 404)


def test_405_for_an_unsupported_method(api, acme, cast):
    assert_error(api(cast["member"], acme).put("/api/v1/me/"), 405)


def test_400_lists_the_invalid_fields(api, acme, cast):
    error = assert_error(
        api(cast["owner"], acme).post(
            "/api/v1/organizations/acme/invitations/", {"email": "not-an-email"}, format="json"
        ),
        400,
    )
    assert error["code"] == "invalid"
    assert "email" in error["fields"]


def test_413_for_an_oversized_body_before_any_view_reads_it(api, acme, cast, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = api(cast["owner"], acme).post(
        "/api/v1/organizations/acme/invitations/",
        {"email": "a@b.test", "pad": "x" * 5000},
        format="json",
    )
    error = assert_error(response, 413)
    assert "1000 bytes" in error["message"]


def test_429_when_throttled(api, acme, cast, monkeypatch):
    from rest_framework.throttling import SimpleRateThrottle

    # DRF reads the rates into this class attribute at import time.
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"user": "3/min", "anon": "3/min"})
    client = api(cast["member"], acme)
    for _ in range(3):
        client.get("/api/v1/me/")
    response = client.get("/api/v1/me/")
    assert assert_error(response, 429)["code"] == "throttled"
    assert int(response["Retry-After"]) > 0


def test_csrf_is_enforced_for_session_writes(acme, cast):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(cast["owner"])
    response = client.post(
        "/api/v1/organizations/acme/invitations/", {"email": "a@b.test"}, format="json"
    )
    assert "CSRF" in assert_error(response, 403)["message"]
