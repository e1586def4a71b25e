from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import Field

from allo.customers.schemas import LanguageCode
from allo.kit.schemas import ReadModel, StrictInput
from allo.models.enums import AuthorKind, Channel, ConversationStatus, Direction


class MessageCreate(StrictInput):
    # No max_length here: the byte limit (ALLO_MAX_MESSAGE_BYTES) is checked by the service with a 413.
    body: str
    author_kind: AuthorKind = AuthorKind.customer
    channel_message_id: str | None = Field(default=None, min_length=1, max_length=255)
    meta: dict[str, Any] = Field(default_factory=dict, max_length=50)


class ConversationCreate(StrictInput):
    customer_id: uuid.UUID
    channel: Channel
    language: LanguageCode | None = Field(default=None, description="Defaults to the customer's language")
    subject: str | None = Field(default=None, max_length=300)


class MessageRead(ReadModel):
    id: uuid.UUID
    conversation_id: uuid.UUID
    channel: Channel
    direction: Direction
    author_kind: AuthorKind
    author_user_id: uuid.UUID | None
    body: str
    channel_message_id: str | None
    meta: dict[str, Any]
    created_at: datetime


class ConversationRead(ReadModel):
    id: uuid.UUID
    customer_id: uuid.UUID
    channel: Channel
    status: ConversationStatus
    language: str
    subject: str | None
    assigned_agent_id: uuid.UUID | None
    last_message_at: datetime | None
    queued_at: datetime | None
    assigned_at: datetime | None
    first_agent_response_at: datetime | None
    resolved_at: datetime | None
    created_at: datetime
    updated_at: datetime


class ConversationDetail(ConversationRead):
    messages: list[MessageRead]
