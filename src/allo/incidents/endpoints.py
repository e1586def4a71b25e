from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status

from allo.deps import AgentDep, SessionDep, SupervisorDep
from allo.incidents import service
from allo.incidents.repository import IncidentRepository
from allo.incidents.schemas import (
    IncidentAttach,
    IncidentCreate,
    IncidentRead,
    IncidentResolve,
    IncidentUpdate,
)
from allo.kit.pagination import Page, PageParams, page_params
from allo.models import Incident
from allo.models.enums import IncidentStatus
from allo.tickets.repository import TicketRepository

router = APIRouter(prefix="/incidents", tags=["incidents"])


async def _read(repo: IncidentRepository, incident: Incident) -> IncidentRead:
    read = IncidentRead.model_validate(incident)
    read.ticket_count = (await repo.ticket_counts([incident.id])).get(incident.id, 0)
    return read


@router.get("", summary="List major incidents, newest first")
async def list_incidents(
    session: SessionDep,
    principal: AgentDep,
    page: Annotated[PageParams, Depends(page_params)],
    status: IncidentStatus | None = None,
    service: Annotated[str | None, Query(max_length=60)] = None,
    area: Annotated[str | None, Query(max_length=80)] = None,
) -> Page[IncidentRead]:
    repo = IncidentRepository(session, principal.tenant_id)
    stmt = repo.select()
    if status is not None:
        stmt = stmt.where(Incident.status == status)
    if service is not None:
        stmt = stmt.where(Incident.service == service)
    if area is not None:
        stmt = stmt.where(Incident.area == area)
    rows, cursor = await repo.paginate(stmt, page)
    counts = await repo.ticket_counts([r.id for r in rows])
    items = []
    for row in rows:
        read = IncidentRead.model_validate(row)
        read.ticket_count = counts.get(row.id, 0)
        items.append(read)
    return Page(items=items, next_cursor=cursor)


@router.post("", status_code=status.HTTP_201_CREATED, summary="Open a major incident")
async def open_incident(body: IncidentCreate, session: SessionDep, principal: SupervisorDep) -> IncidentRead:
    incident = await service.open_incident(session, principal, body)
    return await _read(IncidentRepository(session, principal.tenant_id), incident)


@router.get("/{incident_id}", summary="Read a major incident")
async def read_incident(incident_id: uuid.UUID, session: SessionDep, principal: AgentDep) -> IncidentRead:
    repo = IncidentRepository(session, principal.tenant_id)
    return await _read(repo, await repo.get_or_raise(incident_id))


@router.patch("/{incident_id}", summary="Change an incident's title or what customers are told")
async def update_incident(
    incident_id: uuid.UUID, body: IncidentUpdate, session: SessionDep, principal: SupervisorDep
) -> IncidentRead:
    incident = await service.update_incident(session, principal, incident_id, body)
    return await _read(IncidentRepository(session, principal.tenant_id), incident)


@router.post("/{incident_id}/tickets", summary="Put tickets under the incident; their customers are told")
async def attach_tickets(
    incident_id: uuid.UUID, body: IncidentAttach, session: SessionDep, principal: SupervisorDep
) -> IncidentRead:
    repo = IncidentRepository(session, principal.tenant_id)
    incident = await repo.get_or_raise(incident_id)
    found = await TicketRepository(session, principal.tenant_id).get_many(body.ticket_ids)
    service.all_found(body.ticket_ids, found)
    await service.attach(session, principal, incident, found, tell_customers=True)
    return await _read(repo, incident)


@router.post("/{incident_id}/resolve", summary="Close the incident: its tickets are resolved, customers told")
async def resolve_incident(
    incident_id: uuid.UUID, body: IncidentResolve, session: SessionDep, principal: SupervisorDep
) -> IncidentRead:
    incident = await service.resolve(session, principal, incident_id, body)
    return await _read(IncidentRepository(session, principal.tenant_id), incident)
