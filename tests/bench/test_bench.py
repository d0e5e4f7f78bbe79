"""The benchmark entry point runs end to end (a smoke test: numbers are reported, never asserted)."""

from __future__ import annotations

from mcp_server_connectwise.cli import main


def test_bench_quick_reports_every_section(capsys):
    try:
        main(["bench", "--quick"])
    except SystemExit as exit_:
        assert exit_.code == 0
    report = capsys.readouterr().out
    for section in ("### Sandbox", "### Tools", "### Cold start"):
        assert section in report
    for tool in (
        "search_tickets",
        "get_ticket_details",
        "add_ticket_note",
        "update_ticket",
        "create_time_entry",
        "list_board_statuses",
    ):
        assert f"| {tool}: ConnectWise requests per call, cold / warm cache |" in report
    assert "| stdio demo: spawn to first tools/list answer, median |" in report
