"""Server-Sent Events from the live-event bus: one loop for every stream (console events, customer chat)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi import Request
from fastapi.responses import StreamingResponse

from allo.kit.bus import Bus, Event

HEARTBEAT_SECONDS = 15.0

# What a stream sends for an event: the SSE chunk, b"" to send nothing, None to end the stream.
Render = Callable[[Event], Awaitable[bytes | None]]


def event_stream(request: Request, bus: Bus, tenant_id: uuid.UUID, render: Render) -> StreamingResponse:
    async def chunks() -> AsyncIterator[bytes]:
        async with bus.subscribe(tenant_id) as queue:
            yield b"retry: 3000\n: connected\n\n"
            while not await request.is_disconnected():
                try:
                    event = await asyncio.wait_for(queue.get(), timeout=HEARTBEAT_SECONDS)
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                chunk = await render(event)
                if chunk is None:
                    return
                if chunk:
                    yield chunk

    return StreamingResponse(
        chunks(),
        media_type="text/event-stream",
        # No caching, and no buffering by a reverse proxy: events must arrive as they happen.
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
