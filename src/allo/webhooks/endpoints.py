from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, status

from allo.deps import AdminDep, SessionDep, SettingsDep
from allo.kit.pagination import Page, PageParams, page_params
from allo.models import WebhookEndpoint
from allo.models.enums import DeliveryStatus
from allo.webhooks import service
from allo.webhooks.repository import WebhookDeliveryRepository, WebhookEndpointRepository
from allo.webhooks.schemas import (
    WebhookDeliveryDetail,
    WebhookDeliveryRead,
    WebhookEndpointCreate,
    WebhookEndpointRead,
    WebhookEndpointUpdate,
    WebhookEndpointWithSecret,
)

router = APIRouter(prefix="/webhooks", tags=["webhooks"])


def _with_secret(endpoint: WebhookEndpoint, secret: str) -> WebhookEndpointWithSecret:
    return WebhookEndpointWithSecret.model_validate(
        {**WebhookEndpointRead.model_validate(endpoint).model_dump(), "secret": secret}
    )


@router.post(
    "/endpoints",
    status_code=status.HTTP_201_CREATED,
    summary="Add a webhook endpoint (admin); its signing secret is shown once",
)
async def create_endpoint(
    body: WebhookEndpointCreate, session: SessionDep, principal: AdminDep, settings: SettingsDep
) -> WebhookEndpointWithSecret:
    endpoint, secret = await service.create_endpoint(session, principal, settings, body)
    return _with_secret(endpoint, secret)


@router.get("/endpoints", summary="List the webhook endpoints (admin), newest first")
async def list_endpoints(
    session: SessionDep,
    principal: AdminDep,
    page: Annotated[PageParams, Depends(page_params)],
    active: bool | None = None,
) -> Page[WebhookEndpointRead]:
    repo = WebhookEndpointRepository(session, principal.tenant_id)
    rows, cursor = await repo.paginate(repo.filtered(active=active), page)
    return Page(items=[WebhookEndpointRead.model_validate(e) for e in rows], next_cursor=cursor)


@router.get("/endpoints/{endpoint_id}", summary="Read a webhook endpoint (admin)")
async def read_endpoint(
    endpoint_id: uuid.UUID, session: SessionDep, principal: AdminDep
) -> WebhookEndpointRead:
    return WebhookEndpointRead.model_validate(
        await WebhookEndpointRepository(session, principal.tenant_id).get_or_raise(endpoint_id)
    )


@router.patch(
    "/endpoints/{endpoint_id}",
    summary="Change a webhook endpoint's URL, description, events or state (admin)",
)
async def update_endpoint(
    endpoint_id: uuid.UUID,
    body: WebhookEndpointUpdate,
    session: SessionDep,
    principal: AdminDep,
    settings: SettingsDep,
) -> WebhookEndpointRead:
    return WebhookEndpointRead.model_validate(
        await service.update_endpoint(session, principal, settings, endpoint_id, body)
    )


@router.delete(
    "/endpoints/{endpoint_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a webhook endpoint and its delivery log (admin)",
)
async def delete_endpoint(endpoint_id: uuid.UUID, session: SessionDep, principal: AdminDep) -> None:
    await service.delete_endpoint(session, principal, endpoint_id)


@router.post(
    "/endpoints/{endpoint_id}/rotate-secret",
    summary="Replace a webhook endpoint's signing secret (admin); the new one is shown once",
)
async def rotate_secret(
    endpoint_id: uuid.UUID, session: SessionDep, principal: AdminDep, settings: SettingsDep
) -> WebhookEndpointWithSecret:
    endpoint, secret = await service.rotate_secret(session, principal, settings, endpoint_id)
    return _with_secret(endpoint, secret)


@router.post(
    "/endpoints/{endpoint_id}/test",
    status_code=status.HTTP_201_CREATED,
    summary="Send a webhook.test event to this endpoint only (admin)",
)
async def send_test(
    endpoint_id: uuid.UUID, session: SessionDep, principal: AdminDep
) -> WebhookDeliveryDetail:
    return WebhookDeliveryDetail.model_validate(await service.send_test(session, principal, endpoint_id))


@router.get(
    "/endpoints/{endpoint_id}/deliveries", summary="A webhook endpoint's delivery log (admin), newest first"
)
async def list_deliveries(
    endpoint_id: uuid.UUID,
    session: SessionDep,
    principal: AdminDep,
    page: Annotated[PageParams, Depends(page_params)],
    status: DeliveryStatus | None = None,
) -> Page[WebhookDeliveryRead]:
    await WebhookEndpointRepository(session, principal.tenant_id).get_or_raise(endpoint_id)
    repo = WebhookDeliveryRepository(session, principal.tenant_id)
    rows, cursor = await repo.paginate(repo.for_endpoint(endpoint_id, status=status), page)
    return Page(items=[WebhookDeliveryRead.model_validate(d) for d in rows], next_cursor=cursor)


@router.get("/deliveries/{delivery_id}", summary="Read a webhook delivery with its payload (admin)")
async def read_delivery(
    delivery_id: uuid.UUID, session: SessionDep, principal: AdminDep
) -> WebhookDeliveryDetail:
    return WebhookDeliveryDetail.model_validate(
        await WebhookDeliveryRepository(session, principal.tenant_id).get_or_raise(delivery_id)
    )


@router.post(
    "/deliveries/{delivery_id}/redeliver",
    summary="Send a delivery that succeeded or is dead again, with a new cycle of attempts (admin)",
)
async def redeliver(
    delivery_id: uuid.UUID, session: SessionDep, principal: AdminDep
) -> WebhookDeliveryDetail:
    return WebhookDeliveryDetail.model_validate(await service.redeliver(session, principal, delivery_id))
