"""Channel accounts (a tenant's SMS gateway, WhatsApp number, Messenger page, mailbox), the raw events
they receive, and the numbers and addresses that opted out."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from allo.kit.db import GUID, JSONType
from allo.models.base import Base, CreatedMixin, IdMixin, TenantMixin, TimestampMixin, enum_type
from allo.models.enums import Channel, ChannelEventKind, ChannelEventState


class ChannelAccount(IdMixin, TenantMixin, TimestampMixin, Base):
    __tablename__ = "channel_accounts"
    __table_args__ = (
        UniqueConstraint("tenant_id", "channel", "name"),
        Index("ix_channel_accounts_channel_address", "channel", "address"),
    )

    channel: Mapped[Channel] = mapped_column(enum_type(Channel, "channel"), nullable=False)
    # The adapter's key in allo.channels.registry ("kannel", "smpp", "whatsapp", "messenger", "email").
    provider: Mapped[str] = mapped_column(String(40), nullable=False)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    # Our address on the channel: the SMS number or short code, the WhatsApp phone number id, the
    # Messenger page id, the mailbox's address.
    address: Mapped[str] = mapped_column(String(255), nullable=False)
    settings: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict, nullable=False)
    # The provider's secrets (tokens, passwords, app secrets) as one JSON object, encrypted at rest.
    secrets_encrypted: Mapped[str | None] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)
    # The account proactive messages leave from on this channel.
    is_default: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)


class ChannelEvent(IdMixin, TenantMixin, CreatedMixin, Base):
    """One raw inbound event as the provider sent it, stored before anything acts on it."""

    __tablename__ = "channel_events"
    __table_args__ = (
        # A replayed webhook finds its event already here and creates nothing twice.
        UniqueConstraint("tenant_id", "channel", "external_id"),
        Index("ix_channel_events_account_created", "account_id", "created_at"),
    )

    account_id: Mapped[uuid.UUID] = mapped_column(
        GUID, ForeignKey("channel_accounts.id", ondelete="CASCADE"), nullable=False
    )
    channel: Mapped[Channel] = mapped_column(enum_type(Channel, "channel"), nullable=False)
    kind: Mapped[ChannelEventKind] = mapped_column(
        enum_type(ChannelEventKind, "channel_event_kind"), nullable=False
    )
    external_id: Mapped[str] = mapped_column(String(255), nullable=False)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict, nullable=False)
    state: Mapped[ChannelEventState] = mapped_column(
        enum_type(ChannelEventState, "channel_event_state"),
        default=ChannelEventState.received,
        nullable=False,
    )
    error: Mapped[str | None] = mapped_column(Text)
    processed_at: Mapped[datetime | None] = mapped_column()
    message_id: Mapped[uuid.UUID | None] = mapped_column(GUID, ForeignKey("messages.id", ondelete="SET NULL"))


class OptOut(IdMixin, TenantMixin, CreatedMixin, Base):
    """A number or address that asked not to be written to on a channel (SMS STOP, say)."""

    __tablename__ = "opt_outs"
    __table_args__ = (UniqueConstraint("tenant_id", "channel", "address"),)

    channel: Mapped[Channel] = mapped_column(enum_type(Channel, "channel"), nullable=False)
    address: Mapped[str] = mapped_column(String(255), nullable=False)
    # "keyword" (the customer wrote STOP), "agent", "api".
    source: Mapped[str] = mapped_column(String(20), nullable=False)
