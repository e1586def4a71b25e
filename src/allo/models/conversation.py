from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from allo.kit.db import GUID, JSONType
from allo.models.base import Base, CreatedMixin, IdMixin, TenantMixin, TimestampMixin, enum_type
from allo.models.customer import Customer
from allo.models.enums import AuthorKind, Channel, ConversationStatus, Direction


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

    conversation: Mapped[Conversation] = relationship(back_populates="messages", lazy="raise")
