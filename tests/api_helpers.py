"""Helpers shared by the API tests: the one error shape, listing, counting rows, the audit trail."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from sqlalchemy import ColumnElement, func, select

from allo.app import create_app
from allo.config import Settings
from allo.kit.db import Database
from allo.models import AuditEvent
from allo.models.base import Base
from tests.factories import Actor


def assert_api_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """The error object of a response that is `status` in the API's one error shape.

    The shape is {"error": {"code", "message", "details"}} with a non-empty code and message; when
    `code` is given, the error's code must be it.
    """
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert isinstance(body, dict)
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert set(error) == {"code", "message", "details"}, error
    assert isinstance(error["code"], str)
    assert error["code"]
    assert isinstance(error["message"], str)
    assert error["message"]
    if code is not None:
        assert error["code"] == code, error
    return error


async def list_all(
    client: httpx.AsyncClient, url: str, actor: Actor, /, **params: str
) -> list[dict[str, Any]]:
    """Every item a list endpoint returns for `params`, all on one page of up to 200."""
    response = await client.get(url, params={"limit": "200", **params}, headers=actor.bearer)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["next_cursor"] is None
    items: list[dict[str, Any]] = body["items"]
    return items


async def audit_events(db: Database, tenant_id: uuid.UUID, action: str | None = None) -> list[AuditEvent]:
    """The tenant's audit events, oldest first; only those of `action` when it is given."""
    stmt = select(AuditEvent).where(AuditEvent.tenant_id == tenant_id).order_by(AuditEvent.created_at)
    if action is not None:
        stmt = stmt.where(AuditEvent.action == action)
    async with db.unit_of_work(write=False) as s:
        return list((await s.execute(stmt)).scalars())


async def count_rows(db: Database, model: type[Base], *conditions: ColumnElement[bool]) -> int:
    """How many rows of `model` meet every condition."""
    async with db.session(write=False) as s:
        count = await s.scalar(select(func.count()).select_from(model).where(*conditions))
    return int(count or 0)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on, for a server the test starts."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[str]:
    """The application under a real uvicorn on a free loopback port, in this event loop; its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # it could not start: raise its error
        await asyncio.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(task, timeout=10)


# The assistant's model as `make test` builds it.
MODEL_PATH = Path(__file__).resolve().parents[1] / "var" / "nlu" / "model.npz"


class ServerThread:
    """uvicorn serving `app` on 127.0.0.1:`port` from a thread with its own event loop."""

    def __init__(self, settings: Settings, port: int) -> None:
        config = uvicorn.Config(
            create_app(settings),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=5,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name=f"e2e-uvicorn-{port}", daemon=True)

    async def start(self) -> None:
        self.thread.start()
        async with asyncio.timeout(30):
            while not self.server.started:
                assert self.thread.is_alive(), "uvicorn stopped while starting (see the log above)"
                await asyncio.sleep(0.05)

    async def stop(self) -> None:
        """Graceful shutdown: open streams are cut, the lifespan ends and disposes of the app's database."""
        self.server.should_exit = True
        await asyncio.to_thread(self.thread.join, 30)
        assert not self.thread.is_alive(), "uvicorn did not stop"
