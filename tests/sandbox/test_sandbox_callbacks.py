"""The sandbox calls back: which writes reach which registrations, ConnectWise's payload shape and signature,
its signing key, retries, loopback only, and a registration disabled after 3 days of failures."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mcp_server_connectwise.connectwise.callbacks import SIGNATURE_HEADER, parse_payload, signature_matches
from mcp_server_connectwise.sandbox import SandboxSettings, create_app
from mcp_server_connectwise.sandbox.callbacks import DISABLED_AFTER_SECONDS

from support.key_server import serving
from support.sandbox_http import sandbox_http

FAST_RETRIES = {"callback_retry_delays": (0.05, 0.05), "callback_timeout": 2.0}


@dataclass
class Hook:
    """A receiver on 127.0.0.1 that answers `statuses` in turn (then 200) and keeps what it got."""

    statuses: list[int] = field(default_factory=list)
    got: list[tuple[str, bytes, str | None]] = field(default_factory=list)
    base: str = ""

    def app(self) -> Starlette:
        async def take(request: Request) -> Response:
            self.got.append((str(request.url), await request.body(), request.headers.get(SIGNATURE_HEADER)))
            return JSONResponse({}, status_code=self.statuses.pop(0) if self.statuses else 200)

        return Starlette(routes=[Route("/{path:path}", take, methods=["POST"])])

    def payloads(self) -> list[dict]:
        return [json.loads(body) for _url, body, _sig in self.got]


@asynccontextmanager
async def hooked(**settings) -> AsyncIterator[tuple[Starlette, httpx2.AsyncClient, Hook]]:
    hook = Hook()
    app = create_app(SandboxSettings(tickets=60, **(FAST_RETRIES | settings)))
    async with serving(hook.app()) as base, sandbox_http(app) as client:
        hook.base = base
        yield app, client, hook
    await app.state.callbacks.aclose()


async def register(client, hook: Hook, **fields) -> dict:
    body = {"url": f"{hook.base}/cw?recordId=", "objectId": 1, "type": "ticket", "level": "owner"} | fields
    answer = await client.post("/system/callbacks", json=body)
    assert answer.status_code == 201, answer.text
    return answer.json()


async def as_member(client, identifier: str) -> tuple[str, str]:
    keys = (await client.post(f"/system/members/{identifier}/tokens")).json()
    return f"sandbox+{keys['publicKey']}", keys["privateKey"]


async def test_a_ticket_change_is_delivered_in_connectwises_shape_signed_with_the_key_its_url_answers():
    async with hooked() as (app, client, hook):
        entry = await register(client, hook)
        await client.patch("/service/tickets/1003", json=[{"op": "replace", "path": "summary", "value": "New words"}])
        await app.state.callbacks.drain()
        [(url, body, signed)] = hook.got
        payload = parse_payload(body)
        key = (await client.get(payload.metadata.key_url, auth=None)).json()["signing_key"]
    assert url == f"{hook.base}/cw?recordId=1003"  # [I] the record's id appended to the registered URL
    assert signed is not None and signature_matches(key, body, signed)
    raw = json.loads(body)
    assert set(raw) == {
        "MessageId", "FromUrl", "CompanyId", "MemberId", "Action", "Type", "ID", "Entity", "Metadata",
        "CallbackObjectRecId",
    }  # fmt: skip
    assert (raw["Action"], raw["Type"], raw["ID"], raw["CompanyId"]) == ("updated", "ticket", 1003, "sandbox")
    assert raw["MemberId"] == "api-bot" and raw["CallbackObjectRecId"] == entry["id"]
    assert isinstance(raw["Entity"], str) and json.loads(raw["Entity"])["summary"] == "New words"
    assert "/v4_6_release//system/callbackkey/index.rails?companyName=sandbox&id=" in raw["Metadata"]["key_url"]


async def test_the_signing_key_url_needs_no_auth_and_knows_only_its_own_key():
    async with hooked() as (app, client, _hook):
        url = app.state.callbacks.key_url
        assert (await client.get(url, auth=None)).json() == {"signing_key": app.state.callbacks.signing_key}
        assert (await client.get(url.replace("companyName=sandbox", "companyName=other"), auth=None)).status_code == 404
        assert (await client.get(url.split("&id=")[0] + "&id=nope", auth=None)).status_code == 404


async def test_adds_changes_deletes_notes_and_time_reach_the_registrations_they_match():
    async with hooked() as (app, client, hook):
        ticket = app.state.store["tickets"][1003]
        await register(client, hook)  # ticket, owner: every ticket
        await register(client, hook, level="board", objectId=ticket["board"]["id"])
        await register(client, hook, level="board", objectId=999)  # another board: never
        await register(client, hook, level="ticket", objectId=1004)
        await register(client, hook, type="time", level="owner")
        created = await client.post(
            "/service/tickets",
            json={"summary": "New", "company": {"id": 2}, "board": {"id": 1}, "initialDescription": "Hi"},
        )
        new_id = created.json()["id"]
        await client.post("/service/tickets/1003/notes", json={"text": "Noted", "internalAnalysisFlag": True})
        logged = await client.post(
            "/time/entries",
            json={
                "chargeToId": 1003,
                "chargeToType": "ServiceTicket",
                "timeStart": "2026-11-02T09:00:00Z",
                "actualHours": 1,
            },
        )
        assert logged.status_code == 201, logged.text
        await client.delete(f"/service/tickets/{new_id}")
        await app.state.callbacks.drain()
    seen = sorted((p["CallbackObjectRecId"], p["Type"], p["Action"], p["ID"]) for p in hook.payloads())
    owner, board, _other, one_ticket, time = (2, 3, 4, 5, 6)  # the seed has callback 1 (inactive)
    on_board_1 = ticket["board"]["id"] == 1
    expected = [
        (owner, "ticket", "added", new_id),  # its initial description is part of it: no extra callback
        (owner, "ticket", "updated", 1003),  # the note, as its ticket updated
        (owner, "ticket", "deleted", new_id),
        *([(board, "ticket", "added", new_id), (board, "ticket", "deleted", new_id)] if on_board_1 else []),
        (board, "ticket", "updated", 1003),
        (time, "time", "added", max(app.state.store["timeEntries"])),
    ]
    assert seen == sorted(expected)
    assert one_ticket not in {p["CallbackObjectRecId"] for p in hook.payloads()}  # ticket 1004 was not changed
    deleted = next(p for p in hook.payloads() if p["Action"] == "deleted")
    assert deleted["Entity"] is None


async def test_skip_callback_and_self_suppression_call_nothing_back():
    async with hooked() as (app, client, hook):
        await register(client, hook, isSelfSuppressedFlag=True)  # registered by api-bot
        await client.patch("/service/tickets/1003", json=[{"op": "replace", "path": "summary", "value": "Own write"}])
        jsmith = await as_member(client, "jsmith")
        skip = [
            {"op": "replace", "path": "summary", "value": "Quiet"},
            {"op": "replace", "path": "skipCallback", "value": True},
        ]
        await client.patch("/service/tickets/1003", json=skip, auth=jsmith)
        await client.post("/service/tickets", json={"summary": "Quiet", "company": {"id": 2}, "board": {"id": 1}, "skipCallback": True}, auth=jsmith)  # fmt: skip
        await client.patch(
            "/service/tickets/1004", json=[{"op": "replace", "path": "summary", "value": "Heard"}], auth=jsmith
        )
        await app.state.callbacks.drain()
        stored = app.state.store["tickets"][1003]
    assert [(p["ID"], p["MemberId"]) for p in hook.payloads()] == [(1004, "jsmith")]
    assert stored["summary"] == "Quiet" and "skipCallback" not in stored  # an option of the request, not stored


async def test_a_failing_delivery_is_retried_and_later_ones_wait_their_turn():
    async with hooked() as (app, client, hook):
        await register(client, hook)
        hook.statuses = [503, 500]  # the first delivery fails twice, then is taken
        for n in range(3):
            await client.patch("/service/tickets/1003", json=[{"op": "replace", "path": "summary", "value": f"S{n}"}])
        await app.state.callbacks.drain()
        deliveries = app.state.callbacks.deliveries
    assert [json.loads(json.loads(body)["Entity"])["summary"] for _url, body, _ in hook.got] == [
        "S0",
        "S0",
        "S0",
        "S1",
        "S2",
    ]
    assert [(d.attempts, d.outcome) for d in deliveries] == [(3, "delivered"), (1, "delivered"), (1, "delivered")]
    assert len({json.loads(body)["MessageId"] for _url, body, _ in hook.got}) == 3  # a retry repeats its MessageId


async def test_a_registration_failing_for_3_days_is_disabled():
    async with hooked(callback_retry_delays=()) as (app, client, hook):
        entry = await register(client, hook)
        sender = app.state.callbacks
        now = [1_000_000.0]
        sender.clock = lambda: now[0]
        hook.statuses = [500] * 10
        await client.patch("/service/tickets/1003", json=[{"op": "replace", "path": "summary", "value": "A"}])
        await sender.drain()
        assert not app.state.store["callbacks"][entry["id"]]["inactiveFlag"]
        now[0] += DISABLED_AFTER_SECONDS
        await client.patch("/service/tickets/1003", json=[{"op": "replace", "path": "summary", "value": "B"}])
        await sender.drain()
        assert app.state.store["callbacks"][entry["id"]]["inactiveFlag"] is True
        await client.patch("/service/tickets/1003", json=[{"op": "replace", "path": "summary", "value": "C"}])
        await sender.drain()
    assert len(hook.got) == 2  # nothing more once disabled


async def test_only_loopback_urls_are_called():
    async with hooked() as (app, client, hook):
        await client.post(
            "/system/callbacks",
            json={"url": "https://hooks.example.com/cw?id=", "objectId": 1, "type": "ticket", "level": "owner"},
        )
        await client.patch("/service/tickets/1003", json=[{"op": "replace", "path": "summary", "value": "X"}])
        await app.state.callbacks.drain()
        [delivery] = app.state.callbacks.deliveries
    assert delivery.outcome == "not_loopback" and delivery.attempts == 0 and hook.got == []


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"url": "ftp://x"}, ("InvalidField", "url")),
        ({"level": "galaxy"}, ("InvalidObject", "level")),
    ],
)
async def test_registrations_are_validated_like_connectwise(change, error):
    async with hooked() as (_app, client, hook):
        body = {"url": f"{hook.base}/cw?recordId=", "objectId": 1, "type": "ticket", "level": "owner"} | change
        answer = await client.post("/system/callbacks", json=body)
    assert answer.status_code == 400
    assert [(e["code"], e["field"]) for e in answer.json()["errors"]] == [error]


def test_a_write_outside_an_event_loop_is_recorded_as_not_sent():
    app = create_app(SandboxSettings(tickets=5))
    app.state.writer.create("callbacks", {"url": "http://127.0.0.1:9/cw?id=", "objectId": 1, "type": "ticket", "level": "owner"}, "api-bot")  # fmt: skip
    app.state.writer.patch("tickets", min(app.state.store["tickets"]), [{"op": "replace", "path": "summary", "value": "Y"}], "jsmith")  # fmt: skip
    [delivery] = app.state.callbacks.deliveries
    assert delivery.outcome == "failed" and delivery.attempts == 0
