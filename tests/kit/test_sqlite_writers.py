"""SQLite's writers in one process: they queue on Allo's gate, which opens only once the previous COMMIT or
ROLLBACK has returned, so none of them ever meets SQLite's lock (and its busy handler's sleeps)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from allo.kit.db import Database, create_engine


@pytest.fixture
async def impatient(tmp_path: Path) -> Any:
    """A file database whose connections fail at once on a held lock instead of waiting for it."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'writers.db'}", pool_size=8)

    @event.listens_for(engine.sync_engine, "connect")
    def _no_waiting(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=0")
        cursor.close()

    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE counter (id INTEGER PRIMARY KEY, value INTEGER)"))
        await connection.execute(text("INSERT INTO counter VALUES (1, 0)"))
    yield engine
    await engine.dispose()


async def _value(db: Database) -> int:
    async with db.unit_of_work(write=False) as session:
        return int((await session.execute(text("SELECT value FROM counter WHERE id = 1"))).scalar_one())


async def test_concurrent_writers_take_turns_without_meeting_the_lock(impatient: AsyncEngine) -> None:
    db = Database(impatient)

    async def increment() -> None:
        async with db.unit_of_work() as session:
            value = (await session.execute(text("SELECT value FROM counter WHERE id = 1"))).scalar_one()
            await asyncio.sleep(0)  # let the others try to start meanwhile
            await session.execute(text("UPDATE counter SET value = :v WHERE id = 1"), {"v": value + 1})

    # With busy_timeout 0, a writer let in before the previous COMMIT returned fails "database is locked".
    await asyncio.gather(*(increment() for _ in range(60)))
    assert await _value(db) == 60  # and no update was lost


async def test_a_failed_writer_lets_the_next_one_in(impatient: AsyncEngine) -> None:
    db = Database(impatient)
    with pytest.raises(RuntimeError):
        async with db.unit_of_work() as session:
            await session.execute(text("UPDATE counter SET value = 100 WHERE id = 1"))
            raise RuntimeError("the handler failed")
    async with asyncio.timeout(5):
        async with db.unit_of_work() as session:
            await session.execute(text("UPDATE counter SET value = value + 1 WHERE id = 1"))
    assert await _value(db) == 1  # the failed one was rolled back


async def test_a_writer_whose_connection_is_lost_lets_the_next_one_in(impatient: AsyncEngine) -> None:
    db = Database(impatient)
    session = db.session(write=True)
    await session.execute(text("UPDATE counter SET value = 100 WHERE id = 1"))
    connection = await session.connection()
    await connection.invalidate()  # as when the connection breaks under the transaction
    await session.close()
    async with asyncio.timeout(5):
        async with db.unit_of_work() as other:
            await other.execute(text("UPDATE counter SET value = value + 1 WHERE id = 1"))
    assert await _value(db) == 1
