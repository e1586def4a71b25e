"""The routing engine: order of service, choice of agent, capacity, strategies, and concurrency."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from allo.kit.db import Database, create_engine
from allo.kit.migrate import upgrade
from allo.kit.time import utc_now
from allo.models import AgentSkill, Tenant, User, WorkItem
from allo.models.enums import AgentStatus, Priority, Role, Tier, WorkItemStatus, WorkKind
from allo.routing import service as routing
from allo.routing.engine import Strategy, assign_queued
from tests.factories import ensure_tenant

LONG_AGO = utc_now() - timedelta(hours=5)


async def add_agent(
    session: AsyncSession,
    tenant: Tenant,
    name: str,
    *,
    languages: tuple[str, ...] = ("fr",),
    tier: Tier = Tier.n1,
    skills: dict[str, int] | None = None,
    capacity: int = 2,
    status: AgentStatus = AgentStatus.available,
    idle_minutes: int = 0,
    team_id: uuid.UUID | None = None,
) -> User:
    agent = User(
        tenant_id=tenant.id,
        email=f"{name}-{uuid.uuid4().hex[:6]}@t.dev",
        full_name=name,
        role=Role.agent,
        tier=tier,
        languages=list(languages),
        max_concurrent=capacity,
        status=status,
        status_since=LONG_AGO,
        idle_since=utc_now() - timedelta(minutes=idle_minutes),
        team_id=team_id,
        skills=[AgentSkill(tenant_id=tenant.id, skill=s, level=lvl) for s, lvl in (skills or {}).items()],
    )
    session.add(agent)
    await session.flush()
    return agent


async def queue(session: AsyncSession, tenant: Tenant, priority: str = "P3", **fields: object) -> WorkItem:
    return await routing.enqueue(
        session,
        tenant_id=tenant.id,
        kind=WorkKind.conversation,
        priority=Priority(priority),
        language=str(fields.pop("language", "fr")),
        **fields,  # type: ignore[arg-type]
    )


@pytest.fixture
async def tenant(db: Database) -> Tenant:
    async with db.unit_of_work() as session:
        return await ensure_tenant(session, f"r-{uuid.uuid4().hex[:8]}")


async def test_priority_then_vip_then_age(db: Database, tenant: Tenant) -> None:
    async with db.unit_of_work() as session:
        start = utc_now() - timedelta(minutes=10)
        old_p3 = await queue(session, tenant, "P3", now=start)
        vip_p2 = await queue(session, tenant, "P2", vip=True, now=start + timedelta(minutes=2))
        p2 = await queue(session, tenant, "P2", now=start + timedelta(minutes=1))
        p1 = await queue(session, tenant, "P1", now=start + timedelta(minutes=5))
        agent = await add_agent(session, tenant, "solo", capacity=3)
    async with db.unit_of_work() as session:
        assignments = await assign_queued(session, tenant.id)
    assert [a.item_id for a in assignments] == [p1.id, vip_p2.id, p2.id]
    assert {a.agent_id for a in assignments} == {agent.id}
    async with db.unit_of_work() as session:
        left = await session.get(WorkItem, old_p3.id)
        assert left is not None
        assert left.status is WorkItemStatus.queued
        loaded = await session.get(User, agent.id)
        assert loaded is not None
        assert loaded.active_items == 3


async def test_the_agent_must_speak_the_language_hold_the_skill_and_the_tier(
    db: Database, tenant: Tenant
) -> None:
    async with db.unit_of_work() as session:
        english = await add_agent(session, tenant, "english", languages=("en",))
        billing_n1 = await add_agent(session, tenant, "billing-n1", skills={"billing": 2})
        expert_n2 = await add_agent(session, tenant, "expert", tier=Tier.n2, skills={"billing": 4})
        en_item = await queue(session, tenant, language="en")
        billing_item = await queue(session, tenant, skills=["billing"], min_skill_level=2)
        hard_item = await queue(session, tenant, skills=["billing"], min_skill_level=3, min_tier=Tier.n2)
        nobody = await queue(session, tenant, language="wo")
    async with db.unit_of_work() as session:
        chosen = {a.item_id: a.agent_id for a in await assign_queued(session, tenant.id)}
    assert chosen[en_item.id] == english.id
    assert chosen[hard_item.id] == expert_n2.id
    assert chosen[billing_item.id] in (billing_n1.id, expert_n2.id)
    assert nobody.id not in chosen


async def test_team_and_unavailable_agents(db: Database, tenant: Tenant) -> None:
    from allo.models import Team

    async with db.unit_of_work() as session:
        legal = Team(tenant_id=tenant.id, code="legal", name="Legal")
        session.add(legal)
        await session.flush()
        await add_agent(session, tenant, "away", status=AgentStatus.away, team_id=legal.id)
        await add_agent(session, tenant, "other-team")
        lawyer = await add_agent(session, tenant, "lawyer", team_id=legal.id, capacity=1)
        first = await queue(session, tenant, team_id=legal.id)
        second = await queue(session, tenant, team_id=legal.id)
    async with db.unit_of_work() as session:
        chosen = {a.item_id: a.agent_id for a in await assign_queued(session, tenant.id)}
    assert chosen == {first.id: lawyer.id}  # capacity 1: the second waits for a legal agent
    assert second.id not in chosen


async def test_a_dedicated_agent_takes_their_vip_first(db: Database, tenant: Tenant) -> None:
    async with db.unit_of_work() as session:
        await add_agent(session, tenant, "idle-longest", idle_minutes=60)
        dedicated = await add_agent(session, tenant, "dedicated", idle_minutes=1)
        item = await queue(session, tenant, "P2", vip=True, preferred_agent_id=dedicated.id)
    async with db.unit_of_work() as session:
        [assignment] = await assign_queued(session, tenant.id)
    assert (assignment.item_id, assignment.agent_id) == (item.id, dedicated.id)


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [(Strategy.longest_idle, "idle"), (Strategy.least_busy, "free"), (Strategy.round_robin, "unassigned")],
)
async def test_strategies(db: Database, tenant: Tenant, strategy: Strategy, expected: str) -> None:
    async with db.unit_of_work() as session:
        idle = await add_agent(session, tenant, "idle", idle_minutes=90, capacity=5)
        free = await add_agent(session, tenant, "free", idle_minutes=10, capacity=5)
        unassigned = await add_agent(session, tenant, "unassigned", idle_minutes=5, capacity=5)
        now = utc_now()
        await session.execute(
            update(User).where(User.id == idle.id).values(active_items=2, last_assigned_at=now)
        )
        await session.execute(
            update(User)
            .where(User.id == free.id)
            .values(active_items=0, last_assigned_at=now - timedelta(hours=1))
        )
        await session.execute(
            update(User).where(User.id == unassigned.id).values(active_items=1, last_assigned_at=None)
        )
        await queue(session, tenant)
    async with db.unit_of_work() as session:
        [assignment] = await assign_queued(session, tenant.id, strategy=strategy)
    names = {idle.id: "idle", free.id: "free", unassigned.id: "unassigned"}
    assert names[assignment.agent_id] == expected


async def test_longest_idle_spreads_a_batch_over_agents(db: Database, tenant: Tenant) -> None:
    async with db.unit_of_work() as session:
        agents = [
            await add_agent(session, tenant, f"a{i}", idle_minutes=10 * i, capacity=3) for i in range(3)
        ]
        for _ in range(3):
            await queue(session, tenant)
    async with db.unit_of_work() as session:
        assignments = await assign_queued(session, tenant.id)
    assert sorted(a.agent_id for a in assignments) == sorted(a.id for a in agents)


async def test_finishing_frees_the_slot_and_requeue_keeps_the_age(db: Database, tenant: Tenant) -> None:
    async with db.unit_of_work() as session:
        agent = await add_agent(session, tenant, "solo", capacity=1)
        first = await queue(session, tenant, now=utc_now() - timedelta(minutes=30))
        second = await queue(session, tenant)
    async with db.unit_of_work() as session:
        assert [a.item_id for a in await assign_queued(session, tenant.id)] == [first.id]
    async with db.unit_of_work() as session:
        item = await session.get(WorkItem, first.id)
        assert item is not None
        await routing.finish(session, item)
    async with db.unit_of_work() as session:
        assert [a.item_id for a in await assign_queued(session, tenant.id)] == [second.id]
    async with db.unit_of_work() as session:
        held = await session.get(User, agent.id)
        assert held is not None
        assert len(await routing.requeue_agent_items(session, held, reason="went offline")) == 1
        held.status = AgentStatus.offline
    async with db.unit_of_work() as session:
        back = await session.get(WorkItem, second.id)
        released = await session.get(User, agent.id)
        assert back is not None
        assert released is not None
        assert (back.status, back.agent_id, released.active_items) == (WorkItemStatus.queued, None, 0)
        assert [h["event"] for h in back.history] == ["queued", "requeued"]
        assert back.history[-1]["agent"] == str(agent.id)
        assert back.attempts == 1


async def test_one_live_item_per_conversation(db: Database, tenant: Tenant) -> None:
    from sqlalchemy.exc import IntegrityError

    from allo.models import Conversation, Customer
    from allo.models.enums import Channel

    async with db.unit_of_work() as session:
        customer = Customer(tenant_id=tenant.id)
        session.add(customer)
        await session.flush()
        conversation = Conversation(tenant_id=tenant.id, customer_id=customer.id, channel=Channel.webchat)
        session.add(conversation)
        await session.flush()
        await queue(session, tenant, conversation_id=conversation.id)
    with pytest.raises(IntegrityError):
        async with db.unit_of_work() as session:
            await queue(session, tenant, conversation_id=conversation.id)


async def test_concurrent_engines_never_double_assign_nor_overfill(fresh_database_url: str) -> None:
    """Four engines at once on their own connections, agents changing status meanwhile."""
    await upgrade(fresh_database_url)
    engine = create_engine(fresh_database_url, pool_size=8)
    db = Database(engine)
    try:
        async with db.unit_of_work() as session:
            tenant = await ensure_tenant(session, "concurrency")
            agents = [
                await add_agent(session, tenant, f"agent{i}", capacity=random.Random(i).randint(1, 4))
                for i in range(60)
            ]
            session.add_all(
                WorkItem(
                    tenant_id=tenant.id,
                    kind=WorkKind.ticket,
                    priority=Priority.p3,
                    queue_rank=6,
                    language="fr",
                    enqueued_at=utc_now(),
                )
                for _ in range(2000)
            )
        capacity = {a.id: a.max_concurrent for a in agents}
        stop = asyncio.Event()

        async def engine_loop() -> int:
            total = 0
            for _ in range(200):
                async with db.unit_of_work() as session:
                    total += len(await assign_queued(session, tenant.id, limit=50))
                # Agents finish some work, so that capacity keeps turning over.
                async with db.unit_of_work() as session:
                    done = list(
                        (
                            await session.execute(
                                select(WorkItem)
                                .where(
                                    WorkItem.tenant_id == tenant.id,
                                    WorkItem.status == WorkItemStatus.assigned,
                                )
                                .limit(5)
                                .with_for_update(skip_locked=True)
                            )
                        ).scalars()
                    )
                    for item in sorted(done, key=lambda i: str(i.agent_id)):  # agents locked in one order
                        await routing.finish(session, item)
            return total

        async def status_flapper() -> None:
            rng = random.Random(7)
            while not stop.is_set():
                async with db.unit_of_work() as session:
                    agent = rng.choice(agents)
                    await session.execute(
                        update(User)
                        .where(User.id == agent.id)
                        .values(status=rng.choice([AgentStatus.available, AgentStatus.away]))
                    )
                await asyncio.sleep(0.005)

        flapper = asyncio.create_task(status_flapper())
        totals = await asyncio.gather(*(engine_loop() for _ in range(4)))
        stop.set()
        await flapper
        assert sum(totals) > 0

        async with db.unit_of_work(write=False) as session:
            counts = dict(
                (
                    await session.execute(
                        select(WorkItem.status, func.count())
                        .where(WorkItem.tenant_id == tenant.id)
                        .group_by(WorkItem.status)
                    )
                ).all()
            )
            assert sum(counts.values()) == 2000  # nothing lost
            held = dict(
                (
                    await session.execute(
                        select(WorkItem.agent_id, func.count())
                        .where(WorkItem.tenant_id == tenant.id, WorkItem.status == WorkItemStatus.assigned)
                        .group_by(WorkItem.agent_id)
                    )
                ).all()
            )
            users = {
                u.id: u
                for u in (await session.execute(select(User).where(User.tenant_id == tenant.id))).scalars()
            }
            for holder, count in held.items():
                assert holder is not None
                agent_id: uuid.UUID = holder
                assert count <= capacity[agent_id]  # never over capacity
                assert users[agent_id].active_items == count  # the counter matches what is held
            for agent_id, user in users.items():
                assert user.active_items == held.get(agent_id, 0)
            # Nothing goes back to the queue in this test: every item was assigned at most once.
            most = await session.execute(
                select(func.max(WorkItem.attempts)).where(WorkItem.tenant_id == tenant.id)
            )
            assert most.scalar_one() == 1
    finally:
        await db.dispose()


async def test_resolving_the_ticket_frees_the_agent(db: Database, tenant: Tenant) -> None:
    from allo.auth.principal import Principal
    from allo.models import Customer, Ticket
    from allo.models.enums import Category, TicketStatus
    from allo.tickets import service as tickets
    from allo.tickets.schemas import TicketUpdate

    async with db.unit_of_work() as session:
        agent = await add_agent(session, tenant, "solo", capacity=1)
        customer = Customer(tenant_id=tenant.id)
        session.add(customer)
        await session.flush()
        ticket = Ticket(
            tenant_id=tenant.id,
            number=1,
            subject="s",
            category=Category.billing,
            priority=Priority.p3,
            customer_id=customer.id,
        )
        session.add(ticket)
        await session.flush()
        item = await queue(session, tenant, ticket_id=ticket.id)
    async with db.unit_of_work() as session:
        assert len(await assign_queued(session, tenant.id)) == 1
    async with db.unit_of_work() as session:
        await tickets.update_ticket(
            session,
            Principal.system(tenant.id),
            ticket.id,
            TicketUpdate(status=TicketStatus.resolved, disposition="solved"),
        )
    async with db.unit_of_work() as session:
        done = await session.get(WorkItem, item.id)
        freed = await session.get(User, agent.id)
        assert done is not None
        assert freed is not None
        assert (done.status, freed.active_items) == (WorkItemStatus.done, 0)
        assert freed.idle_since is not None


async def test_an_agent_leaving_sends_the_conversation_and_ticket_back_to_the_queue(
    db: Database, tenant: Tenant
) -> None:
    from allo.models import Conversation, Customer, Ticket
    from allo.models.enums import Category, Channel, ConversationStatus
    from allo.routing.tasks import agent_leaves, route

    async with db.unit_of_work() as session:
        agent = await add_agent(session, tenant, "leaving")
        customer = Customer(tenant_id=tenant.id)
        session.add(customer)
        await session.flush()
        conversation = Conversation(
            tenant_id=tenant.id,
            customer_id=customer.id,
            channel=Channel.webchat,
            status=ConversationStatus.queued,
        )
        ticket = Ticket(
            tenant_id=tenant.id, number=7, subject="s", category=Category.other, priority=Priority.p3,
            customer_id=customer.id,
        )  # fmt: skip
        session.add_all([conversation, ticket])
        await session.flush()
        await queue(session, tenant, conversation_id=conversation.id, ticket_id=ticket.id)
    async with db.unit_of_work() as session:
        assert len(await route(session, tenant.id)) == 1
    async with db.unit_of_work() as session:
        taken = await session.get(Conversation, conversation.id)
        assert taken is not None
        assert (taken.status, taken.assigned_agent_id) == (ConversationStatus.assigned, agent.id)
        leaving = await session.get(User, agent.id)
        assert leaving is not None
        leaving.status = AgentStatus.offline
        await agent_leaves(session, leaving, reason="went home")
    async with db.unit_of_work() as session:
        back = await session.get(Conversation, conversation.id)
        unassigned = await session.get(Ticket, ticket.id)
        assert back is not None
        assert unassigned is not None
        assert (back.status, back.assigned_agent_id, unassigned.assignee_id) == (
            ConversationStatus.queued,
            None,
            None,
        )


async def test_a_priority_change_moves_the_queued_item(db: Database, tenant: Tenant) -> None:
    from allo.auth.principal import Principal
    from allo.models import Customer, Ticket
    from allo.models.enums import Category
    from allo.tickets import service as tickets
    from allo.tickets.schemas import TicketUpdate

    async with db.unit_of_work() as session:
        customer = Customer(tenant_id=tenant.id)
        session.add(customer)
        await session.flush()
        ticket = Ticket(
            tenant_id=tenant.id, number=9, subject="s", category=Category.other, priority=Priority.p4,
            customer_id=customer.id, created_at=utc_now(),
        )  # fmt: skip
        session.add(ticket)
        await session.flush()
        older = await queue(session, tenant, "P3", now=utc_now() - timedelta(hours=1))
        raised = await queue(session, tenant, "P4", ticket_id=ticket.id)
    async with db.unit_of_work() as session:
        await tickets.update_ticket(
            session,
            Principal.system(tenant.id),
            ticket.id,
            TicketUpdate(priority=Priority.p1, reason="outage"),
        )
    async with db.unit_of_work() as session:
        await add_agent(session, tenant, "one", capacity=1)
    async with db.unit_of_work() as session:
        [first] = await assign_queued(session, tenant.id)
    assert first.item_id == raised.id != older.id
