from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from allo.kit.db import GUID, JSONType
from allo.models.base import Base, IdMixin, TenantMixin, TimestampMixin, enum_type
from allo.models.enums import Category


class KnowledgeArticle(IdMixin, TenantMixin, TimestampMixin, Base):
    __tablename__ = "knowledge_articles"
    __table_args__ = (
        # The same article in several languages shares one key.
        UniqueConstraint("tenant_id", "key", "language"),
        Index("ix_knowledge_articles_tenant_lang_cat", "tenant_id", "language", "category"),
        Index("ix_knowledge_articles_tenant_created", "tenant_id", "created_at", "id"),
    )

    key: Mapped[str | None] = mapped_column(String(80))
    category: Mapped[Category] = mapped_column(enum_type(Category, "category"), nullable=False)
    sub_intents: Mapped[list[str]] = mapped_column(JSONType, default=list, nullable=False)
    language: Mapped[str] = mapped_column(String(8), nullable=False)
    title: Mapped[str] = mapped_column(String(300), nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    links: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list, nullable=False)
    tags: Mapped[list[str]] = mapped_column(JSONType, default=list, nullable=False)
    published: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    published_at: Mapped[datetime | None] = mapped_column()
    author_id: Mapped[uuid.UUID | None] = mapped_column(GUID, ForeignKey("users.id", ondelete="SET NULL"))
