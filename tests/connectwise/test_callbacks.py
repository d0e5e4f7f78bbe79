"""ConnectWise's callbacks: the recorded payloads parse, the signature is the documented one, and a signing key is
fetched only where the tenant's ConnectWise is, once, with no redirect and no more than its cap and budget."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json

import pytest

from mcp_server_connectwise.connectwise.callbacks import (
    KEY_FETCHES_PER_MINUTE,
    KeyHosts,
    KeyUnavailable,
    NotACallback,
    SigningKeys,
    parse_payload,
    signature,
    signature_matches,
)

from support.key_server import key_server
from support.paths import EXAMPLES_DIR

RECORDED = json.loads((EXAMPLES_DIR / "callback_payloads.json").read_text(encoding="utf-8"))


def body(name: str, **changes) -> bytes:
    payload = {k: v for k, v in RECORDED[name].items()} | changes
    return json.dumps(payload).encode()


def test_the_recorded_payloads_parse():
    updated = parse_payload(body("updated"))
    assert (updated.action, updated.type, updated.id, updated.company_id) == ("updated", "contact", 57961, "Cobalt")
    assert updated.message_id == "6dd82302-5e46-47c0-8c84-702868125b76" and updated.callback_id == 26604
    assert updated.metadata.key_url.startswith("https://sandbox-na.myconnectwise.net/")
    assert updated.entity_record()["id"] == 57961
    deleted = parse_payload(body("deleted"))
    assert deleted.action == "deleted" and deleted.entity is None and deleted.entity_record() is None


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (body("updated", Action="archived"), "Action"),
        (body("updated", ID="57961x"), "ID"),
        (body("updated", Metadata={}), "key_url"),
        (json.dumps({"hello": "world"}).encode(), "MessageId"),
    ],
)
def test_what_is_not_a_callback_says_which_field(raw, problem):
    with pytest.raises(NotACallback, match=problem):
        parse_payload(raw)


def test_an_entity_that_is_not_an_object_is_no_record():
    assert parse_payload(body("updated", Entity="[1,2")).entity_record() is None


def test_the_signature_is_hmac_sha256_keyed_with_the_sha256_of_the_signing_key():
    raw, key = body("updated"), "the signing key"
    expected = base64.b64encode(hmac.new(hashlib.sha256(key.encode()).digest(), raw, hashlib.sha256).digest()).decode()
    assert signature(key, raw) == expected
    assert signature_matches(key, raw, expected) and signature_matches(key, raw, f" {expected} ")
    assert not signature_matches(key, raw + b" ", expected)
    assert not signature_matches("another key", raw, expected)
    assert not signature_matches(key, raw, "é" + expected[1:])  # not ASCII: no match, no error


HOSTS = KeyHosts.of_tenant(
    base_url="https://api-na.myconnectwise.net/v2025_1/apis/3.0",
    site=None,
    extra=("na.myconnectwise.net", "cw.example.com:8443"),
)


@pytest.mark.parametrize(
    "url",
    [
        "https://api-na.myconnectwise.net/v2025_1//system/callbackkey/index.rails?id=x",
        "https://API-NA.myconnectwise.net:443/key",
        "https://na.myconnectwise.net/key",
        "https://cw.example.com:8443/key",
    ],
)
def test_a_key_url_on_the_tenants_own_hosts_may_be_fetched(url):
    assert HOSTS.refusal(url) is None


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("https://attacker.example/key", "attacker.example is not the tenant's ConnectWise"),
        ("https://api-na.myconnectwise.net.attacker.example/key", "is not the tenant's ConnectWise"),
        ("https://cw.example.com/key", "cw.example.com is not"),  # the wrong port
        ("http://api-na.myconnectwise.net/key", "is not https"),
        ("https://user:pw@api-na.myconnectwise.net/key", "no plain host"),
        ("file:///etc/passwd", "no plain host"),
        ("https://api-na.myconnectwise.net:99999/key", "not a URL"),
        ("http://127.0.0.1:8080/key", "127.0.0.1:8080 is not"),  # loopback may be http, but is not the tenant's
    ],
)
def test_a_key_url_anywhere_else_is_refused_naming_its_host_only(url, why):
    refusal = HOSTS.refusal(url)
    assert refusal is not None and why in refusal and "/key" not in refusal


def test_a_site_tenant_and_a_loopback_sandbox_over_http():
    site = KeyHosts.of_tenant(base_url=None, site="api-eu.myconnectwise.net")
    assert site.refusal("https://api-eu.myconnectwise.net/k") is None
    sandbox = KeyHosts.of_tenant(base_url="http://127.0.0.1/v4_6_release/apis/3.0", site=None)
    assert sandbox.refusal("http://127.0.0.1/v4_6_release//system/callbackkey/index.rails?id=1") is None
    assert sandbox.refusal("http://127.0.0.1:81/k") is not None


async def test_a_key_is_fetched_once_for_concurrent_callbacks_and_then_kept():
    async with key_server() as server:
        keys = SigningKeys(KeyHosts.of_tenant(base_url=None, site=server.host))
        answers = await asyncio.gather(*(keys.key(server.url()) for _ in range(20)))
        assert {key for key, _ in answers} == {server.key} and server.requests == ["/key"]
        assert await keys.key(server.url()) == (server.key, True)
        assert len(server.requests) == 1
        await keys.aclose()


async def test_a_foreign_key_url_is_never_requested():
    async with key_server() as foreign, key_server() as own:
        keys = SigningKeys(KeyHosts.of_tenant(base_url=None, site=own.host))
        with pytest.raises(KeyUnavailable, match="is not the tenant's ConnectWise") as refused:
            await keys.key(foreign.url())
        assert not refused.value.temporary and foreign.requests == [] and keys.fetches == 0
        await keys.aclose()


@pytest.mark.parametrize(
    ("path", "why"),
    [("/redirect", r"answered a redirect \(HTTP 302\)"), ("/big", "answered over 4096 bytes")],
)
async def test_a_redirect_is_not_followed_and_a_big_answer_not_read(path, why):
    async with key_server() as server:
        keys = SigningKeys(KeyHosts.of_tenant(base_url=None, site=server.host))
        with pytest.raises(KeyUnavailable, match=why) as refused:
            await keys.key(server.url(path))
        assert not refused.value.temporary and server.requests == [path]  # never /key, where it pointed
        await keys.aclose()


async def test_fetches_beyond_the_budget_wait_for_the_next_minute():
    async with key_server() as server:
        keys = SigningKeys(KeyHosts.of_tenant(base_url=None, site=server.host))
        for n in range(KEY_FETCHES_PER_MINUTE):
            await keys.key(server.url(query=f"id={n}"))
        with pytest.raises(KeyUnavailable, match="the most allowed") as spent:
            await keys.key(server.url(query="id=one-more"))
        assert spent.value.temporary and 0 < spent.value.retry_after <= 60
        assert len(server.requests) == KEY_FETCHES_PER_MINUTE
        await keys.aclose()


async def test_a_key_host_that_does_not_answer_is_temporary():
    async with key_server() as server:
        origin = server.origin
    keys = SigningKeys(KeyHosts.of_tenant(base_url=None, site=origin.removeprefix("http://")))
    with pytest.raises(KeyUnavailable, match="could not be reached") as failed:
        await keys.key(f"{origin}/key")
    assert failed.value.temporary
    await keys.aclose()
