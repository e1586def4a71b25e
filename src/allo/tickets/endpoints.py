from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, Query, Response, status

from allo.deps import AgentDep, SessionDep, SettingsDep
from allo.incidents import service as incidents
from allo.kit.pagination import Page, PageParams, page_params
from allo.kit.schemas import RowEncoder, json_bytes
from allo.kit.time import utc_now
from allo.models import Ticket
from allo.models.enums import Category, Priority, TicketStatus, Tier
from allo.tenants import service as tenants
from allo.tenants.schemas import TenantPolicy
from allo.tickets import service, sla
from allo.tickets.repository import TicketFilters, TicketRepository
from allo.tickets.schemas import (
    ConversationLink,
    SlaClockRead,
    SlaRead,
    TicketCreate,
    TicketDetail,
    TicketEscalate,
    TicketMerge,
    TicketRead,
    TicketReply,
    TicketReplyRead,
    TicketUpdate,
)

router = APIRouter(prefix="/tickets", tags=["tickets"])
R = TypeVar("R", bound=TicketRead)


def with_clocks(model: type[R], ticket: Ticket, policy: TenantPolicy, now: datetime) -> R:
    read = model.model_validate(ticket)
    clocks = sla.clocks(ticket, policy, now)
    read.sla = SlaRead(
        first_response=SlaClockRead.model_validate(clocks.first_response, from_attributes=True),
        resolution=SlaClockRead.model_validate(clocks.resolution, from_attributes=True),
    )
    return read


# The list answers from plain rows: the busiest read of the console and of integrations.
_LIST_ITEM = RowEncoder(TicketRead, given=("sla",))


@router.get("", summary="List tickets, newest first", response_model=Page[TicketRead])
async def list_tickets(
    session: SessionDep,
    principal: AgentDep,
    page: Annotated[PageParams, Depends(page_params)],
    status: Annotated[list[TicketStatus] | None, Query()] = None,
    priority: Annotated[list[Priority] | None, Query()] = None,
    category: Category | None = None,
    tier: Tier | None = None,
    team: Annotated[str | None, Query(max_length=40)] = None,
    assignee_id: uuid.UUID | None = None,
    customer_id: uuid.UUID | None = None,
    incident_id: uuid.UUID | None = None,
    overdue: Annotated[bool, Query(description="Only open tickets past their resolution time")] = False,
) -> Response:
    now = utc_now()
    filters = TicketFilters(
        status=status or (),
        priority=priority or (),
        category=category,
        tier=tier,
        team=team,
        assignee_id=assignee_id,
        customer_id=customer_id,
        incident_id=incident_id,
        overdue_at=now if overdue else None,
    )
    rows, cursor = await TicketRepository(session, principal.tenant_id).page(page, filters)
    items = []
    if rows:
        policy = await tenants.policy_at(session, principal.tenant_id, rows[0].policy_version)
        items = [_LIST_ITEM.encode(row, sla=sla.clocks(row, policy, now)) for row in rows]
    return Response(json_bytes({"items": items, "next_cursor": cursor}), media_type="application/json")


@router.post("", status_code=status.HTTP_201_CREATED, summary="Open a ticket")
async def create_ticket(body: TicketCreate, session: SessionDep, principal: AgentDep) -> TicketRead:
    ticket = await service.create_ticket(session, principal, body)
    await incidents.group_outage_ticket(session, ticket)
    return with_clocks(TicketRead, ticket, await service.policy_for(session, principal.tenant_id), utc_now())


@router.get("/{ticket_id}", summary="Read a ticket with its history")
async def read_ticket(ticket_id: uuid.UUID, session: SessionDep, principal: AgentDep) -> TicketDetail:
    ticket = await TicketRepository(session, principal.tenant_id).get_detail(ticket_id)
    detail = with_clocks(
        TicketDetail, ticket, await service.policy_for(session, principal.tenant_id), utc_now()
    )
    detail.conversation_ids = await service.conversation_ids(session, ticket)
    return detail


@router.patch("/{ticket_id}", summary="Change a ticket's status, priority, category, tier, team or assignee")
async def update_ticket(
    ticket_id: uuid.UUID, body: TicketUpdate, session: SessionDep, principal: AgentDep
) -> TicketRead:
    ticket = await service.update_ticket(session, principal, ticket_id, body)
    return with_clocks(TicketRead, ticket, await service.policy_for(session, principal.tenant_id), utc_now())


@router.post("/{ticket_id}/escalate", summary="Escalate: N1 -> N2 -> specialist, or to a team")
async def escalate_ticket(
    ticket_id: uuid.UUID, body: TicketEscalate, session: SessionDep, principal: AgentDep
) -> TicketRead:
    ticket = await service.escalate(session, principal, ticket_id, body)
    return with_clocks(TicketRead, ticket, await service.policy_for(session, principal.tenant_id), utc_now())


@router.post(
    "/{ticket_id}/merge", summary="Close this ticket as a duplicate of another; returns the one kept"
)
async def merge_ticket(
    ticket_id: uuid.UUID, body: TicketMerge, session: SessionDep, principal: AgentDep
) -> TicketRead:
    ticket = await service.merge(session, principal, ticket_id, body)
    return with_clocks(TicketRead, ticket, await service.policy_for(session, principal.tenant_id), utc_now())


@router.post(
    "/{ticket_id}/conversations",
    summary="Link another conversation of the customer (any channel) to the ticket",
)
async def link_conversation(
    ticket_id: uuid.UUID, body: ConversationLink, session: SessionDep, principal: AgentDep
) -> TicketDetail:
    await service.link_conversation(session, principal, ticket_id, body.conversation_id)
    return await read_ticket(ticket_id, session, principal)


@router.post(
    "/{ticket_id}/replies",
    status_code=status.HTTP_201_CREATED,
    summary="Reply to the customer on their channel, or add an internal note",
)
async def reply_to_ticket(
    ticket_id: uuid.UUID, body: TicketReply, session: SessionDep, principal: AgentDep, settings: SettingsDep
) -> TicketReplyRead:
    return await service.reply(session, principal, ticket_id, body, max_bytes=settings.max_message_bytes)
