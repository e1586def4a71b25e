from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BindParameter, ScalarSelect, select, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from allo.audit.service import record, record_by
from allo.auth.principal import Principal
from allo.kit.db import table_of
from allo.kit.errors import Conflict, NotFound
from allo.models import Tenant
from allo.models.enums import ActorKind
from allo.tenants.schemas import TenantPolicy, TenantUpdate

# Read on most requests and jobs, and costly to validate (calendars, SLA targets, canned responses): kept
# per tenant row version. Every write to a tenant row, ORM or Core, stamps a new updated_at.
_POLICIES: dict[tuple[uuid.UUID, datetime], TenantPolicy] = {}
_POLICIES_KEPT = 256


def policy_of(tenant: Tenant) -> TenantPolicy:
    """The tenant's policy, with defaults for anything an older row does not set. Shared between
    callers: read it, never change it (`model_copy(update=…)` makes a changed one)."""
    if tenant.id is None or tenant.updated_at is None or sa_inspect(tenant).modified:
        return TenantPolicy.model_validate(tenant.policy or {})  # not stored as it is now
    key = (tenant.id, tenant.updated_at)
    policy = _POLICIES.get(key)
    if policy is None:
        policy = TenantPolicy.model_validate(tenant.policy or {})
        if len(_POLICIES) >= _POLICIES_KEPT:
            _POLICIES.clear()
        _POLICIES[key] = policy
    return policy


def policy_version(tenant_id: uuid.UUID | BindParameter[Any]) -> ScalarSelect[datetime]:
    """The tenant row's version, to read in the same statement as rows that need its policy."""
    tenants = table_of(Tenant)
    return select(tenants.c.updated_at).where(tenants.c.id == tenant_id).scalar_subquery()


async def policy_at(session: AsyncSession, tenant_id: uuid.UUID, version: datetime) -> TenantPolicy:
    """The tenant's policy as of `version` (read by `policy_version`): kept, or read now."""
    policy = _POLICIES.get((tenant_id, version))
    if policy is None:
        policy = policy_of(await get_or_raise(session, tenant_id))
    return policy


async def get_by_slug(session: AsyncSession, slug: str) -> Tenant | None:
    return (await session.execute(select(Tenant).where(Tenant.slug == slug))).scalar_one_or_none()


async def get_or_raise(session: AsyncSession, tenant_id: uuid.UUID) -> Tenant:
    tenant = await session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound("Tenant not found.")
    return tenant


async def create(
    session: AsyncSession, *, slug: str, name: str, policy: TenantPolicy | None = None
) -> Tenant:
    if await get_by_slug(session, slug) is not None:
        raise Conflict(f"A tenant with slug {slug!r} already exists.", code="tenant_exists")
    tenant = Tenant(slug=slug, name=name, policy=(policy or TenantPolicy()).model_dump(mode="json"))
    session.add(tenant)
    await session.flush()
    await record(
        session, tenant.id, ActorKind.system, None, "tenant.create", "tenant", tenant.id, {"slug": slug}
    )
    return tenant


async def update_tenant(session: AsyncSession, principal: Principal, changes: TenantUpdate) -> Tenant:
    tenant = await get_or_raise(session, principal.tenant_id)
    changed: dict[str, object] = {}
    if changes.name is not None:
        tenant.name = changes.name
        changed["name"] = changes.name
    if changes.policy is not None:
        tenant.policy = changes.policy.model_dump(mode="json")
        changed["policy"] = tenant.policy
    await record_by(session, principal, "tenant.update", "tenant", tenant.id, changed)
    return tenant


async def allocate_ticket_number(session: AsyncSession, tenant_id: uuid.UUID) -> int:
    """The next ticket number of the tenant, atomic under concurrency (row lock on the counter)."""
    return await _allocate(session, tenant_id, Tenant.next_ticket_number)


async def allocate_incident_number(session: AsyncSession, tenant_id: uuid.UUID) -> int:
    return await _allocate(session, tenant_id, Tenant.next_incident_number)


async def _allocate(session: AsyncSession, tenant_id: uuid.UUID, counter: InstrumentedAttribute[int]) -> int:
    result = await session.execute(
        update(Tenant)
        .where(Tenant.id == tenant_id)
        .values({counter: counter + 1})
        .returning(counter)
        .execution_options(synchronize_session=False)
    )
    return int(result.scalar_one()) - 1
