"""`audit verify [PATH]`: exit 0 and a count when intact, 1 and one line per finding when not, 2 (one line, no
traceback) when there is nothing to check; without PATH, the configured audit path."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from mcp_server_connectwise.audit import AuditEntry, AuditLog
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
