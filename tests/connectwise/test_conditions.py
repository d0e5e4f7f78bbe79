"""The conditions grammar: serializer and parser agree, and no value can change an expression's structure."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_server_connectwise.connectwise.conditions import (
    LITERAL_HELP,
    And,
    Comparison,
    ConditionsSyntaxError,
    In,
    Or,
    UnsafeValueError,
    and_,
    contains,
    eq,
    ge,
    gt,
    in_,
    le,
    like,
    like_escape,
    lt,
    ne,
    not_,
    or_,
    parse,
    serialize,
)

# --- strategies ------------------------------------------------------------------------------------------

segment = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True).filter(
    lambda s: s.lower() not in {"and", "or", "not", "in", "contains", "like", "true", "false", "null"}
)
fields = st.lists(segment, min_size=1, max_size=3).map("/".join)


def expressible(text: str) -> bool:
    try:
        Comparison("summary", "=", text)
    except UnsafeValueError:
        return False
    return True


safe_text = st.text(max_size=40).filter(expressible)
datetimes = st.datetimes(
    min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.just(timezone.utc)
).map(lambda d: d.replace(microsecond=0))
values = st.one_of(
    safe_text,
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.booleans(),
    st.none(),
    datetimes,
)
comparisons = st.one_of(
    st.builds(Comparison, fields, st.sampled_from(["=", "!=", "<", "<=", ">", ">="]), values),
    st.builds(Comparison, fields, st.sampled_from(["contains", "like"]), safe_text, st.booleans()),
    st.builds(In, fields, st.lists(values, min_size=1, max_size=4).map(tuple), st.booleans()),
)
expressions = st.recursive(
    comparisons,
    lambda children: st.one_of(
        st.lists(children, min_size=2, max_size=4).map(lambda xs: and_(*xs)),
        st.lists(children, min_size=2, max_size=4).map(lambda xs: or_(*xs)),
    ),
    max_leaves=12,
)


# --- round trip ---------------------------------------------------------------------------------------


@settings(max_examples=400)
@given(expressions)
def test_parse_inverts_serialize(expr):
    assert parse(serialize(expr)) == expr


@settings(max_examples=400)
@given(st.text(max_size=60))
def test_a_value_never_changes_the_structure(text):
    """Any text either is refused up front or comes back as exactly the one comparison it was put in."""
    try:
        expr = and_(contains("summary", text), eq("board/name", "Help Desk"))
    except UnsafeValueError:
        return
    parsed = parse(serialize(expr))
    assert isinstance(parsed, And) and len(parsed.items) == 2
    assert parsed.items[0] == Comparison("summary", "contains", text)


def test_serialized_forms():
    when = datetime(2026, 1, 31, 10, 0, 0, 123456, tzinfo=timezone(timedelta(hours=1)))
    expr = and_(
        eq("board/name", "Help Desk"),
        ne("closedFlag", True),
        or_(lt("id", 10), le("id", -2.5), gt("budgetHours", 1.0), ge("_info/lastUpdated", when)),
        not_(contains("summary", 'say "hi"')),
        like("company/identifier", "AC%"),
        not_(in_("priority/id", [1, 2, None])),
        eq("contact", None),
    )
    assert serialize(expr) == (
        'board/name = "Help Desk" and closedFlag != true and '
        "(id < 10 or id <= -2.5 or budgetHours > 1.0 or _info/lastUpdated >= [2026-01-31T09:00:00Z]) and "
        'summary not contains \'say "hi"\' and company/identifier like "AC%" and '
        "priority/id not in (1, 2, null) and contact = null"
    )


def test_floats_are_written_without_exponent():
    assert serialize(eq("budgetHours", 1e-7)) == "budgetHours = 0.0000001"
    assert serialize(eq("budgetHours", 1e20)) == "budgetHours = 100000000000000000000.0"


# --- builders -----------------------------------------------------------------------------------------


def test_builders_flatten_and_skip_none():
    a, b, c = eq("id", 1), eq("id", 2), eq("id", 3)
    assert and_(None, a) == a
    assert and_() is None
    assert and_(and_(a, b), c) == And((a, b, c))
    assert or_(a, or_(b, c)) == Or((a, b, c))
    assert and_(or_(a, b), c) == And((Or((a, b)), c))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('it\'s "quoted"', "both a double quote"),
        ("line\nbreak", "control characters"),
        ("tab\there", "control characters"),
        ("C:\\path\\", "end with a backslash"),
        (float("nan"), "finite"),
        (datetime(2026, 1, 1), "no time zone"),
    ],
)
def test_unsafe_values_are_refused(value, message):
    with pytest.raises(UnsafeValueError, match=message):
        eq("summary", value)


def test_interior_backslash_and_either_quote_are_fine():
    assert serialize(eq("summary", "C:\\Users\\bob")) == 'summary = "C:\\Users\\bob"'
    assert serialize(eq("summary", "O'Brien")) == 'summary = "O\'Brien"'
    assert serialize(eq("summary", 'say "x"')) == "summary = 'say \"x\"'"


def test_not_applies_only_where_connectwise_documents_it():
    with pytest.raises(ValueError):
        not_(eq("id", 1))
    assert not_(not_(contains("summary", "x"))) == contains("summary", "x")


def test_field_paths_are_validated():
    for bad in ["", "a b", "a//b", "/a", "a;drop", "1abc"]:
        with pytest.raises(ValueError):
            eq(bad, 1)


def test_like_escape_brackets_wildcards():
    assert like_escape("50%_off[1]*") == "50[%][_]off[[]1][*]"


# --- parser -------------------------------------------------------------------------------------------


def test_parser_is_case_insensitive_and_reads_connectwise_examples():
    assert parse("Board/Name = 'Help Desk' AND closedFlag = FALSE") == And(
        (Comparison("Board/Name", "=", "Help Desk"), Comparison("closedFlag", "=", False))
    )
    assert parse('summary NOT CONTAINS "x"') == Comparison("summary", "contains", "x", True)
    assert parse("id IN (1,2 , 3)") == In("id", (1, 2, 3))
    assert parse("id not in (1)") == In("id", (1,), True)
    assert parse("lastUpdated > [2026-01-31T09:00:00Z]") == Comparison(
        "lastUpdated", ">", datetime(2026, 1, 31, 9, tzinfo=timezone.utc)
    )
    assert parse("(a = 1 or b = 2) and c = null") == And(
        (Or((Comparison("a", "=", 1), Comparison("b", "=", 2))), Comparison("c", "=", None))
    )


def test_and_binds_tighter_than_or():
    assert parse("a = 1 or b = 2 and c = 3") == Or(
        (Comparison("a", "=", 1), And((Comparison("b", "=", 2), Comparison("c", "=", 3))))
    )


@pytest.mark.parametrize(
    "text",
    [
        "summary = abc",
        "id = 12abc",
        "closedFlag = yes",
        "dateEntered > 2026-01-01",
        "dateEntered > [not a date]",
        "summary = 'unterminated",
    ],
)
def test_malformed_literals_give_connectwise_wording(text):
    with pytest.raises(ConditionsSyntaxError) as info:
        parse(text)
    assert LITERAL_HELP in str(info.value) or "Unexpected character" in str(info.value)


@pytest.mark.parametrize(
    "text",
    ["", "   ", "id =", "= 1", "(id = 1", "id = 1)", "id = 1 and", "id == 1", "id not = 1", "id in ()", "id in 1"],
)
def test_malformed_structure_is_refused(text):
    with pytest.raises(ConditionsSyntaxError):
        parse(text)
