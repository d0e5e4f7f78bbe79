"""Arguments that do not fit a tool's input schema, refused with one sentence instead of pydantic's dump.

The SDK validates a call's arguments against the model it derives from the bound function's signature and, on
a mismatch, answers with the whole `ValidationError` text ("1 validation error for XArguments ..."). The tools
are registered with `SentencedArguments` instead: a failed validation reaches `ToolRuntime.run` as
`ARGUMENT_ERROR`, which refuses the call naming the argument and what it accepts - after the check for argument
names the tool lacks, so "did you mean" still comes first - and audits it like any other refusal.
"""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver.utilities.func_metadata import FuncMetadata
from pydantic import ValidationError
from pydantic_core import ErrorDetails

# The key under which a failed validation reaches the bound function; no argument can be called this.
ARGUMENT_ERROR = "__argument_error__"

_ACCEPTS = {
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "finite_number": "a finite number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "text",
    "list_type": "a list",
    "dict_type": "an object",
    "datetime_type": "an ISO 8601 date-time with a time zone, e.g. 2026-01-31T09:00:00Z",
    "datetime_parsing": "an ISO 8601 date-time with a time zone, e.g. 2026-01-31T09:00:00Z",
    "datetime_from_date_parsing": "an ISO 8601 date-time with a time zone, e.g. 2026-01-31T09:00:00Z",
}


def _phrase(error: ErrorDetails) -> str:
    """What one error says the argument must be, without quoting the value sent."""
    kind, context = error["type"], error.get("ctx") or {}
    if kind == "missing":
        return "is required"
    if kind in _ACCEPTS:
        return f"must be {_ACCEPTS[kind]}"
    bounds = {
        "greater_than_equal": ("at least", "ge"),
        "less_than_equal": ("at most", "le"),
        "greater_than": ("more than", "gt"),
        "less_than": ("less than", "lt"),
    }
    if kind in bounds:
        words, key = bounds[kind]
        bound = context.get(key)
        return f"must be {words} {f'{bound:g}' if isinstance(bound, float) else bound}"  # 24, not 24.0
    if kind == "string_too_long":
        return f"can have at most {context.get('max_length')} characters"
    if kind == "string_too_short":
        return f"needs at least {context.get('min_length')} character{'s' if context.get('min_length') != 1 else ''}"
    if kind == "literal_error":
        return f"must be one of {context.get('expected')}"
    if kind == "value_error":
        return str(context.get("error") or error["msg"])
    return error["msg"][:1].lower() + error["msg"][1:]


def argument_refusal(exc: ValidationError) -> str:
    """One sentence for the first argument that does not fit; a union's alternatives are joined with "or"."""
    errors = exc.errors(include_url=False, include_input=False)
    name = str(errors[0]["loc"][0]) if errors[0]["loc"] else "the arguments"
    phrases: list[str] = []
    for error in errors:
        if (str(error["loc"][0]) if error["loc"] else "the arguments") == name and (
            phrase := _phrase(error)
        ) not in phrases:
            phrases.append(phrase)
    if len(phrases) > 1 and all(phrase.startswith("must be ") for phrase in phrases):
        phrases = ["must be " + " or ".join(phrase.removeprefix("must be ") for phrase in phrases)]
    others = len({error["loc"][0] for error in errors if error["loc"]} - {name})
    more = f" (and {others} more argument{'s do' if others > 1 else ' does'} not fit)" if others else ""
    return f"{name} {' or '.join(phrases)}{more}; nothing was sent."


class SentencedArguments(FuncMetadata):
    """The SDK's argument validation, handing a failure to the tool as `ARGUMENT_ERROR` instead of raising."""

    def validate_arguments(self, arguments_to_validate: dict[str, Any]) -> dict[str, Any]:
        try:
            return super().validate_arguments(arguments_to_validate)
        except ValidationError as exc:
            return {ARGUMENT_ERROR: exc}

    @classmethod
    def replacing(cls, metadata: FuncMetadata) -> SentencedArguments:
        return cls(
            arg_model=metadata.arg_model,
            output_schema=metadata.output_schema,
            output_model=metadata.output_model,
            wrap_output=metadata.wrap_output,
        )
