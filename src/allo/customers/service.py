from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from allo.agents.repository import AgentRepository
from allo.audit.service import record_by
from allo.auth.principal import Principal
from allo.customers.repository import CustomerRepository
from allo.customers.schemas import CustomerCreate, CustomerUpdate, IdentityIn
from allo.kit.db import flush_or_conflict
from allo.kit.errors import Conflict, Unprocessable
from allo.kit.phone import normalize_phone
from allo.models import Customer, CustomerIdentity
from allo.models.enums import Role
from allo.tenants import service as tenants
from allo.tickets import service as tickets


async def normalize_tenant_phone(session: AsyncSession, tenant_id: uuid.UUID, raw: str) -> str:
    """E.164 form of `raw`; a national number is read in the tenant's default region."""
    region = tenants.policy_of(await tenants.get_or_raise(session, tenant_id)).default_region
    return normalize_phone(raw, region)


async def _ensure_unique(
    repo: CustomerRepository, customer_id: uuid.UUID | None, *, phone: str | None, email: str | None
) -> None:
    for field, value in (("phone", phone), ("email", email)):
        if value is None:
            continue
        other = await repo.find_by(**{field: value})
        if other is not None and other.id != customer_id:
            raise Conflict(
                f"Another customer already has this {field}.",
                code="customer_exists",
                details={"field": field, "customer_id": str(other.id)},
            )


def _identities(
    tenant_id: uuid.UUID, items: list[IdentityIn], existing: list[CustomerIdentity] | None = None
) -> list[CustomerIdentity]:
    """The identity rows for `items`, keeping the existing row of an identity that stays.

    A flush inserts before it deletes, so a new row for an identity the customer already has would
    collide with the old one on the unique (tenant, channel, external id).
    """
    kept = {(i.channel.value, i.external_id): i for i in existing or []}
    seen: set[tuple[str, str]] = set()
    result = []
    for item in items:
        key = (item.channel.value, item.external_id)
        if key in seen:
            continue
        seen.add(key)
        result.append(
            kept.get(key)
            or CustomerIdentity(tenant_id=tenant_id, channel=item.channel, external_id=item.external_id)
        )
    return result


async def _check_dedicated_agent(
    session: AsyncSession, tenant_id: uuid.UUID, agent_id: uuid.UUID | None
) -> None:
    if agent_id is None:
        return
    agent = await AgentRepository(session, tenant_id).get(agent_id)
    if agent is None or not agent.active or agent.role is not Role.agent:
        raise Unprocessable(
            "The dedicated advisor must be an active agent of this tenant.",
            code="unknown_agent",
            details={"dedicated_agent_id": str(agent_id)},
        )


async def create_customer(session: AsyncSession, principal: Principal, data: CustomerCreate) -> Customer:
    repo = CustomerRepository(session, principal.tenant_id)
    phone = await normalize_tenant_phone(session, principal.tenant_id, data.phone) if data.phone else None
    email = data.email.lower() if data.email else None
    await _ensure_unique(repo, None, phone=phone, email=email)
    await _check_dedicated_agent(session, principal.tenant_id, data.dedicated_agent_id)
    customer = repo.add(
        Customer(
            phone=phone,
            name=data.name,
            email=email,
            segment=data.segment,
            vip=data.vip,
            preferred_language=data.preferred_language,
            notes=data.notes,
            area=data.area,
            dedicated_agent_id=data.dedicated_agent_id,
            identities=_identities(principal.tenant_id, data.identities),
        )
    )
    await flush_or_conflict(
        session, "A customer with this phone, e-mail or identity already exists.", code="customer_exists"
    )
    customer_id = customer.id
    await record_by(session, principal, "customer.create", "customer", customer_id)
    # Reloaded so that the identities come back in the order every later read gives them.
    session.expire(customer)
    return await repo.get_or_raise(customer_id)


async def update_customer(
    session: AsyncSession, principal: Principal, customer_id: uuid.UUID, data: CustomerUpdate
) -> Customer:
    repo = CustomerRepository(session, principal.tenant_id)
    customer = await repo.get_or_raise(customer_id)
    changes = data.model_dump(exclude_unset=True)
    if "phone" in changes:
        changes["phone"] = (
            await normalize_tenant_phone(session, principal.tenant_id, changes["phone"])
            if changes["phone"]
            else None
        )
    if changes.get("email"):
        changes["email"] = changes["email"].lower()
    await _ensure_unique(repo, customer.id, phone=changes.get("phone"), email=changes.get("email"))
    identities = changes.pop("identities", None)
    await _check_dedicated_agent(session, principal.tenant_id, changes.get("dedicated_agent_id"))
    for field in ("segment", "vip", "preferred_language"):
        if field in changes and changes[field] is None:
            del changes[field]  # these columns cannot be emptied, only changed
    vip_changed = "vip" in changes and changes["vip"] != customer.vip
    for field, value in changes.items():
        setattr(customer, field, value)
    if vip_changed:
        await tickets.customer_vip_changed(session, principal, customer)
    if identities is not None:
        customer.identities = _identities(principal.tenant_id, data.identities or [], customer.identities)
    await flush_or_conflict(
        session, "A customer with this phone, e-mail or identity already exists.", code="customer_exists"
    )
    await record_by(
        session,
        principal,
        "customer.update",
        "customer",
        customer.id,
        {"fields": sorted(data.model_fields_set)},
    )
    # Reading customer.id once it is expired would load it synchronously: use the id we were given.
    session.expire(customer)
    return await repo.get_or_raise(customer_id)


async def delete_customer(session: AsyncSession, principal: Principal, customer_id: uuid.UUID) -> None:
    repo = CustomerRepository(session, principal.tenant_id)
    customer = await repo.get_or_raise(customer_id)
    await session.delete(customer)
    await record_by(session, principal, "customer.delete", "customer", customer_id)
