"""Alembic, driven from code: the migrations ship inside the package (allo/migrations)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from allo.kit.db import create_nullpool_engine

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def migration_engine(url: str) -> AsyncEngine:
    """An engine for migrations. On SQLite its connections have foreign keys off: a batch migration
    rebuilds a table by dropping the old one, and with foreign keys on that DROP would delete, or null,
    every row referencing it (a conversation's messages, say). The pragma only switches outside a
    transaction, hence at connect; `check_foreign_keys` verifies the result before the commit."""
    engine = create_nullpool_engine(url)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine.sync_engine, "connect")
        def _foreign_keys_off(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=OFF")
            cursor.close()

    return engine


def check_foreign_keys(connection: Connection) -> None:
    if connection.dialect.name != "sqlite":
        return
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        raise RuntimeError(f"the migration left rows with broken foreign keys: {broken[:5]}")


def alembic_config(url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url:
        config.set_main_option("sqlalchemy.url", url)
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


async def upgrade(url: str, revision: str = "head") -> None:
    await _run_command(url, command.upgrade, revision)


async def downgrade(url: str, revision: str) -> None:
    await _run_command(url, command.downgrade, revision)


async def _run_command(url: str, alembic_command: Callable[[Config, str], None], revision: str) -> None:
    """Run an Alembic command on one connection of our own engine (WAL and pragmas included)."""

    def run(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        alembic_command(config, revision)
        check_foreign_keys(connection)

    engine = migration_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(run)
    finally:
        await engine.dispose()


async def current_revision(url: str) -> str | None:
    engine = create_nullpool_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())
    finally:
        await engine.dispose()


async def pending_model_changes(url: str) -> list[Any]:
    """Differences between the models and the migrated database (empty when they match)."""
    from allo.models import Base

    engine = create_nullpool_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(
                lambda c: compare_metadata(
                    MigrationContext.configure(c, opts={"compare_type": True, "render_as_batch": True}),
                    Base.metadata,
                )
            )
    finally:
        await engine.dispose()
