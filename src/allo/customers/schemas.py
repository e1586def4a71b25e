from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import EmailStr, Field, StringConstraints

from allo.kit.schemas import ReadModel, StrictInput
from allo.models.enums import Channel

LanguageCode = Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Z]{2})?$")]
Segment = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_-]{1,40}$")]


class IdentityIn(StrictInput):
    channel: Channel
    external_id: str = Field(min_length=1, max_length=255)


class IdentityRead(ReadModel):
    channel: Channel
    external_id: str


class CustomerCreate(StrictInput):
    phone: str | None = Field(default=None, max_length=40, description="Any usual format; stored as E.164")
    name: str | None = Field(default=None, max_length=200)
    email: EmailStr | None = None
    segment: Segment = "standard"
    vip: bool = False
    preferred_language: LanguageCode = "fr"
    preferred_channel: Channel | None = Field(default=None, description="Where proactive messages reach them")
    notes: str | None = Field(default=None, max_length=4000)
    area: str | None = Field(default=None, max_length=80, description="Town, postcode or cell area")
    dedicated_agent_id: uuid.UUID | None = Field(default=None, description="A VIP's dedicated advisor")
    identities: list[IdentityIn] = Field(default_factory=list, max_length=20)


class CustomerUpdate(StrictInput):
    phone: str | None = Field(default=None, max_length=40)
    name: str | None = Field(default=None, max_length=200)
    email: EmailStr | None = None
    segment: Segment | None = None
    vip: bool | None = None
    preferred_language: LanguageCode | None = None
    preferred_channel: Channel | None = None
    notes: str | None = Field(default=None, max_length=4000)
    area: str | None = Field(default=None, max_length=80)
    dedicated_agent_id: uuid.UUID | None = None
    identities: list[IdentityIn] | None = Field(
        default=None, max_length=20, description="Replaces all identities"
    )


class CustomerRead(ReadModel):
    id: uuid.UUID
    phone: str | None
    name: str | None
    email: str | None
    segment: str
    vip: bool
    preferred_language: str
    preferred_channel: Channel | None = None
    notes: str | None
    area: str | None
    dedicated_agent_id: uuid.UUID | None
    identities: list[IdentityRead]
    created_at: datetime
    updated_at: datetime


class CustomerMerge(StrictInput):
    duplicate_id: uuid.UUID = Field(description="The record folded into this one and then deleted")
