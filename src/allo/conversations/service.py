from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from allo.audit.service import record_by
from allo.auth.principal import Principal
from allo.conversations.repository import ConversationRepository, MessageRepository
from allo.conversations.schemas import ConversationCreate, MessageCreate
from allo.customers.repository import CustomerRepository
from allo.kit import jobs
from allo.kit.bus import Event, publish_on_commit
from allo.kit.errors import Conflict, Forbidden
from allo.kit.text import check_message_body
from allo.kit.time import utc_now
from allo.models import Conversation, Message, Ticket, User
from allo.models.enums import AuthorKind, Channel, ConversationStatus, Direction, MessageDelivery
from allo.routing import service as routing
from allo.tickets.repository import OPEN_STATUSES, of_conversation

_OUTBOUND_AUTHORS = {AuthorKind.agent, AuthorKind.bot, AuthorKind.system}
# Handled by allo.assistant.tasks: the assistant's turn for a message that did not come through the web chat.
ASSISTANT_REPLY_KIND = "assistant.reply"
_AWAITING_AGENT = {ConversationStatus.bot, ConversationStatus.queued}
# The assistant answers a customer in these; in the others a human has the case.
BOT_HANDLES = frozenset({ConversationStatus.bot, ConversationStatus.resolved})
WITH_HUMANS = frozenset({ConversationStatus.queued, ConversationStatus.assigned})
REASSESS_KIND = "assistant.reassess"
# Handled by allo.channels.tasks: hands an outbound message to its channel's provider, after commit.
SEND_KIND = "channels.send"
# Channels whose messages leave Allo through a provider (the web chat reads its messages from Allo itself;
# Mastodon is answered in public by allo.social).
DELIVERED_CHANNELS = frozenset({Channel.sms, Channel.whatsapp, Channel.messenger, Channel.email})
SEND_ATTEMPTS = 8


async def open_conversation(
    session: AsyncSession, principal: Principal, data: ConversationCreate
) -> Conversation:
    customer = await CustomerRepository(session, principal.tenant_id).get_or_raise(data.customer_id)
    conversation = ConversationRepository(session, principal.tenant_id).add(
        Conversation(
            customer_id=customer.id,
            channel=data.channel,
            language=data.language or customer.preferred_language,
            subject=data.subject,
        )
    )
    await session.flush()
    announce_conversation(session, conversation)
    await record_by(session, principal, "conversation.create", "conversation", conversation.id)
    return conversation


async def post_message(
    session: AsyncSession,
    principal: Principal,
    conversation_id: uuid.UUID,
    data: MessageCreate,
    *,
    max_bytes: int,
) -> Message:
    check_message_body(data.body, max_bytes=max_bytes)
    if data.author_kind is AuthorKind.bot:
        raise Forbidden("Only the assistant writes bot messages.", code="author_not_allowed")
    if data.author_kind is AuthorKind.agent and principal.user_id is None:
        raise Forbidden("Agent messages need a logged-in agent, not an API key.", code="user_required")
    conversation = await ConversationRepository(session, principal.tenant_id).get_or_raise(conversation_id)
    message = await store_message(
        session,
        conversation,
        author_kind=data.author_kind,
        author_user_id=principal.user_id if data.author_kind is AuthorKind.agent else None,
        body=data.body,
        channel_message_id=data.channel_message_id,
        meta=data.meta,
    )
    if data.author_kind is AuthorKind.agent and conversation.status in _AWAITING_AGENT:
        await _take(session, conversation, principal)
    elif data.author_kind is AuthorKind.agent and principal.user_id is not None:
        await routing.answered(session, conversation.id, principal.user_id)
    elif data.author_kind is AuthorKind.customer:
        await queue_assistant_turn(session, conversation, message)
    return message


async def queue_assistant_turn(session: AsyncSession, conversation: Conversation, message: Message) -> bool:
    """The assistant answers the customer's message after commit, in the worker, while the conversation
    is the bot's: the caller is not kept waiting. False when a human has the case."""
    if conversation.status not in BOT_HANDLES:
        return False
    await queue_assistant_turns(session, conversation.tenant_id, [message.id])
    return True


async def queue_assistant_turns(
    session: AsyncSession, tenant_id: uuid.UUID, message_ids: list[uuid.UUID]
) -> None:
    """The assistant's turn for each of these customer messages (of conversations the bot handles), once
    per message whatever calls it again."""
    await jobs.enqueue_many(
        session,
        ASSISTANT_REPLY_KIND,
        [({"message_id": str(m)}, f"{ASSISTANT_REPLY_KIND}:{m}") for m in message_ids],
        tenant_id=tenant_id,
        max_attempts=3,
    )


async def _take(session: AsyncSession, conversation: Conversation, principal: Principal) -> None:
    """The agent who answers a waiting conversation takes it."""
    agent = await session.get(User, principal.user_id) if principal.user_id else None
    if agent is not None:
        item = await routing.take(session, conversation.id, agent)
        if item is not None and item.ticket_id is not None:
            # The conversation's ticket goes with it.
            await session.execute(
                update(Ticket)
                .where(Ticket.id == item.ticket_id)
                .values(assignee_id=agent.id)
                .execution_options(synchronize_session="fetch")
            )
    hand_to(session, conversation, principal.user_id)


def hand_to(session: AsyncSession, conversation: Conversation, agent_id: uuid.UUID | None) -> None:
    """The conversation is now with this agent, or (None) back in the queue for the next one."""
    now = utc_now()
    conversation.status = ConversationStatus.assigned if agent_id else ConversationStatus.queued
    conversation.assigned_agent_id = agent_id
    conversation.assigned_at = now if agent_id else None
    conversation.queued_at = conversation.queued_at or now
    announce_status(session, conversation)


def announce_status(session: AsyncSession, conversation: Conversation) -> None:
    """The conversation's new status, live to the console and the customer's chat, after commit."""
    publish_on_commit(
        session,
        Event(
            "conversation.status",
            conversation.tenant_id,
            {"conversation_id": str(conversation.id), "status": conversation.status.value},
        ),
    )


async def store_message(
    session: AsyncSession,
    conversation: Conversation,
    *,
    author_kind: AuthorKind,
    body: str,
    author_user_id: uuid.UUID | None = None,
    channel_message_id: str | None = None,
    meta: dict[str, Any] | None = None,
    created_at: datetime | None = None,
) -> Message:
    """Add a message to a conversation; a channel message id seen before is a 409 duplicate_message."""
    messages = MessageRepository(session, conversation.tenant_id)
    if channel_message_id is not None:
        existing = await messages.find_by_channel_id(conversation.channel, channel_message_id)
        if existing is not None:
            raise _duplicate(channel_message_id, existing.id)
    now = created_at or utc_now()
    message = Message(
        conversation_id=conversation.id,
        channel=conversation.channel,
        direction=Direction.outbound if author_kind in _OUTBOUND_AUTHORS else Direction.inbound,
        author_kind=author_kind,
        author_user_id=author_user_id,
        body=body,
        channel_message_id=channel_message_id,
        meta=meta or {},
        created_at=now,
    )
    try:
        # The row is added inside the SAVEPOINT so that a failed insert leaves the session usable.
        async with session.begin_nested():
            messages.add(message)
            await session.flush()
    except IntegrityError as exc:
        # A concurrent delivery of the same message was inserted between our lookup and our insert.
        if channel_message_id is not None:
            existing = await messages.find_by_channel_id(conversation.channel, channel_message_id)
            if existing is not None:
                raise _duplicate(channel_message_id, existing.id) from exc
        raise Conflict("This message could not be stored.", code="conflict") from exc
    conversation.last_message_at = now
    if _delivered_by_provider(conversation, message):
        message.delivery_status = MessageDelivery.queued
        message.delivery_updated_at = now
        await jobs.enqueue(
            session,
            SEND_KIND,
            {"message_id": str(message.id)},
            tenant_id=conversation.tenant_id,
            idempotency_key=f"{SEND_KIND}:{message.id}",
            max_attempts=SEND_ATTEMPTS,
        )
    if author_kind is AuthorKind.agent and conversation.first_agent_response_at is None:
        conversation.first_agent_response_at = now
    if author_kind is AuthorKind.agent and not (meta or {}).get("internal"):
        await _first_response_on_tickets(session, conversation, now)
    await session.flush()
    announce_message(session, conversation, message.id, author_kind)
    return message


def announce_conversation(session: AsyncSession, conversation: Conversation) -> None:
    """A new conversation, live to the console after commit."""
    publish_on_commit(
        session,
        Event("conversation.created", conversation.tenant_id, {"conversation_id": str(conversation.id)}),
    )


def announce_message(
    session: AsyncSession, conversation: Conversation, message_id: uuid.UUID, author_kind: AuthorKind
) -> None:
    """What follows a stored message after commit: the live event for the console and the chat and, for
    a customer's message while a human has the case, the assistant's reading of it (an urgent, legal or
    angrier message raises the ticket's priority: allo.assistant.tasks)."""
    if author_kind is AuthorKind.customer and conversation.status in WITH_HUMANS:
        jobs.enqueue_on_commit(
            session,
            REASSESS_KIND,
            {"message_id": str(message_id)},
            tenant_id=conversation.tenant_id,
            max_attempts=3,
        )
    publish_on_commit(
        session,
        Event(
            "message.created",
            conversation.tenant_id,
            {
                "conversation_id": str(conversation.id),
                "message_id": str(message_id),
                "author_kind": author_kind.value,
            },
        ),
    )


def _delivered_by_provider(conversation: Conversation, message: Message) -> bool:
    """Replies of the bot and agents go out on the customer's channel; internal notes never, and system
    notes only when they are meant for the customer (an opt-out's confirmation, say)."""
    if conversation.channel not in DELIVERED_CHANNELS or message.direction is not Direction.outbound:
        return False
    meta = message.meta or {}
    if meta.get("internal"):
        return False
    return message.author_kind is not AuthorKind.system or bool(meta.get("deliver"))


def _duplicate(channel_message_id: str, existing_id: uuid.UUID) -> Conflict:
    return Conflict(
        "This channel message id was already received.",
        code="duplicate_message",
        details={"channel_message_id": channel_message_id, "message_id": str(existing_id)},
    )


async def _first_response_on_tickets(session: AsyncSession, conversation: Conversation, at: datetime) -> None:
    """An agent answered the customer on this conversation: its open tickets have their first response."""
    await session.execute(
        update(Ticket)
        .where(
            Ticket.tenant_id == conversation.tenant_id,
            of_conversation(conversation.id),
            Ticket.first_responded_at.is_(None),
            Ticket.status.in_(OPEN_STATUSES),
        )
        .values(first_responded_at=at)
        .execution_options(synchronize_session="fetch")
    )
