"""upsert_configuration's PATCH of a matched device as a service over the sandbox: what it reports when the
answer is lost, does not show the change, or the record is gone (`write_recovery.patch_checked`)."""

from __future__ import annotations

import pytest

from mcp_server_connectwise.connectwise import retry
from mcp_server_connectwise.connectwise.retry import RetryPolicy
from mcp_server_connectwise.connectwise.scope import call_scope
from mcp_server_connectwise.services import write_recovery
from mcp_server_connectwise.services.configuration_sync import ConfigurationUpsert, upsert_configuration
from mcp_server_connectwise.services.errors import Failed, Look, OutcomeUnknown

from support.customers import company, devices_of
from support.faults import PatchesSubPaths, Rewriting, script_faults
from support.harness import sandbox_app, sandbox_session

NEW_IP = "10.9.9.9"
ATTEMPTS = RetryPolicy().max_attempts


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch):
    monkeypatch.setattr(write_recovery, "SETTLE_SECONDS", 0.0)
    monkeypatch.setattr(retry, "backoff", lambda *args, **kwargs: 0.0)


def seeded_device(app) -> dict:
    store = app.state.store
    return next(d for d in devices_of(store, company(store, "ACME")["id"]) if d.get("serialNumber"))


def new_ip(device: dict) -> ConfigurationUpsert:
    return ConfigurationUpsert(
        company="ACME",
        name=device["name"],
        type=device["type"]["id"],
        serial_number=device["serialNumber"],
        ip_address=NEW_IP,
    )


def sent(app) -> list[tuple[str, str]]:
    return [(r["method"], r["path"]) for r in app.state.request_log]


async def test_a_lost_answer_to_a_patch_that_was_applied_is_read_back_and_reported_updated():
    app = sandbox_app()
    device = seeded_device(app)
    script_faults(app, patch=["drop_after_commit"] * ATTEMPTS)
    result = await upsert_configuration(sandbox_session(app), new_ip(device))
    assert (result.outcome, result.configuration_id) == ("updated", device["id"])
    assert sent(app)[-1] == ("GET", f"/company/configurations/{device['id']}")


async def test_a_lost_answer_to_a_patch_not_applied_is_an_unknown_outcome():
    app = sandbox_app()
    device = seeded_device(app)
    script_faults(app, patch=["drop_before"] * ATTEMPTS)
    with pytest.raises(OutcomeUnknown) as unknown:
        await upsert_configuration(sandbox_session(app), new_ip(device))
    assert str(unknown.value) == (
        f"Configuration {device['id']} (tenant acme) does not show the change of ipAddress; send the device again."
    )
    assert unknown.value.look is Look.FIND_CONFIGURATION
    assert app.state.store["configurations"][device["id"]]["ipAddress"] != NEW_IP


async def test_a_lost_answer_whose_read_back_fails_too_is_an_unknown_outcome():
    app = sandbox_app()
    device = seeded_device(app)
    record_path = f"/company/configurations/{device['id']}"

    def pick() -> str | None:  # every PATCH's answer lost, and every read of the record refused
        last = app.state.request_log[-1]
        return {"PATCH": "drop_before", "GET": "error_503" if last["path"] == record_path else None}[last["method"]]

    app.state.faults.pick = pick
    with pytest.raises(OutcomeUnknown) as unknown:
        await upsert_configuration(sandbox_session(app), new_ip(device))
    assert str(unknown.value) == (
        f"It is unknown whether configuration {device['id']} (tenant acme) was changed: ConnectWise gave no answer "
        "to the change, and reading it back failed too. Send the device again: the same values change nothing twice."
    )


async def test_a_lost_answer_without_time_left_to_read_it_back_is_an_unknown_outcome(monkeypatch):
    monkeypatch.setattr(write_recovery, "SETTLE_SECONDS", 2.0)
    app = sandbox_app()
    device = seeded_device(app)
    script_faults(app, patch=["drop_before"] * ATTEMPTS)
    too_little = write_recovery.SETTLE_SECONDS + write_recovery.LOOK_SECONDS - 1
    with call_scope(too_little, clock=lambda: 0.0), pytest.raises(OutcomeUnknown) as unknown:
        await upsert_configuration(sandbox_session(app), new_ip(device))
    assert str(unknown.value) == (
        f"It is unknown whether configuration {device['id']} (tenant acme) was changed: ConnectWise gave no answer "
        "to the change, and the call had no time left to read it back. Send the device again: the same values "
        "change nothing twice."
    )
    assert sent(app)[-1][0] == "PATCH"  # not read back


async def test_a_200_that_does_not_show_the_change_is_reported_failed():
    app = sandbox_app()
    device = seeded_device(app)

    with pytest.raises(Failed) as failed:
        await upsert_configuration(sandbox_session(app, transport=PatchesSubPaths(app, "ipAddress")), new_ip(device))
    assert str(failed.value) == (
        f"Configuration {device['id']} (tenant acme) does not show the change of ipAddress; send the device again."
    )
    assert failed.value.look is Look.FIND_CONFIGURATION


async def test_a_device_deleted_after_it_was_read_is_reported_gone():
    app = sandbox_app()
    device = seeded_device(app)

    class DeletesBeforePatch(Rewriting):
        def request_json(self, request, body):
            if request.method == "PATCH":
                del app.state.store["configurations"][device["id"]]
            return body

    with pytest.raises(Failed) as failed:
        await upsert_configuration(sandbox_session(app, transport=DeletesBeforePatch(app)), new_ip(device))
    assert str(failed.value) == (
        f"Configuration {device['id']} was deleted from ConnectWise (tenant acme) after it was read; send the "
        "device again to create it."
    )
