"""`callbacks register | list | remove | status` through the real CLI entry point, against the sandbox on 127.0.0.1
(the tenant's keys in the keyring, as `serve` reads them); and `demo --transport http`, which registers its own
receiver, so that a note added through a tool arrives as an event."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import httpx2
import pytest
import uvicorn
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from mcp_server_connectwise.cli import main
from mcp_server_connectwise.config import load_config
from mcp_server_connectwise.connectwise import ApiCredentials
from mcp_server_connectwise.sandbox import SandboxSettings, create_app
from mcp_server_connectwise.sandbox.settings import API_ROOT
from mcp_server_connectwise.secrets import KeyStore
from mcp_server_connectwise.server import demo_events_path
from mcp_server_connectwise.state.events import EventLog, NewEvent, SqliteEventLog
from mcp_server_connectwise.state.redis import RedisState

from support.key_server import free_port
from support.state_store import state_config

RECEIVER = "https://mcp.example.com/callbacks/acme"


@pytest.fixture
def sandbox() -> Iterator[tuple[str, object]]:
    """The sandbox served on 127.0.0.1 from a thread of its own (the CLI runs its own event loop)."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}{API_ROOT}"
    app = create_app(SandboxSettings(tickets=20), base_url=base_url)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    yield base_url, app
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def config(tmp_path, sandbox) -> Path:
    base_url, _app = sandbox
    path = tmp_path / "tenants.toml"
    path.write_text(
        f'[tenants.acme]\ncompany_id = "sandbox"\nclient_id = "6f1d3c2a-8b4e-4f7a-9c5d-2e8b7a1f0c93"\n'
        f'base_url = "{base_url}"\n[tenants.globex]\ncompany_id = "globex"\n'
        'client_id = "6f1d3c2a-8b4e-4f7a-9c5d-2e8b7a1f0c93"\nsite = "api-eu.myconnectwise.net"\n',
        encoding="utf-8",
    )
    KeyStore().set("acme", ApiCredentials("sandbox-public", "sandbox-private"))
    return path


def run(config: Path, capsys, *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(["--config", str(config), "callbacks", *argv])
    out, err = capsys.readouterr()
    assert "sandbox-private" not in out + err
    return exited.value.code, out, err


def ours(app) -> list[dict]:
    return [c for c in app.state.store["callbacks"].values() if c["url"].startswith(RECEIVER)]


def test_register_twice_creates_one_entry_and_says_so(config, sandbox, capsys):
    _base, app = sandbox
    code, out, _ = run(config, capsys, "register", "acme", "--url", RECEIVER)
    assert code == 0 and out.startswith("registered callback") and "own writes do not call back" in out
    code, out, _ = run(config, capsys, "register", "acme", "--url", RECEIVER + "/")
    assert code == 0 and "is registered already: nothing changed" in out
    [entry] = ours(app)
    assert entry["url"] == RECEIVER + "?recordId="  # [I] ConnectWise appends the record id: it lands in the query
    assert (entry["type"], entry["level"], entry["objectId"]) == ("ticket", "owner", 1)
    assert (
        entry["isSelfSuppressedFlag"] is True
        and entry["description"] == "mcp-server-connectwise: events of tenant acme"
    )


def test_a_board_level_takes_the_boards_id_and_is_an_entry_of_its_own(config, sandbox, capsys):
    _base, app = sandbox
    run(config, capsys, "register", "acme", "--url", RECEIVER)
    code, out, _ = run(config, capsys, "register", "acme", "--url", RECEIVER, "--level", "board", "--board", "alerts")
    alerts = next(board for board in app.state.store["boards"].values() if board["name"] == "Alerts")
    assert code == 0 and [(c["level"], c["objectId"]) for c in ours(app)] == [("owner", 1), ("board", alerts["id"])]


def test_a_registration_connectwise_disabled_is_enabled_again(config, sandbox, capsys):
    _base, app = sandbox
    run(config, capsys, "register", "acme", "--url", RECEIVER)
    [entry] = ours(app)
    app.state.store.put("callbacks", {**entry, "inactiveFlag": True})
    code, out, _ = run(config, capsys, "register", "acme", "--url", RECEIVER)
    assert code == 0 and "enabled again" in out and ours(app)[0]["inactiveFlag"] is False


def test_list_marks_this_servers_registrations_and_remove_removes_one(config, sandbox, capsys):
    _base, app = sandbox
    run(config, capsys, "register", "acme", "--url", RECEIVER)
    [entry] = ours(app)
    code, out, _ = run(config, capsys, "list", "acme")
    assert code == 0 and f"{entry['id']}  ticket level owner (object 1)  {RECEIVER}?recordId=" in out
    assert "[active, own writes suppressed, this server]" in out
    assert "[inactive]  Example ticket hook (inactive)" in out  # the seed's, not ours
    code, out, _ = run(config, capsys, "remove", "acme", str(entry["id"]))
    assert code == 0 and out == f"removed callback {entry['id']} of tenant acme\n" and ours(app) == []
    code, _, err = run(config, capsys, "remove", "acme", str(entry["id"]))
    assert code == 1 and f"Tenant acme has no callback {entry['id']}" in err


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--url", "http://mcp.example.com/callbacks/acme"], "must be https"),
        (["--url", "https://mcp.example.com/hooks"], "must end in /callbacks/acme"),
        (["--url", "https://mcp.example.com/callbacks/globex"], "must end in /callbacks/acme"),
        (["--url", "https://mcp.example.com/callbacks/acme?x=1"], "must have no query"),
        (["--url", RECEIVER, "--board", "Alerts"], "--board goes with --level board"),
        (["--url", RECEIVER, "--level", "board"], "give --type ticket and --board NAME"),
        (["--url", RECEIVER, "--level", "board", "--board", "Nope"], "Nope"),
    ],
)
def test_a_registration_that_cannot_work_is_refused_in_one_sentence_before_it_is_sent(
    config, sandbox, capsys, argv, says
):
    _base, app = sandbox
    code, out, err = run(config, capsys, "register", "acme", *argv)
    assert code == 1 and out == "" and says in err and len(err.strip().splitlines()) == 1
    assert ours(app) == []


def test_a_tenant_without_keys_or_unknown_is_one_line(config, capsys):
    code, _, err = run(config, capsys, "list", "globex")
    assert code == 1 and "has no API keys" in err and "tenants set-keys globex" in err
    code, _, err = run(config, capsys, "list", "initech")
    assert code == 2 and "unknown tenant 'initech'" in err


def test_status_names_the_event_store_its_size_and_events_per_tenant(config, capsys):
    with config.open("a", encoding="utf-8") as file:
        file.write('[events]\npath = "kept/events.sqlite3"\nretention_days = 3\n')
    store = config.parent / "kept" / "events.sqlite3"
    code, out, _ = run(config, capsys, "status")
    assert code == 0 and out.startswith(f"Event store: {store} (not created yet") and "kept 3 days" in out
    assert not store.exists()  # looking creates nothing
    log = SqliteEventLog(store)
    asyncio.run(store_events(log, 3))
    log.close()
    code, out, _ = run(config, capsys, "status")
    assert code == 0 and f"Event store: {store} (" in out and " bytes; kept 3 days, at most 100,000 per tenant)" in out
    assert "  acme: 3 events\n  globex: 0 events\n" in out


async def store_events(log: EventLog, count: int) -> None:
    for n in range(count):
        await log.append(NewEvent("acme", f"m-{n}", "ticket", "updated", n, datetime.now(timezone.utc)))


def test_status_with_a_shared_store_names_redis_and_counts_the_events_there(config, capsys, redis_server):
    with config.open("a", encoding="utf-8") as file:
        file.write(f'[state]\nurl = "{redis_server.url}"\n')

    async def store_two() -> None:
        state = RedisState(state_config(redis_server))
        await store_events(state.event_log(load_config(config)), 2)
        await state.aclose()

    asyncio.run(store_two())
    code, out, _ = run(config, capsys, "status")
    assert code == 0 and out.startswith(f"Event store: Redis at redis://127.0.0.1:{redis_server.port}/0 (kept 7 days")
    assert "  acme: 2 events\n  globex: 0 events\n" in out
    redis_server.stop()
    code, _, err = run(config, capsys, "status")
    assert code == 1 and "does not answer. Start Redis or correct [state] url" in err


async def test_the_http_demo_registers_its_receiver_and_a_note_added_arrives_as_an_event(tmp_path):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "mcp_server_connectwise", "demo", "--transport", "http", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        token = process.stdout.readline().strip()
        url = f"http://127.0.0.1:{port}/mcp"
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
            for _ in range(300):  # until it listens
                try:
                    await http.get(url)
                    break
                except httpx2.TransportError:
                    await asyncio.sleep(0.1)
            async with Client(streamable_http_client(url, http_client=http)) as client:
                noted = await client.call_tool("add_ticket_note", {"ticket_id": 1003, "text": "Rebooted the AP."})
                for _ in range(50):
                    seen = (await client.call_tool("get_ticket_events", {})).structured_content
                    if seen["events"]:
                        break
                    await asyncio.sleep(0.1)
    finally:
        process.terminate()
        _out, stderr = process.communicate(timeout=30)
    assert not noted.is_error
    assert [(e["type"], e["action"], e["id"], e["by"]) for e in seen["events"]] == [
        ("ticket", "updated", 1003, "api-bot")
    ]
    assert f"Callbacks: the sandbox calls http://127.0.0.1:{port}/callbacks/demo back" in stderr
    assert f"callbacks of tenant demo: ConnectWise calls http://127.0.0.1:{port}/callbacks/demo?recordId=" in stderr
    audit = Path(next(line for line in stderr.splitlines() if line.startswith("Audit log: ")).split()[2])
    assert not demo_events_path(audit).exists() and not audit.exists()  # both temporary
