from __future__ import annotations

from fastapi import APIRouter

from allo.deps import AdminDep, AgentDep, SessionDep
from allo.tenants import service
from allo.tenants.schemas import TenantRead, TenantUpdate

router = APIRouter(prefix="/tenant", tags=["tenant"])


@router.get("", summary="The caller's tenant and its policy")
async def read_tenant(session: SessionDep, principal: AgentDep) -> TenantRead:
    return TenantRead.model_validate(await service.get_or_raise(session, principal.tenant_id))


@router.patch("", summary="Rename the tenant or replace its policy (admin)")
async def update_tenant(body: TenantUpdate, session: SessionDep, principal: AdminDep) -> TenantRead:
    return TenantRead.model_validate(await service.update_tenant(session, principal, body))
