"""Cursor (keyset) pagination over (created_at, id), newest first: stable under concurrent inserts."""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

import orjson
from fastapi import Query
from pydantic import BaseModel
from sqlalchemy import ColumnElement, Select, and_, or_
from sqlalchemy.orm import InstrumentedAttribute

from allo.kit.errors import BadRequest

T = TypeVar("T")

MAX_LIMIT = 200


@dataclass(frozen=True)
class PageParams:
    limit: int
    cursor: str | None


async def page_params(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page")] = 50,
    cursor: Annotated[
        str | None, Query(max_length=200, description="`next_cursor` of the previous page")
    ] = None,
) -> PageParams:
    return PageParams(limit=limit, cursor=cursor)


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


def encode_cursor(created_at: datetime, row_id: uuid.UUID) -> str:
    raw = orjson.dumps([created_at.isoformat(), str(row_id)])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, row_id = orjson.loads(raw)
        if not isinstance(created, str) or not isinstance(row_id, str):
            raise TypeError("cursor fields must be strings")
        moment = datetime.fromisoformat(created)
        if moment.tzinfo is None:
            raise ValueError("cursor timestamps carry their time zone")
        return moment, uuid.UUID(row_id)
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError) as exc:
        raise BadRequest("The pagination cursor is not valid.", code="invalid_cursor") from exc


def before_in_keyset(
    created_col: ColumnElement[datetime] | InstrumentedAttribute[datetime],
    id_col: ColumnElement[uuid.UUID] | InstrumentedAttribute[uuid.UUID],
    created: datetime | ColumnElement[datetime],
    row_id: uuid.UUID | ColumnElement[uuid.UUID],
) -> ColumnElement[bool]:
    """Rows after (created, row_id) in the newest-first order: the next page's condition."""
    return or_(created_col < created, and_(created_col == created, id_col < row_id))


def apply_keyset(
    stmt: Select[Any],
    params: PageParams,
    created_col: ColumnElement[datetime] | InstrumentedAttribute[datetime],
    id_col: ColumnElement[uuid.UUID] | InstrumentedAttribute[uuid.UUID],
) -> Select[Any]:
    if params.cursor:
        created, row_id = decode_cursor(params.cursor)
        stmt = stmt.where(before_in_keyset(created_col, id_col, created, row_id))
    return stmt.order_by(created_col.desc(), id_col.desc()).limit(params.limit + 1)


def next_cursor_for(rows: list[Any], params: PageParams) -> tuple[list[Any], str | None]:
    if len(rows) <= params.limit:
        return rows, None
    rows = rows[: params.limit]
    last = rows[-1]
    return rows, encode_cursor(last.created_at, last.id)
