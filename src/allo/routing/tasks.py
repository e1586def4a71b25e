"""The worker's side of routing: run the engine when work is queued or an agent frees up."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from allo.kit import jobs
from allo.kit.bus import Event, publish_on_commit
from allo.kit.time import utc_now
from allo.models import Conversation, Ticket
from allo.models.enums import ConversationStatus
from allo.routing.engine import DEFAULT_BATCH, Assignment, Strategy, assign_queued
from allo.routing.service import ASSIGN_KIND, wake_router
from allo.tenants import service as tenants

_WAITING = (ConversationStatus.bot, ConversationStatus.queued)


async def route(
    session: AsyncSession, tenant_id: uuid.UUID, *, limit: int = DEFAULT_BATCH
) -> list[Assignment]:
    """One engine pass for the tenant, and what each assignment means for its conversation or ticket."""
    policy = tenants.policy_of(await tenants.get_or_raise(session, tenant_id))
    assignments = await assign_queued(
        session, tenant_id, strategy=Strategy(policy.routing.strategy), limit=limit
    )
    for a in assignments:
        if a.conversation_id is not None:
            conversation = await session.get(Conversation, a.conversation_id)
            if conversation is not None and conversation.status in (
                ConversationStatus.bot,
                ConversationStatus.queued,
            ):
                conversation.status = ConversationStatus.assigned
                conversation.assigned_agent_id = a.agent_id
                conversation.assigned_at = conversation.assigned_at or utc_now()
                publish_on_commit(
                    session,
                    Event(
                        "conversation.status",
                        tenant_id,
                        {"conversation_id": str(a.conversation_id), "status": conversation.status.value},
                    ),
                )
        if a.ticket_id is not None:
            ticket = await session.get(Ticket, a.ticket_id)
            if ticket is not None and ticket.assignee_id is None:
                ticket.assignee_id = a.agent_id
        publish_on_commit(
            session,
            Event(
                "work_item.assigned",
                tenant_id,
                {"work_item_id": str(a.item_id), "agent_id": str(a.agent_id)},
            ),
        )
    if len(assignments) >= limit:
        await wake_router(session, tenant_id)  # more may be waiting: another pass right after this one
    return assignments


@jobs.job_handler(ASSIGN_KIND)
async def assign(ctx: jobs.JobContext) -> None:
    if ctx.tenant_id is None:
        raise jobs.PermanentFailure("a routing pass needs its tenant")
    await route(ctx.session, ctx.tenant_id)
