"""Named leases in the database: one holder at a time across processes, for work that must not run twice
at once (a listener on one account). The holder renews before expiry; a dead holder's lease runs out."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from datetime import timedelta

from sqlalchemy import delete, or_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from allo.kit.db import is_postgresql
from allo.kit.time import utc_now
from allo.models.social import ListenerLease


async def acquire(session: AsyncSession, name: str, holder: str, ttl: timedelta) -> bool:
    """Take or renew the lease; False while another holder's lease runs."""
    now = utc_now()
    insert = postgresql.insert if is_postgresql(session) else sqlite.insert
    stmt = insert(ListenerLease).values(name=name, holder=holder, expires_at=now + ttl)
    stmt = stmt.on_conflict_do_update(
        index_elements=["name"],
        set_={"holder": stmt.excluded.holder, "expires_at": stmt.excluded.expires_at},
        where=or_(ListenerLease.holder == holder, ListenerLease.expires_at < now),
    )
    result = await session.execute(stmt.returning(ListenerLease.holder))
    return result.scalar_one_or_none() == holder


async def release(session: AsyncSession, name: str, holder: str) -> None:
    await session.execute(
        delete(ListenerLease).where(ListenerLease.name == name, ListenerLease.holder == holder)
    )


def holder_name() -> str:
    """Who holds a lease: this machine and process, and a random part for each holder in it."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


async def wait(stop: asyncio.Event, seconds: float, wake: asyncio.Event | None = None) -> None:
    """A holder's pause: up to `seconds`, less when `stop` (or `wake`) is set."""
    events = [stop] + ([wake] if wake is not None else [])
    waiters: list[asyncio.Future[bool]] = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=max(seconds, 0.0), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
