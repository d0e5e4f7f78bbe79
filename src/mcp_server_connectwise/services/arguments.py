"""Argument types shared by the request models, and the validators that keep pydantic from coercing what they
refuse. A range every use of a type needs (a ticket id ConnectWise can have) belongs to the type.

The validators leave the input schema as it was. Their messages complete "<argument> ...", as the refusal
sentence quotes them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, get_args

from pydantic import AfterValidator, BeforeValidator, Field

from mcp_server_connectwise.services.errors import Refused
from mcp_server_connectwise.untrusted import strip_invisible

_NUMBER = re.compile(r"\s*[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?\s*")
# Unicode category Cc (C0, DEL, C1) except tab and newline; a carriage return only outside a CRLF line break.
_CONTROL = re.compile("\r(?!\n)|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def not_a_yes_no(value: Any) -> Any:
    """Before validation: pydantic would read a JSON true/false as the number 1/0, i.e. ticket or status 1."""
    if isinstance(value, bool):
        raise ValueError("must be a number or a name, not true or false")
    return value


def iso_text(value: Any) -> Any:
    """Before validation: pydantic would read a number (or a string of digits) as seconds since 1970."""
    if isinstance(value, (int, float)) or (isinstance(value, str) and _NUMBER.fullmatch(value)):
        raise ValueError("must be an ISO 8601 date-time with a time zone, e.g. 2026-01-31T09:00:00Z, not a number")
    return value


def any_case(literal: Any) -> Callable[[Any], Any]:
    """A before-validator for a `Literal` of words: a value in any case and spacing ("Internal", " NEWEST ")
    becomes the word it spells; anything else is left for the literal to refuse. The schema's enum stays."""
    words = {" ".join(word.split()).casefold(): word for word in get_args(literal)}

    def canonical(value: Any) -> Any:
        return words.get(" ".join(value.split()).casefold(), value) if isinstance(value, str) else value

    return canonical


def written_text(argument: str, text: str) -> str:
    """`text` to write into ConnectWise (a note, a summary): line breaks as newlines, invisible characters
    stripped (they would reach readers unseen). A control character other than a line break or a tab is
    refused: it is not text a person wrote, and dropping it silently would change what was asked."""
    control = _CONTROL.search(text)
    if control is not None:
        raise Refused(
            f"{argument} contains the control character U+{ord(control.group()):04X} at character "
            f"{control.start() + 1}; remove it (line breaks and tabs are the only control characters text can hold)."
        )
    return strip_invisible(text.replace("\r\n", "\n"))


# ConnectWise ids are 32-bit integers (int32 in its OpenAPI export).
MAX_ID = 2**31 - 1


def within_id_range(value: int) -> int:
    """After validation: no ConnectWise ticket can have this id, so asking for it would only cost a request."""
    if value > MAX_ID:
        raise ValueError(f"cannot exist: ConnectWise ticket ids run from 1 to {MAX_ID}")
    return value


TicketId = Annotated[
    int,
    Field(ge=1),  # the ticket's number: its name says it
    BeforeValidator(not_a_yes_no),
    AfterValidator(within_id_range),
]
NameOrNames = str | list[str] | None
NameOrId = Annotated[str | int | None, BeforeValidator(not_a_yes_no)]
# A required name or id of a record (a company, a device): JSON true must not become id 1.
RecordName = Annotated[str | int, BeforeValidator(not_a_yes_no)]
CompanyName = Annotated[RecordName, Field(description='Company identifier or name, e.g. "ACME".')]
# A date-time argument needs a time zone: JSON Schema's `date-time` format (RFC 3339) says so, the server
# instructions say it in words, and the refusal of one without says it with an example.
When = Annotated[datetime | None, BeforeValidator(iso_text)]
