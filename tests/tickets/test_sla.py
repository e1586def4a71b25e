"""SLA clocks: business hours, around-the-clock priorities, pauses while pending, states."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import httpx

from allo.models import Ticket
from allo.models.enums import Category, Priority, TicketStatus
from allo.tenants.schemas import BusinessHours, SlaTarget, TenantPolicy
from allo.tickets.sla import clocks, due_times
from tests.factories import Actor, create_ticket

PARIS = ZoneInfo("Europe/Paris")
POLICY = TenantPolicy(
    business_hours=BusinessHours(
        weekly={d: [("09:00", "18:00")] for d in ("mon", "tue", "wed", "thu", "fri")}
    ),
    sla={
        "P1": SlaTarget(first_response_minutes=15, resolution_minutes=60, business_hours=False),
        "P2": SlaTarget(first_response_minutes=60, resolution_minutes=240),
        "P3": SlaTarget(first_response_minutes=240, resolution_minutes=1440),
        "P4": SlaTarget(first_response_minutes=480, resolution_minutes=2880),
    },
)


def paris(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=PARIS)  # 2026-11-23 is a Monday


def ticket_at(created: datetime, priority: Priority = Priority.p2, **fields: object) -> Ticket:
    first, resolution = due_times(POLICY, priority, created)
    ticket = Ticket(
        id=uuid.uuid4(),
        tenant_id=uuid.uuid4(),
        number=1,
        subject="s",
        category=Category.technical,
        priority=priority,
        status=TicketStatus.open,
        customer_id=uuid.uuid4(),
        created_at=created,
        first_response_due_at=first,
        resolution_due_at=resolution,
        sla_paused_seconds=0,
    )
    for name, value in fields.items():
        setattr(ticket, name, value)
    return ticket


def test_a_ticket_opened_on_friday_evening_is_due_on_monday() -> None:
    first, resolution = due_times(POLICY, Priority.p2, paris(27, 17, 30))
    assert first == paris(30, 9, 30).astimezone(UTC)  # 30 min on Friday, 30 on Monday
    assert resolution == paris(30, 12, 30).astimezone(UTC)


def test_p1_counts_around_the_clock() -> None:
    first, resolution = due_times(POLICY, Priority.p1, paris(28, 23, 0))  # Saturday night
    assert (first, resolution) == (paris(28, 23, 15), paris(29, 0, 0))


def test_clock_states_over_time() -> None:
    ticket = ticket_at(paris(23, 9, 0))
    assert clocks(ticket, POLICY, paris(23, 9, 30)).first_response.state == "running"
    assert clocks(ticket, POLICY, paris(23, 9, 50)).first_response.state == "warning"  # 50 of 60 minutes
    late = clocks(ticket, POLICY, paris(23, 10, 30)).first_response
    assert (late.state, late.remaining_seconds) == ("breached", -30 * 60)
    ticket.first_responded_at = paris(23, 9, 40)
    assert clocks(ticket, POLICY, paris(23, 10, 30)).first_response.state == "met"


def test_the_night_does_not_count() -> None:
    ticket = ticket_at(paris(23, 17, 0), Priority.p3)
    # From 17:00 to 10:00 the next day: one business hour on Monday and one on Tuesday.
    clock = clocks(ticket, POLICY, paris(24, 10, 0)).first_response
    assert clock.spent_seconds == 2 * 3600
    assert clock.state == "running"


def test_a_pause_stops_the_resolution_clock() -> None:
    ticket = ticket_at(paris(23, 9, 0), sla_paused_at=paris(23, 10, 0))
    paused = clocks(ticket, POLICY, paris(23, 15, 0)).resolution
    assert paused.state == "paused"
    assert paused.spent_seconds == 3600  # 9:00–10:00, then nothing while pending
    # Three hours paused before, one running now: two of the four hours spent.
    ticket.sla_paused_at = None
    ticket.sla_paused_seconds = 3 * 3600
    running = clocks(ticket, POLICY, paris(23, 14, 0)).resolution
    assert running.spent_seconds == 2 * 3600


async def test_pending_pauses_and_reopening_moves_the_resolution_due_time(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor]
) -> None:
    agent = tenant_actors["agent"]
    ticket = await create_ticket(client, agent, priority="P1")  # around the clock: wall time is SLA time
    url = f"/api/v1/tickets/{ticket['id']}"
    pending = (await client.patch(url, json={"status": "pending"}, headers=agent.bearer)).json()
    assert pending["sla"]["resolution"]["state"] == "paused"
    assert pending["sla_paused_at"] is not None
    reopened = (await client.patch(url, json={"status": "open"}, headers=agent.bearer)).json()
    assert reopened["sla_paused_at"] is None
    assert reopened["sla"]["resolution"]["state"] == "running"
    before = datetime.fromisoformat(ticket["resolution_due_at"])
    after = datetime.fromisoformat(reopened["resolution_due_at"])
    assert after >= before  # later by the pause (a fraction of a second here)
