from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from allo.agents.repository import AgentRepository
from allo.agents.service import team_id_for_code
from allo.audit.service import record_by
from allo.auth.principal import Principal
from allo.conversations.repository import ConversationRepository
from allo.conversations.service import announce_status, hand_to, store_message
from allo.customers.repository import CustomerRepository
from allo.kit.bus import Event, publish_on_commit
from allo.kit.errors import Conflict, Unprocessable
from allo.kit.text import check_message_body
from allo.kit.time import utc_now
from allo.models import Conversation, Customer, Team, Ticket, TicketConversation, TicketEvent, User, WorkItem
from allo.models.enums import (
    TIER_RANK,
    AgentStatus,
    AuthorKind,
    Category,
    ConversationStatus,
    Priority,
    Role,
    TicketStatus,
    Tier,
    WorkKind,
)
from allo.routing import service as routing
from allo.tenants import service as tenants
from allo.tenants.schemas import TenantPolicy
from allo.tickets import sla
from allo.tickets.priority import decide
from allo.tickets.repository import OPEN_STATUSES, TicketRepository, of_conversation
from allo.tickets.schemas import (
    TicketCreate,
    TicketEscalate,
    TicketMerge,
    TicketReply,
    TicketReplyRead,
    TicketUpdate,
)
from allo.webhooks import service as webhooks

# Categories that need an agent with the skill of that name.
SKILLED_CATEGORIES = frozenset(
    {Category.billing, Category.technical, Category.plan, Category.cancellation, Category.delivery}
)
_NEXT_TIER = {Tier.n1: Tier.n2, Tier.n2: Tier.specialist}
# Closures the system makes itself carry their own resolution code.
DUPLICATE_DISPOSITION = "duplicate"
INCIDENT_DISPOSITION = "incident"

ALLOWED_TRANSITIONS: dict[TicketStatus, frozenset[TicketStatus]] = {
    # A new ticket nobody has looked at is never closed straight away: resolve it (with a disposition),
    # or merge it when it is a duplicate.
    TicketStatus.new: frozenset({TicketStatus.open, TicketStatus.pending, TicketStatus.resolved}),
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


async def _check_assignee(
    session: AsyncSession, tenant_id: uuid.UUID, assignee_id: uuid.UUID, needs: Requirements
) -> User:
    """The agent named by hand must be able to take the case: an active agent, not offline, at the tier
    and with the skills the case needs."""
    agent = await AgentRepository(session, tenant_id).get(assignee_id, selectinload(User.skills))
    if agent is None or not agent.active or agent.role is not Role.agent:
        raise Unprocessable(
            "Unknown or inactive assignee (an active agent of this tenant is needed).",
            code="unknown_assignee",
            details={"assignee_id": str(assignee_id)},
        )
    if agent.status is AgentStatus.offline:
        raise Conflict(
            "This agent is offline: cases go to agents who are logged in.",
            code="agent_offline",
            details={"assignee_id": str(assignee_id)},
        )
    if TIER_RANK[agent.tier] < TIER_RANK[needs.tier]:
        raise Unprocessable(
            f"This case needs a {needs.tier.value} agent; this one is {agent.tier.value}.",
            code="tier_too_low",
            details={"assignee_id": str(assignee_id), "tier": needs.tier.value},
        )
    levels = {s.skill: s.level for s in agent.skills}
    missing = [skill for skill in needs.skills if levels.get(skill, 0) < 1]
    if missing:
        raise Unprocessable(
            f"This agent lacks the skill the case needs: {', '.join(missing)}.",
            code="missing_skill",
            details={"assignee_id": str(assignee_id), "missing": missing},
        )
    return agent


@dataclass(frozen=True)
class Requirements:
    """Who may handle a ticket: its queue for routing, and the check on a hand-made assignment."""

    team_id: uuid.UUID | None
    tier: Tier
    skills: tuple[str, ...]


async def requirements(session: AsyncSession, ticket: Ticket, policy: TenantPolicy) -> Requirements:
    """The team's and the tier's agents with the skill of the case: the legal team's cases need the legal
    skill; others the skill named like their category (billing, technical…)."""
    team_code = (
        (await session.execute(select(Team.code).where(Team.id == ticket.team_id))).scalar_one_or_none()
        if ticket.team_id
        else None
    )
    if team_code is not None and team_code == policy.escalation.legal_team:
        skills: tuple[str, ...] = ("legal",)
    elif ticket.category in SKILLED_CATEGORIES:
        skills = (ticket.category.value,)
    else:
        skills = ()
    return Requirements(team_id=ticket.team_id, tier=ticket.tier, skills=skills)


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


async def _resolve_conversations(session: AsyncSession, ticket: Ticket, now: datetime) -> None:
    """A human resolved the case: its conversations waiting for or with a human are resolved too (the
    customer's next message goes to the assistant again, which reopens the case or starts a new one)."""
    conversations = await ConversationRepository(session, ticket.tenant_id).get_many(
        await conversation_ids(session, ticket)
    )
    for conversation in conversations:
        if conversation.status in (ConversationStatus.queued, ConversationStatus.assigned):
            _resolve(session, conversation, now)


def _resolve(session: AsyncSession, conversation: Conversation, now: datetime) -> None:
    conversation.status = ConversationStatus.resolved
    conversation.resolved_at = now
    conversation.resolved_by = "agent"
    announce_status(session, conversation)


async def announce(session: AsyncSession, ticket: Ticket, event: str, **data: Any) -> None:
    """A ticket event for the live console (after commit) and for the tenant's webhooks (job table)."""
    payload = {"ticket_id": str(ticket.id), "reference": ticket.reference, **data}
    publish_on_commit(session, Event(event, ticket.tenant_id, payload))
    await webhooks.emit(
        session,
        ticket.tenant_id,
        event,
        {
            **payload,
            "status": ticket.status.value,
            "priority": ticket.priority.value,
            "tier": ticket.tier.value,
            "category": ticket.category.value,
            "customer_id": str(ticket.customer_id),
        },
    )


async def policy_for(session: AsyncSession, tenant_id: uuid.UUID) -> TenantPolicy:
    return tenants.policy_of(await tenants.get_or_raise(session, tenant_id))


def add_event(
    session: AsyncSession,
    principal: Principal,
    ticket: Ticket,
    kind: str,
    *,
    field: str | None = None,
    old: object = None,
    new: object = None,
    reason: str | None = None,
    data: dict[str, Any] | None = None,
) -> TicketEvent:
    """One line of the ticket's history, with who acted."""
    event = TicketEvent(
        tenant_id=ticket.tenant_id,
        ticket_id=ticket.id,
        actor_user_id=principal.user_id,
        kind=kind,
        field=field,
        from_value=None if old is None else str(getattr(old, "value", old))[:200],
        to_value=None if new is None else str(getattr(new, "value", new))[:200],
        reason=reason,
        data={**(data or {}), **_key_actor(principal)},
    )
    session.add(event)
    return event


async def _link(
    session: AsyncSession, ticket: Ticket, conversation_id: uuid.UUID, user_id: uuid.UUID | None
) -> bool:
    """Link a conversation to the ticket; False when it already was."""
    exists = (
        await session.execute(
            select(TicketConversation.id).where(
                TicketConversation.ticket_id == ticket.id,
                TicketConversation.conversation_id == conversation_id,
            )
        )
    ).first()
    if exists is not None:
        return False
    session.add(
        TicketConversation(
            tenant_id=ticket.tenant_id,
            ticket_id=ticket.id,
            conversation_id=conversation_id,
            linked_by_user_id=user_id,
        )
    )
    return True


async def create_ticket(session: AsyncSession, principal: Principal, data: TicketCreate) -> Ticket:
    tenant = await tenants.get_or_raise(session, principal.tenant_id)
    customer = await CustomerRepository(session, principal.tenant_id).get_or_raise(data.customer_id)
    if data.conversation_id is not None:
        conversation = await ConversationRepository(session, principal.tenant_id).get_or_raise(
            data.conversation_id
        )
        if conversation.customer_id != data.customer_id:
            raise Unprocessable("The conversation belongs to another customer.", code="customer_mismatch")
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
            service=data.service,
            area=data.area or customer.area,
            first_response_due_at=first_due,
            resolution_due_at=resolution_due,
            sla_paused_seconds=0,
            sla_alerts=[],
            reopened_count=0,
            created_at=now,
            updated_at=now,
        )
    )
    policy = tenants.policy_of(tenant)
    sla.schedule_alarm(ticket, policy)
    assignee = (
        await _check_assignee(
            session, principal.tenant_id, data.assignee_id, await requirements(session, ticket, policy)
        )
        if data.assignee_id is not None
        else None
    )
    await session.flush()
    if data.conversation_id is not None:
        await _link(session, ticket, data.conversation_id, principal.user_id)
    # Every ticket is work for someone: queued for the routing engine, or given to the agent named.
    item = await queue_ticket(session, ticket, policy)
    if assignee is not None:
        await routing.assign_to(session, item, assignee, reason="assigned when opened")
        await _conversation_follows(session, ticket, assignee.id)
    add_event(
        session,
        principal,
        ticket,
        "created",
        data={"priority": data.priority.value, "category": data.category.value, "tier": data.tier.value},
    )
    await announce(session, ticket, "ticket.created")
    await record_by(session, principal, "ticket.create", "ticket", ticket.id, {"number": ticket.number})
    return ticket


def _check_disposition(policy: TenantPolicy, code: str | None, *, required: bool) -> None:
    # The closures Allo makes itself (a merged duplicate, an incident's end) keep working whatever list a
    # tenant keeps.
    known = {d.code for d in policy.tickets.dispositions} | {DUPLICATE_DISPOSITION, INCIDENT_DISPOSITION}
    if code is None:
        if required and policy.tickets.require_disposition:
            raise Unprocessable(
                "Resolving or closing a ticket needs a disposition (resolution code).",
                code="disposition_required",
                details={"dispositions": sorted(known)},
            )
        return
    if code not in known:
        raise Unprocessable(
            f"Unknown disposition {code!r}.",
            code="unknown_disposition",
            details={"dispositions": sorted(known)},
        )


async def update_ticket(
    session: AsyncSession, principal: Principal, ticket_id: uuid.UUID, data: TicketUpdate
) -> Ticket:
    repo = TicketRepository(session, principal.tenant_id)
    ticket = await repo.get_or_raise(ticket_id)
    policy = await policy_for(session, principal.tenant_id)
    now = utc_now()
    changes: list[str] = []

    def change(kind: str, field: str, old: object, new: object) -> None:
        add_event(session, principal, ticket, kind, field=field, old=old, new=new, reason=data.reason)
        changes.append(kind)

    fields = data.model_fields_set
    finishing = (
        data.status in (TicketStatus.resolved, TicketStatus.closed) and data.status is not ticket.status
    )
    _check_disposition(policy, data.disposition, required=finishing and ticket.disposition is None)
    if data.disposition is not None and data.disposition != ticket.disposition:
        change("disposition_set", "disposition", ticket.disposition, data.disposition)
        ticket.disposition = data.disposition
    if data.status is not None and data.status is not ticket.status:
        if data.status not in ALLOWED_TRANSITIONS[ticket.status]:
            raise Conflict(
                f"A {ticket.status.value} ticket cannot become {data.status.value}.",
                code="invalid_transition",
                details={"from": ticket.status.value, "to": data.status.value},
            )
        change("status_changed", "status", ticket.status, data.status)
        await _move_to(session, ticket, data.status, policy, now)
    if data.priority is not None and data.priority is not ticket.priority:
        change("priority_changed", "priority", ticket.priority, data.priority)
        _retarget(ticket, policy, data.priority)
        await routing.reprioritise_ticket(session, ticket.id, data.priority)
    if data.category is not None and data.category is not ticket.category:
        change("category_changed", "category", ticket.category, data.category)
        was_cancellation = ticket.category is Category.cancellation
        ticket.category = data.category
        if data.priority is None and (was_cancellation or data.category is Category.cancellation):
            await recompute_priority(
                session,
                principal,
                ticket,
                add=("cancellation",) if data.category is Category.cancellation else (),
                remove=() if data.category is Category.cancellation else ("cancellation",),
                why=f"category {data.category.value}",
            )
    if data.subject is not None and data.subject != ticket.subject:
        change("subject_changed", "subject", ticket.subject, data.subject)
        ticket.subject = data.subject
    held_by = ticket.assignee_id
    if data.tier is not None and data.tier is not ticket.tier:
        kind = "escalated" if TIER_RANK[data.tier] > TIER_RANK[ticket.tier] else "deescalated"
        change(kind, "tier", ticket.tier, data.tier)
        ticket.tier = data.tier
        await _requeue(session, ticket, policy, reason=kind)
    if "team" in fields:
        team_id = await team_id_for_code(session, principal.tenant_id, data.team)
        if team_id != ticket.team_id:
            change("team_changed", "team", ticket.team_id, team_id)
            ticket.team_id = team_id
            await _requeue(session, ticket, policy, reason="team changed")
    if held_by is not None and ticket.assignee_id is None and data.assignee_id is None:
        # The new queue took the ticket from its agent.
        change("unassigned", "assignee_id", held_by, None)
    if "assignee_id" in fields and data.assignee_id != ticket.assignee_id:
        previous = ticket.assignee_id
        await _assign_by_hand(session, principal, ticket, data.assignee_id)
        change("assigned" if data.assignee_id else "unassigned", "assignee_id", previous, data.assignee_id)
        ticket.assignee_id = data.assignee_id
    if changes:
        ticket.updated_at = now
        sla.schedule_alarm(ticket, policy)
        await session.flush()
        await announce(session, ticket, "ticket.updated", changes=changes)
        await record_by(session, principal, "ticket.update", "ticket", ticket.id, {"changes": changes})
    return ticket


async def _move_to(
    session: AsyncSession,
    ticket: Ticket,
    status: TicketStatus,
    policy: TenantPolicy,
    now: datetime,
    *,
    resolve_conversations: bool = True,
) -> None:
    """The status change itself, with what follows from it: timestamps, the SLA pause, the agent's slot,
    and a reopened ticket back in the queue, to the agent who had it first when they are there."""
    reopened = ticket.status is TicketStatus.resolved and status in (TicketStatus.open, TicketStatus.pending)
    if ticket.status is TicketStatus.new and ticket.first_responded_at is None:
        ticket.first_responded_at = now
    if status is TicketStatus.resolved:
        ticket.resolved_at = now
    elif status is TicketStatus.closed:
        ticket.closed_at = now
        ticket.resolved_at = ticket.resolved_at or now
    elif reopened:
        # The time it stood resolved is not the team's: the resolution clock resumes where it stopped.
        ticket.sla_paused_at = ticket.sla_paused_at or ticket.resolved_at
        ticket.resolved_at = None
        ticket.reopened_count += 1
        ticket.disposition = None
    await _pause_or_resume_clock(session, ticket, status, now)
    ticket.status = status
    if status in (TicketStatus.resolved, TicketStatus.closed):
        # The agent's slot is free again (after the wrap-up): the ticket and its conversations are one
        # piece of work.
        wrap_up = timedelta(seconds=policy.routing.wrap_up_seconds)
        await routing.finish_ticket(session, ticket.id, wrap_up=wrap_up)
        if resolve_conversations:
            await _resolve_conversations(session, ticket, now)
    elif reopened and ticket.incident_id is None:
        previous, ticket.assignee_id = ticket.assignee_id, None
        await session.flush()
        await queue_ticket(session, ticket, policy, preferred_agent_id=previous)


async def _assign_by_hand(
    session: AsyncSession, principal: Principal, ticket: Ticket, agent_id: uuid.UUID | None
) -> None:
    """A supervisor (or the agent) names who handles the ticket: the agent must be able to, and the live
    work item becomes theirs."""
    item = await routing.live_item_of_ticket(session, ticket.id)
    if agent_id is None:
        if item is not None:
            await routing.unassign(session, item, reason="unassigned by hand")
            await _conversation_follows(session, ticket, None)
        return
    policy = await policy_for(session, principal.tenant_id)
    agent = await _check_assignee(
        session, principal.tenant_id, agent_id, await requirements(session, ticket, policy)
    )
    if item is None:
        if ticket.status not in OPEN_STATUSES:
            return  # a finished ticket only records who handled it
        item = await queue_ticket(session, ticket, policy)
    await routing.assign_to(session, item, agent, reason=f"assigned by {principal.actor_id}")
    await _conversation_follows(session, ticket, agent.id)


async def queue_ticket(
    session: AsyncSession,
    ticket: Ticket,
    policy: TenantPolicy,
    *,
    preferred_agent_id: uuid.UUID | None = None,
) -> WorkItem:
    """Put the ticket (with its conversation, when it has one) in the queue its requirements name."""
    needs = await requirements(session, ticket, policy)
    customer = await session.get(Customer, ticket.customer_id)
    conversation = (
        await ConversationRepository(session, ticket.tenant_id).get(ticket.conversation_id)
        if ticket.conversation_id
        else None
    )
    if conversation is not None and await routing.live_item_of_conversation(session, conversation.id):
        # The conversation is already someone's work (another ticket of it): this one is queued as a
        # ticket of its own, not a second claim on the same chat.
        conversation = None
    return await routing.enqueue(
        session,
        tenant_id=ticket.tenant_id,
        kind=WorkKind.conversation if conversation is not None else WorkKind.ticket,
        priority=ticket.priority,
        language=conversation.language
        if conversation
        else (customer.preferred_language if customer else "fr"),
        conversation_id=conversation.id if conversation else None,
        ticket_id=ticket.id,
        team_id=needs.team_id,
        skills=needs.skills,
        min_tier=needs.tier,
        segment=customer.segment if customer else None,
        vip=bool(customer and customer.vip),
        preferred_agent_id=preferred_agent_id or (customer.dedicated_agent_id if customer else None),
    )


async def _conversation_follows(session: AsyncSession, ticket: Ticket, agent_id: uuid.UUID | None) -> None:
    """The ticket's conversation goes with its work: to the agent, or back to the queue."""
    ticket.assignee_id = agent_id
    if ticket.conversation_id is None:
        return
    conversation = await ConversationRepository(session, ticket.tenant_id).get(ticket.conversation_id)
    if conversation is not None and conversation.status in (
        ConversationStatus.queued,
        ConversationStatus.assigned,
    ):
        hand_to(session, conversation, agent_id)


async def _requeue(session: AsyncSession, ticket: Ticket, policy: TenantPolicy, *, reason: str) -> None:
    """The ticket's queue changed (tier, team): its work item moves there, leaving the agent who had it."""
    if ticket.status not in OPEN_STATUSES:
        return
    needs = await requirements(session, ticket, policy)
    item = await routing.live_item_of_ticket(session, ticket.id)
    if item is None:
        await queue_ticket(session, ticket, policy)
    else:
        await routing.requeue(
            session, item, reason=reason, team_id=needs.team_id, min_tier=needs.tier, skills=needs.skills
        )
    await _conversation_follows(session, ticket, None)


async def escalate(
    session: AsyncSession, principal: Principal, ticket_id: uuid.UUID, data: TicketEscalate
) -> Ticket:
    """N1 -> N2 -> specialist team, by an agent or by a rule: the ticket keeps its customer, conversations
    and diagnosis (they are the ticket's), and the history says who escalated, from where to where, why."""
    ticket = await TicketRepository(session, principal.tenant_id).get_or_raise(ticket_id)
    return await escalate_ticket(
        session, principal, ticket, tier=data.tier, team=data.team, reason=data.reason
    )


async def escalate_ticket(
    session: AsyncSession,
    principal: Principal,
    ticket: Ticket,
    *,
    tier: Tier | None,
    team: str | None,
    reason: str,
    rule: str | None = None,
) -> Ticket:
    if ticket.status not in OPEN_STATUSES:
        raise Conflict(
            f"A {ticket.status.value} ticket cannot be escalated; reopen it first.",
            code="invalid_transition",
            details={"status": ticket.status.value},
        )
    if ticket.incident_id is not None:
        raise Conflict(
            "This ticket is part of a major incident, which its team works as one; "
            "take it out of the incident to handle it on its own.",
            code="in_incident",
            details={"incident_id": str(ticket.incident_id)},
        )
    team_id = await team_id_for_code(session, ticket.tenant_id, team) if team is not None else ticket.team_id
    target = tier or (_NEXT_TIER.get(ticket.tier) if team is None else ticket.tier)
    if target is None:
        raise Conflict(
            "The ticket is already at the specialist tier: name the team to send it to.",
            code="top_tier",
        )
    if TIER_RANK[target] < TIER_RANK[ticket.tier]:
        raise Unprocessable(
            "Escalation goes up: use a ticket update to send a ticket back down.",
            code="not_an_escalation",
            details={"from": ticket.tier.value, "to": target.value},
        )
    if target is ticket.tier and team_id == ticket.team_id:
        raise Unprocessable(
            "The ticket is already with this tier and team.",
            code="not_an_escalation",
            details={"tier": target.value},
        )
    policy = await policy_for(session, ticket.tenant_id)
    context = await _case_context(session, ticket)
    add_event(
        session,
        principal,
        ticket,
        "escalated",
        field="tier",
        old=ticket.tier,
        new=target,
        reason=reason,
        data={
            "from_team_id": str(ticket.team_id) if ticket.team_id else None,
            "to_team_id": str(team_id) if team_id else None,
            "from_assignee_id": str(ticket.assignee_id) if ticket.assignee_id else None,
            "rule": rule,
            **context,
        },
    )
    previous_tier = ticket.tier
    ticket.tier = target
    ticket.team_id = team_id
    ticket.updated_at = utc_now()
    await _requeue(session, ticket, policy, reason=f"escalated: {reason}")
    await session.flush()
    await announce(
        session, ticket, "ticket.escalated", from_tier=previous_tier.value, to_tier=target.value, rule=rule
    )
    await record_by(
        session, principal, "ticket.escalate", "ticket", ticket.id, {"tier": target.value, "rule": rule}
    )
    return ticket


async def _case_context(session: AsyncSession, ticket: Ticket) -> dict[str, Any]:
    """What the next level gets with the case: the customer, the conversations, the diagnosis answers."""
    return {
        "customer_id": str(ticket.customer_id),
        "conversation_ids": [str(c) for c in await conversation_ids(session, ticket)],
        "diagnosis": await diagnosis_answers(session, ticket),
    }


async def diagnosis_answers(session: AsyncSession, ticket: Ticket) -> list[dict[str, Any]]:
    """The answers the assistant collected before it handed the case over (its latest hand-over)."""
    data = (
        await session.execute(
            select(TicketEvent.data)
            .where(TicketEvent.ticket_id == ticket.id, TicketEvent.kind == "escalated_by_assistant")
            .order_by(TicketEvent.created_at.desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    answers = (data or {}).get("diagnosis", [])
    return [answer for answer in answers if isinstance(answer, dict)]


async def conversation_ids(session: AsyncSession, ticket: Ticket) -> list[uuid.UUID]:
    """Every conversation of the ticket, oldest link first (the one it was opened from leads)."""
    linked = list(
        (
            await session.execute(
                select(TicketConversation.conversation_id)
                .where(TicketConversation.ticket_id == ticket.id)
                .order_by(TicketConversation.created_at, TicketConversation.id)
            )
        ).scalars()
    )
    if ticket.conversation_id is not None and ticket.conversation_id not in linked:
        linked.insert(0, ticket.conversation_id)
    return linked


async def link_conversation(
    session: AsyncSession, principal: Principal, ticket_id: uuid.UUID, conversation_id: uuid.UUID
) -> Ticket:
    """Another conversation of the same customer (any channel) belongs to this ticket."""
    ticket = await TicketRepository(session, principal.tenant_id).get_or_raise(ticket_id)
    conversation = await ConversationRepository(session, principal.tenant_id).get_or_raise(conversation_id)
    if conversation.customer_id != ticket.customer_id:
        raise Unprocessable("The conversation belongs to another customer.", code="customer_mismatch")
    if await _link(session, ticket, conversation.id, principal.user_id):
        add_event(
            session,
            principal,
            ticket,
            "conversation_linked",
            data={"conversation_id": str(conversation.id), "channel": conversation.channel.value},
        )
        ticket.updated_at = utc_now()
        await session.flush()
        await announce(session, ticket, "ticket.updated", changes=["conversation_linked"])
        await record_by(
            session, principal, "ticket.link", "ticket", ticket.id, {"conversation_id": str(conversation.id)}
        )
    return ticket


async def merge(
    session: AsyncSession, principal: Principal, ticket_id: uuid.UUID, data: TicketMerge
) -> Ticket:
    """Close a duplicate into the ticket that stays: its conversations and its history's pointer move
    there; the duplicate is closed with the "duplicate" disposition. Returns the ticket that stays."""
    repo = TicketRepository(session, principal.tenant_id)
    if data.into_ticket_id == ticket_id:
        raise Unprocessable("A ticket cannot be merged into itself.", code="merge_into_self")
    # Both rows locked in one order, so that two opposite merges cannot deadlock or both succeed.
    first, second = sorted((ticket_id, data.into_ticket_id))
    for row_id in (first, second):
        await session.execute(
            select(Ticket.id)
            .where(Ticket.id == row_id, Ticket.tenant_id == principal.tenant_id)
            .with_for_update()
        )
    duplicate = await repo.get_or_raise(ticket_id)
    target = await repo.get_or_raise(data.into_ticket_id)
    for ticket in (duplicate, target):
        await session.refresh(ticket)
    if duplicate.customer_id != target.customer_id:
        raise Unprocessable("Only tickets of the same customer can be merged.", code="customer_mismatch")
    if duplicate.status is TicketStatus.closed or duplicate.merged_into_id is not None:
        raise Conflict("This ticket is already closed.", code="invalid_transition")
    if target.status is TicketStatus.closed:
        raise Conflict("The ticket to merge into is closed; reopen it or pick another.", code="target_closed")
    moved = []
    for conversation_id in await conversation_ids(session, duplicate):
        if await _link(session, target, conversation_id, principal.user_id):
            moved.append(str(conversation_id))
    now = utc_now()
    add_event(
        session,
        principal,
        duplicate,
        "merged_into",
        reason=data.reason,
        data={"into_ticket_id": str(target.id), "into_reference": target.reference},
    )
    add_event(
        session,
        principal,
        target,
        "merged_from",
        reason=data.reason,
        data={"ticket_id": str(duplicate.id), "reference": duplicate.reference, "conversation_ids": moved},
    )
    policy = await policy_for(session, principal.tenant_id)
    duplicate.merged_into_id = target.id
    duplicate.disposition = DUPLICATE_DISPOSITION
    # Its conversations now belong to the ticket that stays: they are not resolved with the duplicate.
    await _move_to(session, duplicate, TicketStatus.closed, policy, now, resolve_conversations=False)
    duplicate.updated_at = target.updated_at = now
    sla.schedule_alarm(duplicate, policy)
    await session.flush()
    await announce(session, duplicate, "ticket.merged", into_ticket_id=str(target.id))
    await record_by(session, principal, "ticket.merge", "ticket", duplicate.id, {"into": str(target.id)})
    return target


async def reply(
    session: AsyncSession, principal: Principal, ticket_id: uuid.UUID, data: TicketReply, *, max_bytes: int
) -> TicketReplyRead:
    """A public reply goes to the customer on the conversation's own channel and counts as the first
    response; an internal note stays in the ticket's history, never shown to the customer."""
    check_message_body(data.body, max_bytes=max_bytes)
    ticket = await TicketRepository(session, principal.tenant_id).get_or_raise(ticket_id)
    if data.internal:
        event = add_event(session, principal, ticket, "note", reason=data.body)
        ticket.updated_at = utc_now()
        await session.flush()
        publish_on_commit(
            session,
            Event("ticket.note", ticket.tenant_id, {"ticket_id": str(ticket.id), "event_id": str(event.id)}),
        )
        return TicketReplyRead(internal=True, message_id=None, conversation_id=None, event_id=event.id)
    if principal.user_id is None:
        raise Unprocessable("A public reply is signed by an agent: log in to reply.", code="user_required")
    linked = await conversation_ids(session, ticket)
    if data.conversation_id is not None and data.conversation_id not in linked:
        raise Unprocessable(
            "This conversation is not one of the ticket's.",
            code="conversation_not_linked",
            details={"conversation_id": str(data.conversation_id)},
        )
    if not linked:
        raise Conflict(
            "This ticket has no conversation to reply on; link one of the customer's conversations first.",
            code="no_conversation",
        )
    conversations = ConversationRepository(session, principal.tenant_id)
    chosen = data.conversation_id or await _latest(session, linked)
    conversation = await conversations.get_or_raise(chosen)
    message = await store_message(
        session, conversation, author_kind=AuthorKind.agent, author_user_id=principal.user_id, body=data.body
    )
    await routing.answered(session, conversation.id, principal.user_id)
    event = add_event(
        session,
        principal,
        ticket,
        "replied",
        data={"message_id": str(message.id), "conversation_id": str(conversation.id)},
    )
    if ticket.status is TicketStatus.new:
        add_event(
            session,
            principal,
            ticket,
            "status_changed",
            field="status",
            old=ticket.status,
            new=TicketStatus.open,
        )
        ticket.status = TicketStatus.open
    ticket.updated_at = utc_now()
    policy = await policy_for(session, principal.tenant_id)
    sla.schedule_alarm(ticket, policy)
    await session.flush()
    await announce(session, ticket, "ticket.updated", changes=["replied"])
    return TicketReplyRead(
        internal=False, message_id=message.id, conversation_id=conversation.id, event_id=event.id
    )


async def _latest(session: AsyncSession, conversation_ids: list[uuid.UUID]) -> uuid.UUID:
    """The conversation the customer used last."""
    rows = (
        await session.execute(
            select(Conversation.id, Conversation.last_message_at, Conversation.created_at).where(
                Conversation.id.in_(conversation_ids)
            )
        )
    ).all()
    latest: uuid.UUID = max(rows, key=lambda r: (r.last_message_at or r.created_at, r.created_at)).id
    return latest


async def reopen_for_customer(
    session: AsyncSession, conversation: Conversation, now: datetime, *, category: Category
) -> Ticket | None:
    """The customer writes again, about the same kind of problem, on a conversation whose ticket an agent
    resolved within the tenant's reopen window: the ticket is reopened and goes back to the agent who had
    it, when they are there."""
    policy = await policy_for(session, conversation.tenant_id)
    if policy.reopen_window_hours == 0:
        return None
    ticket = (
        await session.execute(
            select(Ticket)
            .where(
                Ticket.tenant_id == conversation.tenant_id,
                of_conversation(conversation.id),
                Ticket.status == TicketStatus.resolved,
                Ticket.category == category,
                Ticket.merged_into_id.is_(None),
                Ticket.resolved_at >= now - timedelta(hours=policy.reopen_window_hours),
            )
            .order_by(Ticket.resolved_at.desc())
            .limit(1)
            .with_for_update()
        )
    ).scalar_one_or_none()
    if ticket is None:
        return None
    customer = Principal.system(conversation.tenant_id)
    add_event(
        session,
        customer,
        ticket,
        "reopened",
        field="status",
        old=ticket.status,
        new=TicketStatus.open,
        reason="the customer wrote again",
        data={"conversation_id": str(conversation.id)},
    )
    if ticket.conversation_id is None:
        ticket.conversation_id = conversation.id
    await _move_to(session, ticket, TicketStatus.open, policy, now)
    sla.schedule_alarm(ticket, policy)
    hand_to(session, conversation, None)
    conversation.resolved_at = None
    conversation.resolved_by = None
    await announce(session, ticket, "ticket.reopened")
    return ticket


async def recompute_priority(
    session: AsyncSession,
    principal: Principal,
    ticket: Ticket,
    *,
    add: tuple[str, ...] = (),
    remove: tuple[str, ...] = (),
    why: str,
    vip: bool | None = None,
) -> None:
    """A signal of the case changed (the customer became VIP, the category is now a cancellation…): the
    priority is worked out again from the reasons, its clocks and queue place follow, and the history
    says why."""
    reasons = [r for r in ticket.priority_reasons if r not in remove]
    reasons += [r for r in add if r not in reasons]
    if reasons == ticket.priority_reasons:
        return
    decision = decide(reasons)
    ticket.priority_reasons = reasons
    if decision.priority is not ticket.priority:
        policy = await policy_for(session, ticket.tenant_id)
        add_event(
            session,
            principal,
            ticket,
            "priority_recomputed",
            field="priority",
            old=ticket.priority,
            new=decision.priority,
            reason=why,
            data={"reasons": reasons},
        )
        _retarget(ticket, policy, decision.priority)
        sla.schedule_alarm(ticket, policy)
        ticket.updated_at = utc_now()
    await routing.reprioritise_ticket(session, ticket.id, ticket.priority, vip=vip)


async def customer_vip_changed(session: AsyncSession, principal: Principal, customer: Customer) -> None:
    """The customer's open tickets gain (or lose) the VIP reason of their priority."""
    policy = await policy_for(session, customer.tenant_id)
    if not policy.escalation.vip_priority:
        return
    open_tickets = (
        await session.execute(
            select(Ticket).where(
                Ticket.tenant_id == customer.tenant_id,
                Ticket.customer_id == customer.id,
                Ticket.status.in_(OPEN_STATUSES),
            )
        )
    ).scalars()
    for ticket in open_tickets:
        await recompute_priority(
            session,
            principal,
            ticket,
            add=("vip",) if customer.vip else (),
            remove=() if customer.vip else ("vip",),
            why="the customer is now VIP" if customer.vip else "the customer is no longer VIP",
            vip=customer.vip,
        )


def _retarget(ticket: Ticket, policy: TenantPolicy, priority: Priority) -> None:
    """A new priority: new SLA targets, and their alarms are new too."""
    ticket.priority = priority
    ticket.first_response_due_at, ticket.resolution_due_at = sla.due_times(
        policy, priority, ticket.created_at, paused=timedelta(seconds=ticket.sla_paused_seconds)
    )
    ticket.sla_alerts = []
