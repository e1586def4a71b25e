from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import AnyHttpUrl, Field

from allo.customers.schemas import LanguageCode
from allo.kit.schemas import ReadModel, StrictInput
from allo.models.enums import Category


class Link(StrictInput):
    title: str = Field(min_length=1, max_length=200)
    url: AnyHttpUrl


class LinkRead(ReadModel):
    title: str
    url: str


class ArticleCreate(StrictInput):
    category: Category
    language: LanguageCode = "fr"
    title: str = Field(min_length=1, max_length=300)
    body: str = Field(min_length=1, max_length=60_000)
    links: list[Link] = Field(default_factory=list, max_length=20)
    tags: list[str] = Field(default_factory=list, max_length=30)
    published: bool = False


class ArticleUpdate(StrictInput):
    category: Category | None = None
    language: LanguageCode | None = None
    title: str | None = Field(default=None, min_length=1, max_length=300)
    body: str | None = Field(default=None, min_length=1, max_length=60_000)
    links: list[Link] | None = Field(default=None, max_length=20)
    tags: list[str] | None = Field(default=None, max_length=30)
    published: bool | None = None


class ArticleRead(ReadModel):
    id: uuid.UUID
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
