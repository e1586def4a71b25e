"""The customer's web chat: anonymous sessions held by a signed token, the assistant's turns, the agent's
replies in the same conversation.

A visitor gets a customer record of their own (no phone yet) and a web-chat conversation; the token the
browser keeps names that conversation. Identification later attaches the conversation to the real
customer (allo.assistant.dialogue). A signed contact link (from a Mastodon reply, say) opens or resumes the
conversation it was made for.
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from allo.assistant import service as assistant
from allo.assistant.dialogue import AnswerWording
from allo.chat.schemas import CLIENT_ID_PREFIX, ChatMessage, ChatPost, ChatState, ChatUpdate
from allo.config import Settings
from allo.conversations.service import store_message
from allo.kit.errors import AppError, Conflict, NotFound, Unauthorized
from allo.kit.signing import InvalidToken, sign, unsign
from allo.kit.text import check_message_body
from allo.models import Conversation, Customer, Message, Tenant, User
from allo.models.enums import AuthorKind, Channel, ConversationStatus
from allo.social import service as social
from allo.tenants import service as tenants

SESSION_PURPOSE = "chat-session"
CONTACT_PURPOSE = "contact-link"
# A person types a few messages a minute; a script sending more is slowed down, not served.
RATE_LIMIT_MESSAGES = 20
RATE_LIMIT_SECONDS = 60.0
_RATE_TRACKED = 10_000


class TooManyRequests(AppError):
    status_code = 429
    code = "too_many_requests"


class RateLimiter:
    """Per-conversation sliding window, in this process (each web process counts its own share)."""

    def __init__(self, limit: int = RATE_LIMIT_MESSAGES, window: float = RATE_LIMIT_SECONDS) -> None:
        self.limit = limit
        self.window = window
        self._hits: dict[uuid.UUID, deque[float]] = {}

    def check(self, key: uuid.UUID, now: float | None = None) -> None:
        moment = time.monotonic() if now is None else now
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= moment - self.window:
            hits.popleft()
        if len(hits) >= self.limit:
            raise TooManyRequests(
                "Too many messages in a short time; please wait a moment.",
                details={"retry_after_seconds": round(hits[0] + self.window - moment, 1)},
            )
        hits.append(moment)
        if len(self._hits) > _RATE_TRACKED:
            for stale in [k for k, v in self._hits.items() if not v or v[-1] <= moment - self.window]:
                del self._hits[stale]


def session_token(settings: Settings, conversation: Conversation) -> str:
    return sign(
        settings.secret_key.get_secret_value(),
        SESSION_PURPOSE,
        {"t": str(conversation.tenant_id), "v": str(conversation.id)},
        ttl_seconds=settings.chat_session_hours * 3600,
    )


def contact_token(settings: Settings, conversation: Conversation) -> str:
    """A link that opens this conversation in the web chat (for replies on public channels)."""
    return sign(
        settings.secret_key.get_secret_value(),
        CONTACT_PURPOSE,
        {"t": str(conversation.tenant_id), "v": str(conversation.id)},
        ttl_seconds=settings.contact_link_hours * 3600,
    )


def _ids(data: dict[str, Any]) -> tuple[uuid.UUID, uuid.UUID]:
    try:
        return uuid.UUID(str(data["t"])), uuid.UUID(str(data["v"]))
    except (KeyError, ValueError) as exc:
        raise InvalidToken("incomplete token") from exc


async def conversation_for_token(
    session: AsyncSession, settings: Settings, token: str | None
) -> Conversation:
    invalid = Unauthorized("This chat session is not valid any more.", code="chat_session_invalid")
    if not token:
        raise invalid
    try:
        tenant_id, conversation_id = _ids(
            unsign(settings.secret_key.get_secret_value(), SESSION_PURPOSE, token)
        )
    except InvalidToken as exc:
        raise invalid from exc
    conversation = await session.get(Conversation, conversation_id)
    if conversation is None or conversation.tenant_id != tenant_id:
        raise invalid
    return conversation


async def _tenant(session: AsyncSession, settings: Settings, slug: str | None) -> Tenant:
    tenant = await tenants.get_by_slug(session, slug or settings.default_tenant)
    if tenant is None:
        raise NotFound(
            "This customer service does not exist.", code="unknown_tenant", details={"tenant": slug}
        )
    return tenant


async def _from_contact_link(session: AsyncSession, settings: Settings, token: str) -> Conversation:
    tenant_id, conversation_id = social.read_link(settings, CONTACT_PURPOSE, token, _ids)
    conversation = await session.get(Conversation, conversation_id)
    if conversation is None or conversation.tenant_id != tenant_id:
        raise social.ContactLinkInvalid("This contact link is not valid any more.")
    return conversation


async def start(
    session: AsyncSession,
    settings: Settings,
    *,
    tenant_slug: str | None,
    language: str | None,
    contact: str | None,
    wording: AnswerWording | None,
    resume: str | None = None,
) -> ChatState:
    if contact and social.is_contact_link(settings, contact):
        # A link from a reply on Mastodon: this browser's own conversation from it, or a new one.
        resumed = await _resumable(session, settings, resume)
        conversation, new = await social.open_contact_link(session, settings, contact, resumed)
        if language and conversation.language != language:
            conversation.language = language
        if new:
            await assistant.greet(session, settings, conversation, wording)
        return await state_of(session, settings, conversation)
    if contact:
        # Opening the same link again continues the conversation it was made for.
        conversation = await _from_contact_link(session, settings, contact)
        if language and conversation.language != language:
            conversation.language = language
        if not await _has_messages(session, conversation):
            await assistant.greet(session, settings, conversation, wording)
        return await state_of(session, settings, conversation)
    tenant = await _tenant(session, settings, tenant_slug)
    policy = tenants.policy_of(tenant)
    chosen = language if language in policy.languages else policy.default_language
    customer = Customer(tenant_id=tenant.id, preferred_language=chosen)
    session.add(customer)
    await session.flush()
    conversation = Conversation(
        tenant_id=tenant.id, customer_id=customer.id, channel=Channel.webchat, language=chosen
    )
    session.add(conversation)
    await session.flush()
    await assistant.greet(session, settings, conversation, wording)
    return await state_of(session, settings, conversation)


async def _resumable(session: AsyncSession, settings: Settings, token: str | None) -> Conversation | None:
    """The conversation of the browser's own session token, if it still names one."""
    if not token:
        return None
    try:
        return await conversation_for_token(session, settings, token)
    except Unauthorized:
        return None


async def _has_messages(session: AsyncSession, conversation: Conversation) -> bool:
    stmt = select(Message.id).where(Message.conversation_id == conversation.id).limit(1)
    return (await session.execute(stmt)).first() is not None


async def post(
    session: AsyncSession,
    settings: Settings,
    conversation: Conversation,
    data: ChatPost,
    *,
    limiter: RateLimiter,
    wording: AnswerWording | None,
) -> ChatUpdate:
    text = check_message_body(data.text, max_bytes=settings.max_message_bytes)
    client_id = f"{CLIENT_ID_PREFIX}{data.client_message_id}" if data.client_message_id else None
    if client_id is not None:
        replay = await _replay(session, conversation, client_id)
        if replay is not None:
            return replay
    limiter.check(conversation.id)
    meta = {"option": data.option} if data.option else {}
    try:
        mine = await store_message(
            session,
            conversation,
            author_kind=AuthorKind.customer,
            body=text,
            channel_message_id=client_id,
            meta=meta,
        )
    except Conflict:
        # The same client message arrived twice at once: the other request answers it.
        replay = await _replay(session, conversation, client_id or "")
        if replay is None:
            raise
        return replay
    replies = await assistant.respond(session, settings, conversation, text, data.option, wording)
    return ChatUpdate(
        status=conversation.status,
        agent_name=await agent_name(session, conversation),
        messages=await _chat_messages(session, [mine, *replies]),
    )


async def _replay(session: AsyncSession, conversation: Conversation, client_id: str) -> ChatUpdate | None:
    """What was answered to this client message the first time: it, and the replies up to the next one."""
    original = (
        await session.execute(
            select(Message).where(
                Message.tenant_id == conversation.tenant_id,
                Message.channel == conversation.channel,
                Message.channel_message_id == client_id,
            )
        )
    ).scalar_one_or_none()
    if original is None:
        return None
    if original.conversation_id != conversation.id:
        raise Conflict("This message id belongs to another conversation.", code="duplicate_message")
    later = await _messages(session, conversation, after=original)
    answer = [original]
    for message in later:
        if message.author_kind is AuthorKind.customer:
            break
        answer.append(message)
    return ChatUpdate(
        status=conversation.status,
        agent_name=await agent_name(session, conversation),
        messages=await _chat_messages(session, answer),
    )


async def _messages(
    session: AsyncSession, conversation: Conversation, *, after: Message | None = None
) -> list[Message]:
    stmt = select(Message).where(
        Message.tenant_id == conversation.tenant_id, Message.conversation_id == conversation.id
    )
    if after is not None:
        stmt = stmt.where(Message.created_at >= after.created_at, Message.id != after.id)
    stmt = stmt.order_by(Message.created_at, Message.id)
    return list((await session.execute(stmt)).scalars())


async def updates(
    session: AsyncSession, conversation: Conversation, after_id: uuid.UUID | None
) -> ChatUpdate:
    after = None
    if after_id is not None:
        after = await session.get(Message, after_id)
        if after is None or after.conversation_id != conversation.id:
            raise NotFound("Unknown message.", details={"after": str(after_id)})
    return ChatUpdate(
        status=conversation.status,
        agent_name=await agent_name(session, conversation),
        messages=await _chat_messages(session, await _messages(session, conversation, after=after)),
    )


async def state_of(session: AsyncSession, settings: Settings, conversation: Conversation) -> ChatState:
    update = await updates(session, conversation, None)
    return ChatState(
        token=session_token(settings, conversation),
        conversation_id=conversation.id,
        language="en" if conversation.language == "en" else "fr",
        **update.model_dump(),
    )


async def message_for_stream(
    session: AsyncSession, conversation: Conversation, message_id: uuid.UUID
) -> ChatMessage | None:
    message = await session.get(Message, message_id)
    if message is None or message.conversation_id != conversation.id:
        return None
    shown = await _chat_messages(session, [message])
    return shown[0] if shown else None


async def agent_name(session: AsyncSession, conversation: Conversation) -> str | None:
    if conversation.assigned_agent_id is None or conversation.status is not ConversationStatus.assigned:
        return None
    agent = await session.get(User, conversation.assigned_agent_id)
    return _first_name(agent)


def _first_name(user: User | None) -> str | None:
    # Customers see the advisor's first name only.
    return (user.full_name or "").split(" ")[0] or None if user is not None else None


async def _chat_messages(session: AsyncSession, messages: list[Message]) -> list[ChatMessage]:
    agent_ids = {m.author_user_id for m in messages if m.author_user_id is not None}
    names: dict[uuid.UUID, str | None] = {}
    if agent_ids:
        users = (await session.execute(select(User).where(User.id.in_(agent_ids)))).scalars()
        names = {u.id: _first_name(u) for u in users}
    return [
        ChatMessage.of(m, names.get(m.author_user_id) if m.author_user_id else None)
        for m in messages
        if not (m.meta or {}).get("internal")  # an agent's internal note never reaches the customer
    ]
