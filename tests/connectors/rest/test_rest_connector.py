"""The generic REST connector: forwarding documents to a destination the user names.

Every test runs with ``no_internet``: a refusal that failed to happen would try to connect
beyond loopback and fail loudly instead of quietly reaching out.
"""

from __future__ import annotations

import base64

import pytest

from connectors import Credentials, Runtime, Unlimited, get_connector
from connectors.errors import (
    ApiError,
    AuthenticationFailed,
    FilterError,
    InvalidCredentials,
    UnsafeDestination,
)
from connectors.netguard import REFUSED
from connectors.testing import RecordingServer, Reply

pytestmark = pytest.mark.usefixtures("no_internet")

LOCAL = Runtime(
    allowed_private_hosts={"127.0.0.1"}, rate_limiter=Unlimited(), sleep=lambda seconds: None
)
STRICT = Runtime(rate_limiter=Unlimited(), sleep=lambda seconds: None)


@pytest.fixture
def rest():
    return get_connector("rest")


@pytest.fixture
def destination():
    with RecordingServer(lambda request: Reply(201, {"received": True})) as server:
        yield server


def creds(base_url: str, **fields) -> Credentials:
    secrets = {k: fields.pop(k) for k in ("token", "password", "api_key") if k in fields}
    return Credentials(
        type="rest", fields={"base_url": base_url, **fields}, secrets=secrets, key="c:rest"
    )


def test_a_document_is_forwarded_with_the_idempotency_key(rest, destination):
    credentials = creds(f"{destination.url}/api/v1", auth_type="bearer", token="dest-token-1")

    result = rest.run_action(
        "post_json",
        credentials,
        filters=[("path", "/orders"), ("query.source", "calendly")],
        document={"email": "ada@example.com", "event": "invitee.created"},
        idempotency_key="run-8f2c:step-forward",
        runtime=LOCAL,
    )

    (request,) = destination.requests
    assert request.method == "POST"
    assert request.path == "/api/v1/orders"
    assert request.query == {"source": ["calendly"]}
    assert request.json() == {"email": "ada@example.com", "event": "invitee.created"}
    assert request.header("Idempotency-Key") == "run-8f2c:step-forward"
    assert request.header("Authorization") == "Bearer dest-token-1"
    assert request.header("Content-Type") == "application/json"
    assert result.status == 201
    assert result.data == {"received": True}


def test_basic_and_api_key_authentication(rest, destination):
    rest.run_action(
        "get_json",
        creds(destination.url, auth_type="basic", username="ada", password="pw-9"),
        runtime=LOCAL,
    )
    rest.run_action(
        "get_json",
        creds(destination.url, auth_type="api_key", api_key_header="X-Token", api_key="k-1"),
        runtime=LOCAL,
    )
    rest.run_action(
        "get_json", creds(destination.url, auth_type="api_key", api_key="k-2"), runtime=LOCAL
    )

    basic, custom, default = destination.requests
    assert basic.header("Authorization") == "Basic " + base64.b64encode(b"ada:pw-9").decode()
    assert custom.header("X-Token") == "k-1"
    assert default.header("X-API-Key") == "k-2"


def test_a_missing_secret_is_refused_before_sending(rest, destination):
    with pytest.raises(InvalidCredentials) as caught:
        rest.run_action("get_json", creds(destination.url, auth_type="bearer"), runtime=LOCAL)

    assert "token" in str(caught.value)
    assert destination.requests == []


def test_the_api_key_cannot_replace_a_transport_header(rest, destination):
    with pytest.raises(InvalidCredentials):
        rest.run_action(
            "get_json",
            creds(destination.url, auth_type="api_key", api_key_header="Host", api_key="k"),
            runtime=LOCAL,
        )


@pytest.mark.parametrize(
    ("base_url", "reason"),
    [
        ("http://127.0.0.1:{port}", "'127.0.0.1' (127.0.0.1) is a loopback address"),
        # A name, resolved then refused.
        ("http://localhost:{port}", "'localhost' (127.0.0.1) is a loopback address"),
        ("http://[::ffff:127.0.0.1]:{port}", "a loopback address"),
        ("http://10.20.30.40/", "(10.20.30.40) is a private address"),
        ("http://192.168.1.10/", "(192.168.1.10) is a private address"),
        ("http://169.254.10.10/", "(169.254.10.10) is a link-local address"),
        ("http://169.254.169.254/latest/meta-data/", "a cloud metadata address"),
        ("http://[fd00:ec2::254]/", "a cloud metadata address"),
        ("http://0.0.0.0:{port}", "an unspecified address"),
        ("http://no-such-host.invalid/", "'no-such-host.invalid' does not resolve"),
    ],
)
def test_internal_destinations_are_refused_alike_and_only_the_log_says_why(
    rest, destination, base_url, reason, caplog
):
    port = destination.url.rsplit(":", 1)[1]

    with (
        caplog.at_level("WARNING", logger="connectors.netguard"),
        pytest.raises(UnsafeDestination) as caught,
    ):
        rest.run_action(
            "post_json", creds(base_url.format(port=port)), document={"a": 1}, runtime=STRICT
        )

    # One message whatever the reason: nothing tells how internal names resolve.
    assert str(caught.value) == REFUSED
    assert [(r.name, r.levelname) for r in caplog.records] == [("connectors.netguard", "WARNING")]
    assert reason in caplog.records[0].getMessage()
    assert destination.requests == []


@pytest.mark.parametrize("allowed", ["127.0.0.1", "127.0.0.0/8", "localhost"])
def test_the_allow_list_lets_local_destinations_through(rest, destination, allowed):
    port = destination.url.rsplit(":", 1)[1]
    host = "localhost" if allowed == "localhost" else "127.0.0.1"
    runtime = STRICT.replace(allowed_private_hosts={allowed})

    result = rest.run_action(
        "post_json", creds(f"http://{host}:{port}"), document={"a": 1}, runtime=runtime
    )

    assert result.status == 201
    assert len(destination.requests) == 1


def test_redirects_are_never_followed(rest):
    def respond(request):
        if request.path == "/start":
            return Reply(302, headers={"Location": "/elsewhere"})
        return Reply(200, {"followed": True})

    with RecordingServer(respond) as server:
        with pytest.raises(ApiError) as caught:
            rest.run_action(
                "get_json", creds(server.url), filters=[("path", "/start")], runtime=LOCAL
            )

        assert [r.path for r in server.requests] == ["/start"]
    assert caught.value.status == 302
    assert "redirects are not followed" in str(caught.value)


def test_a_post_is_not_repeated_after_a_500_without_an_idempotency_key(rest):
    with RecordingServer(lambda request: Reply(500, {"error": "boom"})) as server:
        with pytest.raises(ApiError):
            rest.run_action("post_json", creds(server.url), document={"a": 1}, runtime=LOCAL)

        assert len(server.requests) == 1


def test_a_post_with_an_idempotency_key_is_retried_with_the_same_key(rest):
    answers = iter([Reply(503), Reply(503), Reply(200, {"ok": True})])

    with RecordingServer(lambda request: next(answers)) as server:
        result = rest.run_action(
            "post_json", creds(server.url), document={"a": 1}, idempotency_key="k-77", runtime=LOCAL
        )

        keys = [r.header("Idempotency-Key") for r in server.requests]
    assert keys == ["k-77", "k-77", "k-77"]
    assert result.data == {"ok": True}


def test_text_answers_come_back_as_text(rest):
    with RecordingServer(
        lambda request: Reply(200, "OK", {"Content-Type": "text/plain"})
    ) as server:
        result = rest.run_action("post_json", creds(server.url), document=[1, 2], runtime=LOCAL)

    assert result.data == "OK"


def test_a_path_cannot_climb_above_the_base_url(rest, destination):
    with pytest.raises(FilterError):
        rest.run_action(
            "get_json",
            creds(f"{destination.url}/api"),
            filters=[("path", "/../admin")],
            runtime=LOCAL,
        )

    assert destination.requests == []


def test_validate_gets_the_health_path_and_reports_the_status(rest, destination):
    account = rest.validate(creds(f"{destination.url}/api", health_path="/health"), runtime=LOCAL)

    assert destination.requests[0].path == "/api/health"
    assert account.details["status"] == 201
    assert account.name == "127.0.0.1"


def test_validate_reports_refused_credentials(rest):
    refusing = RecordingServer(lambda request: Reply(401, {"message": "bad token"}))
    with refusing as server, pytest.raises(AuthenticationFailed) as caught:
        rest.validate(creds(server.url, auth_type="bearer", token="nope-1234"), runtime=LOCAL)

    assert str(caught.value) == (
        "The destination rejected the credentials (401). Check them and validate again."
    )


def test_validate_refuses_internal_destinations(rest):
    with pytest.raises(UnsafeDestination):
        rest.validate(creds("http://169.254.169.254/"), runtime=STRICT)


def test_a_pooled_connection_does_not_outlive_the_policy_that_allowed_it(rest, destination):
    # A host name, so that only the connect-time check (after resolution) can refuse it.
    by_name = destination.url.replace("127.0.0.1", "localhost")
    loopback = STRICT.replace(allowed_private_hosts={"127.0.0.1", "::1"})
    rest.run_action("get_json", creds(by_name), runtime=loopback)

    with pytest.raises(UnsafeDestination):
        rest.run_action("get_json", creds(by_name), runtime=STRICT)

    assert len(destination.requests) == 1


def test_an_idempotency_key_cannot_inject_headers(rest, destination):
    with pytest.raises(FilterError):
        rest.run_action(
            "post_json",
            creds(destination.url),
            document={"a": 1},
            idempotency_key="run-1\r\nX-Admin: yes",
            runtime=LOCAL,
        )

    assert destination.requests == []


def test_a_document_that_is_not_json_is_refused_before_sending(rest, destination):
    with pytest.raises(FilterError) as caught:
        rest.run_action(
            "post_json", creds(destination.url), document={"at": object()}, runtime=LOCAL
        )

    assert "cannot be sent as JSON" in str(caught.value)
    assert destination.requests == []
