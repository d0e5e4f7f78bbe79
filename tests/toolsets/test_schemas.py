"""Tool schemas as tools/list gives them: compacted, yet saying everything the models behind them say.

`compact` on small schemas for each rewrite, then every registered tool: its customer-text marks survive, and an
explicit null still means "not given" for each argument whose schema no longer lists null.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from mcp_server_connectwise.services import clock
from mcp_server_connectwise.toolsets import REGISTRY
from mcp_server_connectwise.toolsets.definition import with_next_steps
from mcp_server_connectwise.toolsets.schemas import compact
from mcp_server_connectwise.untrusted import UNTRUSTED_MARK

from support.harness import make_harness
from support.registry import TOOLS

NULL = {"type": "null"}


def test_an_optional_argument_defaulting_to_null_lists_no_null():
    arguments = {
        "type": "object",
        "properties": {
            "owner": {"anyOf": [{"type": "string"}, NULL], "default": None, "description": "Member."},
            "level": {"anyOf": [{"enum": ["Low", "High"], "type": "string"}, NULL], "default": None},
            "board": {"anyOf": [{"type": "string"}, {"items": {"type": "string"}, "type": "array"}, NULL]},
            "due": {"anyOf": [{"type": "string", "format": "date-time"}, NULL]},
        },
        "required": ["due"],
    }
    properties = compact(arguments)["properties"]
    assert properties["owner"] == {"type": "string", "description": "Member."}
    assert properties["level"] == {"enum": ["Low", "High"], "type": "string"}
    # No default: null is a value of its own, so it stays (required or not).
    assert properties["board"] == {"type": ["string", "array", "null"], "items": {"type": "string"}}
    assert properties["due"] == {"type": ["string", "null"], "format": "date-time"}


def test_a_result_part_used_once_is_written_in_place_and_one_used_twice_stays_a_definition():
    contact = {"properties": {"name": {"type": "string"}}, "type": "object", "description": "A docstring."}
    member = {"properties": {"id": {"type": "integer"}}, "type": "object", "title": "Member"}
    result = {
        "$defs": {"Contact": contact, "Member": member},
        "properties": {
            "contact": {"anyOf": [{"$ref": "#/$defs/Contact"}, NULL], "default": None},
            "owner": {"$ref": "#/$defs/Member", "description": "Who owns it."},
            "members": {"items": {"$ref": "#/$defs/Member"}, "type": "array"},
        },
        "type": "object",
    }
    assert compact(result, output=True) == {
        "$defs": {"Member": {"properties": {"id": {"type": "integer"}}, "type": "object"}},
        "properties": {
            "contact": {"properties": {"name": {"type": "string"}}, "type": "object"},
            "owner": {"$ref": "#/$defs/Member", "description": "Who owns it."},
            "members": {"items": {"$ref": "#/$defs/Member"}, "type": "array"},
        },
        "type": "object",
    }


def test_a_part_within_itself_stays_a_definition_and_its_own_parts_are_written_in_place():
    result = {
        "$defs": {
            "Node": {
                "properties": {"leaf": {"$ref": "#/$defs/Leaf"}, "children": {"items": {"$ref": "#/$defs/Node"}}},
                "type": "object",
            },
            "Leaf": {"properties": {"id": {"type": "integer"}}, "type": "object"},
        },
        "properties": {"root": {"$ref": "#/$defs/Node"}},
        "type": "object",
    }
    compacted = compact(result, output=True)
    assert compacted["properties"]["root"] == {"$ref": "#/$defs/Node"}
    assert compacted["$defs"] == {
        "Node": {
            "properties": {
                "leaf": {"properties": {"id": {"type": "integer"}}, "type": "object"},
                "children": {"items": {"$ref": "#/$defs/Node"}},
            },
            "type": "object",
        }
    }


def test_fields_called_title_or_default_are_fields_not_keywords():
    result = {
        "properties": {"default": {"type": "boolean", "default": False}, "title": {"type": "string"}},
        "required": ["title"],
        "type": "object",
        "title": "Status",
    }
    assert compact(result, output=True) == {
        "properties": {"default": {"type": "boolean"}, "title": {"type": "string"}},
        "required": ["title"],
        "type": "object",
    }


def marked(schema: dict, root: dict | None = None, path: str = "") -> set[str]:
    """The paths of the fields `schema` marks as customer text, following `$ref`s into `root`'s `$defs`."""
    root = root if root is not None else schema
    if isinstance(schema.get("$ref"), str):
        return marked(root["$defs"][schema["$ref"].removeprefix("#/$defs/")], root, path)
    found = {path} if schema.get(UNTRUSTED_MARK) is True else set()
    for name, part in (schema.get("properties") or {}).items():
        found |= marked(part, root, f"{path}.{name}")
    for keyword in ("items", "anyOf"):
        parts = schema.get(keyword)
        for part in parts if isinstance(parts, list) else [parts] if isinstance(parts, dict) else []:
            found |= marked(part, root, f"{path}[]" if keyword == "items" else path)
    return found


async def test_every_mark_of_customer_text_survives_in_the_listed_result_schemas(tmp_path):
    async with make_harness(tmp_path).client() as client:
        listed = {tool.name: tool.output_schema for tool in (await client.list_tools()).tools}
    for definition in REGISTRY.tools:
        model = with_next_steps(definition.result_model).model_json_schema(mode="serialization")
        assert marked(listed[definition.name]) == marked(model), definition.name
        assert bool(marked(model)) is definition.untrusted_output, definition.name


def null_defaulted(tool: str) -> list[str]:
    """The arguments of `tool` whose default is null: their listed schemas leave null out."""
    return [parameter.name for parameter in REGISTRY.by_name[tool].arguments if parameter.default is None] + ["tenant"]


FROZEN = datetime(2026, 11, 2, 12, tzinfo=timezone.utc)  # two calls of a tool that reads the clock answer alike


@pytest.mark.parametrize("tool", sorted(TOOLS))
async def test_an_explicit_null_still_means_not_given(tmp_path, tool, monkeypatch):
    monkeypatch.setattr(clock, "now", lambda: FROZEN)
    example = REGISTRY.by_name[tool].examples[0]
    nulls = {name: None for name in null_defaulted(tool) if name not in example}
    answers = []
    for arguments in (example, {**example, **nulls}):  # each on its own sandbox, from the same seed
        harness = make_harness(tmp_path / str(len(answers)))
        async with harness.client() as client:
            listed = {t.name: t.input_schema for t in (await client.list_tools()).tools}[tool]["properties"]
            result = await client.call_tool(tool, arguments)
        assert result.is_error is False, result.content[0].text
        sent = [(r["method"], r["path"], r["query"], r["json"]) for r in harness.requests()]
        answers.append((result.structured_content, sent))
    assert answers[0] == answers[1]
    for name in nulls:
        assert "null" not in str(listed[name]), (name, listed[name])
