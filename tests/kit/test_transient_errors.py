"""Concurrent-transaction conflicts are told apart from real database errors: the first are worth a retry."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import DBAPIError

from allo.kit.errors import is_transient


class _Driver(Exception):
    def __init__(self, message: str, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("orig", "transient"),
    [
        (_Driver("deadlock detected", "40P01"), True),
        (_Driver("could not serialize access", "40001"), True),
        (_Driver("database is locked"), True),
        (_Driver("duplicate key value violates unique constraint", "23505"), False),
        (_Driver("syntax error", "42601"), False),
    ],
)
def test_what_a_retry_can_fix(orig: Exception, transient: bool) -> None:
    assert is_transient(DBAPIError("UPDATE …", {}, orig)) is transient


def test_the_driver_error_behind_the_adapter_counts() -> None:
    adapter = Exception("adapter")
    adapter.__cause__ = _Driver("deadlock detected", "40P01")
    assert is_transient(DBAPIError("UPDATE …", {}, adapter))
