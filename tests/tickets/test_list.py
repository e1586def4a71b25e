"""The ticket list, answered from plain rows: each item as TicketRead writes it, clocks as of one moment."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
from sqlalchemy import update

from allo.kit.db import Database
from allo.kit.pagination import PageParams
from allo.kit.schemas import json_bytes
from allo.kit.time import utc_now
from allo.models import Tenant
from allo.tenants import service as tenants
from allo.tenants.schemas import SlaTarget, TenantPolicy
from allo.tickets import sla
from allo.tickets.endpoints import _LIST_ITEM, with_clocks
from allo.tickets.repository import TicketRepository
from allo.tickets.schemas import TicketRead
from tests.factories import Actor, create_customer, create_team, create_ticket, ready_agent

TICKETS = "/api/v1/tickets"


async def patch_ok(client: httpx.AsyncClient, ticket: dict[str, Any], actor: Actor, **changes: Any) -> None:
    response = await client.patch(f"{TICKETS}/{ticket['id']}", json=changes, headers=actor.bearer)
    assert response.status_code == 200, response.text


async def tickets_of_every_kind(client: httpx.AsyncClient, db: Database, agent: Actor, admin: Actor) -> None:
    await ready_agent(db, agent)
    await create_team(client, admin, "network")
    customer = await create_customer(client, agent, name="Awa")
    await create_ticket(client, agent, customer, priority="P1", category="technical", team="network")
    await create_ticket(
        client, agent, customer, description="Depuis hier", service="no_network", area="Cotonou"
    )
    answered = await create_ticket(client, agent, customer, priority="P2", assignee_id=str(agent.user_id))
    await patch_ok(client, answered, agent, status="open")
    waiting = await create_ticket(client, agent, customer, priority="P4", tier="n2")
    await patch_ok(client, waiting, agent, status="pending")
    resolved = await create_ticket(client, agent, customer, category="billing")
    await patch_ok(client, resolved, agent, status="resolved", disposition="solved")
    closed = await create_ticket(client, agent, customer)
    await patch_ok(client, closed, agent, status="open")
    await patch_ok(client, closed, agent, status="closed", disposition="solved")
    reopened = await create_ticket(client, agent, customer)
    await patch_ok(client, reopened, agent, status="resolved", disposition="solved")
    await patch_ok(client, reopened, agent, status="open")


async def test_each_item_is_what_the_read_model_writes(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], db: Database
) -> None:
    agent = tenant_actors["agent"]
    await tickets_of_every_kind(client, db, agent, tenant_actors["admin"])
    now = utc_now()
    everything = PageParams(limit=50, cursor=None)
    async with db.session(write=False) as s:
        repo = TicketRepository(s, agent.tenant_id)
        tickets, _ = await repo.paginate(repo.filtered(), everything)
        rows, _ = await repo.page(everything)
        policy = await tenants.policy_at(s, agent.tenant_id, rows[0].policy_version)
    expected = [with_clocks(TicketRead, t, policy, now).model_dump(mode="json") for t in tickets]
    encoded = orjson.loads(json_bytes([_LIST_ITEM.encode(r, sla=sla.clocks(r, policy, now)) for r in rows]))
    assert len(encoded) == 7
    assert encoded == expected
    assert {item["status"] for item in encoded} == {"new", "open", "pending", "resolved", "closed"}
    assert {item["sla"]["resolution"]["state"] for item in encoded} >= {"running", "paused", "met"}


async def test_the_http_list_is_a_page_of_read_models(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], db: Database
) -> None:
    agent = tenant_actors["agent"]
    await tickets_of_every_kind(client, db, agent, tenant_actors["admin"])
    response = await client.get(TICKETS, params={"limit": 3}, headers=agent.bearer)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    page = response.json()
    assert set(page) == {"items", "next_cursor"}
    assert page["next_cursor"]
    for item in page["items"]:
        assert TicketRead.model_validate(item).model_dump(mode="json") == item
        detail = (await client.get(f"{TICKETS}/{item['id']}", headers=agent.bearer)).json()
        assert {k: v for k, v in detail.items() if k in item and k != "sla"} == {
            k: v for k, v in item.items() if k != "sla"
        }


async def test_the_list_times_its_clocks_with_the_tenants_policy_as_it_is_now(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], db: Database
) -> None:
    agent = tenant_actors["agent"]
    await create_ticket(client, agent, priority="P2")

    async def p2_target() -> int:
        response = await client.get(TICKETS, headers=agent.bearer)
        target: int = response.json()["items"][0]["sla"]["first_response"]["target_seconds"]
        return target

    assert await p2_target() == 60 * 60
    policy = TenantPolicy()
    policy.sla["P2"] = SlaTarget(first_response_minutes=7, resolution_minutes=95, business_hours=False)
    async with db.unit_of_work() as s:
        await s.execute(
            update(Tenant).where(Tenant.id == agent.tenant_id).values(policy=policy.model_dump(mode="json"))
        )
    assert await p2_target() == 7 * 60


async def test_an_empty_list(client: httpx.AsyncClient, tenant_actors: dict[str, Actor]) -> None:
    response = await client.get(TICKETS, headers=tenant_actors["agent"].bearer)
    assert response.status_code == 200
    assert response.json() == {"items": [], "next_cursor": None}
