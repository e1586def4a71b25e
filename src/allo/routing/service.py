"""Putting work in the queue and taking it out: what the rest of Allo calls; the engine decides who."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, case, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from allo.agents import presence
from allo.kit import jobs
from allo.kit.bus import Event, publish_on_commit
from allo.kit.errors import Conflict, NotFound
from allo.kit.time import utc_now
from allo.models import Team, User, WorkItem
from allo.models.enums import AgentStatus, Priority, Role, Tier, WorkItemStatus, WorkKind
from allo.models.routing import queue_rank

ASSIGN_KIND = "routing.assign"
# The status reason of an agent set away for letting an offer expire.
MISSED_OFFER = "missed_offer"


async def wake_router(session: AsyncSession, tenant_id: uuid.UUID, *, at: datetime | None = None) -> None:
    """Ask a worker to run the engine for this tenant after commit; one waiting pass serves every wake-up.
    `at`: a pass at that time (an agent's wrap-up ends), one per tenant and second."""
    if at is None:
        jobs.enqueue_on_commit(session, ASSIGN_KIND, tenant_id=tenant_id, max_attempts=3, coalesce=True)
        return
    moment = at.replace(microsecond=0) + timedelta(seconds=1)
    await jobs.enqueue(
        session,
        ASSIGN_KIND,
        tenant_id=tenant_id,
        run_at=moment,
        max_attempts=3,
        idempotency_key=f"{ASSIGN_KIND}:{tenant_id}:{moment.isoformat()}",
    )


async def enqueue(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    kind: WorkKind,
    priority: Priority,
    language: str,
    conversation_id: uuid.UUID | None = None,
    ticket_id: uuid.UUID | None = None,
    team_id: uuid.UUID | None = None,
    skills: Sequence[str] = (),
    min_skill_level: int = 1,
    min_tier: Tier = Tier.n1,
    segment: str | None = None,
    vip: bool = False,
    preferred_agent_id: uuid.UUID | None = None,
    now: datetime | None = None,
) -> WorkItem:
    moment = now or utc_now()
    item = WorkItem(
        tenant_id=tenant_id,
        kind=kind,
        status=WorkItemStatus.queued,
        conversation_id=conversation_id,
        ticket_id=ticket_id,
        team_id=team_id,
        language=language,
        skills=list(dict.fromkeys(skills)),
        min_skill_level=min_skill_level,
        min_tier=min_tier,
        segment=segment,
        vip=vip,
        preferred_agent_id=preferred_agent_id,
        priority=priority,
        queue_rank=queue_rank(priority, vip),
        enqueued_at=moment,
        history=[{"at": moment.isoformat(), "event": "queued", "priority": priority.value}],
    )
    session.add(item)
    await session.flush()
    await wake_router(session, tenant_id)
    publish_on_commit(
        session,
        Event("work_item.queued", tenant_id, {"work_item_id": str(item.id), "priority": priority.value}),
    )
    return item


async def release_capacity(
    session: AsyncSession,
    agent_id: uuid.UUID,
    count: int,
    *,
    now: datetime,
    wrap_up: timedelta | None = None,
) -> None:
    """Give back `count` slots of an agent; an agent left with nothing is idle from now on. `wrap_up`: the
    agent finished the work and gets that long before the next item."""
    remaining = User.active_items - count
    values: dict[str, object] = {
        "active_items": case((remaining < 0, 0), else_=remaining),
        "idle_since": case((remaining <= 0, now), else_=User.idle_since),
    }
    if wrap_up:
        values["wrap_up_until"] = now + wrap_up
    await session.execute(
        update(User).where(User.id == agent_id).values(**values).execution_options(synchronize_session=False)
    )


async def finish(
    session: AsyncSession,
    item: WorkItem,
    *,
    outcome: WorkItemStatus = WorkItemStatus.done,
    wrap_up: timedelta | None = None,
) -> None:
    """The item is handled (done) or no longer needed (cancelled); its agent's slot is free again, after
    the wrap-up time when the work was done."""
    if item.status in (WorkItemStatus.done, WorkItemStatus.cancelled):
        return
    now = utc_now()
    agent_id = item.agent_id if item.status is WorkItemStatus.assigned else None
    item.status = outcome
    item.finished_at = now
    item.history = [
        *item.history,
        {"at": now.isoformat(), "event": outcome.value, "agent": str(item.agent_id)},
    ]
    if agent_id is not None:
        wrap = wrap_up if outcome is WorkItemStatus.done else None
        await release_capacity(session, agent_id, 1, now=now, wrap_up=wrap)
        await wake_router(session, item.tenant_id)
        if wrap:
            await wake_router(session, item.tenant_id, at=now + wrap)


def _back_to_queue(item: WorkItem, *, reason: str, now: datetime, declined: bool = False) -> None:
    """Undo an item's assignment; the undone assignment stays in the history (the row only says where the
    item is now). `declined`: the agent let it go, and is not offered it again."""
    requeued = {"at": now.isoformat(), "event": "requeued", "reason": reason, "agent": str(item.agent_id)}
    if item.assigned_at is not None:
        requeued["assigned_at"] = item.assigned_at.isoformat()
    item.history = [*item.history, requeued]
    if declined and item.agent_id is not None:
        item.declined_by = [*item.declined_by, str(item.agent_id)]
    item.status = WorkItemStatus.queued
    item.agent_id = None
    item.assigned_at = None
    item.accepted_at = None
    item.accept_deadline = None


async def requeue_agent_items(session: AsyncSession, agent: User, *, reason: str) -> list[WorkItem]:
    """An agent going offline gives back what they held: it returns to the queue, keeping its age."""
    now = utc_now()
    items = list(
        (
            await session.execute(
                select(WorkItem)
                .where(WorkItem.agent_id == agent.id, WorkItem.status == WorkItemStatus.assigned)
                .with_for_update()
            )
        ).scalars()
    )
    for item in items:
        _back_to_queue(item, reason=reason, now=now)
    if items:
        await release_capacity(session, agent.id, len(items), now=now)
        await wake_router(session, agent.tenant_id)
    return items


async def _offered_item(session: AsyncSession, agent: User, item_id: uuid.UUID) -> WorkItem:
    item = (
        await session.execute(
            select(WorkItem)
            .where(WorkItem.id == item_id, WorkItem.tenant_id == agent.tenant_id)
            .with_for_update()
        )
    ).scalar_one_or_none()
    if item is None:
        raise NotFound("No such work item.", code="work_item_not_found", details={"id": str(item_id)})
    if item.status is not WorkItemStatus.assigned or item.agent_id != agent.id:
        raise Conflict(
            "This item is not offered to you (any more).",
            code="not_offered",
            details={"status": item.status.value},
        )
    return item


async def accept(session: AsyncSession, agent: User, item_id: uuid.UUID) -> WorkItem:
    """The agent takes what they were offered; accepting twice is harmless."""
    item = await _offered_item(session, agent, item_id)
    if item.accepted_at is None:
        now = utc_now()
        item.accepted_at = now
        item.accept_deadline = None
        item.history = [*item.history, {"at": now.isoformat(), "event": "accepted", "agent": str(agent.id)}]
    return item


async def decline(session: AsyncSession, agent: User, item_id: uuid.UUID, *, reason: str) -> WorkItem:
    """The agent gives back an item (offered or taken): to the queue, and not to them again."""
    item = await _offered_item(session, agent, item_id)
    now = utc_now()
    _back_to_queue(item, reason=reason, now=now, declined=True)
    await release_capacity(session, agent.id, 1, now=now)
    await wake_router(session, item.tenant_id)
    return item


async def expire_offers(session: AsyncSession, now: datetime, *, limit: int = 500) -> list[WorkItem]:
    """Offers nobody accepted in time go back to the queue; their agents, who did not answer, are set away
    (an agent who walked off would be offered everything in turn)."""
    items = list(
        (
            await session.execute(
                select(WorkItem)
                .where(
                    WorkItem.status == WorkItemStatus.assigned,
                    WorkItem.accept_deadline.is_not(None),
                    WorkItem.accept_deadline <= now,
                )
                .order_by(WorkItem.accept_deadline)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        ).scalars()
    )
    agents: dict[uuid.UUID, int] = {}
    for item in items:
        if item.agent_id is not None:
            agents[item.agent_id] = agents.get(item.agent_id, 0) + 1
        _back_to_queue(item, reason="offer not accepted in time", now=now, declined=True)
    for agent_id in sorted(agents):
        await release_capacity(session, agent_id, agents[agent_id], now=now)
    if agents:
        away = (
            await session.execute(
                update(User)
                .where(User.id.in_(sorted(agents)), User.status == AgentStatus.available)
                .values(status=AgentStatus.away, status_since=now, status_reason=MISSED_OFFER)
                .returning(User.id, User.tenant_id)
                .execution_options(synchronize_session=False)
            )
        ).all()
        await presence.record_changes(
            session,
            [(agent_id, tenant_id) for agent_id, tenant_id in away],
            status=AgentStatus.away,
            previous=AgentStatus.available,
            reason=MISSED_OFFER,
            at=now,
        )
        for agent_id, tenant_id in away:
            publish_on_commit(
                session,
                Event("agent.status", tenant_id, {"agent_id": str(agent_id), "status": "away"}),
            )
    for tenant_id in {item.tenant_id for item in items}:
        await wake_router(session, tenant_id)
    return items


async def take(session: AsyncSession, conversation_id: uuid.UUID, agent: User) -> WorkItem | None:
    """An agent answers a waiting conversation: its work item becomes theirs, whoever the engine chose."""
    item = await live_item_of_conversation(session, conversation_id)
    if item is None:
        return None
    now = utc_now()
    if item.agent_id == agent.id:
        if item.accepted_at is None:  # answering an offer accepts it
            item.accepted_at = now
            item.accept_deadline = None
        return item
    if item.status is WorkItemStatus.assigned and item.agent_id is not None:
        await release_capacity(session, item.agent_id, 1, now=now)
    await session.execute(
        update(User)
        .where(User.id == agent.id)
        .values(active_items=User.active_items + 1, last_assigned_at=now, idle_since=now)
        .execution_options(synchronize_session=False)
    )
    item.status = WorkItemStatus.assigned
    item.agent_id = agent.id
    item.assigned_at = now
    item.accepted_at = now
    item.accept_deadline = None
    item.history = [*item.history, {"at": now.isoformat(), "event": "taken", "agent": str(agent.id)}]
    return item


async def finish_ticket(
    session: AsyncSession, ticket_id: uuid.UUID, *, wrap_up: timedelta | None = None
) -> None:
    """The live work item of a resolved or closed ticket is done."""
    live = await live_item_of_ticket(session, ticket_id)
    if live is not None:
        await finish(session, live, wrap_up=wrap_up)


async def reprioritise_ticket(
    session: AsyncSession, ticket_id: uuid.UUID, priority: Priority, *, vip: bool | None = None
) -> None:
    """A ticket's new priority (or its customer's new VIP status) moves its queued work item."""
    item = await live_item_of_ticket(session, ticket_id)
    if item is not None and item.status is WorkItemStatus.queued:
        item.priority = priority
        if vip is not None:
            item.vip = vip
        item.queue_rank = queue_rank(priority, item.vip)
        await wake_router(session, item.tenant_id)


async def live_item_of_ticket(session: AsyncSession, ticket_id: uuid.UUID) -> WorkItem | None:
    """The ticket's queued or assigned work item, locked for the caller's change."""
    return await _live_item(session, WorkItem.ticket_id == ticket_id)


async def live_item_of_conversation(session: AsyncSession, conversation_id: uuid.UUID) -> WorkItem | None:
    """The conversation's queued or assigned work item, locked for the caller's change."""
    return await _live_item(session, WorkItem.conversation_id == conversation_id)


async def _live_item(session: AsyncSession, belongs: ColumnElement[bool]) -> WorkItem | None:
    # At most one: the partial unique indexes on live items per ticket and per conversation.
    item: WorkItem | None = (
        await session.execute(
            select(WorkItem)
            .where(belongs, WorkItem.status.in_((WorkItemStatus.queued, WorkItemStatus.assigned)))
            .with_for_update()
        )
    ).scalar_one_or_none()
    return item


async def requeue(
    session: AsyncSession,
    item: WorkItem,
    *,
    reason: str,
    team_id: uuid.UUID | None,
    min_tier: Tier,
    skills: Sequence[str],
) -> None:
    """The item changes queue (escalated, another team): it leaves its agent and waits for the new queue,
    keeping its age so that it is not pushed behind work that came after it."""
    now = utc_now()
    if item.status is WorkItemStatus.assigned and item.agent_id is not None:
        agent_id = item.agent_id
        _back_to_queue(item, reason=reason, now=now)
        await release_capacity(session, agent_id, 1, now=now)
    else:
        item.history = [*item.history, {"at": now.isoformat(), "event": "moved", "reason": reason}]
    item.team_id = team_id
    item.min_tier = min_tier
    item.skills = list(dict.fromkeys(skills))
    item.declined_by = []
    await wake_router(session, item.tenant_id)


async def assign_to(session: AsyncSession, item: WorkItem, agent: User, *, reason: str) -> None:
    """Give the item to this agent by hand (a supervisor's choice), whoever held it: it counts in the
    agent's load like any assignment; refused when the agent has no free slot."""
    now = utc_now()
    if item.agent_id == agent.id and item.status is WorkItemStatus.assigned:
        item.accepted_at = item.accepted_at or now  # a supervisor's choice is not an offer
        item.accept_deadline = None
        return
    claimed = (
        await session.execute(
            update(User)
            .where(
                User.id == agent.id,
                User.active.is_(True),
                User.status != AgentStatus.offline,
                User.active_items < User.max_concurrent,
            )
            .values(active_items=User.active_items + 1, last_assigned_at=now, idle_since=now)
            .returning(User.id)
            .execution_options(synchronize_session=False)
        )
    ).first()
    if claimed is None:
        raise Conflict(
            "This agent has no free slot (max concurrent items reached), or has just gone offline.",
            code="agent_at_capacity",
            details={"agent_id": str(agent.id), "max_concurrent": agent.max_concurrent},
        )
    if item.status is WorkItemStatus.assigned and item.agent_id is not None:
        await release_capacity(session, item.agent_id, 1, now=now)
    item.status = WorkItemStatus.assigned
    item.agent_id = agent.id
    item.assigned_at = now
    item.accepted_at = now
    item.accept_deadline = None
    item.history = [
        *item.history,
        {"at": now.isoformat(), "event": "assigned_by_hand", "agent": str(agent.id), "reason": reason},
    ]
    publish_on_commit(
        session,
        Event(
            "work_item.assigned", item.tenant_id, {"work_item_id": str(item.id), "agent_id": str(agent.id)}
        ),
    )


async def unassign(session: AsyncSession, item: WorkItem, *, reason: str) -> None:
    """Back to the queue from whoever held it."""
    if item.status is not WorkItemStatus.assigned or item.agent_id is None:
        return
    now = utc_now()
    agent_id = item.agent_id
    _back_to_queue(item, reason=reason, now=now)
    await release_capacity(session, agent_id, 1, now=now)
    await wake_router(session, item.tenant_id)


async def floor_status(session: AsyncSession, tenant_id: uuid.UUID, now: datetime) -> dict[str, Any]:
    """The floor as the ACD sees it: waiting work per queue (team, tier, language) and agents' load."""
    teams: dict[uuid.UUID, str] = {
        team_id: code
        for team_id, code in (
            await session.execute(select(Team.id, Team.code).where(Team.tenant_id == tenant_id))
        )
    }
    queues: dict[tuple[str | None, Tier, str], dict[str, Any]] = {}
    rows = (
        await session.execute(
            select(
                WorkItem.team_id,
                WorkItem.min_tier,
                WorkItem.language,
                WorkItem.priority,
                func.count(),
                func.min(WorkItem.enqueued_at),
            )
            .where(WorkItem.tenant_id == tenant_id, WorkItem.status == WorkItemStatus.queued)
            .group_by(WorkItem.team_id, WorkItem.min_tier, WorkItem.language, WorkItem.priority)
        )
    ).all()
    for team_id, tier, language, priority, count, oldest in rows:
        key = (teams.get(team_id) if team_id else None, tier, language)
        queue = queues.setdefault(
            key,
            {
                "team": key[0],
                "tier": tier,
                "language": language,
                "waiting": 0,
                "by_priority": {},
                "oldest": oldest,
            },
        )
        queue["waiting"] += count
        queue["by_priority"][priority.value] = count
        queue["oldest"] = min(queue["oldest"], oldest)
    counts: dict[WorkItemStatus, int] = {
        status: int(count)
        for status, count in await session.execute(
            select(WorkItem.status, func.count())
            .where(
                WorkItem.tenant_id == tenant_id,
                WorkItem.status.in_((WorkItemStatus.queued, WorkItemStatus.assigned)),
            )
            .group_by(WorkItem.status)
        )
    }
    offers = (
        await session.execute(
            select(func.count()).where(
                WorkItem.tenant_id == tenant_id,
                WorkItem.status == WorkItemStatus.assigned,
                WorkItem.accepted_at.is_(None),
            )
        )
    ).scalar_one()
    agents = list(
        (
            await session.execute(
                select(User)
                .where(User.tenant_id == tenant_id, User.active.is_(True), User.role == Role.agent)
                .order_by(User.full_name)
            )
        ).scalars()
    )
    by_status: dict[str, int] = {s.value: 0 for s in AgentStatus}
    for agent in agents:
        by_status[agent.status.value] += 1
    return {
        "at": now,
        "queues": sorted(
            (
                {
                    **{k: v for k, v in q.items() if k != "oldest"},
                    "longest_wait_seconds": int((now - q["oldest"]).total_seconds()),
                }
                for q in queues.values()
            ),
            key=lambda q: -q["longest_wait_seconds"],
        ),
        "waiting": counts.get(WorkItemStatus.queued, 0),
        "assigned": counts.get(WorkItemStatus.assigned, 0),
        "offers_pending": int(offers),
        "agents_by_status": by_status,
        "agents": [
            {
                "id": a.id,
                "full_name": a.full_name,
                "team": teams.get(a.team_id) if a.team_id else None,
                "tier": a.tier,
                "status": a.status,
                "status_reason": a.status_reason,
                "active_items": a.active_items,
                "max_concurrent": a.max_concurrent,
                "wrapping_up": a.wrap_up_until is not None and a.wrap_up_until > now,
            }
            for a in agents
        ],
    }


async def answered(session: AsyncSession, conversation_id: uuid.UUID, agent_id: uuid.UUID) -> None:
    """The agent wrote to the customer: an offer of this conversation to them is accepted."""
    now = utc_now()
    await session.execute(
        update(WorkItem)
        .where(
            WorkItem.conversation_id == conversation_id,
            WorkItem.status == WorkItemStatus.assigned,
            WorkItem.agent_id == agent_id,
            WorkItem.accepted_at.is_(None),
        )
        .values(accepted_at=now, accept_deadline=None, updated_at=now)
        .execution_options(synchronize_session=False)
    )
