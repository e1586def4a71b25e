"""Putting work in the queue and taking it out: what the rest of Allo calls; the engine decides who."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import case, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from allo.kit import jobs
from allo.kit.bus import Event, publish_on_commit
from allo.kit.time import utc_now
from allo.models import User, WorkItem
from allo.models.enums import Priority, Tier, WorkItemStatus, WorkKind
from allo.models.routing import queue_rank

ASSIGN_KIND = "routing.assign"


async def wake_router(session: AsyncSession, tenant_id: uuid.UUID) -> None:
    """Ask a worker to run the engine for this tenant after commit; one waiting pass serves every wake-up."""
    jobs.enqueue_on_commit(session, ASSIGN_KIND, tenant_id=tenant_id, max_attempts=3, coalesce=True)


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


async def release_capacity(session: AsyncSession, agent_id: uuid.UUID, count: int, *, now: datetime) -> None:
    """Give back `count` slots of an agent; an agent left with nothing is idle from now on."""
    remaining = User.active_items - count
    await session.execute(
        update(User)
        .where(User.id == agent_id)
        .values(
            active_items=case((remaining < 0, 0), else_=remaining),
            idle_since=case((remaining <= 0, now), else_=User.idle_since),
        )
        .execution_options(synchronize_session=False)
    )


async def finish(
    session: AsyncSession, item: WorkItem, *, outcome: WorkItemStatus = WorkItemStatus.done
) -> None:
    """The item is handled (done) or no longer needed (cancelled); its agent's slot is free again."""
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
        await release_capacity(session, agent_id, 1, now=now)
        await wake_router(session, item.tenant_id)


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
        # The assignment being undone is kept in the history: the row only says where the item is now.
        requeued = {"at": now.isoformat(), "event": "requeued", "reason": reason, "agent": str(agent.id)}
        if item.assigned_at is not None:
            requeued["assigned_at"] = item.assigned_at.isoformat()
        item.history = [*item.history, requeued]
        item.status = WorkItemStatus.queued
        item.agent_id = None
        item.assigned_at = None
    if items:
        await release_capacity(session, agent.id, len(items), now=now)
        await wake_router(session, agent.tenant_id)
    return items


async def take(session: AsyncSession, conversation_id: uuid.UUID, agent: User) -> WorkItem | None:
    """An agent answers a waiting conversation: its work item becomes theirs, whoever the engine chose."""
    item = (
        await session.execute(
            select(WorkItem)
            .where(
                WorkItem.conversation_id == conversation_id,
                WorkItem.status.in_((WorkItemStatus.queued, WorkItemStatus.assigned)),
            )
            .with_for_update()
        )
    ).scalar_one_or_none()
    if item is None or item.agent_id == agent.id:
        return item
    now = utc_now()
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
    item.history = [*item.history, {"at": now.isoformat(), "event": "taken", "agent": str(agent.id)}]
    return item


async def finish_ticket(session: AsyncSession, ticket_id: uuid.UUID) -> None:
    """The live work item of a resolved or closed ticket is done."""
    live = (
        await session.execute(
            select(WorkItem)
            .where(
                WorkItem.ticket_id == ticket_id,
                WorkItem.status.in_((WorkItemStatus.queued, WorkItemStatus.assigned)),
            )
            .with_for_update()
        )
    ).scalar_one_or_none()
    if live is not None:
        await finish(session, live)


async def reprioritise_ticket(session: AsyncSession, ticket_id: uuid.UUID, priority: Priority) -> None:
    """A ticket's new priority moves its queued work item in the queue."""
    item = (
        await session.execute(
            select(WorkItem).where(WorkItem.ticket_id == ticket_id, WorkItem.status == WorkItemStatus.queued)
        )
    ).scalar_one_or_none()
    if item is not None:
        item.priority = priority
        item.queue_rank = queue_rank(priority, item.vip)
        await wake_router(session, item.tenant_id)
