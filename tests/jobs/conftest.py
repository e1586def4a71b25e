from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from allo.kit.db import Database, create_engine
from allo.kit.migrate import upgrade


@pytest.fixture
async def migrated(fresh_database_url: str) -> AsyncIterator[Database]:
    await upgrade(fresh_database_url)
    db = Database(create_engine(fresh_database_url, pool_size=4))
    yield db
    await db.dispose()
