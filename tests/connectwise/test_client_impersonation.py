"""Writes made as a ConnectWise member: the client against the sandbox, with the member's impersonation keys
fetched once per expiry (not per write), shared by concurrent writes, fetched again when refused, and never
shown anywhere."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

import pytest

from mcp_server_connectwise.connectwise import ImpersonationError, RequestRecord, endpoints
from mcp_server_connectwise.connectwise.scope import call_scope
from mcp_server_connectwise.sandbox.seed_text import INACTIVE_MEMBER
from mcp_server_connectwise.sandbox.tenant import sandbox_tenant

from support.harness import sandbox_app, sandbox_client

NOTE = {"text": "Checked the backups.", "internalAnalysisFlag": True}
TOKENS = endpoints.member_tokens("jsmith")


class WallClock:
    """The client's wall clock, moved by the test (ConnectWise's own clock is the sandbox's, the real one)."""

    def __init__(self) -> None:
        import time

        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def token_requests(app) -> list[dict]:
    return [entry for entry in app.state.request_log if entry["path"].endswith("/tokens")]


async def test_writes_in_a_member_scope_are_that_members_and_reads_stay_the_api_members():
    app = sandbox_app()
    records: list[RequestRecord] = []
    async with sandbox_client(sandbox_tenant("acme", app), on_request=records.append) as client:
        with call_scope(30, member="jsmith"):
            note = await client.post(endpoints.ticket_notes(1001), NOTE)
            ticket = await client.get(endpoints.ticket(1001))
        patched = await client.patch(
            endpoints.ticket(1001), [{"op": "replace", "path": "summary", "value": "Renamed by the API member"}]
        )
    assert note["createdBy"] == "jsmith" and note["_info"]["updatedBy"] == "jsmith"
    assert note["member"]["identifier"] == "jsmith"
    assert ticket["_info"]["updatedBy"] == "jsmith"  # the note touched its ticket, as jsmith
    assert patched["_info"]["updatedBy"] == "api-bot"  # outside the scope: the API member
    log = [(entry["method"], entry["path"], entry["principal"]) for entry in app.state.request_log]
    api = "sandbox+sandbox-public"
    assert log[0] == ("POST", TOKENS, api)  # keys are asked for with the API member's keys
    assert log[1][:2] == ("POST", endpoints.ticket_notes(1001)) and log[1][2] != api
    assert log[2] == ("GET", endpoints.ticket(1001), api)
    assert [(r.method, r.credentials, r.writes) for r in records] == [
        ("POST", True, False),  # a request for keys changes no record
        ("POST", False, True),
        ("GET", False, False),
        ("PATCH", False, True),
    ]


async def test_keys_are_fetched_once_per_expiry_and_shared_by_concurrent_writes():
    app = sandbox_app()
    clock = WallClock()
    async with sandbox_client(sandbox_tenant("acme", app), wall_clock=clock) as client:
        with call_scope(30, member="jsmith"):
            await asyncio.gather(*(client.post(endpoints.ticket_notes(1001), NOTE) for _ in range(5)))
            assert len(token_requests(app)) == 1
            clock.now += 4 * 3600 - 6 * 60  # the sandbox's keys last 4 h: 6 min before that they are still kept
            await client.post(endpoints.ticket_notes(1001), NOTE)
            assert len(token_requests(app)) == 1
            clock.now += 2 * 60  # within 5 min of their expiry: fetched afresh, before they lapse
            await client.post(endpoints.ticket_notes(1001), NOTE)
            await client.post(endpoints.ticket_notes(1001), NOTE)
            assert len(token_requests(app)) == 2
        with call_scope(30, member="mgarcia"):
            await client.post(endpoints.ticket_notes(1001), NOTE)
    assert len(token_requests(app)) == 3  # each member its own keys
    notes = app.state.store.children("notes", 1001)
    assert [note["createdBy"] for note in notes[-9:]] == ["jsmith"] * 8 + ["mgarcia"]


async def test_short_lived_keys_are_kept_for_most_of_their_life():
    app = sandbox_app(token_lifetime_seconds=100)
    clock = WallClock()
    async with sandbox_client(sandbox_tenant("acme", app), wall_clock=clock) as client:
        with call_scope(30, member="jsmith"):
            await client.post(endpoints.ticket_notes(1001), NOTE)
            clock.now += 85  # refreshed a tenth of their life early: 90 s
            await client.post(endpoints.ticket_notes(1001), NOTE)
            assert len(token_requests(app)) == 1
            clock.now += 6
            await client.post(endpoints.ticket_notes(1001), NOTE)
    assert len(token_requests(app)) == 2


async def test_keys_refused_by_connectwise_are_fetched_again_and_the_write_sent_once_more():
    app = sandbox_app()
    notes_before = len(app.state.store.children("notes", 1001))
    async with sandbox_client(sandbox_tenant("acme", app)) as client:
        with call_scope(30, member="jsmith"):
            await client.post(endpoints.ticket_notes(1001), NOTE)
            app.state.store.tokens.clear()  # revoked in ConnectWise
            note = await client.post(endpoints.ticket_notes(1001), NOTE)
    assert note["createdBy"] == "jsmith"
    statuses = [(entry["path"].endswith("/tokens"), entry["status"]) for entry in app.state.request_log]
    assert statuses == [(True, 200), (False, 201), (False, 401), (True, 200), (False, 201)]
    assert len(app.state.store.children("notes", 1001)) == notes_before + 2  # the refused attempt wrote nothing


@pytest.mark.parametrize(
    ("member", "status", "words"),
    [("nobody", 404, "Member nobody not found"), (INACTIVE_MEMBER, 400, "The member is inactive")],
)
async def test_a_member_connectwise_gives_no_keys_for_fails_before_the_write_is_sent(member, status, words):
    app = sandbox_app()
    announced: list[str] = []
    async with sandbox_client(
        sandbox_tenant("acme", app), before_write=lambda method, path, body: announced.append(path)
    ) as client:
        with call_scope(30, member=member), pytest.raises(ImpersonationError) as caught:
            await client.post(endpoints.ticket_notes(1001), NOTE)
    assert (caught.value.member, caught.value.status) == (member, status)
    assert words in caught.value.message
    assert [entry["path"] for entry in app.state.request_log] == [endpoints.member_tokens(member)]
    assert announced == []  # not announced in the audit either: nothing was sent


async def test_the_member_keys_are_in_no_log_line_repr_or_error(caplog):
    caplog.set_level(logging.DEBUG)
    app = sandbox_app()
    async with sandbox_client(sandbox_tenant("acme", app)) as client:
        with call_scope(30, member="jsmith"):
            await client.post(endpoints.ticket_notes(1001), NOTE)
            keys = [(public, token.private_key) for public, token in app.state.store.tokens.items()]
            shown = [caplog.text, repr(client), repr(client._member_keys)]
            # Keys ConnectWise makes from now on are expired at once: the write is refused with fresh keys too.
            app.state.settings = replace(app.state.settings, token_lifetime_seconds=0)
            app.state.store.tokens.clear()
            with pytest.raises(ImpersonationError) as caught:
                await client.post(endpoints.ticket_notes(1001), NOTE)
            keys += [(public, token.private_key) for public, token in app.state.store.tokens.items()]
    shown += [caplog.text, str(caught.value), repr(caught.value)]
    assert caught.value.status == 401 and len(keys) == 2
    assert not [key for pair in keys for key in pair if any(key in text for text in shown)]
    assert "jsmith" in caplog.text  # the log does say whose keys were fetched
