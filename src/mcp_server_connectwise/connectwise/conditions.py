"""ConnectWise `conditions`: a typed AST, its one serializer (used by the client) and its parser (used by the sandbox).

Conditions are built, never concatenated: a value can never change the structure of an expression.

Rules for values (ConnectWise documents no escape inside string literals, see API.md):
- A string is delimited by the quote character it does not contain. A string containing both quote kinds,
  a control character (newline, tab, ...) or ending in a backslash (which could escape the closing quote)
  cannot be expressed safely and is refused with `UnsafeValueError` when the expression is built.
- `like` patterns go to SQL Server LIKE, where `%`, `_`, `*` and `[` are special: build patterns from user
  text with `like_escape`. `contains` takes plain text.
- Datetimes must carry a time zone; they are held in UTC at whole seconds (ConnectWise's precision) and
  written `[2026-01-31T09:00:00Z]`.
- Numbers are written with digits, an optional decimal point and sign (no exponent), as ConnectWise requires.

Every compound child is parenthesised when serialized: ConnectWise documents no precedence between `and`
and `or`, so the text never depends on one. The parser reads `and` as binding tighter than `or` (as SQL).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal

from mcp_server_connectwise.connectwise.times import utc_text

__all__ = [
    "And",
    "Comparison",
    "ConditionsSyntaxError",
    "Expr",
    "In",
    "Or",
    "UnsafeValueError",
    "Value",
    "and_",
    "contains",
    "eq",
    "ge",
    "gt",
    "in_",
    "le",
    "like",
    "like_escape",
    "lt",
    "ne",
    "not_",
    "or_",
    "parse",
    "serialize",
]

Value = str | int | float | bool | None | datetime

COMPARISON_OPS = ("=", "!=", "<", "<=", ">", ">=", "contains", "like")
_NEGATABLE_OPS = ("contains", "like")
_FIELD_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:/[A-Za-z_][A-Za-z0-9_]*)*\Z")

# ConnectWise's own wording for a malformed literal (API.md); the sandbox answers it in a 400.
LITERAL_HELP = (
    "String values should be enclosed with double or single quotes; DateTime values should be enclosed in "
    "square brackets; numbers should consist of only digits, and optionally a decimal point and a negation "
    "sign; boolean values should be indicated with the keywords true or false; null values should be "
    "indicated by the keyword null."
)


class UnsafeValueError(ValueError):
    """A value that cannot be written into a conditions string without risk of changing its meaning."""


class ConditionsSyntaxError(ValueError):
    """Conditions text that does not parse; str() is a sentence in ConnectWise's wording."""


# --- AST -----------------------------------------------------------------------------------------------


def _check_field(field: str) -> None:
    if not isinstance(field, str) or not _FIELD_RE.match(field):
        raise ValueError(f"not a ConnectWise field path: {field!r}")


def _normalize_value(value: object) -> Value:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise UnsafeValueError("A number in a search must be finite.")
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise UnsafeValueError(
                f"The date-time {value.isoformat()} has no time zone; give one, e.g. 'Z' or '+02:00'."
            )
        try:
            return value.astimezone(timezone.utc).replace(microsecond=0)
        except OverflowError:
            raise UnsafeValueError(f"The date-time {value.isoformat()} is outside the calendar in UTC.") from None
    if isinstance(value, str):
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
            raise UnsafeValueError("Search text cannot contain control characters such as line breaks or tabs.")
        if '"' in value and "'" in value:
            raise UnsafeValueError("Search text cannot contain both a double quote (\") and a single quote (').")
        if value.endswith("\\"):
            raise UnsafeValueError("Search text cannot end with a backslash.")
        return value
    raise UnsafeValueError(f"Unsupported value type {type(value).__name__} in a search.")


@dataclass(frozen=True)
class Comparison:
    """`field op value`; `negated` writes `not` before `contains`/`like`."""

    field: str
    op: str
    value: Value
    negated: bool = False

    def __post_init__(self) -> None:
        _check_field(self.field)
        if self.op not in COMPARISON_OPS:
            raise ValueError(f"unknown operator {self.op!r}")
        if self.negated and self.op not in _NEGATABLE_OPS:
            raise ValueError(f"'not' cannot precede {self.op!r}")
        value = _normalize_value(self.value)
        if self.op in ("contains", "like") and not isinstance(value, str):
            raise ValueError(f"{self.op} takes a string")
        object.__setattr__(self, "value", value)


@dataclass(frozen=True)
class In:
    """`field in (v1, v2, ...)`; `negated` writes `not in`."""

    field: str
    values: tuple[Value, ...]
    negated: bool = False

    def __post_init__(self) -> None:
        _check_field(self.field)
        values = tuple(_normalize_value(v) for v in self.values)
        if not values:
            raise ValueError("'in' needs at least one value")
        object.__setattr__(self, "values", values)


@dataclass(frozen=True)
class And:
    items: tuple[Expr, ...]

    def __post_init__(self) -> None:
        if len(self.items) < 2:
            raise ValueError("And needs two or more items; use and_() to build")


@dataclass(frozen=True)
class Or:
    items: tuple[Expr, ...]

    def __post_init__(self) -> None:
        if len(self.items) < 2:
            raise ValueError("Or needs two or more items; use or_() to build")


Expr = Comparison | In | And | Or


# --- builders ------------------------------------------------------------------------------------------


def eq(field: str, value: Value) -> Comparison:
    return Comparison(field, "=", value)


def ne(field: str, value: Value) -> Comparison:
    return Comparison(field, "!=", value)


def lt(field: str, value: Value) -> Comparison:
    return Comparison(field, "<", value)


def le(field: str, value: Value) -> Comparison:
    return Comparison(field, "<=", value)


def gt(field: str, value: Value) -> Comparison:
    return Comparison(field, ">", value)


def ge(field: str, value: Value) -> Comparison:
    return Comparison(field, ">=", value)


def contains(field: str, text: str) -> Comparison:
    return Comparison(field, "contains", text)


def like(field: str, pattern: str) -> Comparison:
    return Comparison(field, "like", pattern)


def in_(field: str, values: object) -> In:
    return In(field, tuple(values))  # type: ignore[arg-type]


def not_(expr: Expr) -> Expr:
    """Negate a `contains`, `like` or `in` (the only places ConnectWise documents `not`)."""
    if isinstance(expr, Comparison) and expr.op in _NEGATABLE_OPS:
        return Comparison(expr.field, expr.op, expr.value, not expr.negated)
    if isinstance(expr, In):
        return In(expr.field, expr.values, not expr.negated)
    raise ValueError("not_() applies to contains, like and in only")


def _join(kind: type[And] | type[Or], exprs: tuple[Expr | None, ...]) -> Expr | None:
    items: list[Expr] = []
    for expr in exprs:
        if expr is None:
            continue
        items.extend(expr.items if isinstance(expr, kind) else (expr,))
    if not items:
        return None
    return items[0] if len(items) == 1 else kind(tuple(items))


def and_(*exprs: Expr | None) -> Expr | None:
    """All of `exprs` (None items are skipped; one item is returned as is; nested ands are flattened)."""
    return _join(And, exprs)


def or_(*exprs: Expr | None) -> Expr | None:
    """Any of `exprs` (None items are skipped; one item is returned as is; nested ors are flattened)."""
    return _join(Or, exprs)


_LIKE_SPECIAL = re.compile(r"([\[%_*])")


def like_escape(text: str) -> str:
    """Literal text for a `like` pattern: `%`, `_`, `*` and `[` are bracketed as SQL Server LIKE expects."""
    return _LIKE_SPECIAL.sub(r"[\1]", text)


# --- serializer ----------------------------------------------------------------------------------------


def _literal(value: Value) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = format(Decimal(repr(value)), "f")
        return text if "." in text else text + ".0"
    if isinstance(value, datetime):
        return f"[{utc_text(value)}]"
    quote = "'" if '"' in value else '"'
    return f"{quote}{value}{quote}"


def serialize(expr: Expr) -> str:
    """The conditions text for `expr`."""
    if isinstance(expr, Comparison):
        op = f"not {expr.op}" if expr.negated else expr.op
        return f"{expr.field} {op} {_literal(expr.value)}"
    if isinstance(expr, In):
        op = "not in" if expr.negated else "in"
        return f"{expr.field} {op} (" + ", ".join(_literal(v) for v in expr.values) + ")"
    joiner = " and " if isinstance(expr, And) else " or "
    return joiner.join(
        f"({serialize(item)})" if isinstance(item, (And, Or)) else serialize(item) for item in expr.items
    )


# --- parser --------------------------------------------------------------------------------------------

_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<string>"[^"]*"|'[^']*')
  | (?P<datetime>\[[^\]]*\])
  | (?P<number>-?\d+(?:\.\d+)?(?![^\s(),=!<>]))
  | (?P<op>!=|<=|>=|=|<|>)
  | (?P<punct>[(),])
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*(?:/[A-Za-z_][A-Za-z0-9_]*)*)
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    pos: int

    @property
    def keyword(self) -> str:
        return self.text.lower() if self.kind == "word" else ""


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN_RE.match(text, pos)
        if match is None:
            if text[pos] in "\"'":
                raise ConditionsSyntaxError(f"Unterminated string starting at position {pos + 1}. {LITERAL_HELP}")
            if text[pos] == "[":
                raise ConditionsSyntaxError(f"Unterminated date-time starting at position {pos + 1}. {LITERAL_HELP}")
            raise ConditionsSyntaxError(f"Unexpected character {text[pos]!r} at position {pos + 1}.")
        kind = match.lastgroup or ""
        if kind != "ws":
            tokens.append(_Token(kind, match.group(), pos))
        pos = match.end()
    return tokens


def _parse_datetime(token: _Token) -> datetime:
    inner = token.text[1:-1].strip()
    try:
        value = datetime.fromisoformat(inner.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ConditionsSyntaxError(
            f"Invalid date-time {token.text} at position {token.pos + 1}. {LITERAL_HELP}"
        ) from None
    if value.tzinfo is None:  # ConnectWise reads bracketed date-times as UTC
        value = value.replace(tzinfo=timezone.utc)
    return value


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.index = 0

    def peek(self) -> _Token | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self) -> _Token:
        token = self.peek()
        if token is None:
            raise ConditionsSyntaxError("Unexpected end of conditions.")
        self.index += 1
        return token

    def take_keyword(self, word: str) -> bool:
        token = self.peek()
        if token is not None and token.keyword == word:
            self.index += 1
            return True
        return False

    def expect_punct(self, char: str) -> None:
        token = self.take()
        if token.text != char:
            raise ConditionsSyntaxError(f"Expected '{char}' at position {token.pos + 1}, found {token.text!r}.")

    def parse(self) -> Expr:
        if not self.tokens:
            raise ConditionsSyntaxError("Conditions are empty.")
        expr = self.or_expr()
        token = self.peek()
        if token is not None:
            raise ConditionsSyntaxError(
                f"Unexpected {token.text!r} at position {token.pos + 1}; expected 'and' or 'or'."
            )
        return expr

    def or_expr(self) -> Expr:
        items = [self.and_expr()]
        while self.take_keyword("or"):
            items.append(self.and_expr())
        return or_(*items)  # type: ignore[return-value]

    def and_expr(self) -> Expr:
        items = [self.unary()]
        while self.take_keyword("and"):
            items.append(self.unary())
        return and_(*items)  # type: ignore[return-value]

    def unary(self) -> Expr:
        token = self.peek()
        if token is not None and token.text == "(":
            self.index += 1
            expr = self.or_expr()
            self.expect_punct(")")
            return expr
        return self.predicate()

    def predicate(self) -> Expr:
        token = self.take()
        if token.kind != "word" or token.keyword in ("and", "or", "not", "in", "contains", "like"):
            raise ConditionsSyntaxError(f"Expected a field name at position {token.pos + 1}, found {token.text!r}.")
        field = token.text
        negated = self.take_keyword("not")
        op_token = self.take()
        op = op_token.keyword or op_token.text
        if op == "in":
            return In(field, self.value_list(), negated)
        if op_token.kind == "op" or op in _NEGATABLE_OPS:
            if negated and op not in _NEGATABLE_OPS:
                raise ConditionsSyntaxError(f"'not' cannot precede {op_token.text!r} at position {op_token.pos + 1}.")
            value = self.value()
            if op in _NEGATABLE_OPS and not isinstance(value, str):
                raise ConditionsSyntaxError(f"Expected a string value after {op}. {LITERAL_HELP}")
            try:
                return Comparison(field, op, value, negated)
            except UnsafeValueError as exc:  # e.g. a control character inside a quoted literal
                raise ConditionsSyntaxError(str(exc)) from None
        raise ConditionsSyntaxError(
            f"Expected an operator after {field!r} at position {op_token.pos + 1}, found {op_token.text!r}."
        )

    def value_list(self) -> tuple[Value, ...]:
        self.expect_punct("(")
        values = [self.value()]
        while True:
            token = self.take()
            if token.text == ")":
                return tuple(values)
            if token.text != ",":
                raise ConditionsSyntaxError(f"Expected ',' or ')' at position {token.pos + 1}, found {token.text!r}.")
            values.append(self.value())

    def value(self) -> Value:
        token = self.take()
        if token.kind == "string":
            return token.text[1:-1]
        if token.kind == "number":
            return float(token.text) if "." in token.text else int(token.text)
        if token.kind == "datetime":
            return _parse_datetime(token)
        if token.keyword in ("true", "false"):
            return token.keyword == "true"
        if token.keyword == "null":
            return None
        raise ConditionsSyntaxError(f"Invalid value {token.text!r} at position {token.pos + 1}. {LITERAL_HELP}")


def parse(text: str) -> Expr:
    """The AST for conditions `text`; raises `ConditionsSyntaxError` for anything ConnectWise would reject."""
    return _Parser(text).parse()
