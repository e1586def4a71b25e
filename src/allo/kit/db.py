"""Engines, sessions and the portable column types (UUID, JSON/JSONB, aware timestamps)."""

from __future__ import annotations

import asyncio
import uuid
import weakref
from collections import namedtuple
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, ClassVar

import orjson
from sqlalchemy import JSON, DateTime, MetaData, Row, Table, TypeDecorator, Uuid, event
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.pool import NullPool
from sqlalchemy.util import await_

# Stable constraint names so that Alembic migrations are the same on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Marks a session (or connection) that will write, so SQLite takes the write lock up front.
WRITE_OPTION = "allo_write"
WRITE_GATE_TIMEOUT = 30.0
_GATE_KEY = "allo_write_gate"


class WriterQueueTimeout(Exception):
    """A write transaction waited for its turn longer than SQLite's own busy timeout would have."""


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware timestamps on every engine; SQLite stores them as naive UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; use kit.time.utc_now()")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONType = JSON().with_variant(JSONB(), "postgresql")
GUID = Uuid(as_uuid=True)


def new_id() -> uuid.UUID:
    return uuid.uuid4()


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        uuid.UUID: GUID,
        dict[str, Any]: JSONType,
    }


class IdMixin:
    id: Mapped[uuid.UUID] = mapped_column(GUID, primary_key=True, default=new_id)


def _info_of(connection: Any) -> dict[str, Any] | None:
    """The pooled connection's info, where a write transaction keeps its gate; None for the ad hoc
    connections SQLAlchemy wraps around a raw one (while connecting, or resetting on return)."""
    try:
        info: dict[str, Any] = connection.info
    except NotImplementedError:
        return None
    return info


def _configure_sqlite(engine: AsyncEngine) -> None:
    """WAL, foreign keys, a busy timeout, and BEGIN IMMEDIATE for writers.

    pysqlite's own transaction handling is turned off so that SAVEPOINTs work and so that a write
    transaction takes the write lock at BEGIN instead of failing with "database is locked" when it
    upgrades a read lock under contention.
    """

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    # One writer at a time per process and event loop, queued here: SQLite allows one writer anyway, and
    # writers left to contend for its lock poll with sleeps of up to 100 ms (its busy handler), which
    # under a burst costs far more than the writes themselves. Other processes still queue on the lock.
    gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()

    def _gate() -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        gate = gates.get(loop)
        if gate is None:
            gate = gates[loop] = asyncio.Lock()
        return gate

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        write = connection.get_execution_options().get(WRITE_OPTION, False)
        if write:
            gate = _gate()
            try:
                await_(asyncio.wait_for(gate.acquire(), timeout=WRITE_GATE_TIMEOUT))
            except TimeoutError as exc:
                raise WriterQueueTimeout(
                    f"no write transaction could start within {WRITE_GATE_TIMEOUT:.0f} s"
                ) from exc
            connection.connection.info[_GATE_KEY] = gate
        try:
            # Straight to aiosqlite: one thread round trip instead of the four of a cursor's execute.
            await_(connection.connection.driver_connection.execute("BEGIN IMMEDIATE" if write else "BEGIN"))
        except BaseException:
            _release(connection.connection.info)
            raise

    def _release(info: dict[str, Any] | None) -> None:
        gate = info.pop(_GATE_KEY, None) if info is not None else None
        if gate is not None and gate.locked():
            gate.release()

    # The gate opens once SQLite's COMMIT or ROLLBACK has returned, not at SQLAlchemy's commit event
    # (which fires before it): a writer let in earlier finds SQLite's lock still held, and its busy
    # handler sleeps a millisecond or more each time, which under a burst left a fifth of the process
    # idle.
    dialect = engine.sync_engine.dialect
    plain_commit, plain_rollback = dialect.do_commit, dialect.do_rollback

    def do_commit(connection: Any) -> None:
        try:
            plain_commit(connection)
        finally:
            _release(_info_of(connection))

    def do_rollback(connection: Any) -> None:
        try:
            plain_rollback(connection)
        finally:
            _release(_info_of(connection))

    dialect.do_commit = do_commit  # type: ignore[method-assign,assignment]
    dialect.do_rollback = do_rollback  # type: ignore[method-assign,assignment]

    # A connection invalidated or returned without either (a lost connection) opens the gate too.
    @event.listens_for(engine.sync_engine.pool, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            _release(record.info)

    @event.listens_for(engine.sync_engine.pool, "invalidate")
    def _on_invalidate(_dbapi_connection: Any, record: Any, _exception: Any) -> None:
        _release(record.info)


def _json_text(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


# JSON columns through orjson: the standard library's decoder was a tenth of a ticket list's time.
_JSON_CODEC: dict[str, Any] = {"json_serializer": _json_text, "json_deserializer": orjson.loads}


def create_engine(url: str, *, pool_size: int = 20, echo: bool = False) -> AsyncEngine:
    """A pooled engine without overflow: in a burst, requests wait for a pooled connection instead of
    opening and closing extra ones (a connection set-up per request, and on PostgreSQL a TLS
    attempt, exactly when the server is busiest)."""
    if url.startswith("sqlite"):
        # No rollback on return to the pool: every session ends its own transaction (commit, rollback or
        # close), and with aiosqlite the extra rollback is a thread round trip on every request.
        engine = create_async_engine(
            url, echo=echo, pool_size=pool_size, max_overflow=0, pool_reset_on_return=None, **_JSON_CODEC
        )
        _configure_sqlite(engine)
        return engine
    if url.startswith("postgresql"):
        # No pre-ping: it costs a round trip per request. A connection found dead is invalidated with
        # the whole pool on first use, so a database restart fails the requests in flight, not later ones.
        return create_async_engine(
            url, echo=echo, pool_size=pool_size, max_overflow=0, pool_recycle=1800, **_JSON_CODEC
        )
    raise ValueError(f"unsupported database URL scheme: {url.split(':', 1)[0]!r}")


def create_nullpool_engine(url: str) -> AsyncEngine:
    """An engine for one-off commands (migrations, CLI) that keeps no connection open."""
    engine = create_async_engine(url, poolclass=NullPool, **_JSON_CODEC)
    if url.startswith("sqlite"):
        _configure_sqlite(engine)
    return engine


class Database:
    """The engine and its two session factories.

    Readers begin a plain transaction; writers begin with the write lock on SQLite (BEGIN IMMEDIATE),
    lazily at their first statement, so that concurrent writers queue on the busy timeout instead of
    failing. On PostgreSQL both are ordinary transactions.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        reader: async_sessionmaker[AsyncSession] | None = None,
        writer: async_sessionmaker[AsyncSession] | None = None,
        info: dict[str, Any] | None = None,
    ) -> None:
        self.engine = engine
        self.info = info if info is not None else {}
        self.reader = reader or async_sessionmaker(
            engine, expire_on_commit=False, autoflush=False, info=self.info
        )
        self.writer = writer or async_sessionmaker(
            engine.execution_options(**{WRITE_OPTION: True}),
            expire_on_commit=False,
            autoflush=False,
            info=self.info,
        )

    @classmethod
    def bound_to(cls, connection: AsyncConnection, engine: AsyncEngine, info: dict[str, Any]) -> Database:
        """Sessions that join an outer transaction through SAVEPOINTs (tests roll it back afterwards)."""
        maker = async_sessionmaker(
            bind=connection,
            expire_on_commit=False,
            autoflush=False,
            join_transaction_mode="create_savepoint",
            info=info,
        )
        return cls(engine, reader=maker, writer=maker, info=info)

    @property
    def is_postgresql(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def session(self, *, write: bool) -> AsyncSession:
        return (self.writer if write else self.reader)()

    @asynccontextmanager
    async def unit_of_work(self, *, write: bool = True) -> AsyncIterator[AsyncSession]:
        """One transaction: committed when the block ends, rolled back when it raises."""
        async with self.session(write=write) as session:
            try:
                yield session
                await session.commit()
            except BaseException:
                await session.rollback()
                raise

    async def dispose(self) -> None:
        await self.engine.dispose()


def table_of(model: type[Any]) -> Table:
    """A mapped class's table: Core statements on it skip the ORM's per-row bookkeeping (bulk inserts)."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


_ROW_TYPES: dict[tuple[str, ...], Any] = {}  # named tuple classes by field names


def plain_rows(rows: Iterable[Row[Any]]) -> list[Any]:
    """Rows as named tuples, whose fields read at C speed: a Row's attribute goes through SQLAlchemy's
    key lookup, twenty times slower, which a list that reads every field of every row pays in full."""
    out: list[Any] = []
    make: Callable[[Iterable[Any]], Any] | None = None
    for row in rows:
        if make is None:
            kind: Any = _ROW_TYPES.get(row._fields)
            if kind is None:
                kind = _ROW_TYPES[row._fields] = namedtuple("PlainRow", row._fields)
            make = kind._make
        out.append(make(row))
    return out


def is_postgresql(session: AsyncSession | Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


async def flush_or_conflict(session: AsyncSession, message: str, *, code: str = "conflict") -> None:
    """Flush, turning a uniqueness race lost to a concurrent request into a 409.

    The transaction cannot go on after the failed statement: the 409 ends the request, which rolls
    it back. A caller that must continue adds its rows inside `session.begin_nested()` instead.
    """
    from sqlalchemy.exc import IntegrityError

    from allo.kit.errors import Conflict

    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict(message, code=code) from exc
