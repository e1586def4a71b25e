from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from allo.agents.repository import AgentRepository
from allo.agents.service import team_id_for_code
from allo.audit.service import record_by
from allo.auth.principal import Principal
from allo.conversations.repository import ConversationRepository
from allo.customers.repository import CustomerRepository
from allo.kit.bus import Event, publish_on_commit
from allo.kit.errors import Conflict, Unprocessable
from allo.kit.time import utc_now
from allo.models import Ticket, TicketEvent
from allo.models.enums import TIER_RANK, ConversationStatus, TicketStatus
from allo.routing import service as routing
from allo.tenants import service as tenants
from allo.tickets import sla
from allo.tickets.repository import TicketRepository
from allo.tickets.schemas import TicketCreate, TicketUpdate

ALLOWED_TRANSITIONS: dict[TicketStatus, frozenset[TicketStatus]] = {
    TicketStatus.new: frozenset(
        {TicketStatus.open, TicketStatus.pending, TicketStatus.resolved, TicketStatus.closed}
    ),
    TicketStatus.open: frozenset({TicketStatus.pending, TicketStatus.resolved, TicketStatus.closed}),
    TicketStatus.pending: frozenset({TicketStatus.open, TicketStatus.resolved, TicketStatus.closed}),
    TicketStatus.resolved: frozenset({TicketStatus.open, TicketStatus.closed}),
    TicketStatus.closed: frozenset(),
}


def _key_actor(principal: Principal) -> dict[str, str]:
    """Who acted when it was no user: the history must name the integration's API key."""
    if principal.user_id is None and principal.api_key_id is not None:
        return {"actor_api_key_id": str(principal.api_key_id)}
    return {}


async def _check_assignee(session: AsyncSession, tenant_id: uuid.UUID, assignee_id: uuid.UUID | None) -> None:
    if assignee_id is None:
        return
    agent = await AgentRepository(session, tenant_id).get(assignee_id)
    if agent is None or not agent.active:
        raise Unprocessable(
            "Unknown or inactive assignee.",
            code="unknown_assignee",
            details={"assignee_id": str(assignee_id)},
        )


async def _pause_or_resume_clock(
    session: AsyncSession, ticket: Ticket, status: TicketStatus, now: datetime
) -> None:
    """Pending on the customer stops the resolution clock; leaving pending restarts it, later by the pause."""
    if status is TicketStatus.pending and ticket.sla_paused_at is None:
        ticket.sla_paused_at = now
        return
    if ticket.sla_paused_at is None or status is TicketStatus.pending:
        return
    policy = tenants.policy_of(await tenants.get_or_raise(session, ticket.tenant_id))
    ticket.sla_paused_seconds += int(
        sla.paused_time(policy, ticket.priority, ticket.sla_paused_at, now).total_seconds()
    )
    ticket.sla_paused_at = None
    _, ticket.resolution_due_at = sla.due_times(
        policy, ticket.priority, ticket.created_at, paused=timedelta(seconds=ticket.sla_paused_seconds)
    )


async def _resolve_conversation(session: AsyncSession, ticket: Ticket, now: datetime) -> None:
    """A human resolved the case: its conversation is resolved too (the customer's next message goes to the
    assistant again, which reopens it)."""
    if ticket.conversation_id is None:
        return
    conversation = await ConversationRepository(session, ticket.tenant_id).get(ticket.conversation_id)
    if conversation is None or conversation.status not in (
        ConversationStatus.queued,
        ConversationStatus.assigned,
    ):
        return
    conversation.status = ConversationStatus.resolved
    conversation.resolved_at = now
    conversation.resolved_by = "agent"
    publish_on_commit(
        session,
        Event(
            "conversation.status",
            ticket.tenant_id,
            {"conversation_id": str(conversation.id), "status": "resolved"},
        ),
    )


async def create_ticket(session: AsyncSession, principal: Principal, data: TicketCreate) -> Ticket:
    tenant = await tenants.get_or_raise(session, principal.tenant_id)
    await CustomerRepository(session, principal.tenant_id).get_or_raise(data.customer_id)
    if data.conversation_id is not None:
        conversation = await ConversationRepository(session, principal.tenant_id).get_or_raise(
            data.conversation_id
        )
        if conversation.customer_id != data.customer_id:
            raise Unprocessable("The conversation belongs to another customer.", code="customer_mismatch")
    await _check_assignee(session, principal.tenant_id, data.assignee_id)
    now = utc_now()
    first_due, resolution_due = sla.due_times(tenants.policy_of(tenant), data.priority, now)
    repo = TicketRepository(session, principal.tenant_id)
    ticket = repo.add(
        Ticket(
            number=await tenants.allocate_ticket_number(session, principal.tenant_id),
            subject=data.subject,
            description=data.description,
            category=data.category,
            priority=data.priority,
            tier=data.tier,
            team_id=await team_id_for_code(session, principal.tenant_id, data.team),
            assignee_id=data.assignee_id,
            customer_id=data.customer_id,
            conversation_id=data.conversation_id,
            first_response_due_at=first_due,
            resolution_due_at=resolution_due,
            created_at=now,
            updated_at=now,
        )
    )
    await session.flush()
    session.add(
        TicketEvent(
            tenant_id=principal.tenant_id,
            ticket_id=ticket.id,
            actor_user_id=principal.user_id,
            kind="created",
            data={
                "priority": data.priority.value,
                "category": data.category.value,
                "tier": data.tier.value,
                **_key_actor(principal),
            },
        )
    )
    publish_on_commit(session, Event("ticket.created", principal.tenant_id, {"ticket_id": str(ticket.id)}))
    await record_by(session, principal, "ticket.create", "ticket", ticket.id, {"number": ticket.number})
    return ticket


async def update_ticket(
    session: AsyncSession, principal: Principal, ticket_id: uuid.UUID, data: TicketUpdate
) -> Ticket:
    repo = TicketRepository(session, principal.tenant_id)
    ticket = await repo.get_or_raise(ticket_id)
    now = utc_now()
    history: list[TicketEvent] = []

    def change(kind: str, field: str, old: object, new: object) -> None:
        history.append(
            TicketEvent(
                tenant_id=principal.tenant_id,
                ticket_id=ticket.id,
                actor_user_id=principal.user_id,
                kind=kind,
                field=field,
                from_value=None if old is None else str(getattr(old, "value", old)),
                to_value=None if new is None else str(getattr(new, "value", new)),
                reason=data.reason,
                data=_key_actor(principal),
            )
        )

    fields = data.model_fields_set
    if data.status is not None and data.status is not ticket.status:
        if data.status not in ALLOWED_TRANSITIONS[ticket.status]:
            raise Conflict(
                f"A {ticket.status.value} ticket cannot become {data.status.value}.",
                code="invalid_transition",
                details={"from": ticket.status.value, "to": data.status.value},
            )
        change("status_changed", "status", ticket.status, data.status)
        if ticket.status is TicketStatus.new and ticket.first_responded_at is None:
            ticket.first_responded_at = now
        if data.status is TicketStatus.resolved:
            ticket.resolved_at = now
        elif data.status is TicketStatus.closed:
            ticket.closed_at = now
            ticket.resolved_at = ticket.resolved_at or now
        elif ticket.status is TicketStatus.resolved:
            ticket.resolved_at = None  # reopened
        await _pause_or_resume_clock(session, ticket, data.status, now)
        ticket.status = data.status
        if data.status in (TicketStatus.resolved, TicketStatus.closed):
            # The agent's slot is free again: the ticket and its conversation are one piece of work.
            await routing.finish_ticket(session, ticket.id)
            await _resolve_conversation(session, ticket, now)
    if data.priority is not None and data.priority is not ticket.priority:
        change("priority_changed", "priority", ticket.priority, data.priority)
        ticket.priority = data.priority
        policy = tenants.policy_of(await tenants.get_or_raise(session, principal.tenant_id))
        ticket.first_response_due_at, ticket.resolution_due_at = sla.due_times(
            policy, data.priority, ticket.created_at, paused=timedelta(seconds=ticket.sla_paused_seconds)
        )
        await routing.reprioritise_ticket(session, ticket.id, data.priority)
    if data.category is not None and data.category is not ticket.category:
        change("category_changed", "category", ticket.category, data.category)
        ticket.category = data.category
    if data.subject is not None and data.subject != ticket.subject:
        change("subject_changed", "subject", ticket.subject, data.subject)
        ticket.subject = data.subject
    if data.tier is not None and data.tier is not ticket.tier:
        kind = "escalated" if TIER_RANK[data.tier] > TIER_RANK[ticket.tier] else "deescalated"
        change(kind, "tier", ticket.tier, data.tier)
        ticket.tier = data.tier
    if "team" in fields:
        team_id = await team_id_for_code(session, principal.tenant_id, data.team)
        if team_id != ticket.team_id:
            change("team_changed", "team", ticket.team_id, team_id)
            ticket.team_id = team_id
    if "assignee_id" in fields and data.assignee_id != ticket.assignee_id:
        await _check_assignee(session, principal.tenant_id, data.assignee_id)
        change(
            "assigned" if data.assignee_id else "unassigned",
            "assignee_id",
            ticket.assignee_id,
            data.assignee_id,
        )
        ticket.assignee_id = data.assignee_id
    if history:
        ticket.updated_at = now
        session.add_all(history)
        await session.flush()
        publish_on_commit(
            session,
            Event(
                "ticket.updated",
                principal.tenant_id,
                {"ticket_id": str(ticket.id), "changes": [e.kind for e in history]},
            ),
        )
        await record_by(
            session, principal, "ticket.update", "ticket", ticket.id, {"changes": [e.kind for e in history]}
        )
    return ticket
