"""OpenAPI import: chosen operations of an application's own OpenAPI 3 document become action
declarations (method, path, parameters with their JSON Schemas, request body, pagination,
answer schema), subsets are what a connector vendors, and exchanges are checked against it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from connectors.openapi import OpenApi, OpenApiError
from connectors.pagination import LinkHeaderPagination, NextUrlPagination

ROOT = Path(__file__).resolve().parents[2]
GITHUB = ROOT / "connectors" / "github" / "openapi" / "rest.json"
FIGMA = ROOT / "connectors" / "figma" / "openapi" / "openapi.json"

# A small OpenAPI 3.0 document written for these tests.
PETS = {
    "openapi": "3.0.3",
    "info": {"title": "Pets", "version": "1"},
    "paths": {
        "/pets": {
            "get": {
                "operationId": "listPets",
                "summary": "List pets",
                "parameters": [
                    {"name": "page", "in": "query", "schema": {"type": "integer"}},
                    {"name": "per_page", "in": "query", "schema": {"type": "integer"}},
                    {"name": "X-Trace", "in": "header", "schema": {"type": "string"}},
                ],
                "responses": {"200": {"description": "ok", "content": {"application/json": {
                    "schema": {"type": "array", "items": {"$ref": "#/components/schemas/Pet"}}}}}},
            },
            "post": {
                "operationId": "createPet",
                "requestBody": {"content": {"application/json": {"schema": {
                    "type": "object", "required": ["name"],
                    "properties": {"name": {"type": "string", "description": "Its name. Kept."},
                                   "tag": {"type": "string", "nullable": True}}}}}},
                "responses": {"201": {"description": "made", "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Pet"}}}}},
            },
        },
        "/pets/{pet_id}": {
            "parameters": [{"name": "pet_id", "in": "path", "required": True,
                            "schema": {"type": "integer"}}],
            "delete": {"operationId": "deletePet", "responses": {"204": {"description": "gone"}}},
        },
    },
    "components": {"schemas": {
        "Pet": {"type": "object", "required": ["id", "name"],
                "properties": {"id": {"type": "integer"}, "name": {"type": "string"},
                               "tag": {"type": "string", "nullable": True},
                               "owner": {"$ref": "#/components/schemas/Owner"}}},
        "Owner": {"type": "object", "properties": {"login": {"type": "string"}}},
        "Unused": {"type": "object"},
    }},
}  # fmt: skip


@pytest.fixture
def pets() -> OpenApi:
    return OpenApi(PETS, source="pets.json")


def test_an_operation_becomes_an_action_with_its_parameters_and_answer(pets):
    action = pets.action("list_pets", "listPets")

    assert (action.method, action.path, action.label) == ("GET", "/pets", "List pets")
    assert action.keys == ["page", "per_page"]  # headers are the connector's business
    assert action.params_by_name["page"].schema == {"type": "integer"}
    assert action.output_schema["items"]["required"] == ["id", "name"]
    assert action.pagination.kind == "page"
    assert action.pagination.size_param == "per_page"


def test_a_json_body_becomes_body_parameters_and_nullable_becomes_json_schema(pets):
    action = pets.action("create_pet", "createPet")

    assert [(p.name, p.location, p.required) for p in action.params] == [
        ("name", "body", True), ("tag", "body", False),
    ]  # fmt: skip
    assert action.params_by_name["tag"].schema == {"type": ["string", "null"]}
    assert action.params_by_name["name"].help == "Its name."
    problems = [error.message for error in action.validator.iter_errors({"tag": "cat"})]
    assert problems == ["'name' is a required property"]


def test_shared_path_parameters_apply_and_an_empty_answer_is_null(pets):
    action = pets.action("delete_pet", "deletePet")

    assert action.keys == ["pet_id"]
    assert action.params_by_name["pet_id"].required
    assert action.output_schema == {"type": "null"}


def test_overrides_fix_what_a_spec_gets_wrong(pets):
    action = pets.action("pets", "listPets", label="Pets", pagination=None)

    assert action.label == "Pets"
    assert action.pagination is None


def test_an_unknown_operation_is_named(pets):
    with pytest.raises(OpenApiError, match="no operation 'nope'"):
        pets.action("x", "nope")


def test_githubs_description_gives_link_pages_and_figmas_is_declared_by_hand():
    github = OpenApi.load(GITHUB).action("repos", "repos/list-for-authenticated-user")
    figma = OpenApi.load(FIGMA).action(
        "versions", "getFileVersions", pagination=NextUrlPagination("versions")
    )

    assert isinstance(github.pagination, LinkHeaderPagination)
    assert github.pagination.size_param == "per_page"
    assert figma.pagination.items_path == "versions"


def test_a_subset_keeps_the_operations_and_what_they_use(pets):
    subset = OpenApi(pets.subset(["createPet"]))

    assert list(subset.operations) == ["createPet"]
    assert set(subset.document["components"]["schemas"]) == {"Pet", "Owner"}


def test_exchanges_are_checked_against_the_document(pets):
    good = {"id": 1, "name": "Rex", "tag": None}

    assert (
        pets.problems("GET", "/pets", query={"page": ["2"]}, status=200, response_body=[good]) == []
    )
    assert pets.problems("GET", "/pets", query={"colour": ["red"]}, status=200, response_body=[])
    assert pets.problems("POST", "/pets", request_body={"name": "Rex"}, status=201,
                         response_body={"id": "one"})  # fmt: skip
    assert pets.problems("PUT", "/pets", status=200) == [
        "PUT /pets: no operation of pets.json serves it"
    ]


def test_the_cli_prints_declarations_and_writes_the_subset(tmp_path):
    spec = tmp_path / "pets.json"
    spec.write_text(json.dumps(PETS))
    out = tmp_path / "subset.json"

    completed = subprocess.run(
        [sys.executable, "-m", "connectors", "import-openapi", str(spec),
         "--operations", "listPets", "deletePet", "--output", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert completed.returncode == 0, completed.stderr
    assert 'list_pets="listPets",' in completed.stdout
    assert "# GET /pets: page, per_page, page pages" in completed.stdout
    assert 'delete_pet="deletePet",' in completed.stdout
    assert set(json.loads(out.read_text())["paths"]) == {"/pets", "/pets/{pet_id}"}


def test_the_cli_names_a_missing_operation(tmp_path):
    spec = tmp_path / "pets.json"
    spec.write_text(json.dumps(PETS))

    completed = subprocess.run(
        [sys.executable, "-m", "connectors", "import-openapi", str(spec), "--operations", "x"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert completed.returncode == 2
    assert "no operation 'x'" in json.loads(completed.stderr)["message"]
