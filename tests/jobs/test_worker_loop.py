"""The worker's loop in one process: a busy worker sleeps until a slot frees, which wakes it at once."""

from __future__ import annotations

import asyncio
from typing import Literal

from allo.kit.db import Database
from allo.kit.jobs import JobContext, JobRegistry, Worker, enqueue


class CountingEvent(asyncio.Event):
    """An event that counts how often someone starts waiting on it."""

    def __init__(self) -> None:
        super().__init__()
        self.waits = 0

    async def wait(self) -> Literal[True]:
        self.waits += 1
        return await super().wait()


async def test_a_full_worker_waits_for_a_free_slot_then_runs_the_next_job(own_db: Database) -> None:
    started, release = asyncio.Event(), asyncio.Event()
    ran: list[int] = []
    registry = JobRegistry()

    @registry.handler("test.slow")
    async def slow(ctx: JobContext) -> None:
        ran.append(ctx.payload["n"])
        started.set()
        await release.wait()

    wakeup = CountingEvent()
    # A poll far beyond the test's time limit: only the wake-ups can move the worker on.
    worker = Worker(own_db, job_registry=registry, concurrency=1, wakeup=wakeup, poll_seconds=60)
    async with own_db.unit_of_work() as s:
        await enqueue(s, "test.slow", {"n": 1})
    stop = asyncio.Event()
    loop = asyncio.create_task(worker.run(stop))
    try:
        async with asyncio.timeout(20):
            await started.wait()
            async with own_db.unit_of_work() as s:
                await enqueue(s, "test.slow", {"n": 2})
            for _ in range(50):  # jobs enqueued while every slot is taken (the bus would wake it so)
                wakeup.set()
                await asyncio.sleep(0.002)
            waits_while_full = wakeup.waits
            assert waits_while_full < 60, "the full worker woke and waited again without end"
            started.clear()
            release.set()  # the first job ends: its slot frees, which wakes the loop
            await started.wait()
            assert ran == [1, 2]
    finally:
        stop.set()
        release.set()
        async with asyncio.timeout(20):
            await loop
