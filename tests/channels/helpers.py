"""Shared by the channel tests: a stand-in for Meta's Graph API, signed webhook posts, and a worker round."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import orjson
from fastapi import FastAPI, Request, Response
from sqlalchemy import select, update

from allo.config import Settings
from allo.kit.db import Database
from allo.kit.jobs import Worker
from allo.kit.time import utc_now
from allo.models import Job, Message
from allo.models.enums import JobStatus
from tests.factories import Actor

T = TypeVar("T")
ACCOUNTS = "/api/v1/channels/accounts"
APP_SECRET = "app-secret-for-tests"
ACCESS_TOKEN = "EAAG-test-access-token"
VERIFY_TOKEN = "verify-token-for-tests"
STANDIN_BASE = "http://graph.standin/v21.0"


@dataclass
class Answer:
    status: int = 200
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class GraphStandin:
    """Answers `POST /v21.0/{id}/messages` as the Graph API documents it, and remembers every request.
    `failures` are answered first, in order (a 503, a 429 with Retry-After, a 400 with an error code)."""

    failures: list[Answer] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v21.0/{node}/messages")
        async def messages(node: str, request: Request) -> Response:
            self.tokens.append(request.headers.get("authorization", ""))
            if self.failures:
                answer = self.failures.pop(0)
                return Response(
                    orjson.dumps(answer.body or {}), answer.status, answer.headers, "application/json"
                )
            payload = orjson.loads(await request.body())
            self.received.append({"node": node, **payload})
            number = next(self._ids)
            if payload.get("messaging_product") == "whatsapp":
                body = {
                    "messaging_product": "whatsapp",
                    "contacts": [{"input": payload["to"], "wa_id": payload["to"]}],
                    "messages": [{"id": f"wamid.standin{number}"}],
                }
            else:
                body = {"recipient_id": payload["recipient"]["id"], "message_id": f"m_standin{number}"}
            return Response(orjson.dumps(body), 200, media_type="application/json")

        return app

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app()), base_url="http://graph.standin"
        )


def hub_signature(body: bytes, secret: str = APP_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


async def post_signed(
    client: httpx.AsyncClient, url: str, payload: Any, *, secret: str = APP_SECRET
) -> httpx.Response:
    body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    return await client.post(
        url,
        content=body,
        headers={"Content-Type": "application/json", "X-Hub-Signature-256": hub_signature(body, secret)},
    )


async def create_meta_account(
    client: httpx.AsyncClient, admin: Actor, provider: str, address: str, **fields: Any
) -> dict[str, Any]:
    response = await client.post(
        ACCOUNTS,
        json={
            "channel": provider,
            "provider": provider,
            "name": f"{provider} {address}",
            "address": address,
            "settings": {"api_base_url": STANDIN_BASE},
            "secrets": {"app_secret": APP_SECRET, "access_token": ACCESS_TOKEN, "verify_token": VERIFY_TOKEN},
            **fields,
        },
        headers=admin.bearer,
    )
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    return data


def hook_path(account: dict[str, Any]) -> str:
    return f"/api/v1/channels/hooks/{account['id']}"


def worker(db: Database, settings: Settings, http: httpx.AsyncClient) -> Worker:
    return Worker(db, resources={"settings": settings, "http": http}, backoff_base_seconds=1.0)


async def run_jobs(db: Database, work: Worker, *, rounds: int = 1) -> int:
    """Run every queued job now, backoff skipped, `rounds` times (a retried send needs one per attempt)."""
    ran = 0
    for _ in range(rounds):
        async with db.unit_of_work() as s:
            await s.execute(update(Job).where(Job.status == JobStatus.queued).values(run_at=utc_now()))
        ran += await work.run_until_idle()
    return ran


async def messages_of(db: Database, conversation_id: Any) -> list[Message]:
    async with db.unit_of_work() as s:
        rows = await s.execute(
            select(Message).where(Message.conversation_id == conversation_id).order_by(Message.created_at)
        )
        return list(rows.scalars())


async def eventually(probe: Callable[[], Awaitable[T | None]], what: str, within: float = 20.0) -> T:
    """The probe's first truthy answer, asked every 0.1 s; an AssertionError naming `what` after `within`."""
    try:
        async with asyncio.timeout(within):
            while True:
                found = await probe()
                if found:
                    return found
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(f"not within {within:.0f} s: {what}") from None
