from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from allo.kit.db import GUID, JSONType
from allo.models.base import Base, IdMixin, TenantMixin, TimestampMixin, enum_type
from allo.models.enums import DeliveryStatus


class WebhookEndpoint(IdMixin, TenantMixin, TimestampMixin, Base):
    """A tenant's URL that receives Allo's events, signed with HMAC-SHA256."""

    __tablename__ = "webhook_endpoints"

    url: Mapped[str] = mapped_column(String(2000), nullable=False)
    description: Mapped[str | None] = mapped_column(String(200))
    # The signing secret, encrypted with the instance's key (it must be read back to sign).
    secret_encrypted: Mapped[str] = mapped_column(Text, nullable=False)
    # Event names it wants ("ticket.created", "ticket.sla_breached"…); empty: every event.
    events: Mapped[list[str]] = mapped_column(JSONType, default=list, nullable=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)


class WebhookDelivery(IdMixin, TenantMixin, TimestampMixin, Base):
    """One event sent (or being sent) to one endpoint: the delivery log."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_endpoint_created", "endpoint_id", "created_at"),)

    endpoint_id: Mapped[uuid.UUID] = mapped_column(
        GUID, ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), nullable=False
    )
    event: Mapped[str] = mapped_column(String(80), nullable=False)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict, nullable=False)
    status: Mapped[DeliveryStatus] = mapped_column(
        enum_type(DeliveryStatus, "delivery_status"), default=DeliveryStatus.pending, nullable=False
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_attempt_at: Mapped[datetime | None] = mapped_column()
    last_duration_ms: Mapped[int | None] = mapped_column(Integer)
    delivered_at: Mapped[datetime | None] = mapped_column()
