"""Migration 0010 rebuilds conversations and messages on SQLite: no row may be lost on the way up or down
(a table rebuilt with foreign keys on would cascade its DROP onto every message)."""

from __future__ import annotations

import uuid

from sqlalchemy import func, insert, select

from allo.kit.db import Database, create_nullpool_engine
from allo.kit.migrate import downgrade, upgrade
from allo.models import Base
from allo.models.enums import AuthorKind, Channel, Direction

# Tables by name: rows of an older schema are written column by column.
TABLES = Base.metadata.tables


async def _count(db: Database) -> tuple[int, int]:
    async with db.unit_of_work(write=False) as session:
        conversations = (
            await session.execute(select(func.count()).select_from(TABLES["conversations"]))
        ).scalar_one()
        messages = (await session.execute(select(func.count()).select_from(TABLES["messages"]))).scalar_one()
        return conversations, messages


async def test_conversations_and_messages_survive_0010_both_ways(fresh_database_url: str) -> None:
    await upgrade(fresh_database_url, "0009")
    db = Database(create_nullpool_engine(fresh_database_url))
    try:
        tenant_id, customer_id, conversation_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        async with db.unit_of_work() as session:
            await session.execute(
                insert(TABLES["tenants"]).values(id=tenant_id, slug="m10", name="M", policy={})
            )
            await session.execute(
                insert(TABLES["customers"]).values(id=customer_id, tenant_id=tenant_id, name="C")
            )
            await session.execute(
                insert(TABLES["conversations"]).values(
                    id=conversation_id, tenant_id=tenant_id, customer_id=customer_id, channel=Channel.sms
                )
            )
            await session.execute(
                insert(TABLES["messages"]).values(
                    tenant_id=tenant_id,
                    conversation_id=conversation_id,
                    channel=Channel.sms,
                    direction=Direction.inbound,
                    author_kind=AuthorKind.customer,
                    body="Bonjour",
                )
            )
        await upgrade(fresh_database_url)
        assert await _count(db) == (1, 1)
        await downgrade(fresh_database_url, "0009")
        assert await _count(db) == (1, 1)
    finally:
        await db.dispose()
