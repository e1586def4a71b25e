from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from allo.kit.db import GUID, JSONType
from allo.models.base import Base, CreatedMixin, IdMixin, enum_type
from allo.models.enums import ActorKind


class AuditEvent(IdMixin, CreatedMixin, Base):
    """Who did what to which record. Written in the same transaction as the change it describes."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_tenant_created", "tenant_id", "created_at"),)

    # Nullable: platform actions (creating a tenant) belong to no tenant.
    tenant_id: Mapped[uuid.UUID | None] = mapped_column(GUID, ForeignKey("tenants.id", ondelete="CASCADE"))
    actor_kind: Mapped[ActorKind] = mapped_column(enum_type(ActorKind, "actor_kind"), nullable=False)
    actor_id: Mapped[uuid.UUID | None] = mapped_column(GUID)
    action: Mapped[str] = mapped_column(String(80), nullable=False)
    entity_type: Mapped[str | None] = mapped_column(String(60))
    entity_id: Mapped[str | None] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict, nullable=False)
    ip: Mapped[str | None] = mapped_column(String(64))
