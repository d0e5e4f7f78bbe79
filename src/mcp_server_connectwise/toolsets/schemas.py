"""Tool schemas as the model reads them: every byte of tools/list is read on every turn, so what carries no
meaning goes and what says a thing twice says it once.

The SDK derives the schemas from pydantic; `compact` rewrites them into an equivalent JSON Schema: titles
(annotations with no meaning here), `default: null` (an optional argument is one not listed as required), and
`anyOf` of plain types merged into one `type` list when each alternative's keywords apply to its own type only.
A result schema (`output=True`) also loses its defaults and its nulls: results leave out every field that is
None (`runtime.to_result`), so no result holds a null, and defaults mean nothing in a result.
Validation is unchanged: the SDK validates arguments and results with the pydantic models, not these texts.
"""

from __future__ import annotations

from typing import Any

# Keywords that make an alternative more than "a value of this type" in a way a merge could change.
_NOT_MERGEABLE = frozenset({"enum", "const", "$ref", "anyOf", "allOf", "oneOf", "not"})


def compact(schema: Any, *, output: bool = False) -> Any:
    if isinstance(schema, list):
        return [compact(item, output=output) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result = {
        key: compact(value, output=output)
        for key, value in schema.items()
        if not (key == "title" and isinstance(value, str)) and not (key == "default" and (value is None or output))
    }
    if output:
        result = _without_null(result)
        if isinstance(result.get("$defs"), dict):  # a result's parts are described by their fields, not docstrings
            result["$defs"] = {
                name: {k: v for k, v in part.items() if k != "description"} for name, part in result["$defs"].items()
            }
    return _merged_types(result)


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    kind = schema.get("type")
    if isinstance(kind, list) and "null" in kind:
        rest = [item for item in kind if item != "null"]
        schema = {**schema, "type": rest[0] if len(rest) == 1 else rest}
    alternatives = schema.get("anyOf")
    if isinstance(alternatives, list) and {"type": "null"} in alternatives:
        rest = [option for option in alternatives if option != {"type": "null"}]
        if len(rest) == 1 and isinstance(rest[0], dict) and not (set(rest[0]) & (set(schema) - {"anyOf"})):
            return {**{key: value for key, value in schema.items() if key != "anyOf"}, **rest[0]}
        schema = {**schema, "anyOf": rest}
    return schema


def _merged_types(schema: dict[str, Any]) -> dict[str, Any]:
    """`{"anyOf": [{"type": "string", "format": "date-time"}, {"type": "null"}]}` as
    `{"type": ["string", "null"], "format": "date-time"}`: the same values are valid, since `format`, `items`,
    `minimum` and the like only apply to values of their own type."""
    alternatives = schema.get("anyOf")
    if not isinstance(alternatives, list) or not all(
        isinstance(option, dict) and isinstance(option.get("type"), str) and not (_NOT_MERGEABLE & set(option))
        for option in alternatives
    ):
        return schema
    types = [option["type"] for option in alternatives]
    keywords = [set(option) - {"type"} for option in alternatives]
    shared = set().union(*keywords)
    if len(set(types)) < len(types) or sum(map(len, keywords)) != len(shared) or shared & set(schema):
        return schema
    merged = {key: value for key, value in schema.items() if key != "anyOf"}
    for option in alternatives:
        merged.update({key: value for key, value in option.items() if key != "type"})
    merged["type"] = types
    return merged
