"""The read models take whatever ConnectWise sends: real records (the sandbox's, shaped after ConnectWise's
schema) keep every value, and hostile-but-plausible ones (empty strings, wrong types, names where objects
belong) become None instead of raising - a raise there masks a write that landed as an internal error."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import pytest
from pydantic import BaseModel

from mcp_server_connectwise.connectwise.models import (
    Board,
    BoardStatus,
    Configuration,
    Member,
    Priority,
    Record,
    Reference,
    ServiceNote,
    Ticket,
    TimeEntry,
    WorkType,
    label,
)
from mcp_server_connectwise.connectwise.times import utc_text
from mcp_server_connectwise.sandbox import SANDBOX_BASE_URL, SandboxSettings
from mcp_server_connectwise.sandbox.seed import seed_store
from mcp_server_connectwise.sandbox.store import MODEL_FIELDS, Store

# Each model, the ConnectWise schema it reads, and the sandbox table of such records.
MODELS: list[tuple[type[Record], str, str]] = [
    (Ticket, "Ticket", "tickets"),
    (ServiceNote, "ServiceNote", "notes"),
    (TimeEntry, "TimeEntry", "timeEntries"),
    (BoardStatus, "BoardStatus", "statuses"),
    (Board, "Board", "boards"),
    (Priority, "Priority", "priorities"),
    (Member, "Member", "members"),
    (WorkType, "WorkType", "workTypes"),
    (Configuration, "Configuration", "configurations"),
]
HOSTILE_VALUES = [
    "",
    " ",
    "garbage",
    "New",
    "N/A",
    "0000-00-00",
    "31/12/2025 09:00",
    "/Date(1767171600000)/",
    "2025-13-45T99:99:99Z",
    "12.5",
    "NaN",
    "1e999",
    12.5,
    -1,
    0,
    2**70,
    float("inf"),
    True,
    False,
    None,
    [],
    [1, "x"],
    {},
    {"id": "x"},
    {"name": ["x"]},
    {"id": 1.5, "identifier": {}},
]


def aliases(model: type[BaseModel]) -> list[str]:
    return [field.alias or name for name, field in model.model_fields.items() if name != "id"]


@pytest.fixture(scope="module")
def sandbox() -> Store:
    store = Store(SANDBOX_BASE_URL)
    seed_store(store, SandboxSettings(tickets=80))
    return store


@pytest.mark.parametrize(("model", "schema", "table"), MODELS, ids=lambda value: getattr(value, "__name__", None))
def test_every_field_read_is_one_connectwise_has(model: type[Record], schema: str, table: str) -> None:
    """A misspelt alias would read None forever, silently."""
    assert set(aliases(model)) - {"_info"} <= set(MODEL_FIELDS[schema])


@pytest.mark.parametrize(("model", "schema", "table"), MODELS, ids=lambda value: getattr(value, "__name__", None))
def test_real_records_keep_every_value(sandbox: Store, model: type[Record], schema: str, table: str) -> None:
    records = list(sandbox[table].values())
    assert records
    for record in records:
        parsed = model.model_validate(record)
        assert parsed.id == record["id"]
        for name, field in model.model_fields.items():
            raw = record.get(field.alias or name)
            if raw is not None:  # leniency must not drop a well-formed value
                assert getattr(parsed, name) is not None, (table, record["id"], name, raw)


@pytest.mark.parametrize(("model", "schema", "table"), MODELS, ids=lambda value: getattr(value, "__name__", None))
@pytest.mark.parametrize("value", HOSTILE_VALUES, ids=repr)
def test_hostile_values_in_every_schema_field_never_raise(
    model: type[Record], schema: str, table: str, value: object
) -> None:
    every_field = {key: value for key in MODEL_FIELDS[schema]} | {"_info": value, "id": 7}
    parsed = model.model_validate(every_field)
    assert parsed.id == 7 and isinstance(parsed.info, dict)
    for name in model.model_fields:
        read = getattr(parsed, name)
        # A number read is finite: NaN or infinity would break the JSON a tool answers with.
        assert not isinstance(read, float) or math.isfinite(read)


@pytest.mark.parametrize(("model", "schema", "table"), MODELS, ids=lambda value: getattr(value, "__name__", None))
def test_a_record_with_nothing_but_an_id(model: type[Record], schema: str, table: str) -> None:
    parsed = model.model_validate({"id": 3})
    assert parsed.id == 3 and parsed.info == {}
    assert all(getattr(parsed, name) is None for name in model.model_fields if name not in ("id", "info"))


def test_the_shapes_real_connectwise_sends() -> None:
    ticket = Ticket.model_validate(
        {
            "id": 5,
            "summary": "Printer on fire",
            "status": "New",
            "board": {"id": "1", "name": "Service Desk"},
            "closedDate": "",
            "respondMinutes": 12.5,
            "requiredDate": "",
            "budgetHours": "1.5",
            "actualHours": 2,
            "closedFlag": "false",
            "priority": None,
            "_info": {"dateEntered": "2025-01-31T09:00:00Z"},
            "someFutureField": {"x": 1},
        }
    )
    assert ticket.status is None and ticket.board is not None and ticket.board.id == 1
    assert ticket.required_date is None and ticket.budget_hours == 1.5 and ticket.actual_hours == 2.0
    assert ticket.closed_flag is False and ticket.info["dateEntered"] == "2025-01-31T09:00:00Z"
    assert Ticket(id=6, closed_flag=True).closed_flag is True  # Python names build a model too


@pytest.mark.parametrize(
    ("text", "moment"),
    [
        ("2025-01-31T09:00:00Z", datetime(2025, 1, 31, 9, tzinfo=timezone.utc)),
        ("2025-01-31T09:00:00.1234567Z", datetime(2025, 1, 31, 9, 0, 0, 123456, tzinfo=timezone.utc)),  # .NET ticks
        ("2025-01-31T10:00:00+01:00", datetime(2025, 1, 31, 9, tzinfo=timezone.utc)),
        ("2025-01-31T09:00:00", datetime(2025, 1, 31, 9, tzinfo=timezone.utc)),  # naive: ConnectWise means UTC
        ("2025-01-31 09:00:00", datetime(2025, 1, 31, 9, tzinfo=timezone.utc)),
        ("2025-01-31", datetime(2025, 1, 31, tzinfo=timezone.utc)),
        ("", None),
        ("01/31/2025 09:00", None),
        ("0001-01-01T00:00:00+01:00", None),
        (1738314000, None),
    ],
)
def test_date_times_read_as_utc_or_none(text: object, moment: datetime | None) -> None:
    entry = TimeEntry.model_validate({"id": 1, "timeStart": text})
    assert entry.time_start == moment
    assert entry.time_start is None or entry.time_start.utcoffset() == timedelta(0)


def test_board_statuses_read_by_alias_and_missing_fields_are_none() -> None:
    new, closed = [
        BoardStatus.model_validate(row)
        for row in [
            {
                "id": 1,
                "name": "New",
                "sortOrder": 0,
                "inactive": False,
                "closedStatus": False,
                "timeEntryNotAllowed": False,
            },
            {"id": 2, "name": ">Closed", "sortOrder": "1", "inactive": False, "closedStatus": True},
        ]
    ]
    assert new.closed_status is False and new.sort_order == 0
    assert closed.closed_status is True and closed.time_entry_not_allowed is None and closed.sort_order == 1


def test_a_reference_is_labelled_by_name_then_identifier() -> None:
    assert label(Reference(id=1, name="Service Desk", identifier="SD")) == "Service Desk"
    assert label(Reference(id=2, identifier="jsmith")) == "jsmith"
    assert label(Reference(id=3)) is None and label(None) is None


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (datetime(2026, 1, 31, 10, 0, 0, 999999, tzinfo=timezone(timedelta(hours=1))), "2026-01-31T09:00:00Z"),
        (datetime(999, 1, 1, tzinfo=timezone.utc), "0999-01-01T00:00:00Z"),
    ],  # four digits, unlike strftime("%Y")
)
def test_moments_are_written_in_utc_to_the_second(moment: datetime, text: str) -> None:
    assert utc_text(moment) == text
