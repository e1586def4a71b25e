from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import Field, model_validator

from allo.kit.schemas import ReadModel, StrictInput
from allo.models.enums import BroadcastState, Channel, MessageDelivery, RecipientState

MAX_LISTED_CUSTOMERS = 10_000


class Audience(StrictInput):
    """Who receives it: listed customers, or everyone matching a segment filter (both narrow together)."""

    customer_ids: list[uuid.UUID] | None = Field(default=None, min_length=1, max_length=MAX_LISTED_CUSTOMERS)
    segment: str | None = Field(default=None, max_length=40)
    vip: bool | None = None
    language: str | None = Field(default=None, max_length=8)
    area: str | None = Field(default=None, max_length=80)

    @model_validator(mode="after")
    def _someone(self) -> Audience:
        if self.customer_ids is None and all(
            v is None for v in (self.segment, self.vip, self.language, self.area)
        ):
            raise ValueError("name customers or a segment: a send to everyone must say so with a filter")
        return self


class TemplateIn(StrictInput):
    name: str = Field(min_length=1, max_length=512, pattern=r"^[a-z0-9_]+$")
    language: str = Field(default="fr", min_length=2, max_length=8)
    parameters: list[str] = Field(default_factory=list, max_length=10)


class BroadcastCreate(StrictInput):
    name: str = Field(min_length=1, max_length=200)
    channel: Channel | Literal["preferred"] = "preferred"
    texts: dict[str, str] = Field(
        min_length=1,
        description='The text per language, {"fr": …, "en": …}; "{name}" is the customer\'s name',
    )
    template: TemplateIn | None = Field(default=None, description="For WhatsApp outside the 24-hour window")
    audience: Audience
    respect_quiet_hours: bool = True
    purpose: Literal["manual", "outage", "campaign", "survey"] = "manual"

    @model_validator(mode="after")
    def _texts_fit(self) -> BroadcastCreate:
        for language, text in self.texts.items():
            if not text.strip():
                raise ValueError(f"the {language} text is empty")
            if len(text) > 4000:
                raise ValueError(f"the {language} text is over 4000 characters")
        return self


class BroadcastReport(ReadModel):
    total: int
    pending: int
    skipped: dict[str, int]
    queued: int
    sent: int
    delivered: int
    read: int
    failed: int


class BroadcastRead(ReadModel):
    id: uuid.UUID
    name: str
    channel: Channel | None
    texts: dict[str, str]
    template: dict[str, Any] | None
    audience: dict[str, Any]
    respect_quiet_hours: bool
    purpose: str
    state: BroadcastState
    total: int
    created_at: datetime
    finished_at: datetime | None
    report: BroadcastReport | None = None


class RecipientRead(ReadModel):
    id: uuid.UUID
    customer_id: uuid.UUID
    state: RecipientState
    channel: Channel | None
    address: str | None
    reason: str | None
    message_id: uuid.UUID | None
    delivery_status: MessageDelivery | None = None
    delivery_error: str | None = None
    created_at: datetime
