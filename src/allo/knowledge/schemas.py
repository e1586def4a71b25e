from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import AnyHttpUrl, Field, StringConstraints

from allo.customers.schemas import LanguageCode
from allo.kit.schemas import ReadModel, StrictInput
from allo.models.enums import Category


class PersonalLink(StrEnum):
    """A link generated for the customer reading the answer (their invoice, their parcel…)."""

    invoice = "invoice"
    order_tracking = "order_tracking"
    account = "account"
    consumption = "consumption"


class Link(StrictInput):
    title: str = Field(min_length=1, max_length=200)
    url: AnyHttpUrl
    personal: PersonalLink | None = None


class LinkRead(ReadModel):
    title: str
    url: str
    personal: PersonalLink | None = None


ArticleKey = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{1,79}$")]
SubIntent = Annotated[str, StringConstraints(pattern=r"^[a-z_]{2,40}$")]


class ArticleCreate(StrictInput):
    key: ArticleKey | None = Field(default=None, description="Shared by the translations of one article")
    sub_intents: list[SubIntent] = Field(default_factory=list, max_length=20)
    category: Category
    language: LanguageCode = "fr"
    title: str = Field(min_length=1, max_length=300)
    body: str = Field(min_length=1, max_length=60_000)
    links: list[Link] = Field(default_factory=list, max_length=20)
    tags: list[str] = Field(default_factory=list, max_length=30)
    published: bool = False


class ArticleUpdate(StrictInput):
    key: ArticleKey | None = None
    sub_intents: list[SubIntent] | None = Field(default=None, max_length=20)
    category: Category | None = None
    language: LanguageCode | None = None
    title: str | None = Field(default=None, min_length=1, max_length=300)
    body: str | None = Field(default=None, min_length=1, max_length=60_000)
    links: list[Link] | None = Field(default=None, max_length=20)
    tags: list[str] | None = Field(default=None, max_length=30)
    published: bool | None = None


class ArticleRead(ReadModel):
    id: uuid.UUID
    key: str | None
    sub_intents: list[str]
    category: Category
    language: str
    title: str
    body: str
    links: list[LinkRead]
    tags: list[str]
    published: bool
    published_at: datetime | None
    author_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime
