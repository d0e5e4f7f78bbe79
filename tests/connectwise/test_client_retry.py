"""Retry decisions, their use by the client (429, 5xx, transport, ambiguous POST) and the rate budget."""

from __future__ import annotations

import asyncio

import httpx2
import pytest

from mcp_server_connectwise.connectwise import (
    AmbiguousWriteError,
    ApiCredentials,
    ClientSettings,
    ConnectWiseClient,
    NotFoundError,
    RateLimitedError,
    RequestRecord,
    RetryPolicy,
    ServerError,
    TransportError,
    ValidationError,
)
from mcp_server_connectwise.connectwise.ratelimit import BudgetWaitTooLong, RateBudget
from mcp_server_connectwise.connectwise.retry import Outcome, backoff, decide

BASE = "https://api-na.myconnectwise.net/v2025_1/apis/3.0"
RATE_LIMITED = {"error": "ConnectWiseAPI", "message": "Too many requests. Please try again in 30 seconds."}
SERVER_ERROR = {"code": "ConnectWiseApi", "message": "Length cannot be less than zero.", "errors": None}
POLICY = RetryPolicy()


class FakeTime:
    """A clock that only moves when someone sleeps: tests never really wait."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Script:
    """A ConnectWise double that plays a list of answers (a Response, or an exception to raise) in order."""

    def __init__(self, *answers: httpx2.Response | type[Exception]) -> None:
        self.answers = list(answers)
        self.requests: list[httpx2.Request] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, type):
            raise answer("simulated", request=request)
        return answer


def make_client(
    script: Script, time: FakeTime, records: list[RequestRecord] | None = None, **settings
) -> ConnectWiseClient:
    return ConnectWiseClient(
        ClientSettings(company_id="acme", client_id="client-guid", base_url=BASE, **settings),
        ApiCredentials("pub", "priv"),
        transport=httpx2.MockTransport(script),
        on_request=records.append if records is not None else None,
        sleep=time.sleep,
        clock=time.clock,
    )


# --- the decision function --------------------------------------------------------------------------


def always_max() -> float:
    return 1.0


@pytest.mark.parametrize(
    ("outcome", "idempotent", "delay"),
    [
        (Outcome(status=429, retry_after=30), False, 30.0),  # refused, nothing done: even a POST waits and retries
        (Outcome(status=429, retry_after=600), True, 60.0),  # capped by max_retry_after
        (Outcome(status=429), True, 0.5),  # no Retry-After: backoff
        (Outcome(status=503), True, 0.5),
        (Outcome(status=503), False, None),  # a POST is not re-sent after a 5xx
        (Outcome(status=None, sent=False), False, 0.5),  # never sent: safe to retry anything
        (Outcome(status=None, sent=True), True, 0.5),
        (Outcome(status=None, sent=True), False, None),  # sent, no answer: outcome unknown
        (Outcome(status=400), True, None),
        (Outcome(status=404), True, None),
        (Outcome(status=409), True, None),
    ],
)
def test_decide(outcome: Outcome, idempotent: bool, delay: float | None) -> None:
    assert decide(POLICY, 1, outcome, idempotent=idempotent, jitter=always_max) == delay


def test_decide_gives_up_after_max_attempts() -> None:
    assert decide(POLICY, 3, Outcome(status=503), idempotent=True, jitter=always_max) == 2.0
    assert decide(POLICY, 4, Outcome(status=503), idempotent=True) is None
    assert decide(POLICY, 4, Outcome(status=429, retry_after=1), idempotent=True) is None


def test_backoff_is_exponential_with_full_jitter_and_capped() -> None:
    assert [backoff(POLICY, attempt, always_max) for attempt in (1, 2, 3, 4, 5, 6)] == [0.5, 1, 2, 4, 8, 8]
    assert backoff(POLICY, 3, lambda: 0.25) == 0.5


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(base_delay=-1)


# --- the client applying the decisions --------------------------------------------------------------


async def test_429_waits_retry_after_then_succeeds() -> None:
    time = FakeTime()
    limited = httpx2.Response(429, json=RATE_LIMITED, headers={"Retry-After": "30"})
    script = Script(limited, limited, httpx2.Response(200, json={"id": 1}))
    records: list[RequestRecord] = []
    async with make_client(script, time, records) as client:
        assert await client.get("/service/tickets/1") == {"id": 1}
    assert time.sleeps == [30, 30]
    assert [(record.status, record.attempt) for record in records] == [(429, 1), (429, 2), (200, 3)]


async def test_429_wait_is_capped_and_post_is_retried() -> None:
    time = FakeTime()
    script = Script(
        httpx2.Response(429, json=RATE_LIMITED, headers={"Retry-After": "3600"}), httpx2.Response(201, json={"id": 9})
    )
    async with make_client(script, time, retry=RetryPolicy(max_retry_after=45)) as client:
        assert await client.post("/service/tickets", {"summary": "x"}) == {"id": 9}
    assert time.sleeps == [45]
    assert len(script.requests) == 2


async def test_429_that_never_clears_raises_rate_limited() -> None:
    time = FakeTime()
    script = Script(httpx2.Response(429, json=RATE_LIMITED, headers={"Retry-After": "30"}))
    async with make_client(script, time) as client:
        with pytest.raises(RateLimitedError) as caught:
            await client.get("/service/tickets/1")
    assert caught.value.retry_after == 30
    assert len(script.requests) == POLICY.max_attempts and time.sleeps == [30, 30, 30]


async def test_5xx_get_is_retried_with_backoff_then_succeeds() -> None:
    time = FakeTime()
    script = Script(
        httpx2.Response(500, json=SERVER_ERROR),
        httpx2.Response(503, text="Service Unavailable"),
        httpx2.Response(200, json=[]),
    )
    async with make_client(script, time) as client:
        assert await client.get("/service/boards") == []
    assert len(script.requests) == 3
    assert len(time.sleeps) == 2 and 0 <= time.sleeps[0] <= 0.5 and 0 <= time.sleeps[1] <= 1.0


async def test_5xx_get_gives_up_after_max_attempts() -> None:
    time = FakeTime()
    script = Script(httpx2.Response(500, json=SERVER_ERROR))
    async with make_client(script, time, retry=RetryPolicy(max_attempts=3)) as client:
        with pytest.raises(ServerError):
            await client.get("/service/boards")
    assert len(script.requests) == 3


@pytest.mark.parametrize(
    "failure", [httpx2.ReadTimeout, httpx2.RemoteProtocolError, httpx2.ReadError, httpx2.WriteTimeout]
)
async def test_post_failing_after_send_is_not_resent(failure: type[Exception]) -> None:
    time = FakeTime()
    script = Script(failure, httpx2.Response(201, json={"id": 2}))
    records: list[RequestRecord] = []
    async with make_client(script, time, records) as client:
        with pytest.raises(AmbiguousWriteError):
            await client.post("/service/tickets", {"summary": "Server down"})
    assert len(script.requests) == 1 and time.sleeps == []
    assert records == [RequestRecord("POST", "/service/tickets", None, records[0].elapsed_ms, 1)]


async def test_post_answered_5xx_is_not_resent() -> None:
    time = FakeTime()
    for answer, error in [
        (httpx2.Response(500, json=SERVER_ERROR), ServerError),
        (httpx2.Response(504, text="Gateway Timeout"), AmbiguousWriteError),
    ]:
        script = Script(answer, httpx2.Response(201, json={"id": 2}))
        async with make_client(script, time) as client:
            with pytest.raises(error):
                await client.post("/service/tickets", {"summary": "Server down"})
        assert len(script.requests) == 1


@pytest.mark.parametrize("failure", [httpx2.ConnectError, httpx2.ConnectTimeout, httpx2.PoolTimeout])
async def test_post_that_never_left_is_retried(failure: type[Exception]) -> None:
    time = FakeTime()
    script = Script(failure, httpx2.Response(201, json={"id": 3}))
    async with make_client(script, time) as client:
        assert await client.post("/service/tickets", {"summary": "x"}) == {"id": 3}
    assert len(script.requests) == 2 and len(time.sleeps) == 1


async def test_get_read_timeout_is_retried_and_finally_a_transport_error() -> None:
    time = FakeTime()
    script = Script(httpx2.ReadTimeout)
    async with make_client(script, time) as client:
        with pytest.raises(TransportError):
            await client.get("/service/tickets/1")
    assert len(script.requests) == POLICY.max_attempts


async def test_replace_patch_is_retried_but_add_patch_is_not() -> None:
    time = FakeTime()
    replace = [{"op": "replace", "path": "status", "value": {"id": 123}}]
    script = Script(httpx2.ReadTimeout, httpx2.Response(200, json={"id": 5}))
    async with make_client(script, time) as client:
        assert await client.patch("/service/tickets/5", replace) == {"id": 5}
    assert len(script.requests) == 2

    script = Script(httpx2.ReadTimeout, httpx2.Response(200, json={"id": 5}))
    add = [{"op": "add", "path": "customFields", "value": []}]
    async with make_client(script, time) as client:
        with pytest.raises(AmbiguousWriteError):
            await client.patch("/service/tickets/5", add)
    assert len(script.requests) == 1


REPLACE_SUMMARY = [{"op": "replace", "path": "summary", "value": "Printer fixed"}]
IDEMPOTENT_WRITES = {
    "PATCH": lambda client: client.patch("/service/tickets/5", REPLACE_SUMMARY),
    "PUT": lambda client: client.put("/service/tickets/5", {"id": 5, "summary": "Printer fixed"}),
    "DELETE": lambda client: client.delete("/service/tickets/5/notes/7"),
}


@pytest.mark.parametrize("method", IDEMPOTENT_WRITES)
async def test_idempotent_write_sent_every_time_without_answer_is_ambiguous(method: str) -> None:
    """Retried because it is idempotent, but any attempt may have been applied: the outcome is unknown."""
    time = FakeTime()
    script = Script(httpx2.ReadTimeout)
    async with make_client(script, time) as client:
        with pytest.raises(AmbiguousWriteError) as caught:
            await IDEMPOTENT_WRITES[method](client)
    assert len(script.requests) == POLICY.max_attempts and {r.method for r in script.requests} == {method}
    assert (caught.value.method, caught.value.status) == (method, None)


@pytest.mark.parametrize(
    "answers",
    [
        (httpx2.ReadTimeout, httpx2.ConnectError),  # the last attempt never left, an earlier one did
        (httpx2.Response(504, text="Gateway Timeout"),),  # gateways answer, ConnectWise never did
        (httpx2.ReadTimeout, httpx2.Response(503, json=SERVER_ERROR)),
        (httpx2.ReadTimeout, httpx2.Response(429, json=RATE_LIMITED)),
    ],
    ids=["timeout-then-unreachable", "gateway-timeouts", "timeout-then-5xx", "timeout-then-429"],
)
async def test_idempotent_patch_that_may_have_landed_earlier_is_ambiguous(answers: tuple) -> None:
    time = FakeTime()
    async with make_client(Script(*answers), time) as client:
        with pytest.raises(AmbiguousWriteError):
            await client.patch("/service/tickets/5", REPLACE_SUMMARY)


async def test_write_that_never_left_or_was_refused_is_not_ambiguous() -> None:
    time = FakeTime()
    async with make_client(Script(httpx2.ConnectError), time) as client:
        with pytest.raises(TransportError):
            await client.patch("/service/tickets/5", REPLACE_SUMMARY)
    async with make_client(Script(httpx2.Response(503, json=SERVER_ERROR)), time) as client:
        with pytest.raises(ServerError):  # ConnectWise itself answered every attempt: it failed
            await client.put("/service/tickets/5", {"id": 5})
    async with make_client(Script(httpx2.ReadTimeout, httpx2.Response(404, json={"code": "NotFound"})), time) as client:
        with pytest.raises(NotFoundError):  # the retry proves the ticket is not there
            await client.patch("/service/tickets/5", REPLACE_SUMMARY)


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (
            400,
            {
                "code": "InvalidObject",
                "message": "ticket object is invalid",
                "errors": [
                    {"code": "InvalidField", "message": "summary is too long", "resource": "ticket", "field": "summary"}
                ],
            },
            ValidationError,
        ),
        (404, {"code": "NotFound", "message": "Ticket 1255787 not found"}, NotFoundError),
    ],
)
async def test_no_retry_on_400_or_404(status: int, body: dict, error: type[Exception]) -> None:
    time = FakeTime()
    script = Script(httpx2.Response(status, json=body), httpx2.Response(200, json={}))
    async with make_client(script, time) as client:
        with pytest.raises(error):
            await client.put("/service/tickets/1255787", {"summary": "x" * 101})
    assert len(script.requests) == 1 and time.sleeps == []


# --- the rate budget --------------------------------------------------------------------------------


async def test_rate_budget_paces_requests_at_its_rate_after_a_small_burst() -> None:
    time = FakeTime()
    budget = RateBudget(600, clock=time.clock, sleep=time.sleep)  # 10 a second, a burst of 10
    started = []
    for _ in range(13):
        await budget.acquire()
        started.append(round(time.now, 3))
    assert started == [0.0] * 10 + [0.1, 0.2, 0.3]


async def test_no_60_seconds_see_more_than_the_budget_and_its_burst() -> None:
    time = FakeTime()
    budget = RateBudget(120, clock=time.clock, sleep=time.sleep)  # 2 a second, a burst of 2
    started = []
    for _ in range(400):
        await budget.acquire()
        started.append(time.now)
    most = max(sum(1 for s in started if t <= s < t + 60) for t in started)
    assert most <= 120 + 2


async def test_waiting_callers_are_served_round_robin() -> None:
    time = FakeTime()

    async def sleep(seconds: float) -> None:  # lets the other tasks run, as a real sleep does
        await time.sleep(seconds)
        await asyncio.sleep(0)

    budget = RateBudget(60, burst=1, clock=time.clock, sleep=sleep)  # one a second
    await budget.acquire("busy")  # the burst
    served: list[str] = []

    async def one(caller: str) -> None:
        await budget.acquire(caller)
        served.append(caller)

    busy = [asyncio.ensure_future(one("busy")) for _ in range(20)]
    await asyncio.sleep(0)
    other = asyncio.ensure_future(one("other"))
    await asyncio.gather(*busy, other)
    assert served.index("other") <= 1  # behind at most the one busy request already at the head


async def test_a_wait_past_the_callers_limit_is_refused_at_once_with_the_wait() -> None:
    time = FakeTime()
    budget = RateBudget(60, burst=1, clock=time.clock, sleep=time.sleep)
    await budget.acquire()
    waiting = [asyncio.ensure_future(budget.acquire()) for _ in range(5)]
    await asyncio.sleep(0)
    with pytest.raises(BudgetWaitTooLong) as refused:
        await budget.acquire(max_wait=3.0)
    assert refused.value.wait == pytest.approx(6.0) and time.sleeps == []
    await asyncio.gather(*waiting)


async def test_client_waits_instead_of_exceeding_requests_per_minute() -> None:
    time = FakeTime()
    script = Script(httpx2.Response(200, json={}))
    started_at: list[float] = []
    records: list[RequestRecord] = []
    async with make_client(script, time, records, requests_per_minute=3) as client:
        for _ in range(4):
            await client.get("/system/info")
            started_at.append(time.now)
    assert len(script.requests) == 4
    assert started_at == [0.0, 20.0, 40.0, 60.0]  # paced at 3 a minute, and none failed
    assert [record.budget_wait_ms for record in records] == [0.0, 20_000.0, 20_000.0, 20_000.0]


def test_rate_budget_rejects_zero() -> None:
    with pytest.raises(ValueError):
        RateBudget(0)
