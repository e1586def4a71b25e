"""The worker's side of routing: run the engine when work is queued or an agent frees up."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from allo.conversations.service import hand_to
from allo.kit import jobs
from allo.kit.bus import Event, publish_on_commit
from allo.models import Conversation, Ticket, User, WorkItem
from allo.models.enums import ConversationStatus, WorkItemStatus
from allo.routing.engine import DEFAULT_BATCH, Assignment, Strategy, assign_queued, rules_for
from allo.routing.service import ASSIGN_KIND, expire_offers, requeue_agent_items, wake_router
from allo.tenants import service as tenants
from allo.webhooks import service as webhooks

# A conversation follows its work item when it waits for or is with a human, and also when the bot still
# has it but someone queued a ticket on it: the human takes over from the assistant.
_HUMAN_SIDE = (ConversationStatus.bot, ConversationStatus.queued, ConversationStatus.assigned)


async def route(
    session: AsyncSession, tenant_id: uuid.UUID, *, limit: int = DEFAULT_BATCH
) -> list[Assignment]:
    """One engine pass for the tenant; each assignment's conversation and ticket follow its agent."""
    policy = tenants.policy_of(await tenants.get_or_raise(session, tenant_id)).routing
    assignments = await assign_queued(
        session,
        tenant_id,
        strategy=Strategy(policy.strategy),
        rules=await rules_for(session, tenant_id, policy),
        limit=limit,
        accept_timeout=timedelta(seconds=policy.accept_timeout_seconds)
        if policy.accept_timeout_seconds
        else None,
    )
    await follow_items(
        session, tenant_id, [(a.conversation_id, a.ticket_id, a.agent_id) for a in assignments]
    )
    for a in assignments:
        publish_on_commit(
            session,
            Event(
                "work_item.assigned",
                tenant_id,
                {"work_item_id": str(a.item_id), "agent_id": str(a.agent_id)},
            ),
        )
    await webhooks.emit_many(
        session,
        tenant_id,
        "work_item.assigned",
        [
            {
                "work_item_id": str(a.item_id),
                "agent_id": str(a.agent_id),
                "conversation_id": str(a.conversation_id) if a.conversation_id else None,
                "ticket_id": str(a.ticket_id) if a.ticket_id else None,
            }
            for a in assignments
        ],
    )
    if len(assignments) >= limit:
        await wake_router(session, tenant_id)  # more may be waiting: another pass right after this one
    return assignments


async def follow_items(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    moves: list[tuple[uuid.UUID | None, uuid.UUID | None, uuid.UUID | None]],
) -> None:
    """(conversation, ticket, agent or None): each conversation and ticket now with that agent, or queued.
    Two queries whatever the number of items."""
    by_conversation = {c: agent for c, _t, agent in moves if c is not None}
    by_ticket = {t: agent for _c, t, agent in moves if t is not None}
    if by_conversation:
        conversations = (
            await session.execute(
                select(Conversation).where(
                    Conversation.tenant_id == tenant_id, Conversation.id.in_(list(by_conversation))
                )
            )
        ).scalars()
        for conversation in conversations:
            if (
                conversation.status in _HUMAN_SIDE
                and conversation.assigned_agent_id != by_conversation[conversation.id]
            ):
                hand_to(session, conversation, by_conversation[conversation.id])
    if by_ticket:
        tickets = (
            await session.execute(
                select(Ticket).where(Ticket.tenant_id == tenant_id, Ticket.id.in_(list(by_ticket)))
            )
        ).scalars()
        for ticket in tickets:
            ticket.assignee_id = by_ticket[ticket.id]


async def agent_leaves(session: AsyncSession, agent: User, *, reason: str) -> None:
    """An agent going offline or deactivated: their items, conversations and tickets go back to the queue."""
    items = await requeue_agent_items(session, agent, reason=reason)
    await follow_items(session, agent.tenant_id, [(i.conversation_id, i.ticket_id, None) for i in items])


@jobs.job_handler(ASSIGN_KIND)
async def assign(ctx: jobs.JobContext) -> None:
    if ctx.tenant_id is None:
        raise jobs.PermanentFailure("a routing pass needs its tenant")
    await route(ctx.session, ctx.tenant_id)


async def tick(session: AsyncSession, now: datetime) -> None:
    """The routing side of the periodic clock: offers not accepted in time go back to the queue, and every
    tenant with waiting work gets an engine pass (items that now overflow, agents back from wrap-up, and a
    safety net for any wake-up lost with a crashed process)."""
    expired = await expire_offers(session, now)
    for tenant_id in {item.tenant_id for item in expired}:
        await follow_items(
            session,
            tenant_id,
            [(i.conversation_id, i.ticket_id, None) for i in expired if i.tenant_id == tenant_id],
        )
    waiting = (
        await session.execute(
            select(WorkItem.tenant_id).where(WorkItem.status == WorkItemStatus.queued).distinct()
        )
    ).scalars()
    for tenant_id in list(waiting):
        await wake_router(session, tenant_id)
