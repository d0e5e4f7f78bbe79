"""`serve` with `[state] url`: a Redis that does not answer (nothing listening, a wrong password) stops the start
with one line and exit 1 - no traceback, no password - on stdio and HTTP alike."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from cli.test_serve_and_demo_cli import free_port
from server.test_stdio_inspector import console_script

PASSWORD = "hunter2-not-this"


def config_with_state(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "tenants.toml"
    path.write_text(
        f'[audit]\npath = "{tmp_path / "audit.jsonl"}"\n[state]\nurl = "{url}"\n'
        '[http.principals.alice]\ntoken_sha256 = "' + "ab" * 32 + '"\ntenants = ["acme"]\n'
        '[tenants.acme]\ncompany_id = "acme"\nclient_id = "0f6b5a2e-1c1d-4e8f-9a44-6d2f0c3b7e11"\n'
        'base_url = "http://127.0.0.1:9/v4_6_release/apis/3.0"\n'
    )
    return path


def serve(config: Path, *transport: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [console_script(), "serve", "--config", str(config), *transport],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize("transport", [(), ("--transport", "http", "--port", "0")])
def test_a_redis_that_does_not_answer_stops_the_start_in_one_line(tmp_path, transport):
    port = free_port()  # nothing listens there
    done = serve(config_with_state(tmp_path, f"redis://:{PASSWORD}@127.0.0.1:{port}/0"), *transport)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"mcp-server-connectwise: the shared state store at redis://127.0.0.1:{port}/0 ([state] url) does not answer "
        f"(ConnectionError: Error 111 connecting to 127.0.0.1:{port}. Connection refused): start Redis or correct "
        "the url (or $CONNECTWISE_MCP_STATE_URL), then start the server again"
    ]
    assert not (tmp_path / "audit.jsonl").exists()


def test_a_wrong_password_stops_the_start_and_is_never_shown(tmp_path, redis_server):
    redis_server.client().config_set("requirepass", "the-right-one")
    done = serve(config_with_state(tmp_path, f"redis://:{PASSWORD}@127.0.0.1:{redis_server.port}/0"))
    assert done.returncode == 1 and len(done.stderr.splitlines()) == 1, done.stderr
    assert "does not answer (AuthenticationError: " in done.stderr and PASSWORD not in done.stderr
