"""The console's read queries: an agent's inbox, a case with its messages, a customer's whole story.

Every query takes the tenant and filters on it; rows come back as small dataclasses the templates read.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from allo.models import (
    Conversation,
    CsatResponse,
    Customer,
    Incident,
    Message,
    SocialPost,
    Team,
    Ticket,
    TicketEvent,
    User,
    WorkItem,
)
from allo.models.enums import (
    PRIORITY_RANK,
    TIER_RANK,
    AuthorKind,
    IncidentStatus,
    TicketStatus,
    WorkItemStatus,
)
from allo.tickets.repository import OPEN_STATUSES
from allo.tickets.service import conversation_ids

QUEUE_LIMIT = 100


@dataclass(frozen=True)
class InboxRow:
    item_id: uuid.UUID | None
    ticket: Ticket
    customer: Customer
    channel: str
    waiting_since: datetime
    offered: bool  # assigned to the agent, not yet accepted
    accept_deadline: datetime | None
    team: str | None
    for_me: bool  # a queue the agent serves: their team (or none), tier, language


@dataclass
class Inbox:
    mine: list[InboxRow] = field(default_factory=list)
    queue: list[InboxRow] = field(default_factory=list)
    # Cases assigned to the agent that wait on someone else (pending) and so hold no live work item.
    parked: list[InboxRow] = field(default_factory=list)


async def _teams(session: AsyncSession, tenant_id: uuid.UUID) -> dict[uuid.UUID, str]:
    rows = await session.execute(select(Team.id, Team.code).where(Team.tenant_id == tenant_id))
    return {team_id: code for team_id, code in rows}


async def inbox(session: AsyncSession, agent: User) -> Inbox:
    """What the agent holds, then the waiting work (the queues they serve first), oldest first."""
    teams = await _teams(session, agent.tenant_id)
    stmt = (
        select(WorkItem, Ticket, Customer, Conversation.channel)
        .join(Ticket, Ticket.id == WorkItem.ticket_id)
        .join(Customer, Customer.id == Ticket.customer_id)
        .outerjoin(Conversation, Conversation.id == WorkItem.conversation_id)
        .where(
            WorkItem.tenant_id == agent.tenant_id,
            or_(
                and_(WorkItem.status == WorkItemStatus.assigned, WorkItem.agent_id == agent.id),
                WorkItem.status == WorkItemStatus.queued,
            ),
        )
        .order_by(WorkItem.queue_rank, WorkItem.enqueued_at)
        .limit(QUEUE_LIMIT + agent.max_concurrent)
    )
    result = Inbox()
    held: set[uuid.UUID] = set()
    for item, ticket, customer, channel in (await session.execute(stmt)).all():
        row = InboxRow(
            item_id=item.id,
            ticket=ticket,
            customer=customer,
            channel=channel.value if channel else "ticket",
            waiting_since=item.enqueued_at,
            offered=item.status is WorkItemStatus.assigned and item.accepted_at is None,
            accept_deadline=item.accept_deadline,
            team=teams.get(item.team_id) if item.team_id else None,
            for_me=(item.team_id is None or item.team_id == agent.team_id)
            and TIER_RANK[agent.tier] >= TIER_RANK[item.min_tier]
            and (not agent.languages or item.language in agent.languages),
        )
        if item.status is WorkItemStatus.assigned:
            result.mine.append(row)
            held.add(ticket.id)
        else:
            result.queue.append(row)
    result.queue.sort(key=lambda r: (not r.for_me, PRIORITY_RANK[r.ticket.priority], r.waiting_since))
    parked = (
        await session.execute(
            select(Ticket, Customer, Conversation.channel)
            .join(Customer, Customer.id == Ticket.customer_id)
            .outerjoin(Conversation, Conversation.id == Ticket.conversation_id)
            .where(
                Ticket.tenant_id == agent.tenant_id,
                Ticket.assignee_id == agent.id,
                Ticket.status.in_(OPEN_STATUSES),
            )
            .order_by(Ticket.updated_at.desc())
            .limit(50)
        )
    ).all()
    for ticket, customer, channel in parked:
        if ticket.id in held:
            continue
        result.parked.append(
            InboxRow(
                item_id=None,
                ticket=ticket,
                customer=customer,
                channel=channel.value if channel else "ticket",
                waiting_since=ticket.updated_at,
                offered=False,
                accept_deadline=None,
                team=teams.get(ticket.team_id) if ticket.team_id else None,
                for_me=True,
            )
        )
    return result


@dataclass(frozen=True)
class Entry:
    """One line of a case's thread: a message on a channel, or an internal note."""

    at: datetime
    kind: str  # customer | bot | agent | system | note
    body: str
    channel: str | None
    author: str | None
    meta: dict[str, Any]
    # An outbound message on a provider's channel: queued, sent, delivered, read or failed, and why.
    delivery: str | None = None
    delivery_error: str | None = None


def message_entry(message: Message, names: dict[uuid.UUID, str]) -> Entry:
    return Entry(
        at=message.created_at,
        kind=message.author_kind.value,
        body=message.body,
        channel=message.channel.value,
        author=names.get(message.author_user_id) if message.author_user_id else None,
        meta=message.meta,
        delivery=message.delivery_status.value if message.delivery_status else None,
        delivery_error=message.delivery_error,
    )


async def thread(session: AsyncSession, ticket: Ticket) -> tuple[list[Entry], list[Conversation]]:
    """The messages of every conversation linked to the ticket, with its internal notes, in time order."""
    linked = await conversation_ids(session, ticket)
    conversations = list(
        (
            await session.execute(
                select(Conversation)
                .where(Conversation.tenant_id == ticket.tenant_id, Conversation.id.in_(linked))
                .order_by(Conversation.created_at)
            )
        ).scalars()
    )
    names = await names_of(session, ticket.tenant_id)
    entries: list[Entry] = []
    if linked:
        for message in (
            await session.execute(
                select(Message)
                .where(Message.tenant_id == ticket.tenant_id, Message.conversation_id.in_(linked))
                .order_by(Message.created_at)
                .limit(2000)
            )
        ).scalars():
            entries.append(message_entry(message, names))
    for event in (
        await session.execute(
            select(TicketEvent)
            .where(TicketEvent.ticket_id == ticket.id, TicketEvent.kind == "note")
            .order_by(TicketEvent.created_at)
        )
    ).scalars():
        entries.append(
            Entry(
                at=event.created_at,
                kind="note",
                body=event.reason or "",
                channel=None,
                author=names.get(event.actor_user_id) if event.actor_user_id else None,
                meta={},
            )
        )
    entries.sort(key=lambda e: e.at)
    return entries, conversations


async def conversation_messages(session: AsyncSession, conversation: Conversation) -> list[Entry]:
    names = await names_of(session, conversation.tenant_id)
    rows = await session.execute(
        select(Message)
        .where(Message.tenant_id == conversation.tenant_id, Message.conversation_id == conversation.id)
        .order_by(Message.created_at)
        .limit(2000)
    )
    return [message_entry(m, names) for m in rows.scalars()]


async def history(session: AsyncSession, ticket: Ticket) -> list[tuple[TicketEvent, str | None]]:
    """The ticket's history (notes aside), with who acted."""
    rows = await session.execute(
        select(TicketEvent, User.full_name)
        .outerjoin(User, User.id == TicketEvent.actor_user_id)
        .where(TicketEvent.ticket_id == ticket.id, TicketEvent.kind != "note")
        .order_by(TicketEvent.created_at)
    )
    return [(event, name) for event, name in rows.all()]


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    kind: str  # conversation | ticket | csat | post
    channel: str | None
    title: str
    status: str | None
    link: str | None
    detail: str | None = None


async def timeline(session: AsyncSession, customer: Customer, *, limit: int = 200) -> list[TimelineEntry]:
    """Everything the customer did with us, every channel, newest first."""
    tenant_id = customer.tenant_id
    entries: list[TimelineEntry] = []
    last_message = (
        select(
            Message.conversation_id, func.max(Message.created_at).label("last_at"), func.count().label("n")
        )
        .where(Message.tenant_id == tenant_id, Message.author_kind != AuthorKind.system)
        .group_by(Message.conversation_id)
        .subquery()
    )
    conversations = await session.execute(
        select(Conversation, last_message.c.n)
        .outerjoin(last_message, last_message.c.conversation_id == Conversation.id)
        .where(Conversation.tenant_id == tenant_id, Conversation.customer_id == customer.id)
        .order_by(Conversation.created_at.desc())
        .limit(limit)
    )
    for conversation, count in conversations.all():
        entries.append(
            TimelineEntry(
                at=conversation.created_at,
                kind="conversation",
                channel=conversation.channel.value,
                title=conversation.subject or "",
                status=conversation.status.value,
                link=f"/conversations/{conversation.id}",
                detail=str(count or 0),
            )
        )
    tickets = await session.execute(
        select(Ticket)
        .where(Ticket.tenant_id == tenant_id, Ticket.customer_id == customer.id)
        .order_by(Ticket.created_at.desc())
        .limit(limit)
    )
    for ticket in tickets.scalars():
        entries.append(
            TimelineEntry(
                at=ticket.created_at,
                kind="ticket",
                channel=None,
                title=f"T-{ticket.number:06d} · {ticket.subject}",
                status=ticket.status.value,
                link=f"/tickets/{ticket.id}",
                detail=ticket.priority.value,
            )
        )
    scores = await session.execute(
        select(CsatResponse)
        .where(CsatResponse.tenant_id == tenant_id, CsatResponse.customer_id == customer.id)
        .order_by(CsatResponse.created_at.desc())
        .limit(limit)
    )
    for score in scores.scalars():
        entries.append(
            TimelineEntry(
                at=score.created_at,
                kind="csat",
                channel=score.channel.value if score.channel else None,
                title=score.comment or "",
                status=None,
                link=f"/conversations/{score.conversation_id}" if score.conversation_id else None,
                detail=str(score.score),
            )
        )
    posts = await session.execute(
        select(SocialPost)
        .where(SocialPost.tenant_id == tenant_id, SocialPost.customer_id == customer.id)
        .order_by(SocialPost.created_at.desc())
        .limit(limit)
    )
    for post in posts.scalars():
        entries.append(
            TimelineEntry(
                at=post.created_at,
                kind="post",
                channel="mastodon",
                title=post.text,
                status=post.decision.value,
                link=post.url,
            )
        )
    entries.sort(key=lambda e: e.at, reverse=True)
    return entries[:limit]


async def incidents_for(session: AsyncSession, customer: Customer) -> list[Incident]:
    """Open major incidents that concern the customer: one of their tickets is under it, or it is in
    their area."""
    under_their_tickets = select(Ticket.incident_id).where(
        Ticket.tenant_id == customer.tenant_id,
        Ticket.customer_id == customer.id,
        Ticket.incident_id.is_not(None),
    )
    concerns: ColumnElement[bool] = Incident.id.in_(under_their_tickets)
    if customer.area:
        concerns = or_(concerns, func.lower(Incident.area) == customer.area.lower())
    rows = await session.execute(
        select(Incident)
        .where(Incident.tenant_id == customer.tenant_id, Incident.status == IncidentStatus.open, concerns)
        .order_by(Incident.created_at.desc())
    )
    return list(rows.scalars())


async def open_tickets_of(
    session: AsyncSession, customer_id: uuid.UUID, tenant_id: uuid.UUID
) -> list[Ticket]:
    rows = await session.execute(
        select(Ticket)
        .where(
            Ticket.tenant_id == tenant_id,
            Ticket.customer_id == customer_id,
            Ticket.status.in_(OPEN_STATUSES),
        )
        .order_by(Ticket.created_at.desc())
    )
    return list(rows.scalars())


async def sla_watch(
    session: AsyncSession, tenant_id: uuid.UUID, now: datetime, *, limit: int = 50
) -> list[Ticket]:
    """Open tickets whose clock has warned or breached, or that fall due within 15 minutes."""
    soon = now + timedelta(minutes=15)
    rows = await session.execute(
        select(Ticket)
        .where(
            Ticket.tenant_id == tenant_id,
            Ticket.status.in_((TicketStatus.new, TicketStatus.open)),
            Ticket.incident_id.is_(None),
            or_(
                Ticket.sla_alert_at <= now,
                and_(Ticket.first_responded_at.is_(None), Ticket.first_response_due_at <= soon),
                Ticket.resolution_due_at <= soon,
            ),
        )
        .order_by(
            case(
                (Ticket.first_responded_at.is_(None), Ticket.first_response_due_at),
                else_=Ticket.resolution_due_at,
            )
        )
        .limit(limit)
    )
    return list(rows.scalars())


async def names_of(session: AsyncSession, tenant_id: uuid.UUID) -> dict[uuid.UUID, str]:
    rows = await session.execute(select(User.id, User.full_name).where(User.tenant_id == tenant_id))
    return {user_id: name for user_id, name in rows}
