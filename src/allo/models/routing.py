from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from allo.kit.db import GUID, JSONType
from allo.models.base import Base, IdMixin, TenantMixin, TimestampMixin, enum_type
from allo.models.enums import PRIORITY_RANK, Priority, Tier, WorkItemStatus, WorkKind

_ACTIVE = "status IN ('queued', 'assigned')"


def queue_rank(priority: Priority, vip: bool) -> int:
    """One ascending number for "priority first, VIP first within a priority": P1 VIP 1, P1 2, P2 VIP 3…"""
    return 2 * PRIORITY_RANK[priority] - (1 if vip else 0)


class WorkItem(IdMixin, TenantMixin, TimestampMixin, Base):
    """Something a human must handle (a chat, a ticket; later a call or a callback), waiting in a queue
    or assigned to one agent: what the routing engine (ACD) works on, whatever the channel."""

    __tablename__ = "work_items"
    __table_args__ = (
        # The queue in the order the engine serves it (rank: priority, VIP first; then the oldest).
        Index("ix_work_items_queue", "tenant_id", "status", "queue_rank", "enqueued_at", "id"),
        Index("ix_work_items_agent", "agent_id", "status"),
        Index("ix_work_items_accept_deadline", "status", "accept_deadline"),
        # One live item per conversation and per ticket: routing twice is refused by the database.
        Index(
            "uq_work_items_live_conversation",
            "conversation_id",
            unique=True,
            sqlite_where=text(f"conversation_id IS NOT NULL AND {_ACTIVE}"),
            postgresql_where=text(f"conversation_id IS NOT NULL AND {_ACTIVE}"),
        ),
        Index(
            "uq_work_items_live_ticket",
            "ticket_id",
            unique=True,
            sqlite_where=text(f"ticket_id IS NOT NULL AND {_ACTIVE}"),
            postgresql_where=text(f"ticket_id IS NOT NULL AND {_ACTIVE}"),
        ),
    )

    kind: Mapped[WorkKind] = mapped_column(enum_type(WorkKind, "work_kind"), nullable=False)
    status: Mapped[WorkItemStatus] = mapped_column(
        enum_type(WorkItemStatus, "work_item_status"), default=WorkItemStatus.queued, nullable=False
    )
    conversation_id: Mapped[uuid.UUID | None] = mapped_column(
        GUID, ForeignKey("conversations.id", ondelete="CASCADE")
    )
    ticket_id: Mapped[uuid.UUID | None] = mapped_column(GUID, ForeignKey("tickets.id", ondelete="CASCADE"))
    # The queue: who may take it.
    team_id: Mapped[uuid.UUID | None] = mapped_column(GUID, ForeignKey("teams.id", ondelete="SET NULL"))
    language: Mapped[str] = mapped_column(String(8), default="fr", nullable=False)
    skills: Mapped[list[str]] = mapped_column(JSONType, default=list, nullable=False)
    min_skill_level: Mapped[int] = mapped_column(Integer, default=1, nullable=False)
    min_tier: Mapped[Tier] = mapped_column(enum_type(Tier, "tier"), default=Tier.n1, nullable=False)
    segment: Mapped[str | None] = mapped_column(String(40))
    preferred_agent_id: Mapped[uuid.UUID | None] = mapped_column(
        GUID, ForeignKey("users.id", ondelete="SET NULL")
    )
    # The order: queue_rank (see queue_rank()), then age.
    priority: Mapped[Priority] = mapped_column(enum_type(Priority, "priority"), nullable=False)
    queue_rank: Mapped[int] = mapped_column(Integer, nullable=False)
    vip: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    enqueued_at: Mapped[datetime] = mapped_column(nullable=False)
    # The outcome.
    agent_id: Mapped[uuid.UUID | None] = mapped_column(GUID, ForeignKey("users.id", ondelete="SET NULL"))
    assigned_at: Mapped[datetime | None] = mapped_column()
    # When the tenant asks agents to accept what they are offered: accepted, or taken back at the deadline.
    accepted_at: Mapped[datetime | None] = mapped_column()
    accept_deadline: Mapped[datetime | None] = mapped_column()
    # Agents who let the offer expire or declined it: not offered the same item again.
    declined_by: Mapped[list[str]] = mapped_column(
        JSONType, default=list, server_default="[]", nullable=False
    )
    finished_at: Mapped[datetime | None] = mapped_column()
    attempts: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    history: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list, nullable=False)
