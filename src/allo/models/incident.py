from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from allo.kit.db import GUID
from allo.models.base import Base, IdMixin, TenantMixin, TimestampMixin, enum_type
from allo.models.enums import IncidentStatus


def incident_reference(number: int) -> str:
    """What people quote: INC-0042."""
    return f"INC-{number:04d}"


class Incident(IdMixin, TenantMixin, TimestampMixin, Base):
    """A major incident: one outage (a service in an area) behind many customers' tickets."""

    __tablename__ = "incidents"
    __table_args__ = (
        UniqueConstraint("tenant_id", "number"),
        Index("ix_incidents_tenant_status_service", "tenant_id", "status", "service", "area"),
    )

    number: Mapped[int] = mapped_column(Integer, nullable=False)
    title: Mapped[str] = mapped_column(String(300), nullable=False)
    # The outage's key: the service (the diagnosis' sub-intent: internet_down, no_network…) and the area
    # (None: the whole network).
    service: Mapped[str] = mapped_column(String(60), nullable=False)
    area: Mapped[str | None] = mapped_column(String(80))
    status: Mapped[IncidentStatus] = mapped_column(
        enum_type(IncidentStatus, "incident_status"), default=IncidentStatus.open, nullable=False
    )
    # What customers are told while it lasts (the assistant) and when it ends.
    public_note: Mapped[str | None] = mapped_column(Text)
    resolution_note: Mapped[str | None] = mapped_column(Text)
    opened_automatically: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    opened_by_user_id: Mapped[uuid.UUID | None] = mapped_column(
        GUID, ForeignKey("users.id", ondelete="SET NULL")
    )
    team_id: Mapped[uuid.UUID | None] = mapped_column(GUID, ForeignKey("teams.id", ondelete="SET NULL"))
    team_notified_at: Mapped[datetime | None] = mapped_column()
    resolved_at: Mapped[datetime | None] = mapped_column()

    @property
    def reference(self) -> str:
        return incident_reference(self.number)
