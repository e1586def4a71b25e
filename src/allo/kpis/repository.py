"""Every query of the KPIs, tenant-scoped by construction: counts and sums are SQL aggregates grouped by
UTC day; the durations behind averages and percentiles are fetched one number per conversation."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Date,
    and_,
    case,
    cast,
    exists,
    func,
    or_,
    select,
    union,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, aliased

from allo.kit.db import is_postgresql
from allo.models import (
    Conversation,
    CsatResponse,
    Message,
    PresenceChange,
    Team,
    Ticket,
    TicketConversation,
    User,
    WorkItem,
)
from allo.models.enums import AuthorKind, Channel, ConversationStatus, WorkItemStatus

OPEN_CONVERSATION = (ConversationStatus.bot, ConversationStatus.queued, ConversationStatus.assigned)


@dataclass(frozen=True)
class Scope:
    """What the figures are about: one tenant, a period [since, until), optional team and channel."""

    tenant_id: uuid.UUID
    since: datetime
    until: datetime
    team_id: uuid.UUID | None = None
    channel: Channel | None = None


@dataclass
class DayCounts:
    conversations: int = 0
    contacts: int = 0
    resolved_by_bot: int = 0
    resolved_by_agent: int = 0
    escalated: int = 0
    abandoned: int = 0
    open: int = 0


def as_date(value: Any) -> date:
    """A day as the database returns it: a date (PostgreSQL) or "YYYY-MM-DD" (SQLite)."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


class KpiRepository:
    def __init__(self, session: AsyncSession, tenant_id: uuid.UUID) -> None:
        self.session = session
        self.tenant_id = tenant_id

    def _day(self, column: InstrumentedAttribute[datetime]) -> ColumnElement[Any]:
        """The UTC day of a timestamp column. SQLite stores naive UTC text; PostgreSQL's timestamptz
        is turned to UTC first (a cast alone would use the session's time zone)."""
        if is_postgresql(self.session):
            return cast(func.timezone("UTC", column), Date)
        return func.date(column)

    # -- teams ----------------------------------------------------------------------------------------

    async def team_id(self, code: str) -> uuid.UUID | None:
        return (
            await self.session.execute(
                select(Team.id).where(Team.tenant_id == self.tenant_id, Team.code == code)
            )
        ).scalar_one_or_none()

    def _team_agents(self, team_id: uuid.UUID) -> Any:
        return select(User.id).where(User.tenant_id == self.tenant_id, User.team_id == team_id)

    def _ticket_conversations(self, team: ColumnElement[bool]) -> Any:
        """The conversations of the tickets matching `team`: opened from them or linked to them."""
        return union(
            select(Ticket.conversation_id).where(
                Ticket.tenant_id == self.tenant_id, Ticket.conversation_id.is_not(None), team
            ),
            select(TicketConversation.conversation_id)
            .join(Ticket, Ticket.id == TicketConversation.ticket_id)
            .where(TicketConversation.tenant_id == self.tenant_id, team),
        )

    def _conversation_in_team(self, team_id: uuid.UUID) -> ColumnElement[bool]:
        """A conversation is the team's when one of its tickets is in the team; when none of its tickets
        has a team, when the agent it is assigned to is in the team."""
        return or_(
            Conversation.id.in_(self._ticket_conversations(Ticket.team_id == team_id)),
            and_(
                Conversation.id.not_in(self._ticket_conversations(Ticket.team_id.is_not(None))),
                Conversation.assigned_agent_id.in_(self._team_agents(team_id)),
            ),
        )

    # -- conversations --------------------------------------------------------------------------------

    def _conversations(self, scope: Scope) -> list[ColumnElement[bool]]:
        where = [
            Conversation.tenant_id == self.tenant_id,
            Conversation.created_at >= scope.since,
            Conversation.created_at < scope.until,
        ]
        if scope.channel is not None:
            where.append(Conversation.channel == scope.channel)
        if scope.team_id is not None:
            where.append(self._conversation_in_team(scope.team_id))
        return where

    # The messages of a conversation are read through it (conversation_id), and the conversation is the
    # tenant's: no tenant_id condition on them, which would lead SQLite to scan the tenant's messages
    # through ix_messages_tenant_id instead of the conversation's few through its own index.
    def _has_customer_message(self) -> ColumnElement[bool]:
        return exists().where(
            Message.conversation_id == Conversation.id,
            Message.author_kind == AuthorKind.customer,
        )

    async def conversation_counts(self, scope: Scope) -> dict[date, DayCounts]:
        """Per UTC day of creation: conversations, contacts (with a customer message) and the contacts'
        outcomes, counted in SQL, grouped by day and by being a contact (so that the EXISTS is evaluated
        once per conversation, not once per sum)."""
        contact = self._has_customer_message()
        escalated = or_(Conversation.escalated_at.is_not(None), Conversation.queued_at.is_not(None))
        day = self._day(Conversation.created_at)

        def count(condition: ColumnElement[bool]) -> Any:
            return func.sum(case((condition, 1), else_=0))

        rows = await self.session.execute(
            select(
                day,
                contact,
                func.count(),
                count(Conversation.resolved_by == "bot"),
                count(Conversation.resolved_by == "agent"),
                count(escalated),
                count(Conversation.status == ConversationStatus.abandoned),
                count(Conversation.status.in_(OPEN_CONVERSATION)),
            )
            .where(*self._conversations(scope))
            .group_by(day, contact)
        )
        days: dict[date, DayCounts] = {}
        for when, is_contact, total, *outcomes in rows:
            counts = days.setdefault(as_date(when), DayCounts())
            counts.conversations += int(total)
            if is_contact:
                counts.contacts += int(total)
                (
                    counts.resolved_by_bot,
                    counts.resolved_by_agent,
                    counts.escalated,
                    counts.abandoned,
                    counts.open,
                ) = (int(n or 0) for n in outcomes)
        return days

    def _reply(self, conversation_id: Any, after: Any, authors: Sequence[AuthorKind]) -> Any:
        """The first message of `authors` to the customer at or after `after` (internal notes aside)."""
        internal = Message.meta["internal"].as_boolean()
        return (
            select(func.min(Message.created_at))
            .where(
                Message.conversation_id == conversation_id,
                Message.author_kind.in_(authors),
                Message.created_at >= after,
                or_(internal.is_(None), internal.is_(False)),
            )
            .scalar_subquery()
        )

    def _seconds(self, start: Any, end: Any) -> ColumnElement[Any]:
        """Seconds from `start` to `end` computed by the database: fetching a number is much cheaper than
        two timestamps (SQLite's are text, parsed one by one)."""
        if is_postgresql(self.session):
            return func.extract("epoch", end - start)
        return (func.julianday(end) - func.julianday(start)) * 86_400.0

    async def first_responses(self, scope: Scope) -> list[tuple[date, float | None]]:
        """Per contact: its day, and the seconds from its first customer message to the first answer by
        the bot or an agent after it (None: not answered)."""
        first_customer = (
            select(func.min(Message.created_at))
            .where(
                Message.conversation_id == Conversation.id,
                Message.author_kind == AuthorKind.customer,
            )
            .scalar_subquery()
        )
        # Materialized: the first customer message is looked up once per conversation, not once per use.
        asked = (
            select(
                self._day(Conversation.created_at).label("day"),
                Conversation.id.label("id"),
                first_customer.label("asked_at"),
            )
            .where(*self._conversations(scope))
            .cte("asked")
            .prefix_with("MATERIALIZED")
        )
        answered = self._reply(asked.c.id, asked.c.asked_at, (AuthorKind.bot, AuthorKind.agent))
        rows = await self.session.execute(
            select(asked.c.day, self._seconds(asked.c.asked_at, answered)).where(
                asked.c.asked_at.is_not(None)
            )
        )
        return [(as_date(day), _rounded(seconds)) for day, seconds in rows]

    async def agent_first_responses(self, scope: Scope) -> list[tuple[date, float | None]]:
        """Per contact handed to a human: its day, and the seconds from when it was queued (the latest
        hand-off) to the first agent answer after it (None: not answered yet)."""
        answered = self._reply(Conversation.id, Conversation.queued_at, (AuthorKind.agent,))
        rows = await self.session.execute(
            select(self._day(Conversation.created_at), self._seconds(Conversation.queued_at, answered)).where(
                *self._conversations(scope),
                Conversation.queued_at.is_not(None),
                self._has_customer_message(),
            )
        )
        return [(as_date(day), _rounded(seconds)) for day, seconds in rows]

    # -- CSAT -----------------------------------------------------------------------------------------

    def _csat_joined(self, scope: Scope) -> Any:
        """CSAT responses of the period with their ticket and conversation (outer joins), filtered."""
        conversation = aliased(Conversation)
        ticket = aliased(Ticket)
        stmt = (
            select(CsatResponse)
            .outerjoin(conversation, conversation.id == CsatResponse.conversation_id)
            .outerjoin(ticket, ticket.id == CsatResponse.ticket_id)
            .where(
                CsatResponse.tenant_id == self.tenant_id,
                CsatResponse.created_at >= scope.since,
                CsatResponse.created_at < scope.until,
            )
        )
        if scope.channel is not None:
            stmt = stmt.where(func.coalesce(CsatResponse.channel, conversation.channel) == scope.channel)
        if scope.team_id is not None:
            team_conversations = select(Conversation.id).where(
                Conversation.tenant_id == self.tenant_id, self._conversation_in_team(scope.team_id)
            )
            stmt = stmt.where(
                or_(
                    ticket.team_id == scope.team_id,
                    CsatResponse.conversation_id.in_(team_conversations),
                    CsatResponse.agent_id.in_(self._team_agents(scope.team_id)),
                )
            )
        return stmt, conversation, ticket

    async def csat_by_day(self, scope: Scope) -> dict[date, tuple[int, int]]:
        """Per UTC day of the response: (responses, sum of scores)."""
        stmt, _conversation, _ticket = self._csat_joined(scope)
        day = self._day(CsatResponse.created_at)
        rows = await self.session.execute(
            stmt.with_only_columns(day, func.count(), func.sum(CsatResponse.score)).group_by(day)
        )
        return {as_date(d): (int(n), int(total or 0)) for d, n, total in rows}

    async def csat_by_agent(self, scope: Scope) -> dict[uuid.UUID, tuple[int, int]]:
        """Per agent: (responses, sum of scores). A response is the agent's it names, else its ticket's
        assignee's, else its conversation's agent's."""
        stmt, conversation, ticket = self._csat_joined(scope)
        agent = func.coalesce(CsatResponse.agent_id, ticket.assignee_id, conversation.assigned_agent_id)
        rows = await self.session.execute(
            stmt.with_only_columns(agent, func.count(), func.sum(CsatResponse.score))
            .where(agent.is_not(None))
            .group_by(agent)
        )
        return {_uuid(a): (int(n), int(total or 0)) for a, n, total in rows}

    # -- agents ---------------------------------------------------------------------------------------

    async def agents(self, team_id: uuid.UUID | None) -> list[tuple[User, str | None]]:
        stmt = (
            select(User, Team.code)
            .outerjoin(Team, Team.id == User.team_id)
            .where(User.tenant_id == self.tenant_id)
            .order_by(User.full_name, User.id)
        )
        if team_id is not None:
            stmt = stmt.where(User.team_id == team_id)
        return [(user, code) for user, code in await self.session.execute(stmt)]

    async def work_items(
        self, scope: Scope
    ) -> list[tuple[uuid.UUID, WorkItemStatus, datetime, datetime | None]]:
        """The work items agents held during the period: (agent, status, assigned at, finished at)."""
        stmt = select(WorkItem.agent_id, WorkItem.status, WorkItem.assigned_at, WorkItem.finished_at).where(
            WorkItem.tenant_id == self.tenant_id,
            WorkItem.agent_id.is_not(None),
            WorkItem.assigned_at.is_not(None),
            WorkItem.assigned_at < scope.until,
            or_(WorkItem.finished_at.is_(None), WorkItem.finished_at >= scope.since),
            WorkItem.status.in_((WorkItemStatus.assigned, WorkItemStatus.done, WorkItemStatus.cancelled)),
        )
        if scope.channel is not None:
            ticket = aliased(Ticket)
            conversation = aliased(Conversation)
            stmt = (
                stmt.outerjoin(ticket, ticket.id == WorkItem.ticket_id)
                .outerjoin(
                    conversation,
                    conversation.id == func.coalesce(WorkItem.conversation_id, ticket.conversation_id),
                )
                .where(conversation.channel == scope.channel)
            )
        return [
            (_uuid(agent), status, assigned, finished)
            for agent, status, assigned, finished in await self.session.execute(stmt)
            if assigned is not None  # by the query: the column is only nullable in general
        ]

    async def presence(
        self, user_ids: Sequence[uuid.UUID], since: datetime, until: datetime
    ) -> tuple[dict[uuid.UUID, PresenceChange], list[PresenceChange], dict[uuid.UUID, PresenceChange]]:
        """The presence history around [since, until): each user's last change before it (their status at
        its start), their changes in it (oldest first), and their first change after it (what they were
        before it, for those with no change in the period)."""
        if not user_ids:
            return {}, [], {}
        last_before = await self._edge_changes(user_ids, PresenceChange.changed_at < since, func.max)
        first_after = await self._edge_changes(user_ids, PresenceChange.changed_at >= until, func.min)
        during = await self.session.execute(
            select(PresenceChange)
            .where(
                PresenceChange.tenant_id == self.tenant_id,
                PresenceChange.user_id.in_(user_ids),
                PresenceChange.changed_at >= since,
                PresenceChange.changed_at < until,
            )
            .order_by(PresenceChange.user_id, PresenceChange.changed_at, PresenceChange.id)
        )
        return last_before, list(during.scalars()), first_after

    async def _edge_changes(
        self, user_ids: Sequence[uuid.UUID], when: ColumnElement[bool], pick: Any
    ) -> dict[uuid.UUID, PresenceChange]:
        """Per user, the change at the `pick` (func.max or func.min) time among those matching `when`."""
        edge = (
            select(PresenceChange.user_id, pick(PresenceChange.changed_at).label("at"))
            .where(PresenceChange.tenant_id == self.tenant_id, PresenceChange.user_id.in_(user_ids), when)
            .group_by(PresenceChange.user_id)
            .subquery()
        )
        rows = await self.session.execute(
            select(PresenceChange)
            .join(
                edge, and_(PresenceChange.user_id == edge.c.user_id, PresenceChange.changed_at == edge.c.at)
            )
            .where(PresenceChange.tenant_id == self.tenant_id)
            .order_by(PresenceChange.changed_at, PresenceChange.id)
        )
        return {change.user_id: change for change in rows.scalars()}


def _rounded(seconds: Any) -> float | None:
    """To the millisecond: SQLite's julian days carry floating-point noise below it."""
    return None if seconds is None else round(float(seconds), 3)


def _uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
