from __future__ import annotations

import uuid

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from allo.agents.repository import AgentRepository
from allo.audit.service import record_by
from allo.auth.principal import Principal
from allo.customers.repository import CustomerRepository
from allo.customers.schemas import CustomerCreate, CustomerUpdate, IdentityIn
from allo.kit.db import flush_or_conflict
from allo.kit.errors import Conflict, Unprocessable
from allo.kit.phone import normalize_phone
from allo.models import Conversation, CsatResponse, Customer, CustomerIdentity, SocialPost, Ticket
from allo.models.enums import Channel, Role
from allo.tenants import service as tenants
from allo.tenants.schemas import TenantPolicy
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
            preferred_channel=data.preferred_channel,
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


# Channels whose addresses are phone numbers: a customer is the same person on all of them.
PHONE_CHANNELS = frozenset({Channel.sms, Channel.whatsapp, Channel.voice})


async def contact_address(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    channel: Channel,
    raw: str,
    *,
    policy: TenantPolicy | None = None,
) -> str:
    """The address as Allo keeps it: E.164 on phone channels (a WhatsApp id is the number without its
    "+"), lower-case e-mail, the provider's id elsewhere."""
    value = raw.strip()
    if channel in PHONE_CHANNELS:
        if channel is Channel.whatsapp and value.isdigit():
            value = "+" + value
        if policy is not None:
            return normalize_phone(value, policy.default_region)
        return await normalize_tenant_phone(session, tenant_id, value)
    if channel is Channel.email:
        return value.lower()
    return value


def address_on(customer: Customer, channel: Channel) -> str | None:
    """Where to write to the customer on a channel, from what their record knows."""
    if channel in PHONE_CHANNELS:
        return customer.phone
    if channel is Channel.email:
        return customer.email
    return None


def name_given(raw: str | None) -> str | None:
    """A name as a channel gives it (a WhatsApp profile, an e-mail's display name), fit to keep."""
    return (raw or "").strip()[:200] or None


async def customer_for_contact(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    channel: Channel,
    raw_address: str,
    *,
    name: str | None = None,
    policy: TenantPolicy | None = None,
) -> tuple[Customer, str]:
    """The customer behind an address on a channel, and the address normalised: found by their identity
    on the channel, else by phone (SMS, WhatsApp and voice share it) or e-mail, else created. Either way
    the identity is recorded, so the next message finds them at once."""
    address = await contact_address(session, tenant_id, channel, raw_address, policy=policy)
    given_name = name_given(name)
    for _attempt in range(2):
        customer, by_identity = await _find_contact(session, tenant_id, channel, address)
        if customer is not None and not customer.name and given_name:
            customer.name = given_name
        if customer is not None and by_identity:
            return customer, address
        try:
            async with session.begin_nested():
                if customer is None:
                    policy = policy or tenants.policy_of(await tenants.get_or_raise(session, tenant_id))
                    customer = Customer(
                        tenant_id=tenant_id,
                        phone=address if channel in PHONE_CHANNELS else None,
                        email=address if channel is Channel.email else None,
                        name=given_name,
                        preferred_language=policy.default_language,
                    )
                    session.add(customer)
                    await session.flush()
                # Not recorded yet (`_find_contact` said so); a concurrent message recording it first
                # makes this insert fail, and the next attempt finds it.
                session.add(
                    CustomerIdentity(
                        tenant_id=tenant_id, customer_id=customer.id, channel=channel, external_id=address
                    )
                )
                await session.flush()
            return customer, address
        except IntegrityError:
            # Another message from the same new address created the customer first: use theirs.
            continue
    raise Conflict("The customer could not be recorded; try again.", code="conflict")


async def _find_contact(
    session: AsyncSession, tenant_id: uuid.UUID, channel: Channel, address: str
) -> tuple[Customer | None, bool]:
    """The customer, and whether their identity on this channel is already recorded."""
    by_identity = (
        select(Customer)
        .join(CustomerIdentity, CustomerIdentity.customer_id == Customer.id)
        .where(
            CustomerIdentity.tenant_id == tenant_id,
            CustomerIdentity.channel == channel,
            CustomerIdentity.external_id == address,
        )
    )
    found = (await session.execute(by_identity)).scalar_one_or_none()
    if found is not None:
        return found, True
    field = (
        Customer.phone if channel in PHONE_CHANNELS else Customer.email if channel is Channel.email else None
    )
    if field is None:
        return None, False
    by_field = select(Customer).where(Customer.tenant_id == tenant_id, field == address)
    return (await session.execute(by_field)).scalar_one_or_none(), False


async def merge_customers(
    session: AsyncSession, principal: Principal, survivor_id: uuid.UUID, duplicate_id: uuid.UUID
) -> Customer:
    """Fold a duplicate record into the customer who stays: their conversations, tickets, satisfaction
    answers, public posts and channel identities move over, blank fields are filled from the duplicate, and
    the duplicate is deleted. Nothing of the history is lost."""
    if survivor_id == duplicate_id:
        raise Unprocessable("A customer cannot be merged into themselves.", code="same_customer")
    repo = CustomerRepository(session, principal.tenant_id)
    survivor = await repo.get_or_raise(survivor_id)
    duplicate = await repo.get_or_raise(duplicate_id)
    moved: dict[str, int] = {}
    for model in (Conversation, Ticket, CsatResponse, SocialPost, CustomerIdentity):
        result = await session.execute(
            update(model)
            .where(model.tenant_id == principal.tenant_id, model.customer_id == duplicate.id)
            .values(customer_id=survivor.id)
            .execution_options(synchronize_session=False)
        )
        moved[model.__tablename__] = int(getattr(result, "rowcount", 0) or 0)
    taken = {field: getattr(duplicate, field) for field in ("phone", "email")}
    # The duplicate gives up its phone and e-mail first: both are unique per tenant.
    duplicate.phone = duplicate.email = None
    await session.flush()
    for field, value in taken.items():
        if value and not getattr(survivor, field):
            setattr(survivor, field, value)
    for field in ("name", "area", "dedicated_agent_id"):
        if getattr(survivor, field) is None and getattr(duplicate, field) is not None:
            setattr(survivor, field, getattr(duplicate, field))
    if duplicate.notes:
        survivor.notes = f"{survivor.notes}\n{duplicate.notes}" if survivor.notes else duplicate.notes
    if survivor.segment == "standard" and duplicate.segment != "standard":
        survivor.segment = duplicate.segment
    became_vip = duplicate.vip and not survivor.vip
    survivor.vip = survivor.vip or duplicate.vip
    await flush_or_conflict(session, "The customers could not be merged.", code="merge_conflict")
    # A bulk delete: everything that pointed at the duplicate points at the survivor now.
    session.expunge(duplicate)
    await session.execute(
        delete(Customer).where(Customer.tenant_id == principal.tenant_id, Customer.id == duplicate_id)
    )
    if became_vip:
        await tickets.customer_vip_changed(session, principal, survivor)
    await record_by(
        session,
        principal,
        "customer.merge",
        "customer",
        survivor_id,
        {"merged": str(duplicate_id), "moved": moved},
    )
    session.expire(survivor)
    return await repo.get_or_raise(survivor_id)
