"""Proactive messages: one send to a list or segment of customers, and where each recipient's message is."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from allo.kit.db import GUID, JSONType
from allo.models.base import Base, IdMixin, TenantMixin, TimestampMixin, enum_type
from allo.models.enums import BroadcastState, Channel, RecipientState


class Broadcast(IdMixin, TenantMixin, TimestampMixin, Base):
    __tablename__ = "broadcasts"
    __table_args__ = (Index("ix_broadcasts_tenant_created", "tenant_id", "created_at", "id"),)

    name: Mapped[str] = mapped_column(String(200), nullable=False)
    # None: each customer's preferred channel.
    channel: Mapped[Channel | None] = mapped_column(enum_type(Channel, "channel"))
    # The text per language ({"fr": …, "en": …}); {name} is replaced by the customer's name.
    texts: Mapped[dict[str, str]] = mapped_column(JSONType, default=dict, nullable=False)
    # A WhatsApp template for customers outside the 24-hour window: {"name", "language", "parameters"}.
    template: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    # Who: {"customer_ids": […]} or a segment filter {"segment", "vip", "language", "area"}.
    audience: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict, nullable=False)
    respect_quiet_hours: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)
    # What it is for ("manual", "outage", "campaign", "survey"): the later features that use it.
    purpose: Mapped[str] = mapped_column(String(20), default="manual", nullable=False)
    state: Mapped[BroadcastState] = mapped_column(
        enum_type(BroadcastState, "broadcast_state"), default=BroadcastState.running, nullable=False
    )
    total: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    created_by: Mapped[uuid.UUID | None] = mapped_column(GUID, ForeignKey("users.id", ondelete="SET NULL"))
    finished_at: Mapped[datetime | None] = mapped_column()
    error: Mapped[str | None] = mapped_column(Text)


class BroadcastRecipient(IdMixin, TenantMixin, TimestampMixin, Base):
    __tablename__ = "broadcast_recipients"
    __table_args__ = (
        UniqueConstraint("broadcast_id", "customer_id"),
        Index("ix_broadcast_recipients_broadcast_state", "broadcast_id", "state"),
    )

    broadcast_id: Mapped[uuid.UUID] = mapped_column(
        GUID, ForeignKey("broadcasts.id", ondelete="CASCADE"), nullable=False
    )
    customer_id: Mapped[uuid.UUID] = mapped_column(
        GUID, ForeignKey("customers.id", ondelete="CASCADE"), index=True, nullable=False
    )
    state: Mapped[RecipientState] = mapped_column(
        enum_type(RecipientState, "recipient_state"), default=RecipientState.pending, nullable=False
    )
    channel: Mapped[Channel | None] = mapped_column(enum_type(Channel, "channel"))
    address: Mapped[str | None] = mapped_column(String(255))
    # Why a recipient was skipped: opted_out, no_address, no_account.
    reason: Mapped[str | None] = mapped_column(String(200))
    message_id: Mapped[uuid.UUID | None] = mapped_column(GUID, ForeignKey("messages.id", ondelete="SET NULL"))
