"""Outgoing webhooks: the tenant's endpoints, and `emit()`, which the rest of Allo calls to send an event.

`emit()` writes one delivery per subscribed endpoint, and its job, in the caller's transaction: a rollback
sends nothing. The worker signs and posts each delivery (see `allo.webhooks.tasks`).
"""

from __future__ import annotations

import secrets
import uuid
from typing import Any
from urllib.parse import urlsplit

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from allo.audit.service import record_by
from allo.auth.principal import Principal
from allo.config import Settings
from allo.kit import jobs
from allo.kit.crypto import encrypt_secret
from allo.kit.errors import Conflict, Unprocessable
from allo.kit.time import utc_now
from allo.models import WebhookDelivery, WebhookEndpoint
from allo.models.enums import DeliveryStatus
from allo.webhooks.repository import WebhookDeliveryRepository, WebhookEndpointRepository
from allo.webhooks.schemas import WEBHOOK_EVENTS, WebhookEndpointCreate, WebhookEndpointUpdate

DELIVER_KIND = "webhooks.deliver"
TEST_EVENT = "webhook.test"
SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
# Retries of one attempt's job when the handler itself fails (a bug, the database); the receiver's
# failures are counted on the delivery against ALLO_WEBHOOK_MAX_ATTEMPTS (see tasks.py).
JOB_MAX_ATTEMPTS = 8
# Plain http:// is accepted outside dev mode only for a receiver on the same machine.
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
IN_FLIGHT = (DeliveryStatus.pending, DeliveryStatus.retrying)


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def check_url_policy(settings: Settings, url: str) -> None:
    """Production sends only over TLS, except to a receiver on the same machine."""
    parts = urlsplit(url)
    if parts.scheme == "http" and not settings.is_dev and (parts.hostname or "") not in LOCAL_HOSTS:
        raise Unprocessable(
            "Use an https:// URL: plain http:// is only accepted for localhost outside dev mode.",
            code="insecure_url",
            details={"url": url},
        )


def _origin(url: str) -> str:
    """What the audit log keeps of a URL: its path and query may hold the receiver's own token."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


async def create_endpoint(
    session: AsyncSession, principal: Principal, settings: Settings, data: WebhookEndpointCreate
) -> tuple[WebhookEndpoint, str]:
    """The new endpoint and its signing secret, which is never shown again."""
    check_url_policy(settings, data.url)
    secret = new_secret()
    endpoint = WebhookEndpointRepository(session, principal.tenant_id).add(
        WebhookEndpoint(
            url=data.url,
            description=data.description or None,
            secret_encrypted=encrypt_secret(settings, secret),
            events=data.events,
            active=data.active,
        )
    )
    await session.flush()
    await record_by(
        session,
        principal,
        "webhook.create",
        "webhook_endpoint",
        endpoint.id,
        {"origin": _origin(endpoint.url), "events": endpoint.events, "active": endpoint.active},
    )
    return endpoint, secret


async def update_endpoint(
    session: AsyncSession,
    principal: Principal,
    settings: Settings,
    endpoint_id: uuid.UUID,
    data: WebhookEndpointUpdate,
) -> WebhookEndpoint:
    endpoint = await WebhookEndpointRepository(session, principal.tenant_id).get_or_raise(endpoint_id)
    changes: list[str] = []
    if data.url is not None and data.url != endpoint.url:
        check_url_policy(settings, data.url)
        endpoint.url = data.url
        changes.append("url")
    if "description" in data.model_fields_set and (data.description or None) != endpoint.description:
        endpoint.description = data.description or None
        changes.append("description")
    if data.events is not None and data.events != endpoint.events:
        endpoint.events = data.events
        changes.append("events")
    if data.active is not None and data.active != endpoint.active:
        endpoint.active = data.active
        changes.append("active")
    if changes:
        endpoint.updated_at = utc_now()
        await session.flush()
        await record_by(
            session,
            principal,
            "webhook.update",
            "webhook_endpoint",
            endpoint.id,
            {"changes": changes, "origin": _origin(endpoint.url), "events": endpoint.events},
        )
    return endpoint


async def delete_endpoint(session: AsyncSession, principal: Principal, endpoint_id: uuid.UUID) -> None:
    """The endpoint and its delivery log; jobs still queued for it find nothing to send."""
    endpoint = await WebhookEndpointRepository(session, principal.tenant_id).get_or_raise(endpoint_id)
    origin = _origin(endpoint.url)
    await session.delete(endpoint)
    await session.flush()
    await record_by(session, principal, "webhook.delete", "webhook_endpoint", endpoint_id, {"origin": origin})


async def rotate_secret(
    session: AsyncSession, principal: Principal, settings: Settings, endpoint_id: uuid.UUID
) -> tuple[WebhookEndpoint, str]:
    """A new signing secret, used from the next attempt on and shown once; the old one stops at once."""
    endpoint = await WebhookEndpointRepository(session, principal.tenant_id).get_or_raise(endpoint_id)
    secret = new_secret()
    endpoint.secret_encrypted = encrypt_secret(settings, secret)
    endpoint.updated_at = utc_now()
    await session.flush()
    await record_by(session, principal, "webhook.rotate_secret", "webhook_endpoint", endpoint.id)
    return endpoint, secret


async def send_test(session: AsyncSession, principal: Principal, endpoint_id: uuid.UUID) -> WebhookDelivery:
    """A webhook.test delivery to this endpoint only, whatever events it subscribes to."""
    endpoint = await WebhookEndpointRepository(session, principal.tenant_id).get_or_raise(endpoint_id)
    if not endpoint.active:
        raise Conflict("The endpoint is disabled: enable it first.", code="endpoint_inactive")
    delivery = _add_delivery(
        session,
        principal.tenant_id,
        endpoint.id,
        TEST_EVENT,
        {"endpoint_id": str(endpoint.id), "message": "A test event sent from Allo."},
    )
    await session.flush()
    await record_by(
        session, principal, "webhook.test", "webhook_endpoint", endpoint.id, {"delivery_id": str(delivery.id)}
    )
    return delivery


async def redeliver(session: AsyncSession, principal: Principal, delivery_id: uuid.UUID) -> WebhookDelivery:
    """A new cycle of attempts for a delivery that succeeded or is dead; the payload and id stay the same."""
    delivery = await WebhookDeliveryRepository(session, principal.tenant_id).get_or_raise(delivery_id)
    if delivery.status in IN_FLIGHT:
        raise Conflict(
            "This delivery is still being attempted.",
            code="delivery_in_progress",
            details={"status": delivery.status.value},
        )
    endpoint = await WebhookEndpointRepository(session, principal.tenant_id).get_or_raise(
        delivery.endpoint_id
    )
    if not endpoint.active:
        raise Conflict("The endpoint is disabled: enable it first.", code="endpoint_inactive")
    delivery.status = DeliveryStatus.pending
    delivery.attempts = 0
    delivery.delivered_at = None
    delivery.updated_at = utc_now()
    _enqueue(session, delivery)
    await session.flush()
    await record_by(
        session,
        principal,
        "webhook.redeliver",
        "webhook_delivery",
        delivery.id,
        {"endpoint_id": str(endpoint.id), "event": delivery.event},
    )
    return delivery


async def emit(session: AsyncSession, tenant_id: uuid.UUID, event: str, data: dict[str, Any]) -> int:
    """Send `event` to the tenant's active endpoints that subscribe to it, once the caller's transaction
    commits; returns how many deliveries were written.

    `data` is the event's object (ids, not whole records); UUIDs and datetimes become strings. An event
    missing from WEBHOOK_EVENTS is a programming error (ValueError). Without a subscriber this is one
    query on the tenant's endpoints.
    """
    return await emit_many(session, tenant_id, event, [data])


async def emit_many(
    session: AsyncSession, tenant_id: uuid.UUID, event: str, objects: list[dict[str, Any]]
) -> int:
    """`emit` for several objects of one event (a routing batch's assignments): one query on the tenant's
    endpoints whatever their number."""
    if event not in WEBHOOK_EVENTS:
        raise ValueError(f"unknown webhook event {event!r}; add it to WEBHOOK_EVENTS first")
    if not objects:
        return 0
    endpoint_ids = await WebhookEndpointRepository(session, tenant_id).subscribers(event)
    if not endpoint_ids:
        return 0
    for data in objects:
        plain: dict[str, Any] = orjson.loads(orjson.dumps(data))
        for endpoint_id in endpoint_ids:
            _add_delivery(session, tenant_id, endpoint_id, event, plain)
    return len(endpoint_ids) * len(objects)


def _add_delivery(
    session: AsyncSession, tenant_id: uuid.UUID, endpoint_id: uuid.UUID, event: str, data: dict[str, Any]
) -> WebhookDelivery:
    now = utc_now()
    delivery_id = uuid.uuid4()
    delivery = WebhookDeliveryRepository(session, tenant_id).add(
        WebhookDelivery(
            id=delivery_id,
            endpoint_id=endpoint_id,
            event=event,
            payload={
                "id": str(delivery_id),
                "event": event,
                "created_at": now.isoformat(),
                "tenant_id": str(tenant_id),
                "data": data,
            },
            status=DeliveryStatus.pending,
            attempts=0,
            created_at=now,
            updated_at=now,
        )
    )
    _enqueue(session, delivery)
    return delivery


def _enqueue(session: AsyncSession, delivery: WebhookDelivery) -> None:
    jobs.enqueue_on_commit(
        session,
        DELIVER_KIND,
        {"delivery_id": str(delivery.id)},
        tenant_id=delivery.tenant_id,
        max_attempts=JOB_MAX_ATTEMPTS,
    )
