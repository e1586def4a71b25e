"""A scratch PostgreSQL database for one benchmark run on the local server, dropped afterwards."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg

SERVER = "postgresql://postgres@127.0.0.1:5432"
PG = "postgresql+asyncpg://postgres@127.0.0.1:5432"


async def _ddl(statement: str) -> None:
    admin = await asyncpg.connect(f"{SERVER}/postgres", timeout=3)
    try:
        await admin.execute(statement)
    finally:
        await admin.close()


@contextmanager
def scratch_postgresql(prefix: str) -> Iterator[str | None]:
    """The SQLAlchemy URL of a new, empty database, or None when no PostgreSQL answers (the reason goes
    to stderr); the database is dropped on the way out, whatever happened inside."""
    name = f"allo_bench_{prefix}_{uuid.uuid4().hex[:8]}"
    try:
        asyncio.run(_ddl(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        print(f"PostgreSQL unavailable ({type(exc).__name__}: {exc}); skipped", file=sys.stderr)
        yield None
        return
    try:
        yield f"{PG}/{name}"
    finally:
        asyncio.run(_ddl(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
