from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from allo.kit.db import GUID, JSONType
from allo.models.base import Base, CreatedMixin, IdMixin, TenantMixin


class Notification(IdMixin, TenantMixin, CreatedMixin, Base):
    """Something one console user must know (an assignment, an SLA warning, an incident), kept until read;
    also pushed live to them."""

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_user_unread", "user_id", "read_at", "created_at"),)

    user_id: Mapped[uuid.UUID] = mapped_column(
        GUID, ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    )
    kind: Mapped[str] = mapped_column(String(60), nullable=False)
    # What the console shows: references and values; the text is rendered in the reader's language.
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict, nullable=False)
    ticket_id: Mapped[uuid.UUID | None] = mapped_column(GUID, ForeignKey("tickets.id", ondelete="CASCADE"))
    read_at: Mapped[datetime | None] = mapped_column()
