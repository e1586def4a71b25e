from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, status

from allo.conversations import service
from allo.conversations.repository import ConversationRepository, MessageRepository
from allo.conversations.schemas import (
    ConversationCreate,
    ConversationDetail,
    ConversationRead,
    MessageCreate,
    MessageRead,
)
from allo.deps import AgentDep, SessionDep, SettingsDep
from allo.kit.pagination import Page, PageParams, page_params
from allo.models.enums import Channel, ConversationStatus

router = APIRouter(prefix="/conversations", tags=["conversations"])


@router.get("", summary="List conversations")
async def list_conversations(
    session: SessionDep,
    principal: AgentDep,
    page: Annotated[PageParams, Depends(page_params)],
    status: ConversationStatus | None = None,
    channel: Channel | None = None,
    customer_id: uuid.UUID | None = None,
    assigned_agent_id: uuid.UUID | None = None,
) -> Page[ConversationRead]:
    repo = ConversationRepository(session, principal.tenant_id)
    stmt = repo.filtered(
        status=status, channel=channel, customer_id=customer_id, assigned_agent_id=assigned_agent_id
    )
    rows, cursor = await repo.paginate(stmt, page)
    return Page(items=[ConversationRead.model_validate(r) for r in rows], next_cursor=cursor)


@router.post("", status_code=status.HTTP_201_CREATED, summary="Open a conversation with a customer")
async def create_conversation(
    body: ConversationCreate, session: SessionDep, principal: AgentDep
) -> ConversationRead:
    return ConversationRead.model_validate(await service.open_conversation(session, principal, body))


@router.get("/{conversation_id}", summary="Read a conversation with its messages")
async def read_conversation(
    conversation_id: uuid.UUID, session: SessionDep, principal: AgentDep
) -> ConversationDetail:
    conversation = await ConversationRepository(session, principal.tenant_id).get_with_messages(
        conversation_id
    )
    return ConversationDetail.model_validate(conversation)


@router.get("/{conversation_id}/messages", summary="The messages of a conversation, oldest first")
async def list_messages(
    conversation_id: uuid.UUID, session: SessionDep, principal: AgentDep
) -> list[MessageRead]:
    await ConversationRepository(session, principal.tenant_id).get_or_raise(conversation_id)
    rows = await MessageRepository(session, principal.tenant_id).for_conversation(conversation_id)
    return [MessageRead.model_validate(m) for m in rows]


@router.post("/{conversation_id}/messages", status_code=status.HTTP_201_CREATED, summary="Add a message")
async def post_message(
    conversation_id: uuid.UUID,
    body: MessageCreate,
    session: SessionDep,
    principal: AgentDep,
    settings: SettingsDep,
) -> MessageRead:
    message = await service.post_message(
        session, principal, conversation_id, body, max_bytes=settings.max_message_bytes
    )
    return MessageRead.model_validate(message)
