"""The shared harness reaches its sandbox with keys from the keyring, as production does."""

from __future__ import annotations

from support.harness import SANDBOX, make_harness


async def test_the_harness_reaches_its_sandbox_with_the_keyring_keys(tmp_path):
    harness = make_harness(tmp_path)
    async with harness.client() as client:
        result = await client.call_tool("list_board_statuses", {"board": "Service Desk"})
    assert result.is_error is False
    assert {entry["principal"] for entry in harness.requests()} == {f"{SANDBOX.company}+{SANDBOX.public_key}"}
