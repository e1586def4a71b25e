"""Live events leave only with a commit: in-process on SQLite, through LISTEN/NOTIFY on PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from allo.kit.bus import BUS_INFO_KEY, Bus, Event, PgListener, asyncpg_dsn, publish_on_commit
from allo.kit.db import Database, create_engine
from allo.kit.jobs import enqueue
from allo.kit.migrate import upgrade


class Boom(Exception):
    pass


async def test_events_are_published_after_commit_and_dropped_on_rollback(db: Database, bus: Bus) -> None:
    tenant = uuid.uuid4()
    async with bus.subscribe(tenant) as queue:
        with pytest.raises(Boom):
            async with db.unit_of_work() as s:
                publish_on_commit(s, Event("test.rolled_back", tenant))
                raise Boom
        async with db.unit_of_work() as s:
            publish_on_commit(s, Event("test.committed", tenant, {"n": 1}))
            assert queue.empty()  # not before the commit
        if db.is_postgresql:
            return  # delivered by the LISTEN connection; see the PostgreSQL test below
        delivered = queue.get_nowait()
        assert (delivered.type, delivered.data) == ("test.committed", {"n": 1})
        assert queue.empty()


async def test_savepoints_neither_publish_nor_drop_the_transactions_events(db: Database, bus: Bus) -> None:
    tenant = uuid.uuid4()
    async with bus.subscribe(tenant) as queue:
        async with db.unit_of_work() as s:
            publish_on_commit(s, Event("test.before_savepoints", tenant))
            async with s.begin_nested():
                publish_on_commit(s, Event("test.in_released_savepoint", tenant))
            assert queue.empty()  # a released SAVEPOINT is not a commit
            with pytest.raises(Boom):
                async with s.begin_nested():
                    raise Boom
            # A rolled-back SAVEPOINT leaves the transaction's events alone.
        if db.is_postgresql:
            return  # delivered by the LISTEN connection
        delivered = [queue.get_nowait().type for _ in range(queue.qsize())]
        assert delivered == ["test.before_savepoints", "test.in_released_savepoint"]


async def test_subscribers_see_only_their_tenant(bus: Bus) -> None:
    mine, theirs = uuid.uuid4(), uuid.uuid4()
    async with bus.subscribe(mine) as queue, bus.subscribe(None) as everything:
        bus.publish_local(Event("a", theirs))
        bus.publish_local(Event("b", mine))
        assert [queue.get_nowait().type] == ["b"] and queue.empty()
        assert everything.qsize() == 2
    assert bus.subscriber_count == 0


async def test_a_full_subscriber_queue_does_not_block_publishing() -> None:
    bus = Bus(queue_size=2)
    tenant = uuid.uuid4()
    async with bus.subscribe(tenant) as queue:
        for i in range(5):
            bus.publish_local(Event(f"e{i}", tenant))
        assert queue.qsize() == 2


def test_events_round_trip_through_json() -> None:
    event = Event("ticket.created", uuid.uuid4(), {"ticket_id": "x"})
    assert Event.from_json(event.to_json()) == event


async def test_postgresql_notifications_cross_processes(fresh_database_url: str) -> None:
    if not fresh_database_url.startswith("postgresql"):
        pytest.skip("LISTEN/NOTIFY is the PostgreSQL transport; SQLite publishes in-process")
    await upgrade(fresh_database_url)
    # Two Databases with their own buses stand for two processes: a web process and a worker.
    web_bus, worker_bus = Bus(), Bus()
    web = Database(create_engine(fresh_database_url, pool_size=2), info={BUS_INFO_KEY: web_bus})
    listener = PgListener(asyncpg_dsn(fresh_database_url), worker_bus, retry_seconds=0.1)
    task = asyncio.create_task(listener.run())
    tenant = uuid.uuid4()
    try:
        await asyncio.wait_for(listener.connected.wait(), timeout=10)
        worker_bus.job_wakeup.clear()
        async with worker_bus.subscribe(tenant) as queue:
            with pytest.raises(Boom):
                async with web.unit_of_work() as s:
                    publish_on_commit(s, Event("test.rolled_back", tenant))
                    raise Boom
            async with web.unit_of_work() as s:
                publish_on_commit(s, Event("ticket.created", tenant, {"ticket_id": "42"}))
                await enqueue(s, "test.wake")
            received = await asyncio.wait_for(queue.get(), timeout=10)
            assert (received.type, received.data) == ("ticket.created", {"ticket_id": "42"})
            await asyncio.wait_for(worker_bus.job_wakeup.wait(), timeout=10)
            async with web.unit_of_work() as s:  # over PostgreSQL's 8000-byte notification limit
                publish_on_commit(s, Event("note.added", tenant, {"body": "x" * 10_000}))
            large = await asyncio.wait_for(queue.get(), timeout=10)
            assert (large.type, large.data) == ("note.added", {"truncated": True})
            await asyncio.sleep(0.2)
            assert queue.empty()  # the rolled-back event never arrived
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await web.dispose()
