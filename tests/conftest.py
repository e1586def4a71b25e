"""Test fixtures: the real database (SQLite, or PostgreSQL when ALLO_TEST_DATABASE_URL is set).

The schema is built once per run through the Alembic migrations. Each test runs inside one outer
transaction that is rolled back at the end; the application's own commits become SAVEPOINTs in it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from allo.app import create_app
from allo.config import Settings
from allo.kit.bus import BUS_INFO_KEY, Bus
from allo.kit.db import Database, create_engine
from allo.kit.migrate import upgrade
from tests.factories import Actor, make_actor

TEST_DATABASE_URL = os.environ.get("ALLO_TEST_DATABASE_URL", "")


def pytest_report_header() -> str:
    return f"allo test database: {'PostgreSQL' if TEST_DATABASE_URL else 'SQLite'}"


@pytest.fixture(scope="session", autouse=True)
def cheap_password_hashing() -> Iterator[None]:
    """Still argon2, with the smallest parameters: the suite hashes hundreds of passwords."""
    from argon2 import PasswordHasher

    from allo.kit import security

    original = security._hasher
    security._hasher = PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)
    yield
    security._hasher = original


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    if TEST_DATABASE_URL:
        return TEST_DATABASE_URL
    path: Path = tmp_path_factory.mktemp("db") / "allo-test.db"
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    await upgrade(database_url)
    eng = create_engine(database_url, pool_size=2)
    yield eng
    await eng.dispose()


@pytest.fixture
async def fresh_database_url(database_url: str, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database of the suite's kind, for tests that need real commits or other processes."""
    if not database_url.startswith("postgresql"):
        yield f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
        return
    import asyncpg

    from allo.kit.bus import asyncpg_dsn

    name = f"allo_fresh_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base, _, _ = database_url.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        admin = await asyncpg.connect(asyncpg_dsn(database_url))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture
async def connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    async with engine.connect() as conn:
        transaction = await conn.begin()
        try:
            yield conn
        finally:
            if transaction.is_active:
                await transaction.rollback()


@pytest.fixture
async def own_db(fresh_database_url: str) -> AsyncIterator[Database]:
    """A migrated database of its own, with a real pool: for tasks that commit and run at once, as in
    production, and for several workers at a time."""
    await upgrade(fresh_database_url)
    db = Database(create_engine(fresh_database_url, pool_size=6))
    yield db
    await db.dispose()


@pytest.fixture
def bus() -> Bus:
    return Bus()


@pytest.fixture
def db(connection: AsyncConnection, engine: AsyncEngine, bus: Bus) -> Database:
    return Database.bound_to(connection, engine, {BUS_INFO_KEY: bus})


@pytest.fixture
async def session(db: Database) -> AsyncIterator[AsyncSession]:
    async with db.session(write=True) as s:
        yield s


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, run_worker=False, api_key_cache_seconds=0, _env_file=None)


@pytest.fixture
def app(settings: Settings, db: Database) -> FastAPI:
    return create_app(settings, db=db, run_background=False)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture
async def tenant_actors(db: Database) -> dict[str, Actor]:
    """One tenant with an admin, a supervisor and an agent, committed to the test's transaction."""
    slug = f"t-{uuid.uuid4().hex[:8]}"
    async with db.unit_of_work() as s:
        actors = {role: await make_actor(s, slug, role) for role in ("admin", "supervisor", "agent")}
    return actors


@pytest.fixture
async def other_tenant_admin(db: Database) -> Actor:
    async with db.unit_of_work() as s:
        return await make_actor(s, f"o-{uuid.uuid4().hex[:8]}", "admin")
