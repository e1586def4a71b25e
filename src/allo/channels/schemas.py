from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import Field

from allo.kit.schemas import ReadModel, StrictInput
from allo.models.enums import Channel, ChannelEventKind, ChannelEventState

SecretValues = dict[str, str]


class ChannelAccountCreate(StrictInput):
    channel: Channel
    provider: str = Field(min_length=2, max_length=40, description="kannel, smpp, whatsapp, messenger, email")
    name: str = Field(min_length=1, max_length=100)
    address: str = Field(
        min_length=1,
        max_length=255,
        description="Our address there: SMS number or short code, WhatsApp phone number id, Messenger "
        "page id, mailbox address",
    )
    settings: dict[str, Any] = Field(default_factory=dict, max_length=40)
    secrets: SecretValues = Field(
        default_factory=dict, max_length=20, description="Stored encrypted, never shown"
    )
    active: bool = True
    is_default: bool | None = Field(default=None, description="Proactive messages leave from it")


class ChannelAccountUpdate(StrictInput):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    address: str | None = Field(default=None, min_length=1, max_length=255)
    settings: dict[str, Any] | None = Field(default=None, max_length=40)
    secrets: SecretValues | None = Field(
        default=None, max_length=20, description="Replaces the named secrets; an empty value removes one"
    )
    active: bool | None = None
    is_default: bool | None = None


class ChannelAccountRead(ReadModel):
    id: uuid.UUID
    channel: Channel
    provider: str
    name: str
    address: str
    settings: dict[str, Any]
    active: bool
    is_default: bool
    created_at: datetime
    updated_at: datetime
    # Filled by the endpoint: where the provider posts, and which secrets are set (never their values).
    hook_url: str = ""
    secrets_set: list[str] = Field(default_factory=list)


class ChannelEventRead(ReadModel):
    id: uuid.UUID
    account_id: uuid.UUID
    channel: Channel
    kind: ChannelEventKind
    external_id: str
    state: ChannelEventState
    error: str | None
    message_id: uuid.UUID | None
    created_at: datetime
    processed_at: datetime | None
    payload: dict[str, Any]


class OptOutIn(StrictInput):
    channel: Channel
    address: str = Field(min_length=3, max_length=255)


class OptOutRead(ReadModel):
    id: uuid.UUID
    channel: Channel
    address: str
    source: str
    created_at: datetime
