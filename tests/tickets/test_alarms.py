"""SLA alarms: warnings at 80 %, breaches at 100 %, raised once by the periodic clock, with notifications,
and the breach rule that sends an N1 ticket up to N2."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from allo.jobs import tasks as job_tasks
from allo.kit.db import Database
from allo.kit.time import utc_now
from allo.models import Job, Notification, Ticket, TicketEvent
from allo.tickets import tasks as ticket_tasks
from tests.factories import Actor, create_ticket

pytestmark = pytest.mark.usefixtures("cheap_password_hashing")


async def raise_alarms(db: Database, minutes_later: float) -> list[tuple[str, str]]:
    async with db.unit_of_work() as session:
        raised = await ticket_tasks.raise_sla_alarms(session, utc_now() + timedelta(minutes=minutes_later))
        return [(t.reference, name) for t, name in raised]


async def history(db: Database, ticket: dict[str, Any]) -> list[TicketEvent]:
    async with db.unit_of_work(write=False) as session:
        return list(
            (
                await session.execute(
                    select(TicketEvent)
                    .where(TicketEvent.ticket_id == uuid.UUID(ticket["id"]))
                    .order_by(TicketEvent.created_at, TicketEvent.id)
                )
            ).scalars()
        )


async def test_a_p1_warns_at_80_percent_then_breaches_once_each(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], db: Database
) -> None:
    agent, supervisor = tenant_actors["agent"], tenant_actors["supervisor"]
    # P1: first response 15 min, resolution 60 min, around the clock.
    ticket = await create_ticket(client, agent, priority="P1")
    assert await raise_alarms(db, 11) == []
    assert await raise_alarms(db, 12.5) == [(ticket["reference"], "first_response:warning")]
    assert await raise_alarms(db, 12.6) == [], "an alarm is raised once"
    assert await raise_alarms(db, 15.5) == [(ticket["reference"], "first_response:breached")]
    kinds = [(e.kind, e.field) for e in await history(db, ticket)]
    assert ("sla_warning", "first_response") in kinds
    assert ("sla_breached", "first_response") in kinds
    # The breach rule: an N1 ticket goes up to N2, said in its history.
    escalation = next(e for e in await history(db, ticket) if e.kind == "escalated")
    assert (escalation.from_value, escalation.to_value, escalation.data["rule"]) == ("n1", "n2", "sla_breach")
    async with db.unit_of_work(write=False) as session:
        notes = list(
            (
                await session.execute(select(Notification).where(Notification.user_id == supervisor.user_id))
            ).scalars()
        )
    assert sorted(n.kind for n in notes) == ["ticket.sla_breached", "ticket.sla_warning"]
    assert notes[0].data["reference"] == ticket["reference"]
    read = (await client.get(f"/api/v1/tickets/{ticket['id']}", headers=agent.bearer)).json()
    assert read["sla_alerts"] == ["first_response:warning", "first_response:breached"]


async def test_a_late_clock_raises_the_breach_and_records_the_warning_silently(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], db: Database
) -> None:
    agent = tenant_actors["agent"]
    ticket = await create_ticket(client, agent, priority="P1")
    raised = await raise_alarms(db, 20)
    assert raised == [(ticket["reference"], "first_response:breached")]
    warning = next(e for e in await history(db, ticket) if e.kind == "sla_warning")
    assert warning.data["announced"] is False


async def test_answered_tickets_raise_no_first_response_alarm_and_paused_ones_no_resolution_alarm(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], db: Database
) -> None:
    agent = tenant_actors["agent"]
    ticket = await create_ticket(client, agent, priority="P1")
    url = f"/api/v1/tickets/{ticket['id']}"
    assert (await client.patch(url, json={"status": "pending"}, headers=agent.bearer)).status_code == 200
    assert await raise_alarms(db, 120) == [], "answered (first response) and paused (resolution)"
    assert (await client.patch(url, json={"status": "open"}, headers=agent.bearer)).status_code == 200
    assert [name for _, name in await raise_alarms(db, 49)] == ["resolution:warning"]


async def test_a_new_priority_brings_new_alarms(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], db: Database
) -> None:
    agent = tenant_actors["agent"]
    ticket = await create_ticket(client, agent, priority="P4")
    assert await raise_alarms(db, 20) == []
    response = await client.patch(
        f"/api/v1/tickets/{ticket['id']}", json={"priority": "P1"}, headers=agent.bearer
    )
    assert response.status_code == 200
    assert [name for _, name in await raise_alarms(db, 13)] == ["first_response:warning"]


async def test_resolved_tickets_raise_nothing(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], db: Database
) -> None:
    agent = tenant_actors["agent"]
    ticket = await create_ticket(client, agent, priority="P1")
    response = await client.patch(
        f"/api/v1/tickets/{ticket['id']}",
        json={"status": "resolved", "disposition": "solved"},
        headers=agent.bearer,
    )
    assert response.status_code == 200
    assert await raise_alarms(db, 500) == []
    async with db.unit_of_work(write=False) as session:
        row = await session.get(Ticket, uuid.UUID(ticket["id"]))
        assert row is not None
        assert row.sla_alert_at is None


async def test_the_clock_schedules_one_tick_per_slot_whatever_the_processes(db: Database) -> None:
    async with db.unit_of_work() as session:
        for _ in range(3):  # three processes starting at once
            await job_tasks.schedule_clock(session, timedelta(seconds=15))
    async with db.unit_of_work(write=False) as session:
        ticks = list(
            (
                await session.execute(
                    select(Job.run_at).where(Job.kind == job_tasks.CLOCK_KIND, Job.run_at > utc_now())
                )
            ).scalars()
        )
    assert len(ticks) == 1
    assert ticks[0].second % 15 == 0
