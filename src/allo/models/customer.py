from __future__ import annotations

import uuid

from sqlalchemy import Boolean, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from allo.kit.db import GUID
from allo.models.base import Base, CreatedMixin, IdMixin, TenantMixin, TimestampMixin, enum_type
from allo.models.enums import Channel


class Customer(IdMixin, TenantMixin, TimestampMixin, Base):
    __tablename__ = "customers"
    __table_args__ = (
        UniqueConstraint("tenant_id", "phone"),
        UniqueConstraint("tenant_id", "email"),
        Index("ix_customers_tenant_created", "tenant_id", "created_at", "id"),
    )

    phone: Mapped[str | None] = mapped_column(String(20))  # E.164
    name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254))  # stored lower-cased
    segment: Mapped[str] = mapped_column(String(40), default="standard", nullable=False)
    vip: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    preferred_language: Mapped[str] = mapped_column(String(8), default="fr", nullable=False)
    # Where proactive messages reach them; None: the channel they last wrote on.
    preferred_channel: Mapped[Channel | None] = mapped_column(enum_type(Channel, "channel"))
    notes: Mapped[str | None] = mapped_column(Text)
    # Where the customer's line is (a town, a postcode, a cell area): outage tickets are grouped by it.
    area: Mapped[str | None] = mapped_column(String(80))
    # A VIP's dedicated advisor: their cases go to this agent first when they are available.
    dedicated_agent_id: Mapped[uuid.UUID | None] = mapped_column(
        GUID, ForeignKey("users.id", ondelete="SET NULL")
    )

    identities: Mapped[list[CustomerIdentity]] = relationship(
        back_populates="customer",
        lazy="raise",
        cascade="all, delete-orphan",
        order_by="CustomerIdentity.channel",
    )


class CustomerIdentity(IdMixin, TenantMixin, CreatedMixin, Base):
    """How a customer is known on one channel (Mastodon account, WhatsApp id, Messenger id…)."""

    __tablename__ = "customer_identities"
    __table_args__ = (UniqueConstraint("tenant_id", "channel", "external_id"),)

    customer_id: Mapped[uuid.UUID] = mapped_column(
        GUID, ForeignKey("customers.id", ondelete="CASCADE"), index=True, nullable=False
    )
    channel: Mapped[Channel] = mapped_column(enum_type(Channel, "channel"), nullable=False)
    external_id: Mapped[str] = mapped_column(String(255), nullable=False)

    customer: Mapped[Customer] = relationship(back_populates="identities", lazy="raise")
