"""SLA clocks: first-response and resolution targets counted in the tenant's business hours (or around the
clock for the priorities that say so), the resolution clock paused while the ticket waits on the customer.

A clock's state: `running`, `warning` (80 % of the target spent), `breached` (100 %), `paused` (pending on
the customer), `met` (answered or resolved in time) or `missed` (done, but late).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, Protocol

from allo.models import Ticket
from allo.models.enums import Priority, TicketStatus
from allo.tenants.hours import add_business_time, business_time_between, opens_again
from allo.tenants.schemas import SlaTarget, TenantPolicy

WARNING_SHARE = 0.8
ClockState = Literal["running", "warning", "breached", "paused", "met", "missed"]
# The alarms a ticket's clocks raise, once each: "<clock>:<level>".
FIRST_RESPONSE_WARNING = "first_response:warning"
FIRST_RESPONSE_BREACHED = "first_response:breached"
RESOLUTION_WARNING = "resolution:warning"
RESOLUTION_BREACHED = "resolution:breached"


def _counts_business_hours(policy: TenantPolicy, target: SlaTarget, start: datetime) -> bool:
    """A calendar that never opens again counts around the clock rather than stopping the clock for good."""
    return target.business_hours and opens_again(policy.business_hours, start)


def _add(policy: TenantPolicy, target: SlaTarget, start: datetime, amount: timedelta) -> datetime:
    if _counts_business_hours(policy, target, start):
        due = add_business_time(policy.business_hours, start, amount)
        if due is not None:
            return due
    return start + amount


def _spent(policy: TenantPolicy, target: SlaTarget, start: datetime, end: datetime) -> timedelta:
    if _counts_business_hours(policy, target, start):
        return business_time_between(policy.business_hours, start, end)
    return max(end - start, timedelta(0))


def due_times(
    policy: TenantPolicy, priority: Priority, start: datetime, *, paused: timedelta = timedelta(0)
) -> tuple[datetime, datetime]:
    """(first response due, resolution due) for a ticket opened at `start`, paused for `paused` so far."""
    target = policy.sla[priority.value]
    return (
        _add(policy, target, start, timedelta(minutes=target.first_response_minutes)),
        _add(policy, target, start, timedelta(minutes=target.resolution_minutes) + paused),
    )


def paused_time(policy: TenantPolicy, priority: Priority, since: datetime, until: datetime) -> timedelta:
    """How much SLA time a pause from `since` to `until` took out of the resolution clock."""
    return _spent(policy, policy.sla[priority.value], since, until)


class ClockedTicket(Protocol):
    """What the clocks read of a ticket: a Ticket, or a row of the tickets table."""

    @property
    def priority(self) -> Priority: ...
    @property
    def status(self) -> TicketStatus: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def first_responded_at(self) -> datetime | None: ...
    @property
    def resolved_at(self) -> datetime | None: ...
    @property
    def first_response_due_at(self) -> datetime | None: ...
    @property
    def resolution_due_at(self) -> datetime | None: ...
    @property
    def sla_paused_at(self) -> datetime | None: ...
    @property
    def sla_paused_seconds(self) -> int: ...


# Slots, not frozen: a frozen dataclass sets each field through object.__setattr__, and a list builds two
# clocks per ticket.
@dataclass(slots=True)
class Clock:
    due_at: datetime
    target_seconds: int
    spent_seconds: int
    remaining_seconds: int
    state: ClockState


@dataclass(slots=True)
class TicketClocks:
    first_response: Clock
    resolution: Clock


def clocks(ticket: ClockedTicket, policy: TenantPolicy, now: datetime) -> TicketClocks:
    """The running clocks ("chronomètres") of a ticket as an agent should see them now."""
    target = policy.sla[ticket.priority.value]
    first_target = timedelta(minutes=target.first_response_minutes)
    resolution_target = timedelta(minutes=target.resolution_minutes)
    created = ticket.created_at

    answered = ticket.first_responded_at
    finished = ticket.resolved_at if ticket.status in (TicketStatus.resolved, TicketStatus.closed) else None
    # Both clocks count from the ticket's creation: one count when they end at the same moment.
    first_spent = _spent(policy, target, created, answered or now)
    first_due = ticket.first_response_due_at or _add(policy, target, created, first_target)
    first = _clock(first_due, first_target, first_spent, done=answered is not None, paused=False)

    paused_so_far = timedelta(seconds=ticket.sla_paused_seconds)
    if ticket.sla_paused_at is not None and finished is None:
        paused_so_far += _spent(policy, target, ticket.sla_paused_at, now)
    resolution_end = finished or now
    counted = (
        first_spent
        if resolution_end == (answered or now)
        else _spent(policy, target, created, resolution_end)
    )
    resolution_spent = counted - paused_so_far
    resolution_due = ticket.resolution_due_at or _add(
        policy, target, created, resolution_target + paused_so_far
    )
    resolution = _clock(
        resolution_due,
        resolution_target,
        resolution_spent,
        done=finished is not None,
        paused=ticket.sla_paused_at is not None and finished is None,
    )
    return TicketClocks(first, resolution)


def _clock(due: datetime, target: timedelta, spent: timedelta, *, done: bool, paused: bool) -> Clock:
    spent = max(spent, timedelta(0))
    state: ClockState
    if done:
        state = "met" if spent <= target else "missed"
    elif spent >= target:
        state = "breached"
    elif paused:
        state = "paused"
    elif spent >= target * WARNING_SHARE:
        state = "warning"
    else:
        state = "running"
    return Clock(
        due_at=due,
        target_seconds=int(target.total_seconds()),
        spent_seconds=int(spent.total_seconds()),
        remaining_seconds=int((target - spent).total_seconds()),
        state=state,
    )


def alarms(ticket: Ticket, policy: TenantPolicy) -> list[tuple[datetime, str]]:
    """The clock alarms still to raise, by time: 80 % (warning) and 100 % (breached) of each running
    clock. A clock that is done (answered, resolved) or paused raises nothing."""
    if ticket.status in (TicketStatus.resolved, TicketStatus.closed) or ticket.incident_id is not None:
        # Done, or part of a major incident, which its team works as one until it ends.
        return []
    target = policy.sla[ticket.priority.value]
    created = ticket.created_at
    pending: list[tuple[datetime, str]] = []
    if ticket.first_responded_at is None:
        first_target = timedelta(minutes=target.first_response_minutes)
        pending.append((_add(policy, target, created, first_target * WARNING_SHARE), FIRST_RESPONSE_WARNING))
        pending.append(
            (
                ticket.first_response_due_at or _add(policy, target, created, first_target),
                FIRST_RESPONSE_BREACHED,
            )
        )
    if ticket.sla_paused_at is None:
        resolution_target = timedelta(minutes=target.resolution_minutes)
        paused = timedelta(seconds=ticket.sla_paused_seconds or 0)  # None on a row not flushed yet
        pending.append(
            (_add(policy, target, created, resolution_target * WARNING_SHARE + paused), RESOLUTION_WARNING)
        )
        pending.append(
            (
                ticket.resolution_due_at or _add(policy, target, created, resolution_target + paused),
                RESOLUTION_BREACHED,
            )
        )
    raised = ticket.sla_alerts or ()
    return sorted((at, name) for at, name in pending if name not in raised)


def schedule_alarm(ticket: Ticket, policy: TenantPolicy) -> None:
    """Set the time of the ticket's next alarm (what the periodic clock looks for), or None."""
    upcoming = alarms(ticket, policy)
    ticket.sla_alert_at = upcoming[0][0] if upcoming else None
