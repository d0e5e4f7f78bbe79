"""The benchmark entry point runs end to end (a smoke test: numbers are reported, never asserted)."""

from __future__ import annotations

from mcp_server_connectwise.cli import main
from mcp_server_connectwise.toolsets import REGISTRY


def test_bench_quick_reports_every_section(capsys):
    try:
        main(["bench", "--quick"])
    except SystemExit as exit_:
        assert exit_.code == 0
    report = capsys.readouterr().out
    for section in (
        "### Sandbox",
        "### Tools",
        "### Call latency under the rate budget",
        "### Alert storm",
        "### Shared state (Redis)",
        "### Callbacks",
        "### tools/list bytes",
        "### Cold start",
        "### Configuration sync",
    ):
        assert section in report
    for tool in (
        "search_tickets",
        "get_ticket_details",
        "add_ticket_note",
        "update_ticket",
        "create_time_entry",
        "list_time_entries",
        "update_time_entry",
        "list_board_statuses",
        "find_sla_risk",
        "search_companies",
        "get_company",
        "search_contacts",
        "get_contact",
        "list_agreements",
    ):
        assert f"| {tool}: ConnectWise requests per call, cold / warm cache |" in report
    assert "| find_sla_risk: tickets found / requests that read them (warm) |" in report
    assert "| service_desk_summary: wall time cold / warm, budget 600/min |" in report
    assert "| stdio demo: spawn to first tools/list answer, median |" in report

    rows = dict(line.strip("|").split(" | ", 1) for line in report.splitlines() if line.startswith("| "))
    rows = {name.strip(): value.strip() for name, value in rows.items()}
    calls = int(rows["calls made (search_tickets / get_ticket_details)"].split()[0].replace(",", ""))
    assert calls > 0
    assert rows["calls answered with an error"].startswith("0")
    assert rows["calls over the deadline (30 s)"].startswith("0 ")
    accuracy = next(value for name, value in rows.items() if name.startswith("rate-budget accuracy"))
    assert "within the bound" in accuracy and int(accuracy.split()[0]) > 0
    p50, p99, slowest = (float(v) for v in rows["call latency p50 / p99 / max"].removesuffix(" ms").split(" / "))
    assert 0 < p50 <= p99 <= slowest

    keys = int(rows["alert storm: reports / keys / concurrent reporters / simulated time"].split(" / ")[1])
    assert int(rows["tickets created (one per key)"]) == keys == int(rows["tickets closed by the clears"])

    if "shared state (Redis)" in rows:  # redis-server not installed: said so, nothing measured
        assert rows["shared state (Redis)"].startswith("skipped: redis-server is not installed")
    else:
        for replicas in ("1 replica", "3 replicas"):
            assert float(rows[f"{replicas}: calls/s (120 calls)"]) > 0
            assert rows[f"{replicas}: calls answered with an error"] == "0"
        shared = next(value for name, value in rows.items() if name.startswith("rate-budget accuracy: most requests"))
        assert "within the bound" in shared and int(shared.split()[0]) > 0
    per_second = int(rows["verified callbacks per second on loopback (10 in flight)"].replace(",", ""))
    answers = next(value for name, value in rows.items() if name.startswith("answer time under 50 concurrent"))
    stored = int(rows["events stored (one per delivery)"].replace(",", ""))
    assert per_second > 0 and float(answers.split(" / ")[1]) > 0 and stored > 50
    assert next(value for name, value in rows.items() if name.startswith("event log size per 10,000")).endswith(" MiB")

    assert int(rows["tools listed"]) == len(REGISTRY.by_name)
    total = int(rows["tools/list result, JSON bytes"].replace(",", ""))
    average = next(value for name, value in rows.items() if name.startswith("average per tool"))
    assert total > 0 and 0 < float(average.split()[0].replace(",", "")) <= total
    largest_name, largest = rows["largest tool"].split(": ")
    assert largest_name in REGISTRY.by_name and 0 < int(largest.replace(",", "")) <= total
