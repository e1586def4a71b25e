from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from allo.kit.db import GUID, JSONType
from allo.models.base import Base, CreatedMixin, IdMixin, TenantMixin, TimestampMixin, enum_type
from allo.models.customer import Customer
from allo.models.enums import AuthorKind, Channel, ConversationStatus, Direction, MessageDelivery


class Conversation(IdMixin, TenantMixin, TimestampMixin, Base):
    __tablename__ = "conversations"
    __table_args__ = (
        Index("ix_conversations_tenant_status", "tenant_id", "status"),
        Index("ix_conversations_tenant_created", "tenant_id", "created_at", "id"),
    )

    customer_id: Mapped[uuid.UUID] = mapped_column(
        GUID, ForeignKey("customers.id", ondelete="CASCADE"), index=True, nullable=False
    )
    channel: Mapped[Channel] = mapped_column(enum_type(Channel, "channel"), nullable=False)
    status: Mapped[ConversationStatus] = mapped_column(
        enum_type(ConversationStatus, "conversation_status"), default=ConversationStatus.bot, nullable=False
    )
    language: Mapped[str] = mapped_column(String(8), default="fr", nullable=False)
    subject: Mapped[str | None] = mapped_column(String(300))
    assigned_agent_id: Mapped[uuid.UUID | None] = mapped_column(
        GUID, ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    last_message_at: Mapped[datetime | None] = mapped_column()
    queued_at: Mapped[datetime | None] = mapped_column()
    assigned_at: Mapped[datetime | None] = mapped_column()
    first_agent_response_at: Mapped[datetime | None] = mapped_column()
    resolved_at: Mapped[datetime | None] = mapped_column()
    # "bot" or "agent": who closed it, the base of the bot resolution rate.
    resolved_by: Mapped[str | None] = mapped_column(String(10))
    escalated_at: Mapped[datetime | None] = mapped_column()
    escalation_reasons: Mapped[list[str]] = mapped_column(JSONType, default=list, nullable=False)
    # The channel account it came in on and the customer's address there (phone, WhatsApp id, page-scoped
    # id, e-mail): where the replies go. None for the web chat.
    channel_account_id: Mapped[uuid.UUID | None] = mapped_column(
        GUID, ForeignKey("channel_accounts.id", ondelete="SET NULL")
    )
    contact_address: Mapped[str | None] = mapped_column(String(255))
    # The assistant's memory of this conversation between turns (allo.assistant.dialogue.DialogueState).
    bot_state: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict, nullable=False)

    customer: Mapped[Customer] = relationship(lazy="raise")
    messages: Mapped[list[Message]] = relationship(
        back_populates="conversation",
        lazy="raise",
        order_by="Message.created_at",
        cascade="all, delete-orphan",
    )


class Message(IdMixin, TenantMixin, CreatedMixin, Base):
    __tablename__ = "messages"
    __table_args__ = (
        # A provider's message id is seen once per channel: replays are refused, not duplicated.
        UniqueConstraint("tenant_id", "channel", "channel_message_id"),
        Index("ix_messages_conversation_created", "conversation_id", "created_at"),
        # A conversation's first message of an author (the KPIs' first customer message and first answer).
        Index("ix_messages_conversation_author", "conversation_id", "author_kind", "created_at"),
    )

    conversation_id: Mapped[uuid.UUID] = mapped_column(
        GUID, ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False
    )
    channel: Mapped[Channel] = mapped_column(enum_type(Channel, "channel"), nullable=False)
    direction: Mapped[Direction] = mapped_column(enum_type(Direction, "direction"), nullable=False)
    author_kind: Mapped[AuthorKind] = mapped_column(enum_type(AuthorKind, "author_kind"), nullable=False)
    author_user_id: Mapped[uuid.UUID | None] = mapped_column(
        GUID, ForeignKey("users.id", ondelete="SET NULL")
    )
    body: Mapped[str] = mapped_column(Text, nullable=False)
    channel_message_id: Mapped[str | None] = mapped_column(String(255))
    meta: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict, nullable=False)
    # Outbound messages on an external channel: where the provider says the message is.
    delivery_status: Mapped[MessageDelivery | None] = mapped_column(
        enum_type(MessageDelivery, "message_delivery")
    )
    delivery_error: Mapped[str | None] = mapped_column(Text)
    delivery_updated_at: Mapped[datetime | None] = mapped_column()

    conversation: Mapped[Conversation] = relationship(back_populates="messages", lazy="raise")
