"""A tenant's recorded history with exact timestamps, for checking every KPI to the second.

The week of Monday 2 November 2026 (D); all times UTC. Rows are written as the services leave them, with
the times chosen here:

  c1  D   10:00 webchat   customer, bot +5 s, resolved by the bot; CSAT 5 on D
  c2  D+1 09:00 webchat   bot greeting 10 s before the customer (not an answer), bot +10 s, resolved by bot
  c3  D   11:00 sms       bot +20 s, escalated 11:01 (ticket: billing, alice), internal note 11:02 (not an
                          answer), alice answers 11:04 (+180 s after the hand-off), resolved by agent;
                          CSAT 3 about its ticket on D+1 (alice's, by the ticket's assignee)
  c4  D+2 14:00 whatsapp  never answered; escalated 14:00:30 (ticket: technical, no assignee), still queued
  c5  D+2 15:00 webchat   bot +30 s, abandoned
  c6  D+3 08:00 webchat   the bot's greeting only: no customer message, not a contact
  c7  D+3 10:00 email     queued at once (an agent took it, no ticket: bob's team, technical), bob answers
                          +600 s, resolved by agent; CSAT 4 naming bob on D+4
  out D-1 23:59:59 and D+7 00:00 bot-resolved webchat conversations, outside the week (D+7 is in the
      next ISO week); and another tenant's conversation and CSAT inside it.

Work items: alice's c3 item assigned D 11:03, done D+1 11:03 (86,400 s); another of hers assigned D+2
09:00, done 09:30 (1,800 s); an old one done D-2; bob's c7 item assigned D+3 10:05, still his.

Presence: alice offline from D-1 20:00; D 08:00 available, 12:00 away (lunch), 13:00 available, 17:00
offline. bob: no change before D; D 09:00 busy → available, 10:00 wrap_up.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from allo.models import (
    Conversation,
    CsatResponse,
    Customer,
    Message,
    PresenceChange,
    Team,
    Tenant,
    Ticket,
    User,
    WorkItem,
)
from allo.models.enums import (
    AgentStatus,
    AuthorKind,
    Category,
    Channel,
    ConversationStatus,
    Direction,
    Priority,
    Role,
    TicketStatus,
    WorkItemStatus,
    WorkKind,
)
from allo.tenants import service as tenants

D = date(2026, 11, 2)  # a Monday


def at(day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    """D + `day` days at hh:mm:ss UTC."""
    return datetime(D.year, D.month, D.day, tzinfo=UTC) + timedelta(
        days=day, hours=hour, minutes=minute, seconds=second
    )


@dataclass
class World:
    tenant: Tenant
    other: Tenant
    alice: User
    bob: User
    conversations: dict[str, Conversation]


class _Writer:
    def __init__(self, session: AsyncSession, tenant: Tenant) -> None:
        self.session = session
        self.tenant = tenant
        self.customer: Customer | None = None
        self.numbers = 0

    async def start(self) -> None:
        self.customer = Customer(tenant_id=self.tenant.id, name="Marie Curie")
        self.session.add(self.customer)
        await self.session.flush()

    async def conversation(self, created: datetime, channel: Channel, **fields: Any) -> Conversation:
        assert self.customer is not None
        conversation = Conversation(
            tenant_id=self.tenant.id,
            customer_id=self.customer.id,
            channel=channel,
            created_at=created,
            updated_at=created,
            **fields,
        )
        self.session.add(conversation)
        await self.session.flush()
        return conversation

    def message(
        self,
        conversation: Conversation,
        author: AuthorKind,
        moment: datetime,
        *,
        user: User | None = None,
        internal: bool = False,
    ) -> None:
        self.session.add(
            Message(
                tenant_id=self.tenant.id,
                conversation_id=conversation.id,
                channel=conversation.channel,
                direction=Direction.inbound if author is AuthorKind.customer else Direction.outbound,
                author_kind=author,
                author_user_id=user.id if user else None,
                body=f"{author.value} at {moment:%H:%M:%S}",
                meta={"internal": True} if internal else {},
                created_at=moment,
            )
        )

    async def ticket(
        self, conversation: Conversation, team: Team, assignee: User | None, status: TicketStatus
    ) -> Ticket:
        assert self.customer is not None
        self.numbers += 1
        ticket = Ticket(
            tenant_id=self.tenant.id,
            number=self.numbers,
            subject="A case",
            category=Category.billing,
            priority=Priority.p3,
            status=status,
            team_id=team.id,
            assignee_id=assignee.id if assignee else None,
            customer_id=self.customer.id,
            conversation_id=conversation.id,
            created_at=conversation.created_at,
            updated_at=conversation.created_at,
        )
        self.session.add(ticket)
        await self.session.flush()
        return ticket

    def csat(self, score: int, moment: datetime, **fields: Any) -> None:
        assert self.customer is not None
        self.session.add(
            CsatResponse(
                tenant_id=self.tenant.id,
                customer_id=self.customer.id,
                score=score,
                created_at=moment,
                **fields,
            )
        )

    def item(
        self,
        agent: User | None,
        status: WorkItemStatus,
        assigned: datetime | None,
        finished: datetime | None,
        **fields: Any,
    ) -> None:
        self.session.add(
            WorkItem(
                tenant_id=self.tenant.id,
                kind=WorkKind.ticket,
                status=status,
                priority=Priority.p3,
                queue_rank=6,
                enqueued_at=assigned or at(-5),
                agent_id=agent.id if agent else None,
                assigned_at=assigned,
                finished_at=finished,
                **fields,
            )
        )

    def presence(
        self,
        user: User,
        status: AgentStatus,
        previous: AgentStatus | None,
        moment: datetime,
        reason: str | None = None,
    ) -> None:
        self.session.add(
            PresenceChange(
                tenant_id=self.tenant.id,
                user_id=user.id,
                status=status,
                previous_status=previous,
                reason=reason,
                changed_at=moment,
            )
        )


async def _agent(session: AsyncSession, tenant: Tenant, name: str, team: Team, status: AgentStatus) -> User:
    user = User(
        tenant_id=tenant.id,
        email=f"{name.lower()}-{uuid.uuid4().hex[:6]}@example.com",
        full_name=name,
        role=Role.agent,
        team_id=team.id,
        status=status,
        status_since=at(0, 17),
        created_at=at(-10),
        updated_at=at(-10),
    )
    session.add(user)
    await session.flush()
    return user


async def build_world(session: AsyncSession, slug: str) -> World:
    tenant = await tenants.create(session, slug=slug, name="KPI Telecom")
    other = await tenants.create(session, slug=f"{slug}-other", name="Other Telecom")
    billing = Team(tenant_id=tenant.id, code="billing", name="Billing")
    technical = Team(tenant_id=tenant.id, code="technical", name="Technical")
    session.add_all([billing, technical])
    await session.flush()
    alice = await _agent(session, tenant, "Alice", billing, AgentStatus.offline)
    bob = await _agent(session, tenant, "Bob", technical, AgentStatus.wrap_up)

    w = _Writer(session, tenant)
    await w.start()
    A, B, C = AuthorKind.customer, AuthorKind.bot, AuthorKind.agent
    resolved = ConversationStatus.resolved
    c1 = await w.conversation(
        at(0, 10), Channel.webchat, status=resolved, resolved_by="bot", resolved_at=at(0, 10, 3)
    )
    w.message(c1, A, at(0, 10))
    w.message(c1, B, at(0, 10, 0, 5))
    w.csat(5, at(0, 10, 4), conversation_id=c1.id, channel=Channel.webchat)

    c2 = await w.conversation(
        at(1, 8, 59, 50), Channel.webchat, status=resolved, resolved_by="bot", resolved_at=at(1, 9, 5)
    )
    w.message(c2, B, at(1, 8, 59, 50))  # the greeting
    w.message(c2, A, at(1, 9))
    w.message(c2, B, at(1, 9, 0, 10))

    c3 = await w.conversation(
        at(0, 11),
        Channel.sms,
        status=resolved,
        resolved_by="agent",
        resolved_at=at(1, 11, 3),
        escalated_at=at(0, 11, 1),
        queued_at=at(0, 11, 1),
        assigned_at=at(0, 11, 3),
        assigned_agent_id=alice.id,
        first_agent_response_at=at(0, 11, 2),
    )
    w.message(c3, A, at(0, 11))
    w.message(c3, B, at(0, 11, 0, 20))
    w.message(c3, C, at(0, 11, 2), user=alice, internal=True)
    w.message(c3, C, at(0, 11, 4), user=alice)
    t3 = await w.ticket(c3, billing, alice, TicketStatus.resolved)
    w.csat(3, at(1, 12), ticket_id=t3.id, channel=Channel.sms)
    w.item(alice, WorkItemStatus.done, at(0, 11, 3), at(1, 11, 3), ticket_id=t3.id, conversation_id=c3.id)
    w.item(alice, WorkItemStatus.done, at(2, 9), at(2, 9, 30))
    w.item(alice, WorkItemStatus.done, at(-3, 9), at(-2, 9))

    c4 = await w.conversation(
        at(2, 14),
        Channel.whatsapp,
        status=ConversationStatus.queued,
        escalated_at=at(2, 14, 0, 30),
        queued_at=at(2, 14, 0, 30),
    )
    w.message(c4, A, at(2, 14))
    t4 = await w.ticket(c4, technical, None, TicketStatus.new)
    w.item(None, WorkItemStatus.queued, None, None, ticket_id=t4.id, conversation_id=c4.id)

    c5 = await w.conversation(at(2, 15), Channel.webchat, status=ConversationStatus.abandoned)
    w.message(c5, A, at(2, 15))
    w.message(c5, B, at(2, 15, 0, 30))

    c6 = await w.conversation(at(3, 8), Channel.webchat, status=ConversationStatus.bot)
    w.message(c6, B, at(3, 8))

    c7 = await w.conversation(
        at(3, 10),
        Channel.email,
        status=resolved,
        resolved_by="agent",
        resolved_at=at(3, 12),
        queued_at=at(3, 10),
        assigned_at=at(3, 10, 5),
        assigned_agent_id=bob.id,
    )
    w.message(c7, A, at(3, 10))
    w.message(c7, C, at(3, 10, 10), user=bob)
    w.csat(4, at(4, 9), conversation_id=c7.id, agent_id=bob.id, channel=Channel.email)
    w.item(bob, WorkItemStatus.assigned, at(3, 10, 5), None, conversation_id=c7.id)

    for moment in (at(-1, 23, 59, 59), at(7)):
        out = await w.conversation(moment, Channel.webchat, status=resolved, resolved_by="bot")
        w.message(out, A, moment)
        w.message(out, B, moment + timedelta(seconds=1))
        w.csat(1, moment, conversation_id=out.id, channel=Channel.webchat)

    elsewhere = _Writer(session, other)
    await elsewhere.start()
    theirs = await elsewhere.conversation(at(1, 10), Channel.webchat, status=resolved, resolved_by="bot")
    elsewhere.message(theirs, A, at(1, 10))
    elsewhere.message(theirs, B, at(1, 10, 5))
    elsewhere.csat(1, at(1, 10, 6), conversation_id=theirs.id, channel=Channel.webchat)

    w.presence(alice, AgentStatus.offline, AgentStatus.available, at(-1, 20))
    w.presence(alice, AgentStatus.available, AgentStatus.offline, at(0, 8))
    w.presence(alice, AgentStatus.away, AgentStatus.available, at(0, 12), "lunch")
    w.presence(alice, AgentStatus.available, AgentStatus.away, at(0, 13))
    w.presence(alice, AgentStatus.offline, AgentStatus.available, at(0, 17))
    w.presence(bob, AgentStatus.available, AgentStatus.busy, at(0, 9))
    w.presence(bob, AgentStatus.wrap_up, AgentStatus.available, at(0, 10))
    await session.flush()
    return World(
        tenant=tenant,
        other=other,
        alice=alice,
        bob=bob,
        conversations={"c1": c1, "c2": c2, "c3": c3, "c4": c4, "c5": c5, "c6": c6, "c7": c7},
    )
