"""Routing rules beyond the basic choice: tier reservation and overflow, overflow teams, segments, wrap-up,
the dedicated agent, offers with a deadline, declines, and the floor status."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from allo.kit.db import Database
from allo.kit.time import utc_now
from allo.models import Job, Team, Tenant, User, WorkItem
from allo.models.enums import AgentStatus, Tier, WorkItemStatus
from allo.routing import service as routing
from allo.routing import tasks as routing_tasks
from allo.routing.engine import Rules, Strategy, assign_queued, rules_for
from allo.tenants.schemas import RoutingPolicy
from tests.api_helpers import assert_api_error
from tests.factories import Actor, ensure_tenant, login, ready_agent
from tests.routing.test_engine import add_agent, queue

OVERFLOW = Rules(reserve_higher_tiers=True, overflow_after=timedelta(seconds=90))


@pytest.fixture
async def tenant(db: Database) -> Tenant:
    async with db.unit_of_work() as session:
        return await ensure_tenant(session, f"rr-{uuid.uuid4().hex[:8]}")


async def _assigned(
    db: Database, tenant: Tenant, rules: Rules = OVERFLOW, **kw: object
) -> dict[uuid.UUID, uuid.UUID]:
    async with db.unit_of_work() as session:
        return {a.item_id: a.agent_id for a in await assign_queued(session, tenant.id, rules=rules, **kw)}  # type: ignore[arg-type]


async def test_higher_tiers_keep_to_their_work_until_an_item_overflows(db: Database, tenant: Tenant) -> None:
    async with db.unit_of_work() as session:
        await add_agent(session, tenant, "n2", tier=Tier.n2, capacity=5)
        fresh = await queue(session, tenant)
        waited = await queue(session, tenant, now=utc_now() - timedelta(seconds=120))
        n2_work = await queue(session, tenant, min_tier=Tier.n2)
    chosen = await _assigned(db, tenant)
    assert fresh.id not in chosen, "an N2 agent does not take fresh N1 work"
    assert waited.id in chosen, "after the overflow time it may"
    assert n2_work.id in chosen


async def test_without_reservation_higher_tiers_take_lower_work_at_once(db: Database, tenant: Tenant) -> None:
    async with db.unit_of_work() as session:
        await add_agent(session, tenant, "n2", tier=Tier.n2)
        fresh = await queue(session, tenant)
    assert fresh.id in await _assigned(db, tenant, Rules(reserve_higher_tiers=False))


async def test_a_lower_tier_never_takes_higher_work_even_after_overflow(db: Database, tenant: Tenant) -> None:
    async with db.unit_of_work() as session:
        await add_agent(session, tenant, "n1")
        n2_work = await queue(session, tenant, min_tier=Tier.n2, now=utc_now() - timedelta(hours=1))
    assert n2_work.id not in await _assigned(db, tenant)


async def test_overflow_teams_take_an_item_that_waited(db: Database, tenant: Tenant) -> None:
    async with db.unit_of_work() as session:
        billing = Team(tenant_id=tenant.id, code="billing", name="Billing")
        general = Team(tenant_id=tenant.id, code="general", name="General")
        legal = Team(tenant_id=tenant.id, code="legal", name="Legal")
        session.add_all([billing, general, legal])
        await session.flush()
        helper = await add_agent(session, tenant, "general", team_id=general.id, capacity=5)
        await add_agent(session, tenant, "legal", team_id=legal.id, capacity=5)
        fresh = await queue(session, tenant, team_id=billing.id)
        waited = await queue(session, tenant, team_id=billing.id, now=utc_now() - timedelta(minutes=5))
        rules = await rules_for(
            session,
            tenant.id,
            RoutingPolicy(overflow_after_seconds=90, overflow_teams={"billing": ["general"]}),
        )
    chosen = await _assigned(db, tenant, rules)
    assert fresh.id not in chosen
    assert chosen[waited.id] == helper.id, "the overflow team, not any team"


async def test_segment_agents_serve_their_segments(db: Database, tenant: Tenant) -> None:
    async with db.unit_of_work() as session:
        vip_desk = await add_agent(session, tenant, "vip desk", capacity=5)
        vip_desk.segments = ["vip", "business"]
        anyone = await add_agent(session, tenant, "anyone", capacity=5, idle_minutes=60)
        business = await queue(session, tenant, segment="business")
        standard = await queue(session, tenant, segment="standard")
    chosen = await _assigned(db, tenant)
    assert chosen[standard.id] == anyone.id, "the VIP desk does not serve the standard segment"
    assert chosen[business.id] in (vip_desk.id, anyone.id)


async def test_an_agent_wrapping_up_gets_nothing_until_it_ends(db: Database, tenant: Tenant) -> None:
    async with db.unit_of_work() as session:
        agent = await add_agent(session, tenant, "busy", capacity=3)
        first = await queue(session, tenant)
    assert first.id in await _assigned(db, tenant)
    async with db.unit_of_work() as session:
        item = await session.get(WorkItem, first.id)
        assert item is not None
        await routing.finish(session, item, wrap_up=timedelta(seconds=60))
        second = await queue(session, tenant)
    async with db.unit_of_work() as session:
        # The end of the wrap-up is a routing pass of its own, at that time.
        timers = (
            await session.execute(
                select(Job.run_at).where(
                    Job.tenant_id == tenant.id, Job.kind == routing.ASSIGN_KIND, Job.run_at > utc_now()
                )
            )
        ).scalars()
        assert [t > utc_now() + timedelta(seconds=50) for t in timers] == [True]
    assert second.id not in await _assigned(db, tenant)
    later = utc_now() + timedelta(seconds=61)
    assert (await _assigned(db, tenant, now=later)).get(second.id) == agent.id


async def test_the_dedicated_agent_comes_first_when_free(db: Database, tenant: Tenant) -> None:
    async with db.unit_of_work() as session:
        await add_agent(session, tenant, "idle longest", idle_minutes=120)
        dedicated = await add_agent(session, tenant, "dedicated")
        item = await queue(session, tenant, vip=True, preferred_agent_id=dedicated.id)
    assert (await _assigned(db, tenant))[item.id] == dedicated.id


async def test_an_offer_not_accepted_in_time_goes_to_someone_else_and_the_agent_is_set_away(
    db: Database, tenant: Tenant
) -> None:
    async with db.unit_of_work() as session:
        sleepy = await add_agent(session, tenant, "sleepy", idle_minutes=60)
        other = await add_agent(session, tenant, "other")
        item = await queue(session, tenant)
    chosen = await _assigned(db, tenant, accept_timeout=timedelta(seconds=30))
    assert chosen[item.id] == sleepy.id
    async with db.unit_of_work() as session:
        offered = await session.get(WorkItem, item.id)
        assert offered is not None
        assert offered.accepted_at is None
        assert offered.accept_deadline is not None
        # Before the deadline nothing moves.
        assert await routing.expire_offers(session, utc_now()) == []
    async with db.unit_of_work() as session:
        expired = await routing.expire_offers(session, utc_now() + timedelta(seconds=31))
        assert [i.id for i in expired] == [item.id]
    async with db.unit_of_work() as session:
        back = await session.get(WorkItem, item.id)
        agent = await session.get(User, sleepy.id)
        assert back is not None
        assert agent is not None
        assert back.status is WorkItemStatus.queued
        assert back.declined_by == [str(sleepy.id)]
        assert (agent.status, agent.status_reason, agent.active_items) == (
            AgentStatus.away,
            "missed_offer",
            0,
        )
    assert (await _assigned(db, tenant))[item.id] == other.id


async def test_accepting_and_declining(db: Database, tenant: Tenant) -> None:
    async with db.unit_of_work() as session:
        first = await add_agent(session, tenant, "first", idle_minutes=60)
        second = await add_agent(session, tenant, "second")
        item = await queue(session, tenant)
    await _assigned(db, tenant, accept_timeout=timedelta(seconds=30))
    async with db.unit_of_work() as session:
        agent = await session.get(User, first.id)
        assert agent is not None
        accepted = await routing.accept(session, agent, item.id)
        assert accepted.accepted_at is not None
        assert accepted.accept_deadline is None
        await routing.accept(session, agent, item.id)  # twice: harmless
    async with db.unit_of_work() as session:
        agent = await session.get(User, first.id)
        assert agent is not None
        await routing.decline(session, agent, item.id, reason="not my field")
    assert (await _assigned(db, tenant))[item.id] == second.id, "a decline is not offered back"


async def test_the_clock_requeues_expired_offers_and_wakes_the_router(db: Database, tenant: Tenant) -> None:
    async with db.unit_of_work() as session:
        await add_agent(session, tenant, "gone")
        item = await queue(session, tenant)
    await _assigned(db, tenant, accept_timeout=timedelta(seconds=1))
    async with db.unit_of_work() as session:
        await routing_tasks.tick(session, utc_now() + timedelta(seconds=5))
    async with db.unit_of_work() as session:
        back = await session.get(WorkItem, item.id)
        assert back is not None
        assert back.status is WorkItemStatus.queued


async def test_a_strategy_still_applies_under_the_rules(db: Database, tenant: Tenant) -> None:
    async with db.unit_of_work() as session:
        busy = await add_agent(session, tenant, "busy", capacity=5, idle_minutes=120)
        busy.active_items = 3
        calm = await add_agent(session, tenant, "calm", capacity=5)
        item = await queue(session, tenant)
    assert (await _assigned(db, tenant, strategy=Strategy.least_busy))[item.id] == calm.id


# --- the API ------------------------------------------------------------------------------------


async def test_routing_status_shows_queues_and_agents(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], db: Database
) -> None:
    supervisor, agent = tenant_actors["supervisor"], tenant_actors["agent"]
    customer = (
        await client.post(
            "/api/v1/customers", json={"name": "Awa", "phone": "0612345678"}, headers=agent.bearer
        )
    ).json()
    for priority in ("P1", "P3"):
        response = await client.post(
            "/api/v1/tickets",
            json={"subject": "x", "customer_id": customer["id"], "priority": priority},
            headers=agent.bearer,
        )
        assert response.status_code == 201, response.text
    await ready_agent(db, agent)
    assert_api_error(
        await client.get("/api/v1/routing/status", headers=agent.bearer), 403, "insufficient_role"
    )
    status = (await client.get("/api/v1/routing/status", headers=supervisor.bearer)).json()
    assert status["waiting"] == 2
    [queue_row] = status["queues"]
    assert (queue_row["waiting"], queue_row["by_priority"]) == (2, {"P1": 1, "P3": 1})
    assert status["agents_by_status"]["available"] == 1
    assert {a["full_name"] for a in status["agents"]} == {"Agent " + agent.tenant.slug}


async def test_agents_accept_and_decline_through_the_api(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], db: Database
) -> None:
    agent = tenant_actors["agent"]
    await ready_agent(db, agent)
    customer = (
        await client.post(
            "/api/v1/customers", json={"name": "Awa", "phone": "0612345679"}, headers=agent.bearer
        )
    ).json()
    ticket = (
        await client.post(
            "/api/v1/tickets",
            json={"subject": "x", "customer_id": customer["id"], "assignee_id": str(agent.user_id)},
            headers=agent.bearer,
        )
    ).json()
    [item] = (
        await client.get("/api/v1/routing/items", params={"status": "assigned"}, headers=agent.bearer)
    ).json()["items"]
    assert item["ticket_id"] == ticket["id"]
    # API keys are not agents at a desk.
    assert_api_error(
        await client.post(f"/api/v1/routing/items/{item['id']}/accept", headers=agent.bearer),
        403,
        "user_required",
    )
    csrf = await login(client, agent)
    accepted = await client.post(f"/api/v1/routing/items/{item['id']}/accept", headers=csrf)
    assert accepted.status_code == 200, accepted.text
    declined = await client.post(
        f"/api/v1/routing/items/{item['id']}/decline", json={"reason": "wrong language"}, headers=csrf
    )
    assert declined.status_code == 200, declined.text
    assert (declined.json()["status"], declined.json()["declined_by"]) == ("queued", [str(agent.user_id)])
    again = await client.post(f"/api/v1/routing/items/{item['id']}/decline", json={}, headers=csrf)
    assert_api_error(again, 409, "not_offered")
    assert_api_error(
        await client.post(f"/api/v1/routing/items/{uuid.uuid4()}/accept", headers=csrf), 404, "not_found"
    )
    detail = (await client.get(f"/api/v1/tickets/{ticket['id']}", headers=agent.bearer)).json()
    assert detail["assignee_id"] is None, "the ticket follows its work item back to the queue"


async def test_the_dedicated_agent_is_not_held_back_by_team_or_tier_reservation(
    db: Database, tenant: Tenant
) -> None:
    async with db.unit_of_work() as session:
        technical = Team(tenant_id=tenant.id, code="technical", name="Technical")
        vip_desk = Team(tenant_id=tenant.id, code="vip", name="VIP desk")
        session.add_all([technical, vip_desk])
        await session.flush()
        await add_agent(session, tenant, "technician", team_id=technical.id, skills={"technical": 3})
        dedicated = await add_agent(
            session, tenant, "dedicated", tier=Tier.n2, team_id=vip_desk.id, skills={"technical": 2}
        )
        mute = await add_agent(session, tenant, "no skill", tier=Tier.n2, team_id=vip_desk.id)
        item = await queue(
            session, tenant, team_id=technical.id, skills=["technical"], preferred_agent_id=dedicated.id
        )
        other = await queue(
            session, tenant, team_id=technical.id, skills=["technical"], preferred_agent_id=mute.id
        )
    chosen = await _assigned(db, tenant)
    assert chosen[item.id] == dedicated.id
    assert chosen[other.id] != mute.id, "the dedicated agent still needs the skills"


async def test_work_further_back_is_not_stuck_behind_items_nobody_free_can_take(
    db: Database, tenant: Tenant
) -> None:
    async with db.unit_of_work() as session:
        await add_agent(session, tenant, "n2", tier=Tier.n2, capacity=3)
        for _ in range(25):  # older N1 work, reserved away from the N2 agent
            await queue(session, tenant, "P2")
        n2_work = await queue(session, tenant, "P3", min_tier=Tier.n2)
        for _ in range(25):  # and work needing a skill nobody free has
            await queue(session, tenant, "P2", skills=["legal"])
    chosen = await _assigned(
        db, tenant, Rules(reserve_higher_tiers=True, overflow_after=timedelta(minutes=10))
    )
    assert n2_work.id in chosen


async def test_plain_work_is_not_stuck_behind_work_needing_a_missing_skill(
    db: Database, tenant: Tenant
) -> None:
    async with db.unit_of_work() as session:
        await add_agent(session, tenant, "plain", capacity=3)
        for _ in range(25):
            await queue(session, tenant, "P2", skills=["legal"])
        plain = await queue(session, tenant, "P3")
    assert plain.id in await _assigned(db, tenant, Rules())


async def test_assignments_go_to_the_tenants_webhooks_in_one_go(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], db: Database
) -> None:
    from allo.models import WebhookDelivery

    agent, admin = tenant_actors["agent"], tenant_actors["admin"]
    hook = await client.post(
        "/api/v1/webhooks/endpoints",
        json={"url": "https://hooks.example.com/routing", "events": ["work_item.assigned"]},
        headers=admin.bearer,
    )
    assert hook.status_code == 201, hook.text
    await ready_agent(db, agent)
    customer = (
        await client.post(
            "/api/v1/customers", json={"name": "Awa", "phone": "0612345670"}, headers=agent.bearer
        )
    ).json()
    ticket = (
        await client.post(
            "/api/v1/tickets", json={"subject": "x", "customer_id": customer["id"]}, headers=agent.bearer
        )
    ).json()
    async with db.unit_of_work() as session:
        [assignment] = await routing_tasks.route(session, agent.tenant_id)
    async with db.unit_of_work(write=False) as session:
        [delivery] = (
            await session.execute(select(WebhookDelivery).where(WebhookDelivery.tenant_id == agent.tenant_id))
        ).scalars()
    assert delivery.event == "work_item.assigned"
    assert delivery.payload["data"] == {
        "work_item_id": str(assignment.item_id),
        "agent_id": str(agent.user_id),
        "conversation_id": None,
        "ticket_id": ticket["id"],
    }
