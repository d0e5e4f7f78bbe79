"""List queries as ConnectWise answers them: conditions, childConditions, customFieldConditions, orderBy, fields.

Conditions are parsed by the same module the client serializes with and compiled here into a predicate over
plain record dicts, with SQL Server's semantics: text compares case-insensitively, a comparison with a null
field is never true (not even `!=` or `not like`), only `= null` / `!= null` test for null.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable
from datetime import datetime
from functools import lru_cache
from typing import Any

from mcp_server_connectwise.connectwise.conditions import (
    LITERAL_HELP,
    And,
    Comparison,
    ConditionsSyntaxError,
    Expr,
    In,
    Or,
    parse,
)
from mcp_server_connectwise.sandbox.errors import ApiError, bad_request
from mcp_server_connectwise.sandbox.store import Record, query_fields

Predicate = Callable[[Record], bool]
Getter = Callable[[Record], Any]

# Fields every object answers to in conditions and orderBy though its body carries them under `_info`.
_INFO_ALIASES = {
    "lastupdated": "lastUpdated",
    "dateentered": "dateEntered",
    "enteredby": "enteredBy",
    "updatedby": "updatedBy",
}
# Keys of reference objects and `_info`, so that `board/NAME` reads `name` without a case-insensitive scan.
_NESTED_SPELLING = {
    key.lower(): key
    for key in (
        "id",
        "name",
        "identifier",
        "_info",
        "sort",
        "level",
        "summary",
        "lastUpdated",
        "updatedBy",
        "dateEntered",
        "enteredBy",
        "value",
        "caption",
        "type",
        "symbol",
        "currencyCode",
    )
}
_KIND_WORDS = {bool: "boolean", int: "numeric", float: "numeric", str: "string", datetime: "datetime"}
# [I] ConnectWise's limit and wording for very deep parentheses are not public.
_TOO_DEEP = "The conditions are nested too deeply."
_EXPECTED = {"boolean": "boolean", "number": "numeric", "datetime": "datetime", "string": "string"}


def _literal_kind(value: object) -> str:
    return _KIND_WORDS[type(value)]


class Query:
    """Compiles the query parameters of one request against one model (schema name, e.g. "Ticket")."""

    def __init__(self, model: str, fields: dict[str, str] | None = None) -> None:
        self.fields = fields if fields is not None else query_fields(model)
        self._lower = {name.lower(): name for name in self.fields}

    # --- field paths -----------------------------------------------------------------------------------

    def _resolve(self, path: str) -> tuple[list[str], str | None]:
        """Segments of `path` in the records' spelling, and the top-level field's schema type.

        An unknown top-level field is refused, as ConnectWise refuses it (a typo must not silently match
        nothing). Nested segments are matched case-insensitively at read time."""
        segments = path.split("/")
        head = segments[0].lower()
        canonical = self._lower.get(head)
        if canonical is None:
            if head in _INFO_ALIASES:
                return ["_info", _INFO_ALIASES[head]], "string" if head.endswith("by") else "datetime"
            raise bad_request(f"Invalid field {segments[0]!r}: it is not a field of this object.")
        nested = [_NESTED_SPELLING.get(s.lower(), s) for s in segments[1:]]
        return [canonical, *nested], (self.fields[canonical] if len(segments) == 1 else None)

    def getter(self, path: str) -> tuple[Getter, str | None, bool]:
        """A value reader for `path`, the field's schema type, and whether the value is one scalar (no path
        through an array, which yields a list to match element-wise)."""
        segments, kind = self._resolve(path)
        top_kind = self.fields.get(segments[0], "object")
        scalar = top_kind != "array" and (len(segments) == 1 or top_kind in ("reference", "object"))
        return _path_getter(segments[0], segments[1:]), kind, scalar

    # --- conditions ------------------------------------------------------------------------------------

    def predicate(self, text: str | None) -> Predicate | None:
        """`conditions` text as a predicate over this model's records; None when there is none. A syntax
        error, a wrong field or literal, or parentheses nested too deep are a ConnectWise 400."""
        if not text or not text.strip():
            return None
        try:
            expr = parse(text)
        except (ConditionsSyntaxError, ValueError) as exc:
            raise bad_request(str(exc)) from None
        except RecursionError:
            raise bad_request(_TOO_DEEP) from None
        try:
            return self._compile(expr)
        except RecursionError:
            raise bad_request(_TOO_DEEP) from None

    def _compile(self, expr: Expr) -> Predicate:
        if isinstance(expr, (And, Or)):
            return _join([self._compile(item) for item in expr.items], isinstance(expr, And))
        get, kind, scalar = self.getter(expr.field)
        if isinstance(expr, In):
            for value in expr.values:
                self._check_kind(expr.field, kind, value)
            return _in_test(get, expr.values, expr.negated, scalar)
        self._check_kind(expr.field, kind, expr.value)
        return _comparison(get, expr, scalar)

    @staticmethod
    def _check_kind(field: str, kind: str | None, value: object) -> None:
        """ConnectWise types each literal against the field: `closedFlag = 1` is a 400, not "no match"."""
        if value is None or kind is None or kind in ("reference", "array", "object"):
            return
        got = _literal_kind(value)
        if kind == "datestring":
            if got in ("string", "datetime"):
                return
            kind = "datetime"
        expected = _EXPECTED.get(kind, "string")
        if expected != got:
            raise bad_request(f"Expected a {expected} value, not a {got}. {LITERAL_HELP}")

    # --- orderBy and fields ----------------------------------------------------------------------------

    def sort(self, records: list[Record], order_by: str | None) -> list[Record]:
        """Records sorted by `orderBy` ("a desc, b/c asc"); ties keep id order. Nulls sort first, as in SQL."""
        if not order_by or not order_by.strip():
            return records
        keys = []
        for part in order_by.split(","):
            words = part.split()
            if not words or len(words) > 2 or (len(words) == 2 and words[1].lower() not in ("asc", "desc")):
                raise bad_request(f"Invalid orderBy {order_by!r}: expected 'field [asc|desc], ...'.")
            get, _kind, _scalar = self.getter(words[0])
            keys.append((get, len(words) == 2 and words[1].lower() == "desc"))
        result = list(records)
        for get, descending in reversed(keys):
            result.sort(key=_sort_key_by(get), reverse=descending)
        return result

    def projector(self, fields: str | None) -> Callable[[Record], Record] | None:
        """A partial-response function for `fields=id,summary,status/name`, or None for whole records."""
        if not fields or not fields.strip():
            return None
        tree: dict[str, Any] = {}
        for path in fields.split(","):
            path = path.strip()
            if not path:
                continue
            try:
                segments, _kind = self._resolve(path)
            except ApiError:
                continue  # [I] an unknown field in `fields` is left out rather than refused
            node = tree
            for segment in segments[:-1]:
                child = node.setdefault(segment, {})
                if child is True:  # a whole object already asked for
                    break
                node = child
            else:
                node[segments[-1]] = True
        return lambda record: _project(record, tree)


def _lookup(value: Any, segment: str) -> Any:
    if isinstance(value, dict):
        found = value.get(segment)
        if found is None:
            lower = segment.lower()
            for key, item in value.items():
                if key.lower() == lower:
                    return item
        return found
    if isinstance(value, list):  # a path through an array matches any element (childConditions)
        return [_lookup(item, segment) for item in value]
    return None


def _path_getter(first: str, rest: list[str]) -> Getter:
    if not rest:
        return lambda r: r.get(first)
    if len(rest) == 1:
        second = rest[0]

        def get_nested(record: Record) -> Any:
            value = record.get(first)
            if value.__class__ is dict:  # the common case: a reference object with the key spelled as asked
                found = value.get(second)
                if found is not None:
                    return found
            return _lookup(value, second) if value is not None else None

        return get_nested

    def get(record: Record) -> Any:
        value: Any = record.get(first)
        for segment in rest:
            value = _lookup(value, segment)
        return value

    return get


def _normalize(value: Any) -> Any:
    """Literal in the shape records hold: datetimes as ConnectWise's ISO text, text case-folded."""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, str):
        return value.casefold()
    return value


def _fold(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _join(parts: list[Predicate], conjunction: bool) -> Predicate:
    """and/or of `parts`, unrolled for the short cases: this runs once per record per request."""
    if len(parts) == 2:
        a, b = parts
        return (lambda r: a(r) and b(r)) if conjunction else (lambda r: a(r) or b(r))
    if len(parts) == 3:
        a, b, c = parts
        return (lambda r: a(r) and b(r) and c(r)) if conjunction else (lambda r: a(r) or b(r) or c(r))
    return (lambda r: all(p(r) for p in parts)) if conjunction else (lambda r: any(p(r) for p in parts))


def _any_value(get: Getter, test: Callable[[Any], bool], scalar: bool) -> Predicate:
    """`test` on the value at a path; through an array, on any element. A null value never passes."""
    if scalar:

        def scalar_predicate(record: Record) -> bool:
            value = get(record)
            return value is not None and test(value)

        return scalar_predicate

    def predicate(record: Record) -> bool:
        value = get(record)
        if value.__class__ is list:
            return any(v is not None and not isinstance(v, (dict, list)) and test(v) for v in value)
        return value is not None and test(value)

    return predicate


def _comparison(get: Getter, expr: Comparison, scalar: bool) -> Predicate:
    op, literal, negated = expr.op, _normalize(expr.value), expr.negated
    if literal is None:
        if op not in ("=", "!="):
            return lambda r: False
        wants_null = op == "="
        return lambda r: (get(r) in (None, [])) is wants_null
    if op == "contains":
        return _any_value(get, lambda v: v.__class__ is str and (literal in v.casefold()) is not negated, scalar)
    if op == "like":
        match = _like_regex(expr.value).match
        return _any_value(get, lambda v: v.__class__ is str and (match(v) is not None) is not negated, scalar)
    compare = _COMPARE[op]
    if isinstance(literal, bool):
        return _any_value(get, lambda v: v.__class__ is bool and compare(v, literal), scalar)
    if isinstance(literal, (int, float)):
        return _any_value(get, lambda v: (v.__class__ is int or v.__class__ is float) and compare(v, literal), scalar)
    if isinstance(expr.value, datetime):
        # Records hold UTC text of one fixed width, so text order is time order.
        return _any_value(get, lambda v: v.__class__ is str and compare(v[:19] + "Z", literal), scalar)
    if op == "=":
        return _any_value(get, lambda v: v.__class__ is str and v.casefold() == literal, scalar)
    return _any_value(get, lambda v: v.__class__ is str and compare(v.casefold(), literal), scalar)


def _in_test(get: Getter, values: tuple, negated: bool, scalar: bool) -> Predicate:
    wanted = {_normalize(v) for v in values if v is not None}
    null_listed = any(v is None for v in values)

    def member(v: Any) -> bool:
        if v.__class__ is dict:
            return False
        return (_fold(v) if v.__class__ is not bool else v) in wanted

    positive = _any_value(get, member, scalar)
    if negated:
        # SQL: `x not in (...)` is unknown, so false, when x is null.
        return lambda r: get(r) is not None and not positive(r) and not null_listed
    if null_listed:
        return lambda r: get(r) is None or positive(r)
    return positive


@lru_cache(maxsize=512)
def _like_regex(pattern: str) -> re.Pattern[str]:
    """SQL Server LIKE as a regex: `%`/`*` any run, `_` one character, `[abc]`/`[a-c]`/`[^a]` a class,
    `[%]` or `[[]` a literal; case-insensitive."""
    out = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch in "%*":
            out.append(".*")
        elif ch == "_":
            out.append(".")
        elif ch == "[":
            end = pattern.find("]", i + 2 if pattern[i + 1 : i + 2] in ("]", "^") else i + 1)
            if end == -1:
                out.append(re.escape(ch))
            else:
                body = pattern[i + 1 : end]
                negate = body.startswith("^") and len(body) > 1
                if negate:
                    body = body[1:]
                chars = "".join("\\" + c if c in "\\]^[" else c for c in body)
                char_class = f"[{'^' if negate else ''}{chars}]"
                try:
                    re.compile(char_class)
                except re.error:  # a reversed range such as [z-a] matches nothing in SQL Server
                    char_class = "(?!)"
                out.append(char_class)
                i = end
        else:
            out.append(re.escape(ch))
        i += 1
    return re.compile("".join(out) + r"\Z", re.IGNORECASE | re.DOTALL)


def _sort_key_by(get: Getter) -> Callable[[Record], tuple]:
    return lambda record: _sort_key(get(record))


def _sort_key(value: Any) -> tuple:
    if value is None or value == [] or isinstance(value, dict):
        return (0, 0)
    if isinstance(value, list):
        value = next((v for v in value if v is not None), None)
        if value is None or isinstance(value, (dict, list)):
            return (0, 0)
    if isinstance(value, str):
        return (1, value.casefold())
    if isinstance(value, bool):
        return (2, int(value))
    if isinstance(value, (int, float)):
        return (2, value)
    return (3, str(value))


def _project(record: Any, tree: dict[str, Any]) -> Any:
    if isinstance(record, list):
        return [_project(item, tree) for item in record]
    if not isinstance(record, dict):
        return record
    out: Record = {}
    for key, sub in tree.items():
        value = record.get(key)
        if value is None:
            continue
        out[key] = value if sub is True else _project(value, sub)
    return out


def matching(records: Iterable[Record], *predicates: Predicate | None) -> list[Record]:
    active = [p for p in predicates if p is not None]
    if not active:
        return list(records)
    if len(active) == 1:
        return list(filter(active[0], records))
    return [r for r in records if all(p(r) for p in active)]


# The fields of one `customFields` element, which `customFieldConditions` compare.
_CUSTOM_FIELD_QUERY = Query(
    "CustomFieldValue",
    {
        "id": "number",
        "caption": "string",
        "type": "string",
        "entryMethod": "string",
        "numberOfDecimals": "number",
        "value": "object",
        "connectWiseId": "string",
    },
)


def custom_field_predicate(query_text: str | None) -> Predicate | None:
    """`customFieldConditions` ("caption='X' and value != null") hold when some element of `customFields`
    satisfies them."""
    inner = _CUSTOM_FIELD_QUERY.predicate(query_text)
    if inner is None:
        return None
    return lambda r: any(inner(field) for field in r.get("customFields") or () if field.__class__ is dict)
