"""Each principal as its own ConnectWise member, over real HTTP: `[http.principals.X] member` makes its writes
that member's in ConnectWise (impersonation keys fetched once per expiry, not per call), its time that member's,
and the audit name both; a principal without one writes as the tenant's API member, as before."""

from __future__ import annotations

import asyncio

from mcp_server_connectwise.audit import read_audit
from mcp_server_connectwise.connectwise import endpoints
from mcp_server_connectwise.sandbox.settings import API_MEMBER_IDENTIFIER

from support.served import serving

# The sandbox tenant's own `member` (its default for time) is jsmith: alice is someone else.
PRINCIPALS = {
    "alice": {"tenants": ("acme",), "member": "mgarcia"},
    "bob": {"tenants": ("acme",)},
    "ghost": {"tenants": ("acme",), "member": "nobody"},
}
TIME = {"ticket_id": 1003, "start": "2026-11-02T09:00:00Z", "hours": 1}


def notes(served, text: str) -> list[dict]:
    return [note for note in served.store()["notes"].values() if note.get("text") == text]


def token_requests(served) -> list[dict]:
    return [entry for entry in served.requests() if entry["path"].endswith("/tokens")]


async def test_a_principals_notes_and_time_are_its_members_and_its_keys_are_fetched_once(tmp_path):
    async with serving(tmp_path, PRINCIPALS) as served:
        async with served.client("alice") as alice:
            results = await asyncio.gather(
                *(alice.call_tool("add_ticket_note", {"ticket_id": 1001, "text": "Alice was here."}) for _ in range(3))
            )
            results.append(await alice.call_tool("create_time_entry", TIME))
            results.append(await alice.call_tool("get_ticket_details", {"ticket_id": 1001}))
            results.append(await alice.call_tool("list_time_entries", {"date_from": "2026-11-02"}))
        async with served.client("bob") as bob:
            results.append(await bob.call_tool("add_ticket_note", {"ticket_id": 1001, "text": "Bob was here."}))
            results.append(await bob.call_tool("create_time_entry", TIME | {"start": "2026-11-02T11:00:00Z"}))
    assert [result.is_error for result in results] == [False] * 8, [
        r.content[0].text[:300] for r in results if r.is_error
    ]

    assert [note["createdBy"] for note in notes(served, "Alice was here.")] == ["mgarcia"] * 3
    assert [note["member"]["identifier"] for note in notes(served, "Alice was here.")] == ["mgarcia"] * 3
    [bobs] = notes(served, "Bob was here.")
    assert bobs["createdBy"] == API_MEMBER_IDENTIFIER
    entries = {entry["id"]: entry for entry in served.store()["timeEntries"].values()}
    alices, bobs_entry = (entries[result.structured_content["time_entry_id"]] for result in (results[3], results[7]))
    assert (alices["member"]["identifier"], alices["enteredBy"]) == ("mgarcia", "mgarcia")
    assert (bobs_entry["member"]["identifier"], bobs_entry["enteredBy"]) == ("jsmith", API_MEMBER_IDENTIFIER)
    assert results[5].structured_content["member"] == "mgarcia"  # her time sheet by default

    # Four writes as mgarcia, one request for her keys; nobody's for bob.
    assert [entry["path"] for entry in token_requests(served)] == [endpoints.member_tokens("mgarcia")]
    lines = read_audit(served.audit_path)
    calls = [line for line in lines if line.get("kind") != "intent"]
    members = [(line["principal"], line["tool"], line.get("member")) for line in calls]
    assert sorted(members) == sorted(
        [("alice", "add_ticket_note", "mgarcia")] * 3
        + [
            ("alice", "create_time_entry", "mgarcia"),
            ("alice", "get_ticket_details", None),  # reads go as the API member
            ("alice", "list_time_entries", None),
            ("bob", "add_ticket_note", None),
            ("bob", "create_time_entry", None),
        ]
    )
    intents = [(line["principal"], line.get("member")) for line in lines if line.get("kind") == "intent"]
    assert sorted(intents) == [("alice", "mgarcia")] * 4 + [("bob", None)] * 2
    # The keys' request is in the audit of the call that caused it; the keys themselves are nowhere.
    [keys_in_audit] = [r for line in calls for r in line["requests"] if r["path"].endswith("/tokens")]
    assert keys_in_audit == {"method": "POST", "path": endpoints.member_tokens("mgarcia"), "status": 200} | {
        "ms": keys_in_audit["ms"]
    }
    audit_text = served.audit_path.read_text()
    assert not [
        key for key, token in served.store().tokens.items() if key in audit_text or token.private_key in audit_text
    ]


async def test_a_member_connectwise_does_not_know_is_said_so_and_nothing_is_written(tmp_path):
    async with serving(tmp_path, PRINCIPALS) as served:
        async with served.client("ghost") as ghost:
            result = await ghost.call_tool("add_ticket_note", {"ticket_id": 1001, "text": "Boo."})
    assert result.is_error
    assert result.content[0].text == (
        "Error executing tool add_ticket_note: ConnectWise (tenant acme) has no member 'nobody' to write as: correct "
        "`member` in [http.principals]. The change was not sent."
    )
    assert notes(served, "Boo.") == []
    assert [(entry["method"], entry["path"]) for entry in served.requests()] == [
        ("POST", endpoints.member_tokens("nobody"))
    ]
    [line] = read_audit(served.audit_path)  # no intent: nothing was about to be sent
    assert (line["outcome"], line["member"]) == ("error", "nobody")
