"""Migration 0009 on a database with data: the new status is allowed, and nothing else changes (on SQLite
a table rebuild of users would have deleted every agent's skills and unassigned their work)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from allo.kit.db import Database, create_nullpool_engine
from allo.kit.migrate import downgrade, upgrade
from allo.models import AgentSkill, Base, Conversation, Tenant, User
from allo.models.enums import Channel

# Tables by name: rows of an older schema are written column by column.
TABLES = Base.metadata.tables


async def _counts(db: Database) -> tuple[int, int, int]:
    async with db.unit_of_work(write=False) as session:
        skills = (await session.execute(select(func.count()).select_from(AgentSkill))).scalar_one()
        assigned = (
            await session.execute(select(func.count()).where(Conversation.assigned_agent_id.is_not(None)))
        ).scalar_one()
        users = (await session.execute(select(func.count()).select_from(User))).scalar_one()
        return skills, assigned, users


async def test_wrap_up_is_allowed_and_the_data_stays(fresh_database_url: str) -> None:
    await upgrade(fresh_database_url, "0008")
    db = Database(create_nullpool_engine(fresh_database_url))
    try:
        async with db.unit_of_work() as session:
            tenant = Tenant(slug="m", name="M", policy={})
            session.add(tenant)
            await session.flush()
            user = User(
                tenant_id=tenant.id,
                email="a@m.example.com",
                full_name="A",
                skills=[AgentSkill(tenant_id=tenant.id, skill="billing", level=3)],
            )
            session.add(user)
            await session.flush()
            # Rows of the 0008 schema, written column by column: the models have columns added since.
            customer_id = uuid.uuid4()
            await session.execute(
                insert(TABLES["customers"]).values(id=customer_id, tenant_id=tenant.id, name="C")
            )
            await session.execute(
                insert(TABLES["conversations"]).values(
                    tenant_id=tenant.id,
                    customer_id=customer_id,
                    channel=Channel.sms,
                    assigned_agent_id=user.id,
                )
            )
        await upgrade(fresh_database_url)
        assert await _counts(db) == (1, 1, 1)
        async with db.unit_of_work() as session:
            await session.execute(update(User).values(status="wrap_up"))
        with pytest.raises(IntegrityError):
            async with db.unit_of_work() as session:
                await session.execute(text("UPDATE users SET status = 'asleep'"))
        # Down again: whoever was wrapping up is away, and wrap_up is refused once more.
        await downgrade(fresh_database_url, "0008")
        assert await _counts(db) == (1, 1, 1)
        async with db.unit_of_work(write=False) as session:
            assert (await session.execute(text("SELECT status FROM users"))).scalar_one() == "away"
        with pytest.raises(IntegrityError):
            async with db.unit_of_work() as session:
                await session.execute(text("UPDATE users SET status = 'wrap_up'"))
        await upgrade(fresh_database_url)
    finally:
        await db.dispose()
