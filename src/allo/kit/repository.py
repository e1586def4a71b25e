"""Repositories scoped to one tenant by construction: every query they build filters on tenant_id."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, ClassVar, Generic, TypeVar

from sqlalchemy import ColumnElement, Select, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.base import ExecutableOption

from allo.kit.errors import NotFound
from allo.kit.pagination import PageParams, apply_keyset, next_cursor_for

M = TypeVar("M", bound=Any)


def contains_text(text: str, *columns: InstrumentedAttribute[Any]) -> ColumnElement[bool]:
    """Any of the columns contains the text, case aside; "%" and "_" in it are plain characters."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    pattern = f"%{escaped}%"
    return or_(*(column.ilike(pattern, escape="\\") for column in columns))


class TenantRepository(Generic[M]):
    model: type[M]
    noun: ClassVar[str] = "record"

    def __init__(self, session: AsyncSession, tenant_id: uuid.UUID) -> None:
        self.session = session
        self.tenant_id = tenant_id

    def select(self) -> Select[M]:
        return select(self.model).where(self.model.tenant_id == self.tenant_id)

    async def get(self, row_id: uuid.UUID, *options: ExecutableOption) -> M | None:
        stmt = self.select().where(self.model.id == row_id)
        if options:
            stmt = stmt.options(*options)
        result: M | None = (await self.session.execute(stmt)).scalar_one_or_none()
        return result

    async def get_many(self, ids: Sequence[uuid.UUID]) -> list[M]:
        if not ids:
            return []
        stmt = self.select().where(self.model.id.in_(ids))
        return list((await self.session.execute(stmt)).scalars())

    async def get_or_raise(self, row_id: uuid.UUID, *options: ExecutableOption) -> M:
        """The row if it exists in this tenant; another tenant's row is reported as not found."""
        row = await self.get(row_id, *options)
        if row is None:
            raise NotFound(f"{self.noun.capitalize()} {row_id} not found.", details={"id": str(row_id)})
        return row

    def add(self, row: M) -> M:
        row.tenant_id = self.tenant_id
        self.session.add(row)
        return row

    async def paginate(self, stmt: Select[M], params: PageParams) -> tuple[list[M], str | None]:
        created: InstrumentedAttribute[Any] = self.model.created_at
        ident: InstrumentedAttribute[Any] = self.model.id
        rows = list((await self.session.execute(apply_keyset(stmt, params, created, ident))).scalars())
        return next_cursor_for(rows, params)

    async def count(self, stmt: Select[M] | None = None) -> int:
        base = stmt if stmt is not None else self.select()
        return int(
            (await self.session.execute(select(func.count()).select_from(base.subquery()))).scalar_one()
        )
