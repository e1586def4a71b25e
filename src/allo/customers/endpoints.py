from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status

from allo.customers import service
from allo.customers.repository import CustomerRepository
from allo.customers.schemas import CustomerCreate, CustomerMerge, CustomerRead, CustomerUpdate
from allo.customers.timeline import Timeline, timeline
from allo.deps import AgentDep, SessionDep, SupervisorDep
from allo.kit.pagination import Page, PageParams, page_params
from allo.models.enums import Channel

router = APIRouter(prefix="/customers", tags=["customers"])


@router.get("", summary="List customers")
async def list_customers(
    session: SessionDep,
    principal: AgentDep,
    page: Annotated[PageParams, Depends(page_params)],
    q: Annotated[str | None, Query(max_length=100, description="Search name, e-mail or phone")] = None,
    segment: Annotated[str | None, Query(max_length=40)] = None,
    vip: bool | None = None,
    language: Annotated[str | None, Query(max_length=8)] = None,
    phone: Annotated[str | None, Query(max_length=40, description="Exact phone, any format")] = None,
) -> Page[CustomerRead]:
    repo = CustomerRepository(session, principal.tenant_id)
    e164 = await service.normalize_tenant_phone(session, principal.tenant_id, phone) if phone else None
    rows, cursor = await repo.paginate(
        repo.filtered(q=q, segment=segment, vip=vip, language=language, phone=e164), page
    )
    return Page(items=[CustomerRead.model_validate(r) for r in rows], next_cursor=cursor)


@router.post("", status_code=status.HTTP_201_CREATED, summary="Create a customer")
async def create_customer(body: CustomerCreate, session: SessionDep, principal: AgentDep) -> CustomerRead:
    return CustomerRead.model_validate(await service.create_customer(session, principal, body))


@router.get("/{customer_id}", summary="Read a customer")
async def read_customer(customer_id: uuid.UUID, session: SessionDep, principal: AgentDep) -> CustomerRead:
    return CustomerRead.model_validate(
        await CustomerRepository(session, principal.tenant_id).get_or_raise(customer_id)
    )


@router.patch("/{customer_id}", summary="Update a customer")
async def update_customer(
    customer_id: uuid.UUID, body: CustomerUpdate, session: SessionDep, principal: AgentDep
) -> CustomerRead:
    return CustomerRead.model_validate(await service.update_customer(session, principal, customer_id, body))


@router.delete(
    "/{customer_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a customer (supervisor)"
)
async def delete_customer(customer_id: uuid.UUID, session: SessionDep, principal: SupervisorDep) -> None:
    await service.delete_customer(session, principal, customer_id)


@router.get(
    "/{customer_id}/timeline", summary="Every interaction of a customer on every channel, newest first"
)
async def customer_timeline(
    customer_id: uuid.UUID,
    session: SessionDep,
    principal: AgentDep,
    page: Annotated[PageParams, Depends(page_params)],
    channel: Channel | None = None,
) -> Timeline:
    customer = await CustomerRepository(session, principal.tenant_id).get_or_raise(customer_id)
    return await timeline(session, customer, page, channel=channel)


@router.post(
    "/{customer_id}/merge",
    summary="Merge a duplicate customer into this one, history included (supervisor)",
)
async def merge_customer(
    customer_id: uuid.UUID, body: CustomerMerge, session: SessionDep, principal: SupervisorDep
) -> CustomerRead:
    return CustomerRead.model_validate(
        await service.merge_customers(session, principal, customer_id, body.duplicate_id)
    )
