from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ColumnElement, Select, or_, select
from sqlalchemy.orm import selectinload

from allo.kit.repository import TenantRepository
from allo.models import Team, Ticket, TicketConversation
from allo.models.enums import Category, Priority, TicketStatus, Tier

OPEN_STATUSES = (TicketStatus.new, TicketStatus.open, TicketStatus.pending)


def of_conversation(conversation_id: uuid.UUID) -> ColumnElement[bool]:
    """The tickets of a conversation: opened from it, or linked to it later."""
    linked = select(TicketConversation.ticket_id).where(TicketConversation.conversation_id == conversation_id)
    return or_(Ticket.conversation_id == conversation_id, Ticket.id.in_(linked))


class TicketRepository(TenantRepository[Ticket]):
    model = Ticket
    noun = "ticket"

    def filtered(
        self,
        *,
        status: list[TicketStatus] | None = None,
        priority: list[Priority] | None = None,
        category: Category | None = None,
        tier: Tier | None = None,
        team: str | None = None,
        assignee_id: uuid.UUID | None = None,
        customer_id: uuid.UUID | None = None,
        incident_id: uuid.UUID | None = None,
        overdue_at: datetime | None = None,
    ) -> Select[Ticket]:
        stmt = self.select()
        if status:
            stmt = stmt.where(Ticket.status.in_(status))
        if priority:
            stmt = stmt.where(Ticket.priority.in_(priority))
        if category is not None:
            stmt = stmt.where(Ticket.category == category)
        if tier is not None:
            stmt = stmt.where(Ticket.tier == tier)
        if team is not None:
            stmt = stmt.where(
                Ticket.team_id.in_(select(Team.id).where(Team.tenant_id == self.tenant_id, Team.code == team))
            )
        if assignee_id is not None:
            stmt = stmt.where(Ticket.assignee_id == assignee_id)
        if customer_id is not None:
            stmt = stmt.where(Ticket.customer_id == customer_id)
        if incident_id is not None:
            stmt = stmt.where(Ticket.incident_id == incident_id)
        if overdue_at is not None:
            stmt = stmt.where(Ticket.status.in_(OPEN_STATUSES), Ticket.resolution_due_at < overdue_at)
        return stmt

    async def get_detail(self, ticket_id: uuid.UUID) -> Ticket:
        return await self.get_or_raise(ticket_id, selectinload(Ticket.events))
