"""emit(): one delivery and one job per subscribed active endpoint, in the caller's transaction."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine

from allo.config import Settings
from allo.kit.db import Database
from allo.models import Job, WebhookDelivery
from allo.models.enums import DeliveryStatus, JobStatus
from allo.webhooks.schemas import WEBHOOK_EVENTS
from allo.webhooks.service import DELIVER_KIND, emit
from tests.api_helpers import count_rows
from tests.factories import Actor
from tests.webhooks.receiver import create_endpoint, deliveries, delivery_jobs, worker_for

URL = "https://hooks.example.com/allo"


class Boom(Exception):
    pass


async def _emit(db: Database, tenant_id: uuid.UUID, name: str, data: dict[str, Any] | None = None) -> int:
    async with db.unit_of_work() as s:
        return await emit(s, tenant_id, name, data or {"ticket_id": "t-1"})


async def test_emit_reaches_the_active_endpoints_subscribed_to_the_event(
    client: httpx.AsyncClient, db: Database, tenant_actors: dict[str, Actor], other_tenant_admin: Actor
) -> None:
    admin = tenant_actors["admin"]
    everything = await create_endpoint(client, admin, URL)
    tickets = await create_endpoint(client, admin, URL, events=["ticket.created", "ticket.updated"])
    incidents = await create_endpoint(client, admin, URL, events=["incident.opened"])
    disabled = await create_endpoint(client, admin, URL, active=False)
    theirs = await create_endpoint(client, other_tenant_admin, URL)

    assert await _emit(db, admin.tenant_id, "ticket.created") == 2
    assert await _emit(db, admin.tenant_id, "incident.opened") == 2
    assert await _emit(db, admin.tenant_id, "ticket.sla_breached") == 1

    got = {
        e["id"]: [d.event for d in await deliveries(db, e["id"])] for e in (everything, tickets, incidents)
    }
    assert got == {
        everything["id"]: ["ticket.created", "incident.opened", "ticket.sla_breached"],
        tickets["id"]: ["ticket.created"],
        incidents["id"]: ["incident.opened"],
    }
    assert await deliveries(db, disabled["id"]) == []
    assert await deliveries(db, theirs["id"]) == []

    jobs = await delivery_jobs(db)
    assert len(jobs) == 5
    all_deliveries = [d for e in (everything, tickets, incidents) for d in await deliveries(db, e["id"])]
    assert {j.payload["delivery_id"] for j in jobs} == {str(d.id) for d in all_deliveries}
    assert all(
        (j.status, j.tenant_id, j.max_attempts) == (JobStatus.queued, admin.tenant_id, 8) for j in jobs
    )
    assert all(
        (d.status, d.attempts, d.tenant_id) == (DeliveryStatus.pending, 0, admin.tenant_id)
        for d in all_deliveries
    )


async def test_the_payload_carries_the_delivery_id_event_time_tenant_and_plain_json_data(
    client: httpx.AsyncClient, db: Database, tenant_actors: dict[str, Actor]
) -> None:
    admin = tenant_actors["admin"]
    endpoint = await create_endpoint(client, admin, URL)
    ticket_id = uuid.uuid4()
    moment = datetime.fromisoformat("2025-03-01T08:30:00+00:00")
    data = {"ticket_id": ticket_id, "due_at": moment, "tags": ["a"], "nested": {"n": 1}}
    assert await _emit(db, admin.tenant_id, "ticket.sla_warning", data) == 1
    [delivery] = await deliveries(db, endpoint["id"])
    payload = delivery.payload
    assert set(payload) == {"id", "event", "created_at", "tenant_id", "data"}
    assert (payload["id"], payload["event"], payload["tenant_id"]) == (
        str(delivery.id),
        "ticket.sla_warning",
        str(admin.tenant_id),
    )
    assert datetime.fromisoformat(payload["created_at"]) == delivery.created_at
    assert payload["data"] == {
        "ticket_id": str(ticket_id),
        "due_at": "2025-03-01T08:30:00+00:00",
        "tags": ["a"],
        "nested": {"n": 1},
    }


async def test_without_an_endpoint_nothing_is_written(db: Database, tenant_actors: dict[str, Actor]) -> None:
    tenant_id = tenant_actors["admin"].tenant_id
    for name in sorted(WEBHOOK_EVENTS):
        assert await _emit(db, tenant_id, name) == 0
    assert await count_rows(db, WebhookDelivery, WebhookDelivery.tenant_id == tenant_id) == 0
    assert await count_rows(db, Job, Job.kind == DELIVER_KIND) == 0


@pytest.fixture
def statements(engine: AsyncEngine) -> Iterator[list[str]]:
    """The SQL statements run while the test looks (it clears the list first)."""
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(args[2])

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine.sync_engine, "before_cursor_execute", record)


async def test_without_an_endpoint_emit_is_one_query(
    client: httpx.AsyncClient, db: Database, tenant_actors: dict[str, Actor], statements: list[str]
) -> None:
    admin = tenant_actors["admin"]
    async with db.unit_of_work() as s:
        await s.execute(select(1))  # the transaction (a SAVEPOINT in tests) is open
        statements.clear()
        assert await emit(s, admin.tenant_id, "ticket.created", {"ticket_id": "t-1"}) == 0
        assert len(statements) == 1, statements
        assert "webhook_endpoints" in statements[0]


async def test_an_unknown_event_is_a_programming_error(db: Database, tenant_actors: dict[str, Actor]) -> None:
    with pytest.raises(ValueError, match=r"ticket\.exploded"):
        await _emit(db, tenant_actors["admin"].tenant_id, "ticket.exploded")


async def test_nothing_is_delivered_when_the_emitting_transaction_rolls_back(
    client: httpx.AsyncClient, db: Database, tenant_actors: dict[str, Actor], settings: Settings
) -> None:
    admin = tenant_actors["admin"]
    endpoint = await create_endpoint(client, admin, URL)
    with pytest.raises(Boom):
        async with db.unit_of_work() as s:
            assert await emit(s, admin.tenant_id, "ticket.created", {"ticket_id": "t-1"}) == 1
            await s.flush()
            raise Boom
    assert await deliveries(db, endpoint["id"]) == []
    assert await delivery_jobs(db) == []
    assert await worker_for(db, settings).run_until_idle() == 0
