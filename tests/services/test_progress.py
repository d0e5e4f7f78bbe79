"""`services.progress`: counts reported as work is done, in order, in concurrent tasks too, never failing a call."""

from __future__ import annotations

import asyncio

from mcp_server_connectwise.services import progress


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[float, float | None, str | None]] = []

    async def __call__(self, done: float, total: float | None, message: str | None) -> None:
        self.sent.append((done, total, message))


async def test_a_batch_done_in_concurrent_tasks_reports_each_unit_in_increasing_order():
    recorder = Recorder()

    async def one_device(index: int) -> None:
        await asyncio.sleep(index % 7 / 1000)  # they finish out of order
        await progress.advance(total=200, what="devices done")

    with progress.reporting(recorder):
        async with asyncio.TaskGroup() as group:
            for index in range(200):
                group.create_task(one_device(index))
    assert [done for done, _, _ in recorder.sent] == list(range(1, 201))
    assert {total for _, total, _ in recorder.sent} == {200}
    assert recorder.sent[-1][2] == "devices done: 200 of 200"


async def test_a_walk_of_unknown_length_reports_what_it_has_read_and_skips_nothing_read():
    recorder = Recorder()
    with progress.reporting(recorder):
        for page in (1000, 1000, 0, 351):
            await progress.advance(page, what="tickets read")
    assert recorder.sent == [
        (1000, None, "tickets read: 1000"),
        (2000, None, "tickets read: 2000"),
        (2351, None, "tickets read: 2351"),
    ]


async def test_outside_a_reporting_call_nothing_happens():
    await progress.advance(total=3, what="devices done")  # a service called directly: no runtime, no reporter


async def test_a_report_that_cannot_be_sent_stops_the_reports_not_the_work():
    sent = []

    async def gone(done, total, message):
        sent.append(done)
        raise ConnectionResetError("the client went away")

    with progress.reporting(gone):
        for _ in range(3):
            await progress.advance(what="tickets read")
    assert sent == [1]


async def test_each_call_counts_on_its_own():
    first, second = Recorder(), Recorder()

    async def call(recorder: Recorder, units: int) -> None:
        with progress.reporting(recorder):
            for _ in range(units):
                await progress.advance(what="pages read")
                await asyncio.sleep(0)

    await asyncio.gather(call(first, 3), call(second, 2))
    assert [done for done, _, _ in first.sent] == [1, 2, 3]
    assert [done for done, _, _ in second.sent] == [1, 2]


async def test_counted_tasks_count_when_they_finish_and_a_failed_one_counts_nothing():
    recorder = Recorder()

    async def device(index: int) -> int:
        if index == 3:
            raise ValueError("a bug in one device's write")
        return index

    with progress.reporting(recorder):
        results = await asyncio.gather(
            *(progress.counted(device(index), total=5, what="devices written") for index in range(5)),
            return_exceptions=True,
        )
    assert results[:3] == [0, 1, 2] and isinstance(results[3], ValueError) and results[4] == 4
    assert [done for done, _, _ in recorder.sent] == [1, 2, 3, 4] and recorder.sent[-1][1] == 5
