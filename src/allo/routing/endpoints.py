from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from allo.deps import AgentDep, SessionDep, SupervisorDep
from allo.kit.errors import Forbidden
from allo.kit.pagination import Page, PageParams, page_params
from allo.kit.repository import TenantRepository
from allo.kit.time import utc_now
from allo.models import User, WorkItem
from allo.models.enums import WorkItemStatus
from allo.routing import service
from allo.routing.schemas import DeclineRequest, RoutingStatus, WorkItemRead
from allo.routing.tasks import follow_items

router = APIRouter(prefix="/routing", tags=["routing"])


class WorkItemRepository(TenantRepository[WorkItem]):
    model = WorkItem
    noun = "work item"


@router.get("/status", summary="The floor: waiting work per queue, agents' status and load")
async def routing_status(session: SessionDep, principal: SupervisorDep) -> RoutingStatus:
    return RoutingStatus.model_validate(await service.floor_status(session, principal.tenant_id, utc_now()))


@router.get("/items", summary="Work items (the queue and what agents hold), newest first")
async def list_items(
    session: SessionDep,
    principal: AgentDep,
    page: Annotated[PageParams, Depends(page_params)],
    status: Annotated[list[WorkItemStatus] | None, Query()] = None,
    agent_id: uuid.UUID | None = None,
) -> Page[WorkItemRead]:
    repo = WorkItemRepository(session, principal.tenant_id)
    stmt = repo.select()
    if status:
        stmt = stmt.where(WorkItem.status.in_(status))
    if agent_id is not None:
        stmt = stmt.where(WorkItem.agent_id == agent_id)
    rows, cursor = await repo.paginate(stmt, page)
    return Page(items=[WorkItemRead.model_validate(r) for r in rows], next_cursor=cursor)


async def _agent(session: SessionDep, principal: AgentDep) -> User:
    user = await session.get(User, principal.user_id) if principal.user_id else None
    if user is None or user.tenant_id != principal.tenant_id:
        raise Forbidden("Only a logged-in agent accepts or declines work.", code="user_required")
    return user


@router.post("/items/{item_id}/accept", summary="Accept the work item offered to you")
async def accept_item(item_id: uuid.UUID, session: SessionDep, principal: AgentDep) -> WorkItemRead:
    await WorkItemRepository(session, principal.tenant_id).get_or_raise(item_id)
    item = await service.accept(session, await _agent(session, principal), item_id)
    return WorkItemRead.model_validate(item)


@router.post("/items/{item_id}/decline", summary="Give back a work item: it goes to another agent")
async def decline_item(
    item_id: uuid.UUID, body: DeclineRequest, session: SessionDep, principal: AgentDep
) -> WorkItemRead:
    await WorkItemRepository(session, principal.tenant_id).get_or_raise(item_id)
    agent = await _agent(session, principal)
    item = await service.decline(session, agent, item_id, reason=body.reason)
    await follow_items(session, principal.tenant_id, [(item.conversation_id, item.ticket_id, None)])
    return WorkItemRead.model_validate(item)
