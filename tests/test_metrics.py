"""What `PrometheusMetrics` counts, read back through prometheus_client's own parser: our server over the
in-process sandbox, with faults and a small budget to make retries, waits and write recoveries happen."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from mcp_server_connectwise.connectwise import RequestRecord, retry
from mcp_server_connectwise.metrics import NAMESPACE, PrometheusMetrics
from mcp_server_connectwise.services import write_recovery

from support.faults import script_faults
from support.harness import make_harness


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch):
    monkeypatch.setattr(write_recovery, "SETTLE_SECONDS", 0.0)
    monkeypatch.setattr(write_recovery, "RECHECK_SECONDS", 0.0)
    monkeypatch.setattr(retry, "backoff", lambda *args, **kwargs: 0.0)


def samples(metrics: PrometheusMetrics) -> dict[tuple[str, frozenset], float]:
    """Every sample, by name and labels, as a scraper parses the exposition."""
    body, content_type = metrics.exposition()
    assert content_type.startswith("text/plain; version=")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def value(found: dict, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


async def test_retries_budget_waits_and_write_recoveries_are_counted(tmp_path):
    metrics = PrometheusMetrics()
    harness = make_harness(tmp_path, {"acme": {"requests_per_minute": 600}}, metrics=metrics)
    sandbox = harness.sandboxes["acme"]
    async with harness.client() as client:
        script_faults(sandbox, get=["error_503"])
        assert (await client.call_tool("get_ticket_details", {"ticket_id": 1001})).is_error is False
        script_faults(sandbox, post=["drop_after_commit"])
        assert (await client.call_tool("add_ticket_note", {"ticket_id": 1001, "text": "Rebooted."})).is_error is False
        # 600/min lets 10 requests go at once, then paces them: 4 reads of 4 requests each wait.
        await asyncio.gather(*(client.call_tool("get_ticket_details", {"ticket_id": 1002}) for _ in range(4)))
    found = samples(metrics)
    log = harness.requests()
    assert value(found, "cwmcp_connectwise_retries_total", tenant="acme") == 1
    assert value(found, "cwmcp_connectwise_requests_total", tenant="acme", method="GET", status="503") == 1
    assert value(found, "cwmcp_connectwise_requests_total", tenant="acme", method="GET", status="200") == sum(
        entry["method"] == "GET" and entry["status"] == 200 for entry in log
    )
    assert value(found, "cwmcp_connectwise_request_seconds_count", tenant="acme") == len(log)
    assert value(found, "cwmcp_write_recoveries_total", kind="note", result="found") == 1
    waits = [r for line in harness.audit() for r in line["requests"] if r.get("budget_wait_ms")]
    assert waits and value(found, "cwmcp_rate_budget_waits_total", tenant="acme") == len(waits)
    assert value(found, "cwmcp_rate_budget_wait_seconds_count", tenant="acme") == len(waits)
    assert value(found, "cwmcp_tool_calls_total", tool="get_ticket_details", outcome="ok") == 5
    assert value(found, "cwmcp_tool_call_seconds_count", tool="add_ticket_note") == 1


async def test_alert_outcomes_are_counted(tmp_path):
    metrics = PrometheusMetrics()
    harness = make_harness(tmp_path, metrics=metrics)
    alert = {"source": "rmm", "alert_id": "disk-c", "severity": "high", "company": "ACME", "summary": "Disk C: full"}
    at = datetime.now(timezone.utc) - timedelta(hours=1)
    async with harness.client() as client:
        for minutes, state in [(0, "raised"), (1, "raised"), (2, "cleared")]:
            moment = (at + timedelta(minutes=minutes)).isoformat()
            result = await client.call_tool("report_alert", alert | {"state": state, "occurred_at": moment})
            assert result.is_error is False, result.content[0].text
        low = await client.call_tool("report_alert", alert | {"alert_id": "cpu", "state": "raised", "severity": "info"})
        assert low.is_error is False
    found = samples(metrics)
    outcomes = {
        outcome: value(found, "cwmcp_alert_outcomes_total", outcome=outcome)
        for outcome in ("created", "coalesced", "closed", "skipped")
    }
    assert outcomes == {"created": 1, "coalesced": 1, "closed": 1, "skipped": 1}


def test_callbacks_are_counted_by_result_and_each_server_counts_alone():
    first, second = PrometheusMetrics(), PrometheusMetrics()
    first.callback(verified=True)
    first.callback(verified=True)
    first.callback(verified=False)
    found = samples(first)
    assert value(found, "cwmcp_callbacks_total", result="verified") == 2
    assert value(found, "cwmcp_callbacks_total", result="refused") == 1
    assert value(samples(second), "cwmcp_callbacks_total", result="verified") == 0


def test_the_readme_lists_every_series_with_its_labels():
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    rows = readme[readme.index("| series (prefix `cwmcp_`) |") :].split("\n\n")[0].splitlines()[2:]
    listed = {}
    for row in rows:
        names, labels = (cell.strip() for cell in row.strip("|").split("|")[:2])
        for name in re.findall(r"`([a-z_]+)`", names):
            listed[f"{NAMESPACE}_{name.removesuffix('_total')}"] = set(labels.replace(" ", "").split(","))
    metrics = PrometheusMetrics()  # every series given a sample, so that the scrape shows its labels
    metrics.tool_call("search_tickets", "ok", 0.1)
    metrics.connectwise_request("acme", RequestRecord("POST", "/x", 200, 5.0, 2, budget_wait_ms=10.0, credentials=True))
    metrics.write_recovery("note", "found")
    metrics.alert("created")
    metrics.callback(verified=True)
    served = {
        family.name: {label for sample in family.samples for label in sample.labels if label != "le"}
        for family in metrics.registry.collect()
    }
    assert served == listed
