"""The API describes itself: OpenAPI 3 at /api/schema/, interactive docs at /api/docs/."""

import yaml


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
