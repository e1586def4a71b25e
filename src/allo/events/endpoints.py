from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from allo.deps import AgentDep
from allo.kit.bus import Event
from allo.kit.sse import event_stream

router = APIRouter(tags=["events"])


@router.get(
    "/events",
    summary="Live events of the caller's tenant (Server-Sent Events)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream_events(request: Request, principal: AgentDep) -> StreamingResponse:
    async def render(event: Event) -> bytes:
        return b"id: %s\nevent: %s\ndata: %s\n\n" % (
            str(event.id).encode(),
            event.type.encode(),
            event.to_json(),
        )

    return event_stream(request, request.app.state.bus, principal.tenant_id, render)
