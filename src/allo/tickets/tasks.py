"""The tickets' side of the periodic clock: SLA warnings (80 %) and breaches (100 %)."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from allo.auth.principal import Principal
from allo.kit.time import utc_now
from allo.models import Ticket
from allo.models.enums import Tier
from allo.notifications import service as notifications
from allo.tenants.schemas import TenantPolicy
from allo.tickets import sla
from allo.tickets.repository import OPEN_STATUSES
from allo.tickets.service import add_event, announce, escalate_ticket, policy_for

ALARM_BATCH = 500
RETRY_FAILED = timedelta(minutes=5)
logger = logging.getLogger(__name__)


async def raise_sla_alarms(session: AsyncSession, now: datetime | None = None) -> list[tuple[Ticket, str]]:
    """Raise every alarm now due, once: a history line, a live event and a webhook, a notification to the
    supervisors and the assignee; a breach sends an N1 ticket up to N2 when the tenant's policy says so.
    Tickets are locked SKIP LOCKED: two workers never raise the same alarm."""
    moment = now or utc_now()
    due = list(
        (
            await session.execute(
                select(Ticket)
                .where(
                    Ticket.sla_alert_at.is_not(None),
                    Ticket.sla_alert_at <= moment,
                    Ticket.status.in_(OPEN_STATUSES),
                )
                .order_by(Ticket.sla_alert_at)
                .limit(ALARM_BATCH)
                .with_for_update(skip_locked=True)
            )
        ).scalars()
    )
    # Read once per tenant of the batch: its policy and who watches its floor.
    tenants: dict[uuid.UUID, tuple[TenantPolicy, list[uuid.UUID]]] = {}
    raised: list[tuple[Ticket, str]] = []
    for ticket in due:
        if ticket.tenant_id not in tenants:
            tenants[ticket.tenant_id] = (
                await policy_for(session, ticket.tenant_id),
                await notifications.supervisors(session, ticket.tenant_id),
            )
        policy, supervisors = tenants[ticket.tenant_id]
        ticket_id = ticket.id
        try:
            # One ticket's failure (a broken escalation) neither undoes the others' alarms nor blocks them.
            async with session.begin_nested():
                raised.extend(await _raise_due(session, ticket, policy, supervisors, moment))
        except Exception:
            logger.exception("SLA alarms of ticket %s failed; retried in %s", ticket_id, RETRY_FAILED)
            await session.execute(
                update(Ticket)
                .where(Ticket.id == ticket_id)
                .values(sla_alert_at=moment + RETRY_FAILED)
                .execution_options(synchronize_session=False)
            )
    return raised


async def _raise_due(
    session: AsyncSession,
    ticket: Ticket,
    policy: TenantPolicy,
    supervisors: list[uuid.UUID],
    moment: datetime,
) -> list[tuple[Ticket, str]]:
    raised = []
    names = [name for at, name in sla.alarms(ticket, policy) if at <= moment]
    for name in names:
        # A breach already due makes its own warning moot: recorded, not announced.
        silent = name.endswith(":warning") and name.replace(":warning", ":breached") in names
        await _raise(session, ticket, policy, supervisors, name, moment, silent=silent)
        if not silent:
            raised.append((ticket, name))
    sla.schedule_alarm(ticket, policy)
    await session.flush()
    return raised


async def _raise(
    session: AsyncSession,
    ticket: Ticket,
    policy: TenantPolicy,
    supervisors: list[uuid.UUID],
    name: str,
    now: datetime,
    *,
    silent: bool,
) -> None:
    clock, level = name.split(":")
    ticket.sla_alerts = [*ticket.sla_alerts, name]
    system = Principal.system(ticket.tenant_id)
    kind = "sla_warning" if level == "warning" else "sla_breached"
    add_event(
        session, system, ticket, kind, field=clock, data={"at": now.isoformat(), "announced": not silent}
    )
    if silent:
        return
    event = f"ticket.{kind}"
    await announce(session, ticket, event, clock=clock)
    await notifications.notify(
        session,
        ticket.tenant_id,
        [*supervisors, ticket.assignee_id],
        event,
        {"reference": ticket.reference, "clock": clock, "priority": ticket.priority.value},
        ticket_id=ticket.id,
    )
    if level == "breached" and policy.tickets.escalate_on_breach and ticket.tier is Tier.n1:
        await escalate_ticket(
            session,
            system,
            ticket,
            tier=Tier.n2,
            team=None,
            reason=f"SLA {clock.replace('_', ' ')} target breached",
            rule="sla_breach",
        )
