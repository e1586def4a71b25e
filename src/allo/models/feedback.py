from __future__ import annotations

import uuid

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, Text
from sqlalchemy.orm import Mapped, mapped_column

from allo.kit.db import GUID
from allo.models.base import Base, CreatedMixin, IdMixin, TenantMixin, enum_type
from allo.models.enums import Channel


class CsatResponse(IdMixin, TenantMixin, CreatedMixin, Base):
    """A customer's satisfaction score (1–5) about a conversation or a ticket."""

    __tablename__ = "csat_responses"
    __table_args__ = (
        CheckConstraint("score >= 1 AND score <= 5", name="score_range"),
        Index("ix_csat_responses_tenant_created", "tenant_id", "created_at"),
    )

    customer_id: Mapped[uuid.UUID] = mapped_column(
        GUID, ForeignKey("customers.id", ondelete="CASCADE"), index=True, nullable=False
    )
    conversation_id: Mapped[uuid.UUID | None] = mapped_column(
        GUID, ForeignKey("conversations.id", ondelete="SET NULL"), index=True
    )
    ticket_id: Mapped[uuid.UUID | None] = mapped_column(
        GUID, ForeignKey("tickets.id", ondelete="SET NULL"), index=True
    )
    agent_id: Mapped[uuid.UUID | None] = mapped_column(
        GUID, ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    channel: Mapped[Channel | None] = mapped_column(enum_type(Channel, "channel"))
    score: Mapped[int] = mapped_column(Integer, nullable=False)
    comment: Mapped[str | None] = mapped_column(Text)
