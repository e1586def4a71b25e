"""The presence history: every way an agent's status changes appends one row (status, what it replaced,
why, when), and wrap_up is a status like away for routing."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
from sqlalchemy import select

from allo.kit.db import Database
from allo.kit.time import utc_now
from allo.models import PresenceChange, User
from allo.models.enums import AgentStatus
from allo.routing import service as routing
from allo.routing.engine import assign_queued
from tests.factories import Actor, ensure_tenant, login
from tests.routing.test_engine import add_agent, queue

AGENTS = "/api/v1/agents"


async def history(db: Database, user_id: uuid.UUID) -> list[tuple[str, str | None, str | None]]:
    async with db.unit_of_work(write=False) as session:
        rows = (
            await session.execute(
                select(PresenceChange)
                .where(PresenceChange.user_id == user_id)
                .order_by(PresenceChange.changed_at, PresenceChange.id)
            )
        ).scalars()
        return [
            (r.status.value, r.previous_status.value if r.previous_status else None, r.reason) for r in rows
        ]


async def test_setting_my_status_appends_each_change(
    client: httpx.AsyncClient, db: Database, tenant_actors: dict[str, Actor]
) -> None:
    agent = tenant_actors["agent"]
    csrf = await login(client, agent)

    async def put(body: dict[str, str]) -> dict[str, object]:
        response = await client.put(f"{AGENTS}/me/status", json=body, headers=csrf)
        assert response.status_code == 200, response.text
        data: dict[str, object] = response.json()
        return data

    await put({"status": "available"})
    await put({"status": "available"})  # no change, no row
    await put({"status": "away", "reason": "lunch"})
    await put({"status": "away", "reason": "meeting"})  # a new reason is a change
    wrapping = await put({"status": "wrap_up"})
    assert wrapping["status"] == "wrap_up"
    await put({"status": "offline"})
    assert await history(db, agent.user_id) == [
        ("available", "offline", None),
        ("away", "available", "lunch"),
        ("away", "away", "meeting"),
        ("wrap_up", "away", None),
        ("offline", "wrap_up", None),
    ]
    async with db.unit_of_work(write=False) as session:
        user = await session.get(User, agent.user_id)
        last = (
            await session.execute(
                select(PresenceChange.changed_at)
                .where(PresenceChange.user_id == agent.user_id)
                .order_by(PresenceChange.changed_at.desc())
                .limit(1)
            )
        ).scalar_one()
        assert user is not None and user.status_since == last


async def test_deactivating_by_update_or_delete_records_going_offline(
    client: httpx.AsyncClient, db: Database, tenant_actors: dict[str, Actor]
) -> None:
    admin, agent, supervisor = tenant_actors["admin"], tenant_actors["agent"], tenant_actors["supervisor"]
    for actor in (agent, supervisor):
        csrf = await login(client, actor)
        assert (
            await client.put(f"{AGENTS}/me/status", json={"status": "available"}, headers=csrf)
        ).status_code == 200
    patched = await client.patch(f"{AGENTS}/{agent.user_id}", json={"active": False}, headers=admin.bearer)
    assert patched.status_code == 200, patched.text
    assert patched.json()["status"] == "offline"
    assert (await client.delete(f"{AGENTS}/{supervisor.user_id}", headers=admin.bearer)).status_code == 204
    for actor in (agent, supervisor):
        assert await history(db, actor.user_id) == [
            ("available", "offline", None),
            ("offline", "available", None),
        ]
    # Already offline: deactivating again changes nothing.
    assert (await client.delete(f"{AGENTS}/{agent.user_id}", headers=admin.bearer)).status_code == 204
    assert len(await history(db, agent.user_id)) == 2


async def test_a_missed_offer_sets_away_with_its_row(db: Database) -> None:
    async with db.unit_of_work() as session:
        tenant = await ensure_tenant(session, f"pr-{uuid.uuid4().hex[:8]}")
        sleepy = await add_agent(session, tenant, "sleepy")
        item = await queue(session, tenant)
    async with db.unit_of_work() as session:
        await assign_queued(session, tenant.id, accept_timeout=timedelta(seconds=30))
    later = utc_now() + timedelta(seconds=31)
    async with db.unit_of_work() as session:
        assert [i.id for i in await routing.expire_offers(session, later)] == [item.id]
    assert await history(db, sleepy.id) == [("away", "available", routing.MISSED_OFFER)]
    async with db.unit_of_work(write=False) as session:
        row = (
            await session.execute(select(PresenceChange).where(PresenceChange.user_id == sleepy.id))
        ).scalar_one()
        agent = await session.get(User, sleepy.id)
        assert agent is not None
        assert (row.tenant_id, row.changed_at) == (tenant.id, later)
        assert (agent.status, agent.status_since) == (AgentStatus.away, later)


async def test_an_agent_wrapping_up_gets_no_new_work(db: Database) -> None:
    async with db.unit_of_work() as session:
        tenant = await ensure_tenant(session, f"pw-{uuid.uuid4().hex[:8]}")
        await add_agent(session, tenant, "notes", status=AgentStatus.wrap_up)
        item = await queue(session, tenant)
    async with db.unit_of_work() as session:
        assert item.id not in {a.item_id for a in await assign_queued(session, tenant.id)}
    async with db.unit_of_work() as session:
        free = await add_agent(session, tenant, "free")
    async with db.unit_of_work() as session:
        assert {a.item_id: a.agent_id for a in await assign_queued(session, tenant.id)} == {item.id: free.id}
