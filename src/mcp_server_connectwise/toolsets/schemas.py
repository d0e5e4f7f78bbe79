"""Tool schemas as the model reads them: every byte of tools/list is read on every turn, so what carries no
meaning goes and what says a thing twice says it once.

The SDK derives the schemas from pydantic; `compact` rewrites them into an equivalent JSON Schema: titles
(annotations with no meaning here), `default: null` (an optional argument is one not listed as required), and
`anyOf` of plain types merged into one `type` list when each alternative's keywords apply to its own type only.
An optional argument whose default is null does not list `null` among its types: leaving it out says the same,
and a null sent all the same is still taken as "not given" (the SDK validates with the pydantic model).
A result schema (`output=True`) also loses its defaults and its nulls: results leave out every field that is
None (`runtime.to_result`), so no result holds a null, and defaults mean nothing in a result. A part of a result
used once is written where it is used, not as a `$defs` entry and a `$ref` to it.
Validation is unchanged: the SDK validates arguments and results with the pydantic models, not these texts.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

# Keywords that make an alternative more than "a value of this type" in a way a merge could change.
_NOT_MERGEABLE = frozenset({"enum", "const", "$ref", "anyOf", "allOf", "oneOf", "not"})
_DEFS = "#/$defs/"


def compact(schema: Any, *, output: bool = False) -> Any:
    if isinstance(schema, dict):
        schema = _inlined(schema) if output else _optional_without_null(schema)
    return _compacted(schema, output)


# Keywords whose value maps names to schemas: a field called `title` or `default` is no keyword.
_NAMED_SCHEMAS = frozenset({"properties", "$defs", "patternProperties"})


def _compacted(schema: Any, output: bool) -> Any:
    if isinstance(schema, list):
        return [_compacted(item, output) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result = {
        key: {name: _compacted(part, output) for name, part in value.items()}
        if key in _NAMED_SCHEMAS and isinstance(value, dict)
        else _compacted(value, output)
        for key, value in schema.items()
        if not (key == "title" and isinstance(value, str)) and not (key == "default" and (value is None or output))
    }
    if output:
        result = _without_null(result)
    return _merged_types(result)


def _optional_without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """The arguments' schema with `null` left out of each argument that is not required and defaults to null."""
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return schema
    required = set(schema.get("required") or ())
    return {
        **schema,
        "properties": {
            name: _without_null(part)
            if isinstance(part, dict) and name not in required and "default" in part and part["default"] is None
            else part
            for name, part in properties.items()
        },
    }


def _inlined(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` with each `$defs` entry referenced once written in place of its `$ref` (and without its docstring:
    a result's parts are described by their fields); entries used more than once, or within themselves, stay."""
    definitions = schema.get("$defs")
    if not isinstance(definitions, dict):
        return schema
    uses = Counter(_references(schema))
    kept: set[str] = set()

    def resolve(node: Any, within: tuple[str, ...]) -> Any:
        if isinstance(node, list):
            return [resolve(item, within) for item in node]
        if not isinstance(node, dict):
            return node
        name = _reference(node)
        if name is None or name not in definitions:
            return {key: resolve(value, within) for key, value in node.items()}
        if uses[name] > 1 or name in within:
            kept.add(name)
            return {key: resolve(value, within) for key, value in node.items()}
        siblings = {key: value for key, value in node.items() if key != "$ref"}
        return resolve({**part(name), **siblings}, (*within, name))

    def part(name: str) -> dict[str, Any]:
        return {key: value for key, value in definitions[name].items() if key != "description"}

    result = resolve({key: value for key, value in schema.items() if key != "$defs"}, ())
    remaining: dict[str, Any] = {}
    while pending := kept - set(remaining):  # a kept entry's own parts may name more entries to keep
        for name in pending:
            remaining[name] = resolve(part(name), (name,))
    return {**result, "$defs": remaining} if remaining else result


def _reference(node: dict[str, Any]) -> str | None:
    """The `$defs` entry `node` refers to, if it is a reference to one."""
    target = node.get("$ref")
    return target.removeprefix(_DEFS) if isinstance(target, str) and target.startswith(_DEFS) else None


def _references(node: Any) -> list[str]:
    if isinstance(node, list):
        return [name for item in node for name in _references(item)]
    if not isinstance(node, dict):
        return []
    own = [name] if (name := _reference(node)) is not None else []
    return own + [name for value in node.values() for name in _references(value)]


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
