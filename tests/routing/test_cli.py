"""`allo routing status`: the floor as an operator reads it, in tables or as one JSON object."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession
from typer.testing import CliRunner, Result

from allo.agents import service as agents
from allo.agents.schemas import AgentCreate
from allo.auth.principal import Principal
from allo.cli import app
from allo.config import get_settings
from allo.customers import service as customers
from allo.customers.schemas import CustomerCreate
from allo.kit.db import Database, create_nullpool_engine
from allo.kit.migrate import upgrade
from allo.kit.time import utc_now
from allo.models import Team, User, WorkItem
from allo.models.enums import AgentStatus, Priority
from allo.tenants import service as tenants
from allo.tickets import service as tickets
from allo.tickets.schemas import TicketCreate

SLUG = "floor-cli"


async def _agent(
    session: AsyncSession, tenant_id: uuid.UUID, name: str, team: str, status: AgentStatus
) -> User:
    user = await agents.create_agent(
        session,
        tenant_id,
        AgentCreate.model_validate(
            {
                "email": f"{name.split()[0].lower()}@floor.example.com",
                "full_name": name,
                "password": "correct horse battery staple",
                "team": team,
                "tier": "n2",
            }
        ),
    )
    user.status = status
    await session.flush()
    return user


async def _populate(url: str) -> None:
    """Two tickets waiting in the technical queue (one for 20 minutes), one in the general queue, one
    held by an agent; an agent logged in and one logged out."""
    await upgrade(url)
    db = Database(create_nullpool_engine(url))
    try:
        async with db.unit_of_work() as s:
            tenant = await tenants.create(s, slug=SLUG, name="Floor")
            s.add_all(
                Team(tenant_id=tenant.id, code=code, name=code.title()) for code in ("general", "technical")
            )
            await s.flush()
            nadia = await _agent(s, tenant.id, "Nadia Available", "general", AgentStatus.available)
            await _agent(s, tenant.id, "Omar Offline", "technical", AgentStatus.offline)
            system = Principal.system(tenant.id)
            customer = await customers.create_customer(
                s, system, CustomerCreate(name="Marie Curie", phone="0612345678")
            )

            async def ticket(subject: str, priority: Priority, team: str, **fields: object) -> uuid.UUID:
                data = TicketCreate.model_validate(
                    {
                        "subject": subject,
                        "customer_id": customer.id,
                        "priority": priority,
                        "team": team,
                        **fields,
                    }
                )
                return (await tickets.create_ticket(s, system, data)).id

            oldest = await ticket("Fibre down", Priority.p2, "technical")
            await ticket("No 4G", Priority.p1, "technical")
            await ticket("Charged twice", Priority.p3, "general")
            await ticket("Change of plan", Priority.p4, "general", assignee_id=nadia.id)
            await s.execute(
                update(WorkItem)
                .where(WorkItem.ticket_id == oldest)
                .values(enqueued_at=utc_now() - timedelta(minutes=20))
            )
    finally:
        await db.dispose()


async def allo(url: str, *args: str) -> Result:
    env = {"ALLO_DATABASE_URL": url, "ALLO_MODE": "dev"}
    get_settings.cache_clear()
    try:
        return await asyncio.to_thread(
            lambda: CliRunner().invoke(app, [*args, "--tenant", SLUG], env=env, catch_exceptions=False)
        )
    finally:
        get_settings.cache_clear()


async def test_routing_status_shows_the_queues_and_the_agents(fresh_database_url: str) -> None:
    await _populate(fresh_database_url)

    shown = await allo(fresh_database_url, "routing", "status")
    assert shown.exit_code == 0, shown.stderr
    lines = shown.stdout.splitlines()
    technical = next(line for line in lines if line.startswith("technical"))
    assert technical.split()[:4] == ["technical", "n1", "fr", "2"]
    assert "P1:1 P2:1" in technical and "20m" in technical  # the longest wait, formatted
    general = next(line for line in lines if line.startswith("general"))
    assert general.split()[:4] == ["general", "n1", "fr", "1"] and "P3:1" in general
    nadia = next(line for line in lines if line.startswith("Nadia Available"))
    assert nadia.split()[2:6] == ["general", "n2", "available", "1/3"]
    omar = next(line for line in lines if line.startswith("Omar Offline"))
    assert "offline" in omar and "0/3" in omar
    assert "Agents by status: available 1, busy 0, wrap_up 0, away 0, offline 1" in shown.stdout
    assert "Totals: 3 waiting, 1 assigned" in shown.stdout

    raw = await allo(fresh_database_url, "routing", "status", "--json")
    assert raw.exit_code == 0, raw.stderr
    floor = json.loads(raw.stdout)
    assert floor["waiting"] == 3 and floor["assigned"] == 1 and floor["offers_pending"] == 0
    queues = {q["team"]: q for q in floor["queues"]}
    assert queues["technical"]["waiting"] == 2 and queues["technical"]["by_priority"] == {"P1": 1, "P2": 1}
    assert queues["technical"]["longest_wait_seconds"] >= 20 * 60
    assert floor["queues"][0]["team"] == "technical"  # the longest wait first
    assert floor["agents_by_status"] == {"available": 1, "busy": 0, "wrap_up": 0, "away": 0, "offline": 1}
    loads = {a["full_name"]: (a["status"], a["active_items"], a["max_concurrent"]) for a in floor["agents"]}
    assert loads == {"Nadia Available": ("available", 1, 3), "Omar Offline": ("offline", 0, 3)}
