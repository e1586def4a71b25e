from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from allo.kit.schemas import StrictInput
from allo.models import Message
from allo.models.enums import ConversationStatus

ChatLanguage = Literal["fr", "en"]
# Customer messages of the web chat keep the browser's id, prefixed, as their channel message id.
CLIENT_ID_PREFIX = "webchat:"


class ChatOption(BaseModel):
    id: str
    label: str


class ChatLink(BaseModel):
    title: str
    url: str


class ChatMessage(BaseModel):
    id: uuid.UUID
    author: Literal["customer", "bot", "agent", "system"]
    author_name: str | None = None
    text: str
    created_at: datetime
    kind: str = "text"
    options: list[ChatOption] = Field(default_factory=list)
    links: list[ChatLink] = Field(default_factory=list)
    client_message_id: str | None = Field(default=None, description="The sender's id of a customer message")

    @classmethod
    def of(cls, message: Message, author_name: str | None = None) -> ChatMessage:
        meta = message.meta or {}
        return cls(
            id=message.id,
            author=message.author_kind.value,
            author_name=author_name,
            text=message.body,
            created_at=message.created_at,
            kind=str(meta.get("kind", "text")),
            options=[ChatOption.model_validate(o) for o in meta.get("options", [])],
            links=[ChatLink.model_validate(link) for link in meta.get("links", [])],
            client_message_id=(message.channel_message_id or "").removeprefix(CLIENT_ID_PREFIX) or None,
        )


class ChatStart(StrictInput):
    language: ChatLanguage | None = None
    tenant: str | None = Field(default=None, max_length=63)
    contact: str | None = Field(default=None, max_length=2048, description="A signed contact link token")
    resume: str | None = Field(
        default=None,
        max_length=2048,
        description="With a contact link: the browser's earlier chat token, to continue what it opened",
    )


class ChatLanguageChange(StrictInput):
    language: ChatLanguage


class ChatPost(StrictInput):
    # No max_length: the byte limit (ALLO_MAX_MESSAGE_BYTES) is checked with a clear 413.
    text: str
    option: str | None = Field(default=None, max_length=60)
    client_message_id: str | None = Field(
        default=None, min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_-]+$"
    )


class ChatUpdate(BaseModel):
    status: ConversationStatus
    agent_name: str | None = None
    messages: list[ChatMessage]


class ChatState(ChatUpdate):
    token: str
    conversation_id: uuid.UUID
    language: ChatLanguage
