"""`audit verify [PATH]`: exit 0 and a count when intact, 1 and one line per finding (or write intent without an
outcome) when not, 2 (one line, no traceback) when there is nothing to check; without PATH, the configured audit
path. `audit ack (INTENT_ID ... | --all) [PATH]`: settles unsettled intents, refusing (2, nothing written) any
other id."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from mcp_server_connectwise.audit import AuditEntry, AuditLog, read_audit
from mcp_server_connectwise.cli import main
from mcp_server_connectwise.cli.arguments import UsageError
from mcp_server_connectwise.cli.audit import run as run_audit

CONFIG = """\
[audit]
path = "logs/audit.jsonl"

[tenants.acme]
company_id = "acme"
client_id = "0f6b5a2e-1c1d-4e8f-9a44-6d2f0c3b7e11"
site = "api-na.myconnectwise.net"
"""


def write_log(path: Path, count: int) -> None:
    log = AuditLog(path)
    for number in range(count):
        log.write(
            AuditEntry(
                tenant="acme",
                principal="local",
                tool="get_ticket_details",
                args={"ticket_id": number},
                outcome="ok",
                error=None,
                duration_ms=1.0,
            ),
            durable=False,
        )
    log.close()


def verify(path: Path | None, config: Path | None = None) -> int:
    return run_audit(
        argparse.Namespace(
            audit_command="verify", path=str(path) if path else None, config=str(config) if config else None
        )
    )


def delete_line(path: Path, index: int) -> None:
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:index] + lines[index + 1 :]))


def test_an_intact_log_exits_0_with_its_size(tmp_path, capsys):
    path = tmp_path / "audit.jsonl"
    write_log(path, 4)
    assert verify(path) == 0
    assert capsys.readouterr().out == f"audit log {path}: intact, 4 line(s) in 1 file(s)\n"


def test_a_broken_log_exits_1_naming_file_line_and_why(tmp_path, capsys):
    path = tmp_path / "audit.jsonl"
    write_log(path, 4)
    delete_line(path, 1)
    assert verify(path) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"{path}:2: does not follow audit.jsonl line 1 (prev mismatch): that line was edited, or lines after it "
        "were deleted",
        f"audit log {path}: NOT intact, 1 finding(s) after checking 2 line(s) in 1 file(s)",
    ]


def test_without_a_path_the_configured_audit_log_is_verified(tmp_path, capsys):
    config = tmp_path / "tenants.toml"
    config.write_text(CONFIG)
    write_log(tmp_path / "logs" / "audit.jsonl", 2)
    assert verify(None, config) == 0
    assert "intact, 2 line(s)" in capsys.readouterr().out


def test_nothing_to_verify_is_a_usage_error_exiting_2(tmp_path, capsys):
    with pytest.raises(UsageError, match="no audit log at"):
        verify(tmp_path / "absent.jsonl")
    with pytest.raises(SystemExit) as exited:
        main(["audit", "verify", str(tmp_path / "absent.jsonl")])
    assert exited.value.code == 2
    assert capsys.readouterr().err == (
        f"mcp-server-connectwise: no audit log at {tmp_path / 'absent.jsonl'} (nor rotated files absent.jsonl.1, ...)\n"
    )


def test_an_unreadable_log_is_a_usage_error(tmp_path):
    (tmp_path / "audit.jsonl").mkdir()
    with pytest.raises(UsageError, match="cannot read the audit log"):
        verify(tmp_path / "audit.jsonl")


def test_the_console_command_reports_a_broken_log_without_a_traceback(tmp_path):
    path = tmp_path / "audit.jsonl"
    write_log(path, 3)
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join([lines[1], lines[0], lines[2]]))
    run = subprocess.run(
        [sys.executable, "-m", "mcp_server_connectwise", "audit", "verify", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1, run.stderr
    assert run.stdout.splitlines()[0] == f"{path}:1: out of order: it belongs after audit.jsonl line 2"
    assert "Traceback" not in run.stdout + run.stderr


def announce(path: Path, ticket_id: int) -> str:
    log = AuditLog(path)
    intent_id = log.intent(
        tenant="acme",
        principal="local",
        tool="update_ticket",
        arguments={"ticket_id": ticket_id, "status": "Closed"},
        method="PATCH",
        path=f"/service/tickets/{ticket_id}",
        body=[{"op": "replace", "path": "status", "value": {"id": 5}}],
    )
    log.close()
    return intent_id


def exit_code(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    return exited.value.code


def test_ack_refuses_an_id_that_is_not_an_unsettled_intent_and_writes_nothing(tmp_path, capsys):
    path = tmp_path / "audit.jsonl"
    write_log(path, 1)
    pending = announce(path, 7)
    before = path.read_bytes()
    assert exit_code(["audit", "ack", pending, "0123456789abcdef", str(path)]) == 2
    assert capsys.readouterr().err == (
        f"mcp-server-connectwise: not a write intent without an outcome in {path}: 0123456789abcdef "
        "(`audit verify` lists them); nothing was acknowledged\n"
    )
    assert path.read_bytes() == before
    assert exit_code(["audit", "ack", pending, str(path)]) == 0
    assert exit_code(["audit", "ack", pending, str(path)]) == 2  # settled now: not acknowledged twice
    assert "not a write intent without an outcome" in capsys.readouterr().err


def test_ack_all_settles_every_unsettled_intent_and_then_finds_none(tmp_path, capsys):
    path = tmp_path / "audit.jsonl"
    first, second = announce(path, 7), announce(path, 8)
    assert verify(path) == 1
    out = capsys.readouterr().out
    assert f"write intent {first} has no outcome: update_ticket in tenant acme by local" in out
    assert "(PATCH /service/tickets/8); it may or may not have reached ConnectWise: check ticket 8" in out
    assert exit_code(["audit", "ack", "--all", str(path)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"audit log {path}: 2 write intent(s) acknowledged"
    assert read_audit(path)[-1]["intents"] == [first, second]
    assert verify(path) == 0
    assert exit_code(["audit", "ack", "--all", str(path)]) == 0
    assert capsys.readouterr().out.endswith("no write intent without an outcome; nothing to acknowledge\n")


def test_ack_without_a_path_acknowledges_in_the_configured_audit_log(tmp_path, capsys):
    config = tmp_path / "tenants.toml"
    config.write_text(CONFIG)
    (tmp_path / "logs").mkdir()
    intent_id = announce(tmp_path / "logs" / "audit.jsonl", 7)
    assert exit_code(["--config", str(config), "audit", "ack", intent_id]) == 0
    assert verify(None, config) == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["audit", "ack"], "name the intents to acknowledge (as `audit verify` lists them), or give --all"),
        (["audit", "ack", "--all", "0123456789abcdef"], "audit ack takes intent ids or --all, not both"),
        (["audit", "ack", "--all", "one.jsonl", "two.jsonl"], "audit ack takes one audit log path, not 2"),
    ],
)
def test_ack_needs_intent_ids_or_all_and_at_most_one_path(argv, message, capsys):
    assert exit_code(argv) == 2
    assert message in capsys.readouterr().err


def test_ack_of_a_missing_log_is_a_usage_error(tmp_path, capsys):
    assert exit_code(["audit", "ack", "--all", str(tmp_path / "absent.jsonl")]) == 2
    assert capsys.readouterr().err == f"mcp-server-connectwise: no audit log at {tmp_path / 'absent.jsonl'}\n"
