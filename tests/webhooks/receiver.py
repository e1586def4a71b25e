"""A webhook receiver for the tests: a small app served on a real port that records every request, checks
its signature, and answers what the test scripted. Plus the helpers the webhook tests share."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from fastapi import FastAPI, Request, Response
from sqlalchemy import select, update

from allo.config import Settings
from allo.kit.db import Database
from allo.kit.jobs import Worker
from allo.kit.time import utc_now
from allo.models import Job, WebhookDelivery
from allo.models.enums import JobStatus
from allo.webhooks.service import DELIVER_KIND
from allo.webhooks.tasks import verify_signature
from tests.factories import Actor

WEBHOOKS = "/api/v1/webhooks"


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False  # wait until the test releases it: the sender times out first


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    verified: bool  # with the receiver's secret when it arrived

    @property
    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = orjson.loads(self.body)
        return data


@dataclass
class Receiver:
    base_url: str = ""
    secret: str = ""
    replies: list[Reply] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"{self.base_url}/hook"

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/hook")
        async def hook(request: Request) -> Response:
            body = await request.body()
            headers = dict(request.headers)
            self.received.append(Received(headers, body, verify_signature(self.secret, headers, body)))
            reply = self.replies.pop(0) if self.replies else Reply()
            if reply.hang:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.release.wait(), timeout=10)
            return Response(b'{"ok": true}', status_code=reply.status, headers=reply.headers)

        return app


def worker_for(db: Database, settings: Settings, **overrides: Any) -> Worker:
    """A worker with the application's settings as resources, as `allo worker` builds it."""
    return Worker(db, resources={"settings": settings.model_copy(update=overrides)})


async def run_round(db: Database, worker: Worker) -> int:
    """Bring the queued delivery jobs forward (skipping their backoff), then run every due job."""
    async with db.unit_of_work() as s:
        await s.execute(
            update(Job)
            .where(Job.kind == DELIVER_KIND, Job.status == JobStatus.queued)
            .values(run_at=utc_now())
        )
    return await worker.run_until_idle()


async def create_endpoint(client: httpx.AsyncClient, admin: Actor, url: str, **fields: Any) -> dict[str, Any]:
    response = await client.post(f"{WEBHOOKS}/endpoints", json={"url": url, **fields}, headers=admin.bearer)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    return data


async def deliveries(db: Database, endpoint_id: str | uuid.UUID) -> list[WebhookDelivery]:
    """The endpoint's deliveries, oldest first."""
    async with db.unit_of_work(write=False) as s:
        rows = await s.execute(
            select(WebhookDelivery)
            .where(WebhookDelivery.endpoint_id == uuid.UUID(str(endpoint_id)))
            .order_by(WebhookDelivery.created_at)
        )
        return list(rows.scalars())


async def delivery_jobs(db: Database, status: JobStatus | None = None) -> list[Job]:
    async with db.unit_of_work(write=False) as s:
        stmt = select(Job).where(Job.kind == DELIVER_KIND).order_by(Job.created_at)
        if status is not None:
            stmt = stmt.where(Job.status == status)
        return list((await s.execute(stmt)).scalars())
