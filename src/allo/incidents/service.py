"""Major incidents: one outage (a service in an area) behind many customers' tickets, grouped by hand or
automatically, worked once by the technical team, and closed for every customer at once."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from allo.agents.service import team_id_for_code
from allo.assistant import phrases as P
from allo.audit.service import record_by
from allo.auth.principal import Principal
from allo.conversations.repository import ConversationRepository
from allo.conversations.service import announce_status, store_message
from allo.i18n import gettext_for
from allo.incidents.repository import IncidentRepository
from allo.incidents.schemas import IncidentCreate, IncidentResolve, IncidentUpdate
from allo.kit.bus import Event, publish_on_commit
from allo.kit.errors import Conflict, Unprocessable
from allo.kit.time import utc_now
from allo.models import Conversation, Incident, Team, Ticket
from allo.models.enums import AuthorKind, ConversationStatus, IncidentStatus, TicketStatus, WorkItemStatus
from allo.notifications import service as notifications
from allo.routing import service as routing
from allo.tenants import service as tenants
from allo.tickets import service as tickets
from allo.tickets.repository import OPEN_STATUSES, TicketRepository
from allo.tickets.schemas import TicketUpdate
from allo.webhooks import service as webhooks

# The services whose failure many customers report at once (the technical sub-intents of the analysis).
OUTAGE_SERVICES = frozenset({"no_network", "no_data", "slow_data", "calls_failing", "sms_mms"})


def outage_service(sub_intent: str | None, flags: Collection[str]) -> str | None:
    """What an outage report is about, or None when the case is not one."""
    if sub_intent in OUTAGE_SERVICES:
        return sub_intent
    return "network" if "outage" in flags else None


async def _announce(session: AsyncSession, incident: Incident, event: str, **data: Any) -> None:
    payload = {
        "incident_id": str(incident.id),
        "reference": incident.reference,
        "service": incident.service,
        "area": incident.area,
        "status": incident.status.value,
        **data,
    }
    publish_on_commit(session, Event(event, incident.tenant_id, payload))
    await webhooks.emit(session, incident.tenant_id, event, {**payload, "title": incident.title})


async def open_incident(
    session: AsyncSession, principal: Principal, data: IncidentCreate, *, automatically: bool = False
) -> Incident:
    """Open the incident, tell its team once, and put the listed tickets under it."""
    policy = await tickets.policy_for(session, principal.tenant_id)
    if data.team is not None:
        team_id = await team_id_for_code(session, principal.tenant_id, data.team)
    else:  # the tenant's incident team, when it has one
        team_id = (
            await session.execute(
                select(Team.id).where(
                    Team.tenant_id == principal.tenant_id, Team.code == policy.incidents.team
                )
            )
        ).scalar_one_or_none()
    now = utc_now()
    incident = IncidentRepository(session, principal.tenant_id).add(
        Incident(
            number=await tenants.allocate_incident_number(session, principal.tenant_id),
            title=data.title,
            service=data.service,
            area=data.area,
            public_note=data.public_note,
            opened_automatically=automatically,
            opened_by_user_id=principal.user_id,
            team_id=team_id,
            created_at=now,
            updated_at=now,
        )
    )
    await session.flush()
    recipients = [
        *await notifications.team_members(session, principal.tenant_id, team_id),
        *await notifications.supervisors(session, principal.tenant_id),
    ]
    await notifications.notify(
        session,
        principal.tenant_id,
        recipients,
        "incident.opened",
        {
            "reference": incident.reference,
            "title": incident.title,
            "service": incident.service,
            "area": incident.area,
        },
    )
    incident.team_notified_at = now
    await session.flush()  # no autoflush: the response must show the row as stored (its updated_at)
    await _announce(session, incident, "incident.opened", automatically=automatically)
    await record_by(
        session, principal, "incident.open", "incident", incident.id, {"automatically": automatically}
    )
    if data.ticket_ids:
        found = await TicketRepository(session, principal.tenant_id).get_many(data.ticket_ids)
        all_found(data.ticket_ids, found)
        await attach(session, principal, incident, found, tell_customers=not automatically)
    return incident


def all_found(wanted: Sequence[uuid.UUID], found: Sequence[Ticket]) -> None:
    missing = sorted(str(t) for t in set(wanted) - {t.id for t in found})
    if missing:
        raise Unprocessable("Unknown tickets.", code="unknown_tickets", details={"ticket_ids": missing})


async def attach(
    session: AsyncSession,
    principal: Principal,
    incident: Incident,
    found: Sequence[Ticket],
    *,
    tell_customers: bool,
) -> list[Ticket]:
    """Tickets join the incident: escalated by rule to its team, they leave the agents' queues (the team
    works the incident once), and their customers are told the problem is known."""
    if incident.status is not IncidentStatus.open:
        raise Conflict("The incident is resolved; open a new one.", code="incident_resolved")
    closed = sorted(str(t.id) for t in found if t.status not in OPEN_STATUSES)
    if closed:
        raise Unprocessable(
            "Only open tickets can join an incident.", code="ticket_not_open", details={"ticket_ids": closed}
        )
    joined = [t for t in found if t.incident_id != incident.id]
    for ticket in joined:
        tickets.add_event(
            session,
            principal,
            ticket,
            "escalated",
            field="team",
            old=ticket.team_id,
            new=incident.team_id,
            reason=f"part of major incident {incident.reference}",
            data={"rule": "major_incident", "incident_id": str(incident.id), "incident": incident.reference},
        )
        ticket.incident_id = incident.id
        ticket.team_id = incident.team_id
        ticket.assignee_id = None
        ticket.sla_alert_at = None  # its clock's alarms are the incident's team's business now
        ticket.updated_at = utc_now()
        item = await routing.live_item_of_ticket(session, ticket.id)
        if item is not None:
            await routing.finish(session, item, outcome=WorkItemStatus.cancelled)
        conversation = await _conversation_of(session, ticket)
        if conversation is not None and conversation.status in (
            ConversationStatus.queued,
            ConversationStatus.assigned,
        ):
            # Nobody needs to answer each customer: the assistant keeps the conversation meanwhile.
            conversation.status = ConversationStatus.bot
            conversation.assigned_agent_id = None
            announce_status(session, conversation)
        if tell_customers and conversation is not None:
            await _tell(session, conversation, P.INCIDENT_KNOWN, incident)
        await tickets.announce(session, ticket, "ticket.updated", changes=["incident_linked"])
    if joined:
        incident.updated_at = utc_now()
        await session.flush()
        await _announce(session, incident, "incident.updated", ticket_ids=[str(t.id) for t in joined])
    return joined


async def resolve(
    session: AsyncSession, principal: Principal, incident_id: uuid.UUID, data: IncidentResolve
) -> Incident:
    """The outage is over: every open ticket of the incident is resolved with the "incident" disposition,
    and each customer is told on their conversation."""
    incident = await IncidentRepository(session, principal.tenant_id).get_or_raise(incident_id)
    if incident.status is IncidentStatus.resolved:
        raise Conflict("The incident is already resolved.", code="incident_resolved")
    now = utc_now()
    incident.status = IncidentStatus.resolved
    incident.resolved_at = now
    incident.resolution_note = data.resolution_note
    incident.updated_at = now
    members = list(
        (
            await session.execute(
                select(Ticket)
                .where(
                    Ticket.tenant_id == principal.tenant_id,
                    Ticket.incident_id == incident.id,
                    Ticket.status.in_(OPEN_STATUSES),
                )
                .order_by(Ticket.number)
                .with_for_update()
            )
        ).scalars()
    )
    for ticket in members:
        await tickets.update_ticket(
            session,
            principal,
            ticket.id,
            TicketUpdate(
                status=TicketStatus.resolved,
                disposition=tickets.INCIDENT_DISPOSITION,
                reason=f"incident {incident.reference} resolved: {data.resolution_note}",
            ),
        )
        conversation = await _conversation_of(session, ticket)
        if data.notify_customers and conversation is not None:
            await _tell(session, conversation, P.INCIDENT_RESOLVED, incident)
    await session.flush()
    await _announce(session, incident, "incident.resolved", tickets_resolved=len(members))
    await record_by(
        session, principal, "incident.resolve", "incident", incident.id, {"tickets": len(members)}
    )
    return incident


async def update_incident(
    session: AsyncSession, principal: Principal, incident_id: uuid.UUID, data: IncidentUpdate
) -> Incident:
    incident = await IncidentRepository(session, principal.tenant_id).get_or_raise(incident_id)
    for field in data.model_fields_set:
        value = getattr(data, field)
        if value is not None or field == "public_note":
            setattr(incident, field, value)
    incident.updated_at = utc_now()
    await session.flush()
    await _announce(session, incident, "incident.updated", changes=sorted(data.model_fields_set))
    await record_by(
        session,
        principal,
        "incident.update",
        "incident",
        incident.id,
        {"fields": sorted(data.model_fields_set)},
    )
    return incident


async def find_open(
    session: AsyncSession, tenant_id: uuid.UUID, service: str, area: str | None
) -> Incident | None:
    """The open incident about this service here: in this area first, else network-wide."""
    area_matches = (
        Incident.area.is_(None) if area is None else or_(Incident.area.is_(None), Incident.area == area)
    )
    incident: Incident | None = (
        await session.execute(
            select(Incident)
            .where(
                Incident.tenant_id == tenant_id,
                Incident.status == IncidentStatus.open,
                Incident.service == service,
                area_matches,
            )
            .order_by(Incident.area.is_(None), Incident.created_at)
            .limit(1)
        )
    ).scalar_one_or_none()
    return incident


async def group_outage_ticket(
    session: AsyncSession, ticket: Ticket, *, tell_customer: bool = True
) -> Incident | None:
    """A new outage ticket joins the open incident about its service and area (or the whole network); or,
    when enough tickets about the same service and area came within the tenant's window, they make a new
    incident together. Returns the incident the ticket is now part of. `tell_customer`: False when the
    caller (the assistant's reply) tells the customer itself."""
    if ticket.service is None:
        return None
    system = Principal.system(ticket.tenant_id)
    current = await find_open(session, ticket.tenant_id, ticket.service, ticket.area)
    if current is not None:
        await attach(session, system, current, [ticket], tell_customers=tell_customer)
        return current
    policy = (await tickets.policy_for(session, ticket.tenant_id)).incidents
    if not policy.auto_group or ticket.area is None:
        return None  # an outage is placed by its area: without one, a person decides
    siblings = list(
        (
            await session.execute(
                select(Ticket)
                .where(
                    Ticket.tenant_id == ticket.tenant_id,
                    Ticket.service == ticket.service,
                    Ticket.area == ticket.area,
                    Ticket.incident_id.is_(None),
                    Ticket.status.in_(OPEN_STATUSES),
                    Ticket.created_at >= utc_now() - timedelta(minutes=policy.window_minutes),
                    Ticket.id != ticket.id,
                )
                .order_by(Ticket.created_at)
                .with_for_update()
            )
        ).scalars()
    )
    if len(siblings) + 1 < policy.threshold:
        return None
    incident = await open_incident(
        session,
        system,
        IncidentCreate(
            title=f"{ticket.service.replace('_', ' ')} — {ticket.area}",
            service=ticket.service,
            area=ticket.area,
            # No team named: open_incident takes the policy's team when the tenant has it, else none
            # (naming it would refuse the customer's ticket with unknown_team).
        ),
        automatically=True,
    )
    # The earlier reporters are told now; the new one too, unless the assistant's reply tells them.
    await attach(session, system, incident, siblings, tell_customers=True)
    await attach(session, system, incident, [ticket], tell_customers=tell_customer)
    return incident


async def _conversation_of(session: AsyncSession, ticket: Ticket) -> Conversation | None:
    ids = await tickets.conversation_ids(session, ticket)
    if not ids:
        return None
    return await ConversationRepository(session, ticket.tenant_id).get(ids[-1])


async def _tell(session: AsyncSession, conversation: Conversation, phrase: str, incident: Incident) -> None:
    """A message from the assistant to the customer, in the conversation's language."""
    _ = gettext_for(conversation.language)
    await store_message(
        session,
        conversation,
        author_kind=AuthorKind.bot,
        body=_(phrase) % {"reference": incident.reference, "title": incident.public_note or incident.title},
        meta={"kind": "incident", "incident_id": str(incident.id)},
    )
