"""The console's live stream, end to end: a real server, a real database, an SSE client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from allo.app import create_app
from allo.config import Settings
from allo.kit.db import Database, create_nullpool_engine
from allo.kit.migrate import upgrade
from tests.api_helpers import serve
from tests.factories import Actor, make_actor


@pytest.fixture
async def live_server(fresh_database_url: str) -> AsyncIterator[tuple[str, dict[str, Actor]]]:
    await upgrade(fresh_database_url)
    setup = Database(create_nullpool_engine(fresh_database_url))
    async with setup.unit_of_work() as s:
        actors = {
            "mine": await make_actor(s, "stream-a", "agent"),
            "theirs": await make_actor(s, "stream-b", "agent"),
        }
    await setup.dispose()
    settings = Settings(database_url=fresh_database_url, run_worker=False, _env_file=None)
    async with serve(create_app(settings)) as url:
        yield url, actors


async def _next_event(lines: AsyncIterator[str]) -> dict[str, Any]:
    event: dict[str, Any] = {}
    async for line in lines:
        if line.startswith("event: "):
            event["type"] = line.removeprefix("event: ")
        elif line.startswith("data: "):
            event["data"] = json.loads(line.removeprefix("data: "))
        elif line == "" and "type" in event:
            return event
    raise AssertionError("stream ended")


async def test_committed_changes_reach_the_tenants_event_stream(
    live_server: tuple[str, dict[str, Actor]],
) -> None:
    base, actors = live_server
    mine, theirs = actors["mine"], actors["theirs"]
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        unauthenticated = await http.get("/api/v1/events")
        assert unauthenticated.status_code == 401
        async with http.stream("GET", "/api/v1/events", headers=mine.bearer) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            lines = stream.aiter_lines()
            # Another tenant's activity must not show up in this stream.
            other = await http.post("/api/v1/customers", json={"name": "Autre"}, headers=theirs.bearer)
            await http.post(
                "/api/v1/conversations",
                json={"customer_id": other.json()["id"], "channel": "sms"},
                headers=theirs.bearer,
            )
            customer = await http.post("/api/v1/customers", json={"name": "Awa Diop"}, headers=mine.bearer)
            conversation = await http.post(
                "/api/v1/conversations",
                json={"customer_id": customer.json()["id"], "channel": "webchat"},
                headers=mine.bearer,
            )
            assert conversation.status_code == 201
            event = await asyncio.wait_for(_next_event(lines), timeout=10)
            assert event["type"] == "conversation.created"
            assert event["data"]["tenant_id"] == str(mine.tenant_id)
            assert event["data"]["data"]["conversation_id"] == conversation.json()["id"]
