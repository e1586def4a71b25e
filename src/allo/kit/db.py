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
# Marks one that only reads, so SQLite begins no transaction (SQLAlchemy's AUTOCOMMIT level would reset
# the connection with PRAGMAs, a thread hop each, on every checkout and return).
READ_OPTION = "allo_read"
WRITE_GATE_TIMEOUT = 30.0
_GATE_KEY = "allo_write_gate"
_BEGUN_KEY = "allo_begun"  # SQLite: a BEGIN was issued on the connection and not yet ended


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
        options = connection.get_execution_options()
        if options.get(READ_OPTION, False):
            return  # a reader: each statement is its own transaction
        write = options.get(WRITE_OPTION, False)
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
        connection.connection.info[_BEGUN_KEY] = True

    def _release(info: dict[str, Any] | None) -> None:
        gate = info.pop(_GATE_KEY, None) if info is not None else None
        if gate is not None and gate.locked():
            gate.release()

    # The gate opens once SQLite's COMMIT or ROLLBACK has returned, not at SQLAlchemy's commit event
    # (which fires before it): a writer let in earlier finds SQLite's lock still held, and its busy
    # handler sleeps a millisecond or more each time, which under a burst left a fifth of the process
    # idle.
    def ending(plain_end: Any) -> Any:
        # Nothing to end when no BEGIN was issued (a reader): skipping it saves a thread round trip.
        def end(connection: Any) -> None:
            info = _info_of(connection)
            try:
                if info is None or info.pop(_BEGUN_KEY, False):
                    plain_end(connection)
            finally:
                _release(info)

        return end

    dialect = engine.sync_engine.dialect
    dialect.do_commit = ending(dialect.do_commit)  # type: ignore[method-assign]
    dialect.do_rollback = ending(dialect.do_rollback)  # type: ignore[method-assign]

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


class ReadOnlySession(Exception):
    """A reader session was asked to write."""


class ReaderSession(Session):
    """A session that only reads: any write through it fails (it would not be atomic, and a read-only
    request must not write)."""


@event.listens_for(ReaderSession, "do_orm_execute")
def _refuse_statements_that_write(state: Any) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        raise ReadOnlySession(f"a reading session cannot run {state.statement.__visit_name__.upper()}")


@event.listens_for(ReaderSession, "before_flush")
def _refuse_flushes_that_write(session: Session, _context: Any, _instances: Any) -> None:
    if session.new or session.deleted or any(session.is_modified(row) for row in session.dirty):
        raise ReadOnlySession("a reading session cannot flush changes")


class Database:
    """The engine and its two session factories.

    Readers run each statement on its own (autocommit): no BEGIN and COMMIT around a request's reads,
    which on PostgreSQL are two round trips and on SQLite two thread hops. The snapshot is per statement,
    as it already was under PostgreSQL's READ COMMITTED; a reader that tries to write fails. Writers
    begin with the write lock on SQLite (BEGIN IMMEDIATE), lazily at their first statement, so that
    concurrent writers queue instead of failing; on PostgreSQL they are ordinary transactions.
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
            engine.execution_options(isolation_level="AUTOCOMMIT")
            if engine.dialect.name == "postgresql"
            else engine.execution_options(**{READ_OPTION: True}),
            expire_on_commit=False,
            autoflush=False,
            info=self.info,
            sync_session_class=ReaderSession,
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

        def maker(session_class: type[Session]) -> async_sessionmaker[AsyncSession]:
            return async_sessionmaker(
                bind=connection,
                expire_on_commit=False,
                autoflush=False,
                join_transaction_mode="create_savepoint",
                info=info,
                sync_session_class=session_class,
            )

        return cls(engine, reader=maker(ReaderSession), writer=maker(Session), info=info)

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
