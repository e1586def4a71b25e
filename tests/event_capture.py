"""Watch the live events a request publishes, on either database.

On SQLite, committed events go to the in-process bus, so we subscribe to it. On PostgreSQL they leave
as `pg_notify` inside the committing transaction (PostgreSQL delivers them at COMMIT, which the test's
rolled-back outer transaction never reaches), so we watch the statements sent on the test connection.
Either way, an event shows up only if the transaction that queued it commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection

from allo.kit.bus import EVENTS_CHANNEL, Bus, Event


class CapturedEvents:
    def __init__(self, tenant_id: uuid.UUID) -> None:
        self.tenant_id = tenant_id
        self._queue: asyncio.Queue[Event] | None = None
        self._seen: list[Event] = []

    def _add(self, ev: Event) -> None:
        if ev.tenant_id == self.tenant_id:
            self._seen.append(ev)

    @property
    def events(self) -> list[Event]:
        if self._queue is not None:
            while not self._queue.empty():
                self._add(self._queue.get_nowait())
        return list(self._seen)

    def drain(self) -> list[Event]:
        """The events captured since the last drain; they are not returned again."""
        events = self.events
        self._seen.clear()
        return events

    def of_type(self, event_type: str) -> list[Event]:
        return [ev for ev in self.events if ev.type == event_type]

    @property
    def types(self) -> list[str]:
        return [ev.type for ev in self.events]


def _notified_payload(statement: str, parameters: Any) -> str | None:
    if "pg_notify" not in statement:
        return None
    values: Sequence[Any]
    if isinstance(parameters, Mapping):
        values = list(parameters.values())
    elif isinstance(parameters, Sequence) and not isinstance(parameters, str):
        values = list(parameters)
    else:
        return None
    if EVENTS_CHANNEL not in values:
        return None
    payloads = [v for v in values if isinstance(v, str) and v != EVENTS_CHANNEL]
    return payloads[0] if payloads else None


@contextlib.asynccontextmanager
async def capture_events(
    bus: Bus, connection: AsyncConnection, tenant_id: uuid.UUID
) -> AsyncIterator[CapturedEvents]:
    """The events of `tenant_id` that would reach live subscribers while the block runs."""
    captured = CapturedEvents(tenant_id)
    if connection.dialect.name != "postgresql":
        async with bus.subscribe(tenant_id) as queue:
            captured._queue = queue
            yield captured
            captured.events  # noqa: B018 - drain before unsubscribing
            captured._queue = None
        return

    def on_execute(
        _conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _executemany: bool
    ) -> None:
        payload = _notified_payload(statement, parameters)
        if payload is not None:
            captured._add(Event.from_json(payload))

    sync_connection = connection.sync_connection
    assert sync_connection is not None
    event.listen(sync_connection, "before_cursor_execute", on_execute)
    try:
        yield captured
    finally:
        event.remove(sync_connection, "before_cursor_execute", on_execute)
