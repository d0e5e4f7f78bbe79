"""A tenant's client is created once, from keys read off the event loop: a locked keyring holds up only its
own tenant, and only for KEYRING_TIMEOUT_SECONDS."""

from __future__ import annotations

import asyncio
import threading

import keyring
import pytest

from conftest import MemoryKeyring
from mcp_server_connectwise.config import AppConfig, AuditConfig
from mcp_server_connectwise.connectwise import ApiCredentials, endpoints
from mcp_server_connectwise.sandbox.tenant import sandbox_tenant
from mcp_server_connectwise.services import tenancy
from mcp_server_connectwise.services.errors import Failed
from mcp_server_connectwise.services.tenancy import Tenants

from support.harness import SANDBOX, sandbox_tenants, store_keys, tenant_config


class LockedKeyring(MemoryKeyring):
    """A keyring that answers reads only once unlocked, as one waiting for its password does."""

    def __init__(self) -> None:
        super().__init__()
        self.unlocked = threading.Event()
        self.reads = 0

    def get_password(self, service: str, username: str) -> str | None:
        self.reads += 1
        self.unlocked.wait(timeout=10)  # bounded: a failing test must not hang the run
        return super().get_password(service, username)


@pytest.fixture
def locked_keyring() -> LockedKeyring:
    backend = LockedKeyring()
    keyring.set_keyring(backend)  # conftest puts the failing keyring back after the test
    backend.unlocked.set()
    store_keys("acme")  # which reads the keys back
    backend.unlocked.clear()
    backend.reads = 0
    yield backend
    backend.unlocked.set()


def two_tenants(tmp_path, **options) -> Tenants:
    config = AppConfig(
        audit=AuditConfig(path=tmp_path / "audit.jsonl"),
        tenants={name: tenant_config(name) for name in ("acme", "globex")},
    )
    return Tenants(config, **options)


async def test_a_locked_keyring_holds_up_only_its_tenant_then_says_to_unlock_it(tmp_path, monkeypatch, locked_keyring):
    monkeypatch.setattr(tenancy, "KEYRING_TIMEOUT_SECONDS", 0.3)
    tenants = two_tenants(tmp_path, credentials={"globex": ApiCredentials(SANDBOX.public_key, SANDBOX.private_key)})
    acme, globex = tenants.config.tenants["acme"], tenants.config.tenants["globex"]
    first_acme_call = asyncio.create_task(tenants.open_session(acme))
    await asyncio.wait_for(tenants.open_session(globex), 0.2)  # the event loop is free meanwhile
    assert not first_acme_call.done()
    with pytest.raises(Failed) as failed:
        await first_acme_call
    assert str(failed.value) == (
        "The API keys of tenant acme cannot be read: the OS keyring did not answer within 0.3 s; unlock it and retry."
    )

    retry = asyncio.create_task(tenants.open_session(acme))
    await asyncio.sleep(0.05)
    locked_keyring.unlocked.set()
    session = await retry
    assert session.client is not None and locked_keyring.reads == 2  # the retry took up the read already waiting
    await tenants.aclose()


async def test_concurrent_first_calls_for_a_tenant_create_one_client_from_one_keyring_read(tmp_path, locked_keyring):
    tenants = two_tenants(tmp_path)
    acme = tenants.config.tenants["acme"]
    calls = [asyncio.create_task(tenants.open_session(acme)) for _ in range(5)]
    await asyncio.sleep(0.05)
    locked_keyring.unlocked.set()
    sessions = await asyncio.gather(*calls)
    assert all(session is sessions[0] for session in sessions)
    assert locked_keyring.reads == 2  # the public and the private key, once
    assert await tenants.open_session(acme) is sessions[0]
    await tenants.aclose()


async def test_a_tenant_without_keys_is_told_how_to_store_them(tmp_path):
    tenants = two_tenants(tmp_path)
    with pytest.raises(
        Failed,
        match="Tenant globex has no API keys in the keyring; run `mcp-server-connectwise tenants set-keys globex`",
    ):
        await tenants.open_session(tenants.config.tenants["globex"])


async def test_each_tenant_is_checked_and_one_checks_own_fault_leaves_the_others_outcomes(tmp_path, caplog):
    from mcp_server_connectwise.services.errors import Refused
    from mcp_server_connectwise.services.tenancy import Unchecked

    names = ("acme", "globex", "initech")
    sandboxes = {name: sandbox_tenant(name) for name in names}
    tenants = sandbox_tenants(tmp_path, sandboxes)

    async def check(session):
        if session.name == "globex":
            raise ValueError("a bug in the check")
        if session.name == "initech":
            raise Refused("Tenant initech takes no alerts.")
        return len((await session.client.get_page(endpoints.BOARDS, page_size=1)).items)

    outcomes = {tenant.name: outcome for tenant, outcome in await tenants.each(check)}
    await tenants.aclose()
    assert outcomes["acme"] == 1
    assert outcomes["globex"] == Unchecked("the check failed unexpectedly (ValueError; the log has more).")
    assert isinstance(outcomes["initech"], Refused) and str(outcomes["initech"]) == "Tenant initech takes no alerts."
    assert "a start-up check of tenant globex failed" in caplog.text
