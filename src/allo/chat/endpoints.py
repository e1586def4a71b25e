from __future__ import annotations

import uuid
from pathlib import Path
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header, Query, Request, status
from fastapi.responses import FileResponse, Response, StreamingResponse

from allo.assistant.dialogue import AnswerWording
from allo.chat import service
from allo.chat.schemas import ChatLanguageChange, ChatPost, ChatStart, ChatState, ChatUpdate
from allo.deps import SessionDep, SettingsDep, database_of
from allo.kit.bus import Event
from allo.kit.db import Database
from allo.kit.sse import event_stream
from allo.models import Conversation
from allo.web import render

STATIC_DIR = Path(__file__).parent / "static"
_STREAMED = frozenset({"message.created", "conversation.status", "conversation.assigned"})

router = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/chat/api", tags=["customer chat"])


def _wording(request: Request) -> AnswerWording | None:
    wording: AnswerWording | None = getattr(request.app.state, "llm", None)
    return wording


def _limiter(request: Request) -> service.RateLimiter:
    limiter: service.RateLimiter = request.app.state.chat_limiter
    return limiter


async def chat_conversation(
    session: SessionDep,
    settings: SettingsDep,
    x_chat_token: Annotated[str | None, Header(description="The token of POST /chat/api/sessions")] = None,
) -> Conversation:
    return await service.conversation_for_token(session, settings, x_chat_token)


ChatConversationDep = Annotated[Conversation, Depends(chat_conversation, scope="function")]


async def _stream_chunk(
    db: Database, conversation_id: uuid.UUID, kind: str, data: dict[str, Any]
) -> bytes | None:
    """The SSE chunk for one event, read in a short transaction of its own (not held while sending):
    empty when there is nothing to show (an internal note), None when the conversation is gone."""
    async with db.unit_of_work(write=False) as session:
        current = await session.get(Conversation, conversation_id)
        if current is None:
            return None
        if kind == "message.created":
            message = await service.message_for_stream(session, current, uuid.UUID(data["message_id"]))
            if message is None:
                return b""
            return b"event: message\ndata: " + message.model_dump_json().encode() + b"\n\n"
        payload = {"status": current.status.value, "agent_name": await service.agent_name(session, current)}
        return b"event: status\ndata: " + orjson.dumps(payload) + b"\n\n"


@router.get("/chat")
async def chat_page(
    request: Request,
    tenant: Annotated[str | None, Query(max_length=63)] = None,
    c: Annotated[str | None, Query(max_length=2048, description="Contact link token")] = None,
    embed: bool = False,
) -> Response:
    settings = request.app.state.settings
    response = render(
        request,
        "chat.html",
        {"tenant": tenant or settings.default_tenant, "contact": c, "embed": embed},
    )
    if embed:
        # The widget shows this page in a frame on the operator's own site.
        del response.headers["X-Frame-Options"]
        response.headers["Content-Security-Policy"] = f"frame-ancestors {settings.chat_frame_ancestors}"
    return response


@router.get("/chat/widget.js")
async def widget_script() -> FileResponse:
    return FileResponse(
        STATIC_DIR / "widget.js",
        media_type="text/javascript; charset=utf-8",
        headers={"Cache-Control": "public, max-age=300"},
    )


@api.post("/sessions", status_code=status.HTTP_201_CREATED, summary="Start a chat (or open a contact link)")
async def start_chat(
    request: Request, body: ChatStart, session: SessionDep, settings: SettingsDep
) -> ChatState:
    return await service.start(
        session,
        settings,
        tenant_slug=body.tenant,
        language=body.language,
        contact=body.contact,
        wording=_wording(request),
        resume=body.resume,
    )


@api.get("/session", summary="The chat so far (to resume after a reload)")
async def read_chat(
    session: SessionDep, settings: SettingsDep, conversation: ChatConversationDep
) -> ChatState:
    return await service.state_of(session, settings, conversation)


@api.patch("/session", summary="Change the chat's language")
async def change_language(
    body: ChatLanguageChange, session: SessionDep, settings: SettingsDep, conversation: ChatConversationDep
) -> ChatState:
    conversation.language = body.language
    return await service.state_of(session, settings, conversation)


@api.post("/messages", summary="Send a message; the answer holds it and the assistant's replies")
async def post_message(
    request: Request,
    body: ChatPost,
    session: SessionDep,
    settings: SettingsDep,
    conversation: ChatConversationDep,
) -> ChatUpdate:
    return await service.post(
        session, settings, conversation, body, limiter=_limiter(request), wording=_wording(request)
    )


@api.get("/messages", summary="Messages after a given one (polling fallback of the stream)")
async def list_messages(
    session: SessionDep,
    conversation: ChatConversationDep,
    after: uuid.UUID | None = None,
) -> ChatUpdate:
    return await service.updates(session, conversation, after)


@api.get(
    "/stream",
    summary="Live messages and status of the chat (Server-Sent Events)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream(
    request: Request, settings: SettingsDep, token: Annotated[str, Query(max_length=2048)]
) -> StreamingResponse:
    db = database_of(request)
    async with db.unit_of_work(write=False) as session:
        conversation = await service.conversation_for_token(session, settings, token)
        tenant_id, conversation_id = conversation.tenant_id, conversation.id

    async def render(event: Event) -> bytes | None:
        if event.type not in _STREAMED or event.data.get("conversation_id") != str(conversation_id):
            return b""
        return await _stream_chunk(db, conversation_id, event.type, event.data)

    return event_stream(request, request.app.state.bus, tenant_id, render)
