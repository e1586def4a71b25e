"""Live events and job wake-ups, released only when the transaction that caused them commits.

Services call `publish_on_commit(session, event)`. On SQLite (one process) events go straight to the
in-process subscribers after commit. On PostgreSQL they are sent with `pg_notify` inside the
transaction, which PostgreSQL delivers only on commit, to every process's listener (see
`PgListener`), which hands them to its own subscribers. A rolled-back transaction publishes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import event, text
from sqlalchemy.orm import Session

from allo.kit.time import utc_now

logger = logging.getLogger(__name__)

EVENTS_CHANNEL = "allo_events"
JOBS_CHANNEL = "allo_jobs"
_PENDING_EVENTS = "allo_pending_events"
_JOBS_ENQUEUED = "allo_jobs_enqueued"
BUS_INFO_KEY = "allo_bus"
MAX_NOTIFY_BYTES = 7900


@dataclass(frozen=True)
class Event:
    type: str
    tenant_id: uuid.UUID | None
    data: dict[str, Any] = field(default_factory=dict)
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    at: datetime = field(default_factory=utc_now)

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "id": str(self.id),
                "type": self.type,
                "tenant_id": str(self.tenant_id) if self.tenant_id else None,
                "data": self.data,
                "at": self.at.isoformat(),
            }
        )

    @classmethod
    def from_json(cls, raw: str | bytes) -> Event:
        obj = orjson.loads(raw)
        return cls(
            type=obj["type"],
            tenant_id=uuid.UUID(obj["tenant_id"]) if obj.get("tenant_id") else None,
            data=obj.get("data") or {},
            id=uuid.UUID(obj["id"]),
            at=datetime.fromisoformat(obj["at"]),
        )


class Bus:
    """In-process fan-out of events to subscribers, and the worker's wake-up signal."""

    def __init__(self, *, queue_size: int = 1000) -> None:
        self._subscribers: set[tuple[uuid.UUID | None, asyncio.Queue[Event]]] = set()
        self._queue_size = queue_size
        self.job_wakeup = asyncio.Event()
        self.published = 0

    def publish_local(self, ev: Event) -> None:
        self.published += 1
        for tenant_id, queue in list(self._subscribers):
            if tenant_id is not None and ev.tenant_id != tenant_id:
                continue
            try:
                queue.put_nowait(ev)
            except asyncio.QueueFull:
                # A stalled subscriber must not hold up the others; it will resynchronise from the API.
                logger.warning("event subscriber queue full; dropping %s", ev.type)

    def wake_workers(self) -> None:
        self.job_wakeup.set()

    @contextlib.asynccontextmanager
    async def subscribe(self, tenant_id: uuid.UUID | None) -> AsyncIterator[asyncio.Queue[Event]]:
        """Events of one tenant (None: of all tenants) while the block runs."""
        entry = (tenant_id, asyncio.Queue[Event](maxsize=self._queue_size))
        self._subscribers.add(entry)
        try:
            yield entry[1]
        finally:
            self._subscribers.discard(entry)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)


def publish_on_commit(session: Any, ev: Event) -> None:
    """Queue a live event that is published if, and only if, the session's transaction commits."""
    sync_session: Session = getattr(session, "sync_session", session)
    sync_session.info.setdefault(_PENDING_EVENTS, []).append(ev)


def mark_jobs_enqueued(session: Any) -> None:
    sync_session: Session = getattr(session, "sync_session", session)
    sync_session.info[_JOBS_ENQUEUED] = True


def _is_postgresql(session: Session) -> bool:
    try:
        return session.get_bind().dialect.name == "postgresql"
    except Exception:  # an unbound session has nothing to notify through
        return False


# SQLAlchemy also runs the commit and rollback hooks when a SAVEPOINT is released or rolled back: only the
# session's own transaction ending counts, or events would go out before their data is committed.


@event.listens_for(Session, "before_commit")
def _notify_in_transaction(session: Session) -> None:
    if session.in_nested_transaction() or not _is_postgresql(session):
        return
    pending: list[Event] = session.info.get(_PENDING_EVENTS, [])
    for ev in pending:
        payload = ev.to_json()
        if len(payload) > MAX_NOTIFY_BYTES:
            # PostgreSQL caps a notification at 8000 bytes; subscribers re-read what they need by id.
            payload = Event(ev.type, ev.tenant_id, {"truncated": True}, ev.id, ev.at).to_json()
        session.execute(
            text("SELECT pg_notify(:channel, :payload)"),
            {"channel": EVENTS_CHANNEL, "payload": payload.decode()},
        )
    if session.info.get(_JOBS_ENQUEUED):
        session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": JOBS_CHANNEL})


@event.listens_for(Session, "after_commit")
def _publish_after_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return
    pending: list[Event] = session.info.pop(_PENDING_EVENTS, [])
    jobs_enqueued = session.info.pop(_JOBS_ENQUEUED, False)
    bus: Bus | None = session.info.get(BUS_INFO_KEY)
    if bus is None:
        return
    if not _is_postgresql(session):
        for ev in pending:
            bus.publish_local(ev)
    if jobs_enqueued:
        bus.wake_workers()


@event.listens_for(Session, "after_rollback")
def _drop_after_rollback(session: Session) -> None:
    if session.in_nested_transaction():
        return
    session.info.pop(_PENDING_EVENTS, None)
    session.info.pop(_JOBS_ENQUEUED, None)


class PgListener:
    """One LISTEN connection per process: relays committed events and job wake-ups to the local bus."""

    def __init__(self, dsn: str, bus: Bus, *, retry_seconds: float = 2.0) -> None:
        self._dsn = dsn
        self._bus = bus
        self._retry_seconds = retry_seconds
        self.connected = asyncio.Event()

    def _on_event(self, _conn: Any, _pid: int, channel: str, payload: str) -> None:
        if channel == JOBS_CHANNEL:
            self._bus.wake_workers()
            return
        try:
            self._bus.publish_local(Event.from_json(payload))
        except (ValueError, KeyError):
            logger.warning("ignoring a malformed event notification")

    async def run(self) -> None:
        import asyncpg

        while True:
            conn = None
            try:
                conn = await asyncpg.connect(self._dsn)
                await conn.add_listener(EVENTS_CHANNEL, self._on_event)
                await conn.add_listener(JOBS_CHANNEL, self._on_event)
                closed = asyncio.Event()
                conn.add_termination_listener(lambda _c, done=closed: done.set())
                self.connected.set()
                # Wake workers once: jobs may have been enqueued while we were not listening.
                self._bus.wake_workers()
                await closed.wait()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("event listener lost its connection (%s); retrying", type(exc).__name__)
            finally:
                self.connected.clear()
                if conn is not None and not conn.is_closed():
                    with contextlib.suppress(Exception):
                        await asyncio.shield(conn.close())
            await asyncio.sleep(self._retry_seconds)


def asyncpg_dsn(sqlalchemy_url: str) -> str:
    """postgresql+asyncpg://… → postgresql://… for a raw asyncpg connection."""
    scheme, rest = sqlalchemy_url.split("://", 1)
    return "postgresql://" + rest if scheme.startswith("postgresql") else sqlalchemy_url
