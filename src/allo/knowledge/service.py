from __future__ import annotations

import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from allo.audit.service import record_by
from allo.auth.principal import Principal
from allo.kit.db import flush_or_conflict
from allo.kit.time import utc_now
from allo.knowledge.repository import ArticleRepository
from allo.knowledge.retrieval import Hit, Index, build_index
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


# -- search -------------------------------------------------------------------------------------------

# Below this BM25 score an article that is not tagged with the customer's sub-intent is not an answer.
MIN_ANSWER_SCORE = 6.0
_INDEX_CACHE_SIZE = 64


@dataclass(frozen=True)
class ArticleDoc:
    """A published article as the search index holds it: a snapshot, independent of any session."""

    id: uuid.UUID
    key: str | None
    category: str
    language: str
    title: str
    body: str
    tags: list[str]
    sub_intents: list[str]
    links: list[dict[str, Any]]


_indexes: OrderedDict[tuple[uuid.UUID, str | None], tuple[tuple[int, object], Index[ArticleDoc]]] = (
    OrderedDict()
)


async def _index(session: AsyncSession, tenant_id: uuid.UUID, language: str | None) -> Index[ArticleDoc]:
    """The tenant's published articles, indexed once and rebuilt only when an article changed.

    The fingerprint (count, latest update) is read from the database on every search, so an edit made
    by another process is seen at once; only the tokenising is saved.
    """
    repo = ArticleRepository(session, tenant_id)
    base = repo.filtered(published=True, language=language)
    published = base.subquery()
    count, latest = (await session.execute(select(func.count(), func.max(published.c.updated_at)))).one()
    fingerprint = (int(count), latest)
    key = (tenant_id, language)
    cached = _indexes.get(key)
    if cached is not None and cached[0] == fingerprint:
        _indexes.move_to_end(key)
        return cached[1]
    articles = (await session.execute(base)).scalars()
    index = build_index(
        ArticleDoc(
            id=a.id,
            key=a.key,
            category=a.category.value,
            language=a.language,
            title=a.title,
            body=a.body,
            tags=list(a.tags),
            sub_intents=list(a.sub_intents),
            links=[dict(link) for link in a.links],
        )
        for a in articles
    )
    _indexes[key] = (fingerprint, index)
    while len(_indexes) > _INDEX_CACHE_SIZE:
        _indexes.popitem(last=False)
    return index


async def search(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    query: str,
    *,
    language: str | None = None,
    sub_intent: str | None = None,
    limit: int = 5,
) -> list[Hit[ArticleDoc]]:
    index = await _index(session, tenant_id, language)
    return index.search(query, language=language, sub_intent=sub_intent, limit=limit)


async def article_by_key(
    session: AsyncSession, tenant_id: uuid.UUID, key: str, language: str
) -> KnowledgeArticle | None:
    """The published article with this key, in this language or else in the other one."""
    repo = ArticleRepository(session, tenant_id)
    stmt = repo.filtered(published=True).where(KnowledgeArticle.key == key)
    found = {a.language: a for a in (await session.execute(stmt)).scalars()}
    return found.get(language) or next(iter(found.values()), None)
