from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from allo.audit.service import record_by
from allo.auth.principal import Principal
from allo.kit.db import flush_or_conflict
from allo.kit.time import utc_now
from allo.knowledge.repository import ArticleRepository
from allo.knowledge.schemas import ArticleCreate, ArticleUpdate
from allo.models import KnowledgeArticle

_DUPLICATE = "An article with this key already exists in this language."


def _tags(tags: list[str]) -> list[str]:
    return list(dict.fromkeys(t.strip().lower() for t in tags if t.strip()))


async def create_article(
    session: AsyncSession, principal: Principal, data: ArticleCreate
) -> KnowledgeArticle:
    article = ArticleRepository(session, principal.tenant_id).add(
        KnowledgeArticle(
            key=data.key,
            sub_intents=list(dict.fromkeys(data.sub_intents)),
            category=data.category,
            language=data.language,
            title=data.title,
            body=data.body,
            links=[link.model_dump(mode="json", exclude_none=True) for link in data.links],
            tags=_tags(data.tags),
            published=data.published,
            published_at=utc_now() if data.published else None,
            author_id=principal.user_id,
        )
    )
    await flush_or_conflict(session, _DUPLICATE, code="article_exists")
    await record_by(session, principal, "article.create", "article", article.id, {"title": data.title})
    return article


async def update_article(
    session: AsyncSession, principal: Principal, article_id: uuid.UUID, data: ArticleUpdate
) -> KnowledgeArticle:
    article = await ArticleRepository(session, principal.tenant_id).get_or_raise(article_id)
    changes = data.model_dump(exclude_unset=True, exclude={"links", "tags", "published"})
    for field, value in changes.items():
        if value is not None:
            setattr(article, field, value)
    if data.links is not None:
        article.links = [link.model_dump(mode="json", exclude_none=True) for link in data.links]
    if data.tags is not None:
        article.tags = _tags(data.tags)
    if data.published is not None and data.published != article.published:
        article.published = data.published
        article.published_at = utc_now() if data.published else None
    await flush_or_conflict(session, _DUPLICATE, code="article_exists")
    await record_by(
        session, principal, "article.update", "article", article.id, {"fields": sorted(data.model_fields_set)}
    )
    return article


async def delete_article(session: AsyncSession, principal: Principal, article_id: uuid.UUID) -> None:
    article = await ArticleRepository(session, principal.tenant_id).get_or_raise(article_id)
    await session.delete(article)
    await record_by(session, principal, "article.delete", "article", article_id)
