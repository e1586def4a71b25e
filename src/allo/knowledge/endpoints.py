from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status
from pydantic import BaseModel

from allo.deps import AgentDep, SessionDep, SupervisorDep
from allo.kit.pagination import Page, PageParams, page_params
from allo.knowledge import service
from allo.knowledge.repository import ArticleRepository
from allo.knowledge.schemas import ArticleCreate, ArticleRead, ArticleUpdate
from allo.models.enums import Category

router = APIRouter(prefix="/knowledge/articles", tags=["knowledge"])


@router.get("", summary="List knowledge-base articles")
async def list_articles(
    session: SessionDep,
    principal: AgentDep,
    page: Annotated[PageParams, Depends(page_params)],
    category: Category | None = None,
    language: Annotated[str | None, Query(max_length=8)] = None,
    published: bool | None = None,
    q: Annotated[str | None, Query(max_length=100)] = None,
) -> Page[ArticleRead]:
    repo = ArticleRepository(session, principal.tenant_id)
    rows, cursor = await repo.paginate(
        repo.filtered(category=category, language=language, published=published, q=q), page
    )
    return Page(items=[ArticleRead.model_validate(a) for a in rows], next_cursor=cursor)


@router.post("", status_code=status.HTTP_201_CREATED, summary="Write an article (supervisor)")
async def create_article(body: ArticleCreate, session: SessionDep, principal: SupervisorDep) -> ArticleRead:
    return ArticleRead.model_validate(await service.create_article(session, principal, body))


@router.get("/{article_id}", summary="Read an article")
async def read_article(article_id: uuid.UUID, session: SessionDep, principal: AgentDep) -> ArticleRead:
    return ArticleRead.model_validate(
        await ArticleRepository(session, principal.tenant_id).get_or_raise(article_id)
    )


@router.patch("/{article_id}", summary="Edit or (un)publish an article (supervisor)")
async def update_article(
    article_id: uuid.UUID, body: ArticleUpdate, session: SessionDep, principal: SupervisorDep
) -> ArticleRead:
    return ArticleRead.model_validate(await service.update_article(session, principal, article_id, body))


@router.delete(
    "/{article_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete an article (supervisor)"
)
async def delete_article(article_id: uuid.UUID, session: SessionDep, principal: SupervisorDep) -> None:
    await service.delete_article(session, principal, article_id)


search_router = APIRouter(prefix="/knowledge", tags=["knowledge"])


class SearchHit(BaseModel):
    article: ArticleRead
    score: float


@search_router.get("/search", summary="Search the published articles (French and English aware)")
async def search_articles(
    session: SessionDep,
    principal: AgentDep,
    q: Annotated[str, Query(min_length=1, max_length=500)],
    language: Annotated[str | None, Query(max_length=8)] = None,
    sub_intent: Annotated[str | None, Query(max_length=40, description="Boost articles answering it")] = None,
    limit: Annotated[int, Query(ge=1, le=20)] = 5,
) -> list[SearchHit]:
    hits = await service.search(
        session, principal.tenant_id, q, language=language, sub_intent=sub_intent, limit=limit
    )
    repo = ArticleRepository(session, principal.tenant_id)
    articles = {a.id: a for a in await repo.get_many([h.document.id for h in hits])}
    return [
        SearchHit(article=ArticleRead.model_validate(articles[h.document.id]), score=round(h.score, 4))
        for h in hits
        if h.document.id in articles
    ]
