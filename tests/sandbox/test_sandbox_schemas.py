"""Every body the sandbox serves validates against ConnectWise's own schemas (a copy in tests/data/connectwise/schemas).

The schemas are OpenAPI 3.0: `nullable: true` is translated to a JSON Schema null type, and `$ref`s to
`#/components/schemas/X` resolve across all the files. References the files do not define (SiteReference,
CountryReference, ...) are checked as ConnectWise's generic reference shape: `{id, name, _info}`.
"""

from __future__ import annotations

import json
import re

import jsonschema
import pytest

from mcp_server_connectwise.sandbox import SandboxSettings, create_app

from support.paths import SCHEMAS_DIR
from support.sandbox_http import MINIMAL_POSTS, sandbox_http

GENERIC_REFERENCE = {
    "type": "object",
    "properties": {
        "id": {"type": ["integer", "null"]},
        "name": {"type": "string"},
        "_info": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}
# List endpoint -> schema of its items (paths_service_desk_subset.json names Company.Configuration).
LISTS = {
    "/service/tickets": "Ticket",
    "/service/boards": "Board",
    "/service/boards/{board}/statuses": "BoardStatus",
    "/service/boards/{board}/types": "BoardType",
    "/service/boards/{board}/subtypes": "BoardSubType",
    "/service/boards/{board}/items": "BoardItem",
    "/service/priorities": "Priority",
    "/service/sources": "Source",
    "/service/tickets/{ticket}/notes": "ServiceNote",
    "/service/tickets/{ticket}/allNotes": "ServiceTicketNote",
    "/time/entries": "TimeEntry",
    "/time/workTypes": "WorkType",
    "/time/workRoles": "WorkRole",
    "/company/companies": "Company",
    "/company/contacts": "Contact",
    "/company/configurations": "Configuration",
    "/company/configurations/types": "ConfigurationType",
    "/company/configurations/statuses": "ConfigurationStatus",
    "/finance/agreements": "Agreement",
    "/system/members": "Member",
    "/system/callbacks": "CallbackEntry",
}


def _openapi_to_json_schema(node):
    if isinstance(node, list):
        return [_openapi_to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {k: _openapi_to_json_schema(v) for k, v in node.items() if not k.startswith("_") or k == "_info"}
    if "properties" in node:
        out["properties"] = {k: _openapi_to_json_schema(v) for k, v in node["properties"].items()}
    if out.pop("nullable", False) and "type" in out:
        out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    return out


def _components() -> dict:
    schemas: dict = {}
    for path in sorted(SCHEMAS_DIR.glob("*.json")):
        if path.name.startswith("paths_"):
            continue
        for name, schema in json.loads(path.read_text(encoding="utf-8")).items():
            if not name.startswith("_") and isinstance(schema, dict):
                schemas[name] = _openapi_to_json_schema(schema)
    schemas["Company.Configuration"] = schemas["Configuration"]
    referenced = set(re.findall(r"#/components/schemas/([\w.]+)", json.dumps(schemas)))
    for name in referenced - set(schemas):
        schemas[name] = GENERIC_REFERENCE if name.endswith("Reference") else {"type": "object"}
    return schemas


@pytest.fixture(scope="module")
def components() -> dict:
    return _components()


def validate(components: dict, body, schema_name: str, many: bool) -> None:
    ref = {"$ref": f"#/components/schemas/{schema_name}"}
    root = {"components": {"schemas": components}, **({"type": "array", "items": ref} if many else ref)}
    validator = jsonschema.Draft202012Validator(root)
    errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:10])


@pytest.fixture(scope="module")
def app():
    return create_app(SandboxSettings(tickets=200))


@pytest.fixture
async def client(app):
    async with sandbox_http(app) as client:
        yield client


async def _walk(client, path: str) -> list:
    """Every record of a list endpoint, following its Link header."""
    records, url = [], path + "?pageSize=1000"
    while url:
        response = await client.get(url)
        assert response.status_code == 200, response.text
        records += response.json()
        url = dict((rel, u) for u, rel in re.findall(r'<([^>]*)>; rel="(\w+)"', response.headers.get("Link", ""))).get(
            "next"
        )
    return records


@pytest.mark.parametrize("path", sorted(LISTS))
async def test_every_list_endpoint_matches_its_schema(app, client, components, path):
    store = app.state.store
    parents = (
        {"board": list(store["boards"])}
        if "{board}" in path
        else ({"ticket": [t for t in list(store["tickets"])[:40]]} if "{ticket}" in path else {"": [None]})
    )
    ((key, values),) = parents.items()
    total = 0
    for value in values:
        records = await _walk(client, path.replace("{" + key + "}", str(value)) if key else path)
        validate(components, records, LISTS[path], many=True)
        total += len(records)
    assert total > 0, f"{path} served nothing to check"


async def test_written_records_and_other_bodies_match_their_schemas(client, components):
    ticket = (
        await client.post(
            "/service/tickets",
            json={
                "summary": "Schema check",
                "company": {"identifier": "ACME"},
                "board": {"name": "Alerts"},
                "initialDescription": "desc",
            },
        )
    ).json()
    validate(components, ticket, "Ticket", many=False)
    entry = (
        await client.post(
            "/time/entries", json={"chargeToId": ticket["id"], "timeStart": "2026-11-01T10:00:00Z", "actualHours": 1.25}
        )
    ).json()
    validate(components, entry, "TimeEntry", many=False)
    note = (
        await client.post(f"/service/tickets/{ticket['id']}/notes", json={"text": "n", "detailDescriptionFlag": True})
    ).json()
    validate(components, note, "ServiceNote", many=False)
    validate(components, (await client.get("/service/tickets/count")).json(), "Count", many=False)
    validate(components, (await client.get("/system/info")).json(), "Info", many=False)
    keys = (await client.post("/system/members/jsmith/tokens")).json()
    validate(components, keys, "Token", many=False)
    as_member = (f"sandbox+{keys['publicKey']}", keys["privateKey"])
    for response in [
        await client.post("/system/members/mgarcia/tokens", auth=as_member),
        await client.get("/service/tickets/1"),
        await client.get("/nope"),
        await client.post("/company/contacts", json={}),
    ]:
        validate(components, response.json(), "ErrorResponseMessage", many=False)


def test_sandbox_field_registry_matches_the_schemas():
    """fields.json (shipped in the package) is a transcription of the schemas' property names and types."""
    from mcp_server_connectwise.sandbox.store import MODEL_FIELDS

    for model, fields in MODEL_FIELDS.items():
        schema = json.loads((SCHEMAS_DIR / f"{model}.json").read_text(encoding="utf-8"))[model]
        assert list(fields) == list(schema["properties"]), model
        for name, kind in fields.items():
            prop = schema["properties"][name]
            base = "reference" if "$ref" in prop else prop.get("type")
            assert {"integer": "number", "string": "string"}.get(base, base) in (
                kind,
                "string" if kind in ("datetime", "datestring") else kind,
            ), (model, name)


# ConnectWise's ConfigurationReference (the items of /service/tickets/{id}/configurations). schemas/ has no file
# for it; this is its Go model's shape (id, deviceIdentifier, name, type, _info), in the style of the others.
CONFIGURATION_REFERENCE = {
    "type": "object",
    "properties": {
        "id": {"type": ["integer", "null"]},
        "deviceIdentifier": {"type": ["string", "null"]},
        "name": {"type": "string"},
        "type": {"$ref": "#/components/schemas/ConfigurationTypeReference"},
        "_info": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    "additionalProperties": False,
}


async def test_ticket_configurations_match_configuration_reference(app, client, components):
    components = {
        **components,
        "ConfigurationReference": CONFIGURATION_REFERENCE,
        "ConfigurationTypeReference": GENERIC_REFERENCE,
    }
    total = 0
    for ticket_id in list(app.state.store.ticket_configurations)[:40]:
        records = await _walk(client, f"/service/tickets/{ticket_id}/configurations")
        validate(components, records, "ConfigurationReference", many=True)
        total += len(records)
    assert total > 0


async def test_records_created_from_minimal_bodies_match_their_schemas(app, client, components):
    """What a POST of only the required fields gets filled in with (defaults) is typed as ConnectWise types it."""
    ticket = next(t["id"] for t in app.state.store["tickets"].values() if t["board"]["id"] == 1)
    checked = 0
    for template, body in MINIMAL_POSTS.items():
        schema = LISTS.get(template)
        if schema is None:
            continue
        response = await client.post(template.replace("{ticket}", str(ticket)).replace("{board}", "1"), json=body)
        assert response.status_code == 201, (template, response.text)
        validate(components, response.json(), schema, many=False)
        checked += 1
    assert checked == len(MINIMAL_POSTS) - 1  # all but the ticket-configuration link, checked above


async def test_a_callbacks_entity_is_the_record_as_its_schema_has_it(app, client, components):
    """A delivery's `Entity` (a JSON string) is a ticket or time entry as the API serves it. (Delivered nowhere:
    the URL is not loopback.)"""
    for kind in ("ticket", "time"):
        hook = {"url": f"https://hooks.example.com/{kind}?id=", "objectId": 1, "type": kind, "level": "owner"}
        assert (await client.post("/system/callbacks", json=hook)).status_code == 201
    ticket = next(t["id"] for t in app.state.store["tickets"].values() if not t.get("closedFlag"))
    await client.patch(f"/service/tickets/{ticket}", json=[{"op": "replace", "path": "summary", "value": "Entity"}])
    entry = {"chargeToId": ticket, "timeStart": "2026-11-01T10:00:00Z", "actualHours": 0.5}
    assert (await client.post("/time/entries", json=entry)).status_code == 201
    payloads = {d.payload["Type"]: d.payload for d in app.state.callbacks.deliveries}
    validate(components, json.loads(payloads["ticket"]["Entity"]), "Ticket", many=False)
    validate(components, json.loads(payloads["time"]["Entity"]), "TimeEntry", many=False)
