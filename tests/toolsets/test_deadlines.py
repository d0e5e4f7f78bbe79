"""Every call answers within its deadline, with the right sentence, whatever ConnectWise does; callers share a
tenant's budget fairly; a retry of a call whose answer was lost does not write twice.

ConnectWise here is real loopback: a TCP server that accepts and never answers, a port nothing listens on, and
the in-process sandbox throttling or slowed down. The deadline is set short for the tests (the config's
minimum is for people; `ServerConfig.model_construct` lets a test go under it).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from mcp_server_connectwise.config import AppConfig, AuditConfig
from mcp_server_connectwise.config.models import ServerConfig
from mcp_server_connectwise.sandbox import SandboxSettings, create_app
from mcp_server_connectwise.sandbox.tenant import sandbox_tenant
from mcp_server_connectwise.secrets import KeyStore
from mcp_server_connectwise.server import build_server
from mcp_server_connectwise.toolsets import REGISTRY
from mcp_server_connectwise.toolsets.runtime import ALREADY_SAVED

from support.harness import SANDBOX

DEADLINE = 2.0
# The tools that talk to ConnectWise; the others read only what this server keeps.
EXAMPLES = [(definition.name, definition.examples[0]) for definition in REGISTRY.tools if definition.open_world]
CLOSED_WORLD = [(definition.name, definition.examples[0]) for definition in REGISTRY.tools if not definition.open_world]


def server_over(tmp_path, *, base_url: str | None = None, app=None, deadline: float = DEADLINE, wrap=None, **tenant):
    """Our server for tenant `acme`, on a real loopback URL (`base_url`) or the in-process sandbox `app` (its
    transport passed through `wrap`, if given)."""
    sandbox = sandbox_tenant(
        "acme", app or create_app(SANDBOX), **({"base_url": base_url} if base_url else {}), **tenant
    )
    KeyStore().set("acme", sandbox.credentials)
    config = AppConfig(
        default_tenant="acme",
        audit=AuditConfig(path=tmp_path / "audit.jsonl"),
        server=ServerConfig.model_construct(toolsets=None, call_deadline_seconds=deadline),
        tenants={"acme": sandbox.config},
    )
    transport = wrap(sandbox.transport) if wrap else sandbox.transport
    return build_server(config, transports=None if base_url else {"acme": transport})


class AnswersLate(httpx2.AsyncBaseTransport):
    """ConnectWise carries out each write at once and answers it `seconds` later, as a loaded one may."""

    def __init__(self, inner: httpx2.AsyncBaseTransport, seconds: float) -> None:
        self.inner, self.seconds = inner, seconds

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self.inner.handle_async_request(request)
        if request.method != "GET":
            await anyio.sleep(self.seconds)
        return response


@asynccontextmanager
async def silent_connectwise() -> AsyncIterator[str]:
    """A loopback server that accepts connections, reads what is sent and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        while await reader.read(65536):
            pass

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/v4_6_release/apis/3.0"
    finally:
        for writer in held:
            writer.close()
        server.close()


@pytest.fixture
def nothing_listening():
    """A loopback URL whose port is bound and never listened on: connections to it are refused, and no other
    process can take the port while the test runs (a port merely found free could be)."""
    import socket

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{held.getsockname()[1]}/v4_6_release/apis/3.0"


async def timed_call(server, tool: str, arguments: dict):
    async with Client(server, raise_exceptions=True) as client:
        started = time.monotonic()
        result = await client.call_tool(tool, arguments)
        return result, time.monotonic() - started


@pytest.mark.parametrize(("tool", "example"), EXAMPLES)
async def test_a_connectwise_that_never_answers_gets_every_tool_an_answer_within_the_deadline(tmp_path, tool, example):
    async with silent_connectwise() as url:
        result, took = await timed_call(server_over(tmp_path, base_url=url), tool, example)
    text = result.content[0].text
    assert result.is_error and took < DEADLINE + 1, (took, text)
    silent = "accepted the connection but did not answer" in text or "did not answer within the call's time" in text
    if REGISTRY.by_name[tool].read_only:
        assert silent, text
    else:  # the truth about the write: not sent, or sent and perhaps saved
        assert (silent and "not sent" in text) or ("may have been saved" in text and "retry" in text), text


@pytest.mark.parametrize(("tool", "example"), EXAMPLES)
async def test_a_connectwise_that_cannot_be_reached_is_said_so(tmp_path, tool, example, nothing_listening):
    result, took = await timed_call(server_over(tmp_path, base_url=nothing_listening), tool, example)
    text = result.content[0].text
    assert result.is_error and took < DEADLINE + 1, (took, text)
    assert "could not be reached" in text and "did not answer" not in text


@pytest.mark.parametrize(("tool", "example"), CLOSED_WORLD)
async def test_a_tool_that_reads_only_this_servers_state_answers_whatever_connectwise_does(
    tmp_path, tool, example, nothing_listening
):
    result, took = await timed_call(server_over(tmp_path, base_url=nothing_listening), tool, example)
    assert not result.is_error and took < DEADLINE, result.content[0].text


async def test_a_throttling_connectwise_is_answered_at_once_with_when_to_retry(tmp_path):
    app = create_app(SandboxSettings(**{**SANDBOX.__dict__, "rate_limit": 1}))
    server = server_over(tmp_path, app=app)
    async with Client(server, raise_exceptions=True) as client:
        assert (await client.call_tool("search_tickets", {"limit": 1})).is_error is False
        started = time.monotonic()
        throttled = await client.call_tool("search_tickets", {"limit": 1})
        took = time.monotonic() - started
    assert throttled.is_error and took < 1.0
    assert "ConnectWise is throttling tenant acme; retry in " in throttled.content[0].text


async def test_one_busy_caller_cannot_starve_another(tmp_path):
    # 120 requests a minute: the busy session's 160 searches take far longer than a deadline to be served.
    # Sessions tell callers apart in the protocol eras that have them (from 2026-07-28, principals do).
    server = server_over(tmp_path, deadline=30.0, requests_per_minute=120)
    legacy = {"raise_exceptions": True, "mode": "legacy"}
    async with Client(server, **legacy) as busy, Client(server, **legacy) as other:
        await busy.call_tool("search_tickets", {"limit": 1})  # warm: discovery and the first token
        flood = [asyncio.ensure_future(busy.call_tool("search_tickets", {"limit": 1})) for _ in range(160)]
        await asyncio.sleep(0.5)  # the flood is queued for the budget
        started = time.monotonic()
        answer = await other.call_tool("search_tickets", {"limit": 1})
        waited = time.monotonic() - started
        refused = [task.result() for task in flood if task.done() and task.result().is_error]
        for task in flood:
            task.cancel()
        await asyncio.gather(*flood, return_exceptions=True)
    assert answer.is_error is False and waited < 3.0, waited
    # Calls that could not be served within their deadline were answered at once, saying when to retry.
    assert refused and all("retry in" in result.content[0].text for result in refused)


async def test_a_retry_after_a_client_timeout_writes_one_note(tmp_path):
    app = create_app(SANDBOX)
    server = server_over(tmp_path, app=app, deadline=30.0, wrap=lambda inner: AnswersLate(inner, 8.0))
    note = {"ticket_id": 1003, "text": "Replaced the toner cartridge."}
    async with Client(server, raise_exceptions=True) as client:
        with pytest.raises(MCPError, match="(?i)timed out"):  # the client gives up and cancels the call mid-POST
            await client.call_tool("add_ticket_note", note, read_timeout_seconds=4.0)
        retry = await client.call_tool("add_ticket_note", note)
        again = await client.call_tool("add_ticket_note", note, read_timeout_seconds=20.0)  # the retry was done
    saved = [n for n in app.state.store["notes"].values() if n["text"] == note["text"]]
    assert retry.is_error is False and retry.structured_content["next_steps"].startswith(ALREADY_SAVED)
    assert retry.structured_content["note_id"] == saved[0]["id"]
    assert again.is_error is False and len(saved) == 2
    posts = [r for r in app.state.request_log if r["method"] == "POST"]
    assert len(posts) == 2  # the cancelled call's and the deliberate second note's; the retry sent none


async def test_a_write_a_crash_interrupted_is_found_by_its_retry_after_a_restart(tmp_path):
    from mcp_server_connectwise.audit import AuditLog, read_calls, verify_audit

    app = create_app(SANDBOX)
    note = {"ticket_id": 1003, "text": "Swapped the failing disk."}
    # The process that sent this note died before it could record the outcome: its intent line is all there is.
    crashed = AuditLog(tmp_path / "audit.jsonl")
    intent = crashed.intent(
        tenant="acme",
        principal="local",
        tool="add_ticket_note",
        arguments={**note, "note_type": "internal", "notify": False},
        method="POST",
        path="/service/tickets/1003/notes",
        free_text=("text",),
    )
    crashed.close()
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://sandbox") as raw:
        landed = await raw.post(
            "/v4_6_release/apis/3.0/service/tickets/1003/notes",
            json={"text": note["text"], "internalAnalysisFlag": True},
            auth=(f"{SANDBOX.company}+{SANDBOX.public_key}", SANDBOX.private_key),
            headers={"clientId": "x"},
        )
    assert landed.status_code == 201
    assert verify_audit(tmp_path / "audit.jsonl").passed is False  # an intent without an outcome

    server = server_over(tmp_path, app=app, deadline=30.0)  # the restarted server reads the audit
    posts_before = sum(r["method"] == "POST" for r in app.state.request_log)
    async with Client(server, raise_exceptions=True) as client:
        retry = await client.call_tool("add_ticket_note", note)
    assert retry.is_error is False and retry.structured_content["next_steps"].startswith(ALREADY_SAVED)
    assert retry.structured_content["note_id"] == landed.json()["id"]
    assert sum(r["method"] == "POST" for r in app.state.request_log) == posts_before  # nothing sent again
    [line] = read_calls(tmp_path / "audit.jsonl")
    assert intent in line["intents"]
    assert verify_audit(tmp_path / "audit.jsonl").passed  # the retry settled it
