from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, status

from allo.agents import service
from allo.agents.repository import AgentRepository, TeamRepository
from allo.agents.schemas import (
    AgentCreate,
    AgentRead,
    AgentUpdate,
    LocationUpdate,
    StatusUpdate,
    TeamCreate,
    TeamRead,
)
from allo.deps import AdminDep, AgentDep, SessionDep
from allo.kit.errors import Forbidden
from allo.kit.pagination import Page, PageParams, page_params
from allo.models.enums import AgentStatus, Role, Tier

router = APIRouter(tags=["agents"])


@router.get("/agents", summary="List users and agents")
async def list_agents(
    session: SessionDep,
    principal: AgentDep,
    page: Annotated[PageParams, Depends(page_params)],
    role: Role | None = None,
    tier: Tier | None = None,
    status: AgentStatus | None = None,
    team: str | None = None,
    active: bool | None = True,
) -> Page[AgentRead]:
    repo = AgentRepository(session, principal.tenant_id)
    rows, cursor = await repo.paginate(
        repo.filtered(role=role, tier=tier, status=status, team=team, active=active), page
    )
    return Page(items=[AgentRead.model_validate(r) for r in rows], next_cursor=cursor)


@router.post("/agents", status_code=status.HTTP_201_CREATED, summary="Create a user (admin)")
async def create_agent(body: AgentCreate, session: SessionDep, principal: AdminDep) -> AgentRead:
    return AgentRead.model_validate(await service.create_agent(session, principal.tenant_id, body, principal))


@router.get("/agents/me", summary="The logged-in user")
async def read_me(session: SessionDep, principal: AgentDep) -> AgentRead:
    if principal.user_id is None:
        raise Forbidden("API keys have no user profile.", code="user_required")
    return AgentRead.model_validate(
        await AgentRepository(session, principal.tenant_id).get_or_raise(principal.user_id)
    )


@router.put("/agents/me/status", summary="Set my presence status")
async def set_my_status(body: StatusUpdate, session: SessionDep, principal: AgentDep) -> AgentRead:
    return AgentRead.model_validate(await service.set_status(session, principal, body))


@router.put("/agents/me/location", summary="Report my position (mobile agents, with consent)")
async def set_my_location(body: LocationUpdate, session: SessionDep, principal: AgentDep) -> AgentRead:
    return AgentRead.model_validate(await service.set_location(session, principal, body))


@router.get("/agents/{agent_id}", summary="Read a user")
async def read_agent(agent_id: uuid.UUID, session: SessionDep, principal: AgentDep) -> AgentRead:
    return AgentRead.model_validate(
        await AgentRepository(session, principal.tenant_id).get_or_raise(agent_id)
    )


@router.patch("/agents/{agent_id}", summary="Update a user (admin)")
async def update_agent(
    agent_id: uuid.UUID, body: AgentUpdate, session: SessionDep, principal: AdminDep
) -> AgentRead:
    return AgentRead.model_validate(await service.update_agent(session, principal, agent_id, body))


@router.delete(
    "/agents/{agent_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Deactivate a user (admin)"
)
async def deactivate_agent(agent_id: uuid.UUID, session: SessionDep, principal: AdminDep) -> None:
    await service.deactivate_agent(session, principal, agent_id)


@router.get("/teams", summary="List teams")
async def list_teams(session: SessionDep, principal: AgentDep) -> list[TeamRead]:
    return [TeamRead.model_validate(t) for t in await TeamRepository(session, principal.tenant_id).all()]


@router.post("/teams", status_code=status.HTTP_201_CREATED, summary="Create a team (admin)")
async def create_team(body: TeamCreate, session: SessionDep, principal: AdminDep) -> TeamRead:
    return TeamRead.model_validate(await service.create_team(session, principal, body))
