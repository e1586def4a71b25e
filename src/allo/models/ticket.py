from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from allo.kit.db import GUID, JSONType
from allo.models.base import Base, CreatedMixin, IdMixin, TenantMixin, TimestampMixin, enum_type
from allo.models.enums import Category, Priority, TicketStatus, Tier


def ticket_reference(number: int) -> str:
    """What people quote: T-000042."""
    return f"T-{number:06d}"


class Ticket(IdMixin, TenantMixin, TimestampMixin, Base):
    __tablename__ = "tickets"
    __table_args__ = (
        UniqueConstraint("tenant_id", "number"),
        Index("ix_tickets_tenant_status_priority", "tenant_id", "status", "priority"),
        Index("ix_tickets_tenant_created", "tenant_id", "created_at", "id"),
        # The clock's next alarm (80 % warning, 100 % breach), found by the periodic tick.
        Index("ix_tickets_sla_alert", "sla_alert_at"),
        Index("ix_tickets_outage", "tenant_id", "service", "area", "created_at"),
    )

    number: Mapped[int] = mapped_column(Integer, nullable=False)
    subject: Mapped[str] = mapped_column(String(300), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    category: Mapped[Category] = mapped_column(enum_type(Category, "category"), nullable=False)
    priority: Mapped[Priority] = mapped_column(enum_type(Priority, "priority"), nullable=False)
    # Why this priority: the rules that set it (allo.tickets.priority), shown to the agent.
    priority_reasons: Mapped[list[str]] = mapped_column(JSONType, default=list, nullable=False)
    status: Mapped[TicketStatus] = mapped_column(
        enum_type(TicketStatus, "ticket_status"), default=TicketStatus.new, nullable=False
    )
    tier: Mapped[Tier] = mapped_column(enum_type(Tier, "tier"), default=Tier.n1, nullable=False)
    team_id: Mapped[uuid.UUID | None] = mapped_column(
        GUID, ForeignKey("teams.id", ondelete="SET NULL"), index=True
    )
    assignee_id: Mapped[uuid.UUID | None] = mapped_column(
        GUID, ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    customer_id: Mapped[uuid.UUID] = mapped_column(
        GUID, ForeignKey("customers.id", ondelete="CASCADE"), index=True, nullable=False
    )
    conversation_id: Mapped[uuid.UUID | None] = mapped_column(
        GUID, ForeignKey("conversations.id", ondelete="SET NULL"), index=True
    )
    first_response_due_at: Mapped[datetime | None] = mapped_column()
    resolution_due_at: Mapped[datetime | None] = mapped_column()
    first_responded_at: Mapped[datetime | None] = mapped_column()
    resolved_at: Mapped[datetime | None] = mapped_column()
    closed_at: Mapped[datetime | None] = mapped_column()
    # The resolution clock stops while the ticket waits on the customer (pending).
    sla_paused_at: Mapped[datetime | None] = mapped_column()
    sla_paused_seconds: Mapped[int] = mapped_column(Integer, default=0, server_default="0", nullable=False)
    # The next SLA alarm still to raise (None: nothing left), and those raised: "first_response:warning"…
    sla_alert_at: Mapped[datetime | None] = mapped_column()
    sla_alerts: Mapped[list[str]] = mapped_column(JSONType, default=list, server_default="[]", nullable=False)
    # The resolution code chosen from the tenant's dispositions when the ticket was resolved.
    disposition: Mapped[str | None] = mapped_column(String(40))
    merged_into_id: Mapped[uuid.UUID | None] = mapped_column(
        GUID, ForeignKey("tickets.id", ondelete="SET NULL"), index=True
    )
    incident_id: Mapped[uuid.UUID | None] = mapped_column(
        GUID, ForeignKey("incidents.id", ondelete="SET NULL"), index=True
    )
    reopened_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0", nullable=False)
    # What an outage ticket is about, for grouping into a major incident: the service (no_network,
    # no_data…) and the customer's area when the ticket was opened.
    service: Mapped[str | None] = mapped_column(String(60))
    area: Mapped[str | None] = mapped_column(String(80))

    @property
    def reference(self) -> str:
        return ticket_reference(self.number)

    events: Mapped[list[TicketEvent]] = relationship(
        back_populates="ticket", lazy="raise", order_by="TicketEvent.created_at", cascade="all, delete-orphan"
    )


class TicketEvent(IdMixin, TenantMixin, CreatedMixin, Base):
    """The ticket's history: every change with who and why, escalations included."""

    __tablename__ = "ticket_events"
    __table_args__ = (Index("ix_ticket_events_ticket_created", "ticket_id", "created_at"),)

    ticket_id: Mapped[uuid.UUID] = mapped_column(
        GUID, ForeignKey("tickets.id", ondelete="CASCADE"), nullable=False
    )
    actor_user_id: Mapped[uuid.UUID | None] = mapped_column(GUID, ForeignKey("users.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(40), nullable=False)
    field: Mapped[str | None] = mapped_column(String(40))
    from_value: Mapped[str | None] = mapped_column(String(200))
    to_value: Mapped[str | None] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict, nullable=False)

    ticket: Mapped[Ticket] = relationship(back_populates="events", lazy="raise")


class TicketConversation(IdMixin, TenantMixin, CreatedMixin, Base):
    """The conversations of a ticket, on any channel: the one it was opened from and those linked later."""

    __tablename__ = "ticket_conversations"
    __table_args__ = (UniqueConstraint("ticket_id", "conversation_id"),)

    ticket_id: Mapped[uuid.UUID] = mapped_column(
        GUID, ForeignKey("tickets.id", ondelete="CASCADE"), nullable=False
    )
    conversation_id: Mapped[uuid.UUID] = mapped_column(
        GUID, ForeignKey("conversations.id", ondelete="CASCADE"), index=True, nullable=False
    )
    linked_by_user_id: Mapped[uuid.UUID | None] = mapped_column(
        GUID, ForeignKey("users.id", ondelete="SET NULL")
    )
