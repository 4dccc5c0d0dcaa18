"""The API describes itself: OpenAPI 3 at /api/schema/, interactive docs at /api/docs/."""

from datetime import timedelta

import pytest
import yaml
from django.utils import timezone
from openapi_core import OpenAPI
from openapi_core.contrib.django import DjangoOpenAPIRequest, DjangoOpenAPIResponse

from tests.factories import make_credential


def test_the_schema_is_openapi_3_and_lists_the_endpoints(client, db):
    response = client.get("/api/schema/")
    assert response.status_code == 200
    schema = yaml.safe_load(response.content)
    assert schema["openapi"].startswith("3.")
    paths = set(schema["paths"])
    assert "/api/v1/me/" in paths
    assert "/api/v1/organizations/{org}/memberships/{id}/" in paths
    assert "/api/v1/organizations/{org}/tokens/" in paths
    assert "bearerToken" in schema["components"]["securitySchemes"]


def test_the_interactive_docs_are_served_without_a_cdn(client, db):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    assert b"swagger-ui" in response.content
    assert b"cdn.jsdelivr" not in response.content


# --- Errors and nullable fields are documented ------------------------------------------------


@pytest.fixture
def openapi(client, db):
    """The served schema, ready to validate this API's responses (openapi-core)."""
    return OpenAPI.from_dict(yaml.safe_load(client.get("/api/schema/").content))


def assert_documented(openapi, response):
    """``response`` (of the Django test client) conforms to the schema: status code,
    content type and body."""
    openapi.validate_response(
        DjangoOpenAPIRequest(response.wsgi_request), DjangoOpenAPIResponse(response)
    )


def test_every_operation_documents_its_errors_in_the_common_format(client, db):
    schema = yaml.safe_load(client.get("/api/schema/").content)
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            for status in ("400", "401", "429"):
                content = responses[status]["content"]["application/json"]
                assert content["schema"] == {"$ref": "#/components/schemas/Error"}, (
                    f"{method.upper()} {path} {status}"
                )
            if "{" in path:
                assert "404" in responses, f"{method.upper()} {path}"
            if method != "get":
                assert "403" in responses, f"{method.upper()} {path}"


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("delete", "/api/v1/organizations/acme/tokens/999999/", 404),
        ("get", "/api/v1/organizations/acme/credentials/?page=99", 404),
        ("post", "/api/v1/organizations/acme/invitations/", 400),
        ("post", "/api/v1/organizations/acme/tokens/", 403),
    ],
)
def test_error_responses_conform_to_the_schema(method, path, status, openapi, api, acme, cast):
    response = getattr(api(cast["owner"], acme), method)(path, {}, format="json")

    assert response.status_code == status
    assert_documented(openapi, response)


def test_a_credential_without_a_creator_conforms_to_the_schema(openapi, api, acme, cast):
    make_credential(acme)  # created by the system: created_by is null

    response = api(cast["owner"], acme).get("/api/v1/organizations/acme/credentials/")

    assert response.json()["results"][0]["created_by"] is None
    assert_documented(openapi, response)


def test_an_invitation_whose_inviter_left_conforms_to_the_schema(openapi, api, acme, cast):
    from portal.tenancy.models import Invitation

    Invitation.objects.create(
        organization=acme,
        email="ada@example.com",
        role="member",
        token_hash="x" * 64,
        expires_at=timezone.now() + timedelta(days=1),
    )

    response = api(cast["owner"], acme).get("/api/v1/organizations/acme/invitations/")

    assert response.json()["results"][0]["invited_by"] is None
    assert_documented(openapi, response)
