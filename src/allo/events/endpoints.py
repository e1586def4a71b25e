from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from allo.deps import AgentDep
from allo.kit.bus import Bus

router = APIRouter(tags=["events"])

HEARTBEAT_SECONDS = 15.0


@router.get(
    "/events",
    summary="Live events of the caller's tenant (Server-Sent Events)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream_events(request: Request, principal: AgentDep) -> StreamingResponse:
    bus: Bus = request.app.state.bus

    async def stream() -> AsyncIterator[bytes]:
        async with bus.subscribe(principal.tenant_id) as queue:
            yield b"retry: 3000\n: connected\n\n"
            while not await request.is_disconnected():
                try:
                    event = await asyncio.wait_for(queue.get(), timeout=HEARTBEAT_SECONDS)
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                yield (
                    b"id: "
                    + str(event.id).encode()
                    + b"\nevent: "
                    + event.type.encode()
                    + b"\ndata: "
                    + event.to_json()
                    + b"\n\n"
                )

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})
