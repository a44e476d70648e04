"""The OpenAPI description: valid 3.1, served, and matching what the API answers."""

from __future__ import annotations

import jsonschema
import openapi_spec_validator as validator
import yaml

from detector.api.config import DEFAULT_OPENAPI
from tests.detector.api.conftest import BODY, auth


def test_description_is_valid_openapi_31():
    doc = yaml.safe_load(DEFAULT_OPENAPI.read_text())
    assert doc["openapi"].startswith("3.1")
    validator.validate(doc)


async def test_served_and_answers_match_the_schemas(client):
    resp = await client.get("/openapi.json")
    assert resp.status == 200
    spec = await resp.json()
    assert "/v1/lookups" in spec["paths"]
    assert (await client.get("/openapi.yaml")).status == 200

    def check(instance, name):
        schema = {"$ref": f"#/components/schemas/{name}", "components": spec["components"]}
        jsonschema.validate(instance, schema, cls=jsonschema.Draft202012Validator)

    check(BODY, "LookupRequest")
    for role in ("police", "analyst"):
        check(await (await client.post("/v1/lookups", json=BODY, headers=auth(role))).json(), "LookupAnswer")
    check(await (await client.post("/v1/lookups", json={}, headers=auth("police"))).json(content_type=None),
          "Problem")
