from __future__ import annotations

from sqlalchemy import Select

from allo.kit.repository import TenantRepository, contains_text
from allo.models import KnowledgeArticle
from allo.models.enums import Category


class ArticleRepository(TenantRepository[KnowledgeArticle]):
    model = KnowledgeArticle
    noun = "article"

    def filtered(
        self,
        *,
        category: Category | None = None,
        language: str | None = None,
        published: bool | None = None,
        q: str | None = None,
    ) -> Select[KnowledgeArticle]:
        stmt = self.select()
        if category is not None:
            stmt = stmt.where(KnowledgeArticle.category == category)
        if language is not None:
            stmt = stmt.where(KnowledgeArticle.language == language)
        if published is not None:
            stmt = stmt.where(KnowledgeArticle.published == published)
        if q:
            stmt = stmt.where(contains_text(q, KnowledgeArticle.title, KnowledgeArticle.body))
        return stmt
