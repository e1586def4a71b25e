"""Keyset pagination: cursor encoding, invalid cursors, and paging over rows with equal timestamps."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from allo.kit.db import Database
from allo.kit.errors import BadRequest
from allo.kit.pagination import PageParams, apply_keyset, decode_cursor, encode_cursor, next_cursor_for
from allo.models import Customer
from allo.tenants import service as tenants


def raw_cursor(obj: Any) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(obj)).decode().rstrip("=")


def decoded_or_error_code(cursor: str) -> tuple[datetime, uuid.UUID] | str:
    try:
        return decode_cursor(cursor)
    except BadRequest as exc:
        return exc.code


@dataclass
class Row:
    created_at: datetime
    id: uuid.UUID


def test_cursor_round_trip() -> None:
    created = datetime(2025, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)
    row_id = uuid.uuid4()
    cursor = encode_cursor(created, row_id)
    assert "=" not in cursor
    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert decode_cursor(cursor) == (created, row_id)


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "not a cursor!",
        "é",
        "AAAA",
        raw_cursor(None),
        raw_cursor("ab"),
        raw_cursor([1, 2]),
        raw_cursor([1, 2, 3]),
        raw_cursor({"a": 1, "b": 2}),
        raw_cursor(["yesterday", str(uuid.uuid4())]),
        raw_cursor(["2025-03-01T12:00:00+00:00", "not-a-uuid"]),
    ],
)
def test_invalid_cursors_are_bad_requests(cursor: str) -> None:
    with pytest.raises(BadRequest) as caught:
        decode_cursor(cursor)
    assert caught.value.status_code == 400
    assert caught.value.code == "invalid_cursor"


def test_a_cursor_with_a_non_string_id_is_a_bad_request() -> None:
    with pytest.raises(BadRequest):
        decode_cursor(raw_cursor(["2025-03-01T12:00:00+00:00", 5]))


def test_a_cursor_with_a_naive_timestamp_is_refused_or_read_as_utc() -> None:
    outcome = decoded_or_error_code(raw_cursor(["2025-03-01T12:00:00", str(uuid.uuid4())]))
    if isinstance(outcome, str):
        assert outcome == "invalid_cursor"
    else:
        assert outcome[0].tzinfo is not None


def test_next_cursor_is_none_when_the_page_is_not_full() -> None:
    base = datetime(2025, 1, 1, tzinfo=UTC)
    rows = [Row(base - timedelta(seconds=i), uuid.uuid4()) for i in range(3)]
    assert next_cursor_for(list(rows), PageParams(limit=3, cursor=None)) == (rows, None)
    assert next_cursor_for([], PageParams(limit=3, cursor=None)) == ([], None)


def test_the_extra_row_is_dropped_and_the_cursor_points_at_the_last_row_kept() -> None:
    base = datetime(2025, 1, 1, tzinfo=UTC)
    rows = [Row(base - timedelta(seconds=i), uuid.uuid4()) for i in range(3)]
    kept, cursor = next_cursor_for(list(rows), PageParams(limit=2, cursor=None))
    assert kept == rows[:2]
    assert cursor is not None
    assert decode_cursor(cursor) == (rows[1].created_at, rows[1].id)


async def test_paging_visits_every_row_once_newest_first_even_with_equal_timestamps(db: Database) -> None:
    t0 = datetime(2025, 1, 1, 9, 0, tzinfo=UTC)
    stamps = [t0] * 3 + [t0 + timedelta(minutes=1)] * 2 + [t0 + timedelta(minutes=2)] * 2
    async with db.unit_of_work() as s:
        tenant = await tenants.create(s, slug=f"p-{uuid.uuid4().hex[:8]}", name="Paging")
        customers = [
            Customer(tenant_id=tenant.id, name=f"c{i}", created_at=at) for i, at in enumerate(stamps)
        ]
        s.add_all(customers)
        await s.flush()
        expected = [c.id for c in sorted(customers, key=lambda c: (c.created_at, c.id), reverse=True)]

    stmt = select(Customer).where(Customer.tenant_id == tenant.id)
    seen: list[uuid.UUID] = []
    pages: list[int] = []
    cursor: str | None = None
    async with db.unit_of_work(write=False) as s:
        while True:
            params = PageParams(limit=2, cursor=cursor)
            result = await s.execute(apply_keyset(stmt, params, Customer.created_at, Customer.id))
            rows, cursor = next_cursor_for(list(result.scalars()), params)
            pages.append(len(rows))
            seen.extend(r.id for r in rows)
            if cursor is None:
                break
            assert len(pages) < 10, "pagination does not end"
    assert pages == [2, 2, 2, 1]
    assert seen == expected


async def test_a_page_that_ends_exactly_on_the_last_row_has_no_next_cursor(db: Database) -> None:
    t0 = datetime(2025, 1, 1, 9, 0, tzinfo=UTC)
    async with db.unit_of_work() as s:
        tenant = await tenants.create(s, slug=f"p-{uuid.uuid4().hex[:8]}", name="Paging")
        s.add_all(
            [
                Customer(tenant_id=tenant.id, name=f"c{i}", created_at=t0 + timedelta(seconds=i))
                for i in range(4)
            ]
        )
    stmt = select(Customer).where(Customer.tenant_id == tenant.id)
    async with db.unit_of_work(write=False) as s:
        first = PageParams(limit=2, cursor=None)
        rows, cursor = next_cursor_for(
            list((await s.execute(apply_keyset(stmt, first, Customer.created_at, Customer.id))).scalars()),
            first,
        )
        assert [r.name for r in rows] == ["c3", "c2"]
        assert cursor is not None
        second = PageParams(limit=2, cursor=cursor)
        rows, cursor = next_cursor_for(
            list((await s.execute(apply_keyset(stmt, second, Customer.created_at, Customer.id))).scalars()),
            second,
        )
        assert [r.name for r in rows] == ["c1", "c0"]
        assert cursor is None
