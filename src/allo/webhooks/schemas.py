from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field

from allo.kit.schemas import ReadModel, StrictInput
from allo.models.enums import DeliveryStatus

# Every event Allo sends; an endpoint subscribes to some of them, or to all with an empty list.
WEBHOOK_EVENTS = frozenset(
    {
        "ticket.created",
        "ticket.updated",
        "ticket.escalated",
        "ticket.merged",
        "ticket.reopened",
        "ticket.sla_warning",
        "ticket.sla_breached",
        "incident.opened",
        "incident.updated",
        "incident.resolved",
        "work_item.assigned",
        "webhook.test",
    }
)

MAX_URL_LENGTH = 2000


def _check_url(value: str) -> str:
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number in range
    except ValueError as exc:
        raise ValueError(f"not a valid URL: {exc}") from exc
    if parts.scheme not in ("http", "https"):
        raise ValueError("the URL must start with https:// (or http:// for a local receiver)")
    if not parts.hostname:
        raise ValueError("the URL has no host")
    if any(c.isspace() for c in value):
        raise ValueError("the URL contains spaces")
    return value


def _check_events(value: list[str]) -> list[str]:
    unknown = sorted(set(value) - WEBHOOK_EVENTS)
    if unknown:
        raise ValueError(
            f"unknown events: {', '.join(unknown)} (known events: {', '.join(sorted(WEBHOOK_EVENTS))})"
        )
    return list(dict.fromkeys(value))  # without repeats, in the given order


WebhookUrl = Annotated[str, Field(min_length=1, max_length=MAX_URL_LENGTH), AfterValidator(_check_url)]
EventList = Annotated[
    list[Annotated[str, Field(max_length=80)]],
    Field(max_length=50, description="Events to receive; empty: every event"),
    AfterValidator(_check_events),
]


class WebhookEndpointCreate(StrictInput):
    url: WebhookUrl
    description: str | None = Field(default=None, max_length=200)
    events: EventList = Field(default_factory=list)
    active: bool = True


class WebhookEndpointUpdate(StrictInput):
    url: WebhookUrl | None = None
    description: str | None = Field(default=None, max_length=200)
    events: EventList | None = None
    active: bool | None = None


class WebhookEndpointRead(ReadModel):
    id: uuid.UUID
    url: str
    description: str | None
    events: list[str]
    active: bool
    created_at: datetime
    updated_at: datetime


class WebhookEndpointWithSecret(WebhookEndpointRead):
    secret: str = Field(description="The signing secret, shown once: store it now")


class WebhookDeliveryRead(ReadModel):
    id: uuid.UUID
    endpoint_id: uuid.UUID
    event: str
    status: DeliveryStatus
    attempts: int = Field(description="HTTP attempts in the current cycle (a redelivery starts a new one)")
    last_status_code: int | None
    last_error: str | None
    last_attempt_at: datetime | None
    last_duration_ms: int | None
    delivered_at: datetime | None
    created_at: datetime
    updated_at: datetime


class WebhookDeliveryDetail(WebhookDeliveryRead):
    payload: dict[str, Any] = Field(description="The JSON object sent as the request body")
