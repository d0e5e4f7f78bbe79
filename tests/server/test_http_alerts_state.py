"""POST /alerts with a shared state store (a real Redis): while the store cannot be reached no alert is handled
(503, a JSON error, Retry-After) and nothing reaches ConnectWise; once it answers again, alerts are handled
without a restart."""

from __future__ import annotations

import asyncio

import httpx2

from mcp_server_connectwise.http_ops import STATE_STORE_WARNING
from mcp_server_connectwise.state.redis.connection import CHECK_SECONDS_WHILE_UNREACHABLE
from server.test_http_alerts import ALERT, post, serving

from support.state_store import state_config


async def health(served) -> httpx2.Response:
    async with httpx2.AsyncClient() as http:
        return await http.get(served.base + "/health")


def writes(served) -> list[dict]:
    return [request for request in served.requests() if request["method"] != "GET"]


async def test_alerts_answer_503_while_the_store_is_down_and_are_handled_once_it_is_back(tmp_path, redis_server):
    async with serving(tmp_path, state=state_config(redis_server)) as served:
        assert (await post(served, ALERT)).json()["results"][0]["outcome"] == "created"
        sent = len(writes(served))

        redis_server.stop()
        for attempt in range(2):  # the first finds the store gone, the second is refused before anything runs
            refused = await post(served, ALERT | {"alert_id": f"ping-acme-fw02-{attempt}"})
            assert refused.status_code == 503 and refused.headers["retry-after"] == "5", refused.text
            error = refused.json()["error"]
            assert error.startswith("No alert was handled: the shared state store cannot be reached (redis://127.0.0.1")
            assert error.endswith(
                "and without it two servers could open two tickets for one alert; send them again shortly."
            )
        assert len(writes(served)) == sent
        down = await health(served)

        redis_server.start()
        await asyncio.sleep(CHECK_SECONDS_WHILE_UNREACHABLE + 0.5)
        resumed = await post(served, ALERT | {"alert_id": "ping-acme-fw02-0"})
        back = await health(served)
    assert resumed.status_code == 200 and resumed.json()["results"][0]["outcome"] == "created", resumed.text
    assert (down.status_code, down.json()) == (200, {"status": "ok", "warning": STATE_STORE_WARNING})
    assert (back.status_code, back.json()) == (200, {"status": "ok"})
