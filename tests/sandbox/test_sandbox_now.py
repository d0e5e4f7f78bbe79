"""The seed's "now" is a setting: the fixed SEED_NOW by default (the same store in every run), any other moment
on request (the demo and the `sandbox` command: the current hour), with every date moved by the difference."""

from __future__ import annotations

import re
import time
from typing import Any

from mcp_server_connectwise.sandbox import SANDBOX_BASE_URL, SandboxSettings
from mcp_server_connectwise.sandbox.seed import SEED_NOW, seed_store
from mcp_server_connectwise.sandbox.settings import this_hour
from mcp_server_connectwise.sandbox.store import Store, parse_iso
from mcp_server_connectwise.sandbox.tables import TABLES

DATE_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")  # whole, or within a text ("Resolve by ...")
# Whole weeks: time sheets run Monday to Sunday, so a seed a few weeks later has the same stages by week.
LATER = 5 * 7 * 86400


def every_table(now: float) -> dict[str, Any]:
    store = Store(SANDBOX_BASE_URL)
    seed_store(store, SandboxSettings(tickets=300, now=now))
    tables = {}
    for name in TABLES:
        try:
            tables[name] = store[name]  # the lazy ones (notes, time entries) are built here
        except KeyError:  # a table the seed leaves empty
            continue
    return tables


def moved(earlier: Any, later: Any, path: str, shifted: list[str]) -> None:
    """Assert `later` is `earlier` with every date-time moved by LATER; list the date-times seen."""
    if isinstance(earlier, dict):
        assert isinstance(later, dict) and earlier.keys() == later.keys(), path
        for key in earlier:
            moved(earlier[key], later[key], f"{path}.{key}", shifted)
    elif isinstance(earlier, list):
        assert isinstance(later, list) and len(earlier) == len(later), path
        for index, (a, b) in enumerate(zip(earlier, later, strict=True)):
            moved(a, b, f"{path}[{index}]", shifted)
    elif isinstance(earlier, str) and DATE_TIME.search(earlier) and not path.endswith(".imageLink"):
        # (an image link's `lm` is the image's version, fixed; every other date-time is the seed's own)
        assert isinstance(later, str) and DATE_TIME.split(earlier) == DATE_TIME.split(later), path
        for a, b in zip(DATE_TIME.findall(earlier), DATE_TIME.findall(later), strict=True):
            assert parse_iso(b) - parse_iso(a) == LATER, f"{path}: {earlier} -> {later}"
        shifted.append(path)
    else:
        assert earlier == later, path


def test_the_default_now_is_the_fixed_seed_now():
    assert SandboxSettings().now == SEED_NOW


def test_a_later_now_moves_every_seeded_date_by_the_difference_and_nothing_else():
    shifted: list[str] = []
    moved(every_table(SEED_NOW), every_table(SEED_NOW + LATER), "store", shifted)
    # Dates of every kind moved: tickets', their notes' and time entries', and the reference data's.
    assert {path.split(".")[1] for path in shifted} >= {"tickets", "notes", "timeEntries", "members", "agreements"}


def test_this_hour_is_the_start_of_the_current_hour():
    before = time.time()
    hour = this_hour()
    assert hour % 3600 == 0 and before - 3600 < hour <= time.time()
