from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, status

from allo.deps import AgentDep, SessionDep, SupervisorDep
from allo.diagnosis import service
from allo.diagnosis.schemas import Step, TreeCreate, TreeRead, TreeUpdate, WalkRequest
from allo.diagnosis.service import TreeRepository
from allo.kit.pagination import Page, PageParams, page_params

router = APIRouter(prefix="/diagnosis/trees", tags=["diagnosis"])


@router.get("", summary="List the guided-diagnosis trees")
async def list_trees(
    session: SessionDep, principal: AgentDep, page: Annotated[PageParams, Depends(page_params)]
) -> Page[TreeRead]:
    repo = TreeRepository(session, principal.tenant_id)
    rows, cursor = await repo.paginate(repo.select(), page)
    return Page(items=[TreeRead.model_validate(t) for t in rows], next_cursor=cursor)


@router.post(
    "", status_code=status.HTTP_201_CREATED, summary="Create a tree (supervisor); checked for soundness"
)
async def create_tree(body: TreeCreate, session: SessionDep, principal: SupervisorDep) -> TreeRead:
    return TreeRead.model_validate(await service.create_tree(session, principal, body))


@router.get("/{key}", summary="Read a tree")
async def read_tree(key: str, session: SessionDep, principal: AgentDep) -> TreeRead:
    return TreeRead.model_validate(await TreeRepository(session, principal.tenant_id).by_key(key))


@router.patch("/{key}", summary="Edit a tree (supervisor)")
async def update_tree(key: str, body: TreeUpdate, session: SessionDep, principal: SupervisorDep) -> TreeRead:
    return TreeRead.model_validate(await service.update_tree(session, principal, key, body))


@router.delete("/{key}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a tree (supervisor)")
async def delete_tree(key: str, session: SessionDep, principal: SupervisorDep) -> None:
    await service.delete_tree(session, principal, key)


@router.post("/{key}/walk", summary="The next step of a diagnosis, given the answers so far")
async def walk_tree(key: str, body: WalkRequest, session: SessionDep, principal: AgentDep) -> Step:
    tree = await TreeRepository(session, principal.tenant_id).by_key(key)
    return service.walk(service.definition_of(tree), body.answers, body.language)
