from __future__ import annotations

from sqlalchemy import inspect

from allo.kit.db import create_nullpool_engine
from allo.kit.migrate import current_revision, downgrade, head_revision, pending_model_changes, upgrade
from allo.models import Base


async def _tables(url: str) -> set[str]:
    engine = create_nullpool_engine(url)
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
    finally:
        await engine.dispose()


async def test_empty_database_upgrades_to_head_and_matches_the_models(fresh_database_url: str) -> None:
    assert await current_revision(fresh_database_url) is None
    await upgrade(fresh_database_url)
    assert await current_revision(fresh_database_url) == head_revision()
    assert set(Base.metadata.tables) <= await _tables(fresh_database_url)
    assert await pending_model_changes(fresh_database_url) == []


async def test_downgrade_to_base_and_back(fresh_database_url: str) -> None:
    await upgrade(fresh_database_url)
    await downgrade(fresh_database_url, "base")
    assert not (set(Base.metadata.tables) & await _tables(fresh_database_url))
    await upgrade(fresh_database_url)
    assert await pending_model_changes(fresh_database_url) == []


async def test_upgrade_is_idempotent(fresh_database_url: str) -> None:
    await upgrade(fresh_database_url)
    await upgrade(fresh_database_url)
    assert await current_revision(fresh_database_url) == head_revision()
