"""The channel jobs: an inbound event processed, an outbound message handed to its provider."""

from __future__ import annotations

import uuid

import httpx

from allo.channels import service
from allo.channels.base import ProviderUnavailable
from allo.config import Settings
from allo.conversations.service import SEND_KIND
from allo.kit import jobs

# One client per time limit in this process (the worker's jobs run on one event loop).
_clients: dict[float, httpx.AsyncClient] = {}


def _settings(ctx: jobs.JobContext) -> Settings:
    settings = ctx.resources.get("settings")
    if not isinstance(settings, Settings):
        raise jobs.PermanentFailure("the worker was started without the application's settings")
    return settings


def http_client(ctx: jobs.JobContext, settings: Settings) -> httpx.AsyncClient:
    """The worker's client for providers' APIs (tests hand theirs in as the "http" resource)."""
    given = ctx.resources.get("http")
    if isinstance(given, httpx.AsyncClient):
        return given
    client = _clients.get(settings.channel_timeout_seconds)
    if client is None or client.is_closed:
        client = httpx.AsyncClient(timeout=settings.channel_timeout_seconds)
        _clients[settings.channel_timeout_seconds] = client
    return client


@jobs.job_handler(service.INBOUND_KIND)
async def inbound(ctx: jobs.JobContext) -> None:
    if ctx.tenant_id is None:
        raise jobs.PermanentFailure("an inbound job names its tenant")
    await service.process_pending(ctx.session, _settings(ctx), ctx.tenant_id)


@jobs.job_handler(SEND_KIND)
async def send(ctx: jobs.JobContext) -> None:
    settings = _settings(ctx)
    try:
        await service.deliver(
            ctx.session, settings, http_client(ctx, settings), uuid.UUID(str(ctx.payload["message_id"]))
        )
    except ProviderUnavailable as exc:
        if exc.retry_after is not None:
            # The provider said when to come back (429 Retry-After): waiting is not a failed attempt.
            raise jobs.RetryLater(
                str(exc), delay=min(exc.retry_after, settings.job_backoff_max_seconds)
            ) from exc
        raise


@jobs.on_dead(SEND_KIND)
async def send_gave_up(ctx: jobs.JobContext) -> None:
    await service.give_up(
        ctx.session, uuid.UUID(str(ctx.payload["message_id"])), str(ctx.payload.get("error", ""))
    )
