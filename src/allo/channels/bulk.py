"""Customers' messages of a batch of inbound events, stored with a handful of statements for the batch.

The common case of a busy channel: plain messages from customers Allo knows, in conversations that are
open. Their identities and conversations are read with one query each, their messages and the
assistant's turns are inserted with one statement each. What is not that common case goes the way of one
event at a time (`service.process_event`): a new number, an e-mail thread, a digit answering a numbered
question, STOP and START, a delivery report.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from allo.channels.base import InboundItem
from allo.conversations.service import ASSISTANT_REPLY_KIND, REASSESS_KIND
from allo.customers import service as customers
from allo.kit import jobs
from allo.kit.bus import Event, publish_on_commit
from allo.kit.db import is_postgresql, table_of
from allo.kit.errors import AppError
from allo.kit.time import utc_now
from allo.models import ChannelAccount, ChannelEvent, Conversation, Customer, CustomerIdentity, Message
from allo.models.enums import AuthorKind, Channel, ChannelEventState, ConversationStatus, Direction
from allo.tenants.schemas import TenantPolicy

_BOT_HANDLES = (ConversationStatus.bot, ConversationStatus.resolved)
_WITH_HUMANS = (ConversationStatus.queued, ConversationStatus.assigned)


@dataclass
class Pending:
    event: ChannelEvent
    account: ChannelAccount
    item: InboundItem
    address: str = ""


def takes(item: InboundItem, account: ChannelAccount, keywords: frozenset[str]) -> bool:
    """Whether the event is the common case this module stores in bulk."""
    if item.kind != "message" or not item.sender or account.channel is Channel.email or item.replies_to:
        return False
    text = (item.text or "").strip()
    if not item.option and text.rstrip(".)").isdigit():
        return False  # may answer a numbered question: read with its conversation
    return account.channel is not Channel.sms or text.upper().rstrip(".! ") not in keywords


async def store(
    session: AsyncSession, policy: TenantPolicy, batch: list[Pending], continue_within: timedelta
) -> list[Pending]:
    """Store what it can of the batch; returns the events left for the one-at-a-time path."""
    left: list[Pending] = []
    ready: list[Pending] = []
    for pending in batch:
        try:
            pending.address = await customers.contact_address(
                session,
                pending.account.tenant_id,
                pending.account.channel,
                pending.item.sender or "",
                policy=policy,
            )
        except AppError as exc:
            pending.event.state = ChannelEventState.failed
            pending.event.error = f"{exc.code}: {exc.message}"[:1000]
            pending.event.processed_at = utc_now()
            continue
        ready.append(pending)
    if not ready:
        return left
    tenant_id = ready[0].account.tenant_id
    known = await _customers_by_identity(session, tenant_id, ready)
    conversations = await _open_conversations(
        session,
        tenant_id,
        {customer for customer, _ in known.values()},
        {p.account.id for p in ready},
        continue_within,
    )
    rows: list[dict[str, Any]] = []
    placed: list[tuple[Pending, Conversation, uuid.UUID]] = []
    opened: list[Conversation] = []
    now = utc_now()
    for pending in ready:
        found = known.get((pending.account.channel, pending.address))
        if found is None:
            left.append(pending)  # a number Allo has not seen: the one-at-a-time path creates the customer
            continue
        customer_id, language = found
        key = (customer_id, pending.account.id)
        conversation = conversations.get(key)
        if conversation is None:
            conversation = Conversation(
                tenant_id=tenant_id,
                customer_id=customer_id,
                channel=pending.account.channel,
                language=language,
                channel_account_id=pending.account.id,
                contact_address=pending.address,
            )
            session.add(conversation)
            conversations[key] = conversation
            opened.append(conversation)
        message_id = uuid.uuid4()
        # When it arrived, as the one-at-a-time path stores it: the conversation reads in order.
        at = pending.event.created_at
        rows.append(_message_row(pending, conversation, message_id, at))
        placed.append((pending, conversation, message_id))
        conversation.last_message_at = max(at, conversation.last_message_at or at)
        conversation.contact_address = pending.address
    if not rows:
        return left
    await session.flush()  # the new conversations get their ids
    for conversation in opened:
        publish_on_commit(
            session, Event("conversation.created", tenant_id, {"conversation_id": str(conversation.id)})
        )
    for row, (_, conversation, _) in zip(rows, placed, strict=True):
        row["conversation_id"] = conversation.id
    dialect_insert = postgresql.insert if is_postgresql(session) else sqlite.insert
    inserted = set(
        (
            await session.execute(
                dialect_insert(table_of(Message))
                .values(rows)
                .on_conflict_do_nothing(index_elements=["tenant_id", "channel", "channel_message_id"])
                .returning(table_of(Message).c.id)
            )
        ).scalars()
    )
    replies: list[tuple[dict[str, Any], str]] = []
    for pending, conversation, message_id in placed:
        pending.event.state = ChannelEventState.processed
        pending.event.processed_at = now
        if message_id not in inserted:
            continue  # the same provider message came through another event: already stored
        pending.event.message_id = message_id
        publish_on_commit(
            session,
            Event(
                "message.created",
                tenant_id,
                {
                    "conversation_id": str(conversation.id),
                    "message_id": str(message_id),
                    "author_kind": AuthorKind.customer.value,
                },
            ),
        )
        if conversation.status in _BOT_HANDLES:
            replies.append(({"message_id": str(message_id)}, f"{ASSISTANT_REPLY_KIND}:{message_id}"))
        elif conversation.status in _WITH_HUMANS:
            jobs.enqueue_on_commit(
                session, REASSESS_KIND, {"message_id": str(message_id)}, tenant_id=tenant_id, max_attempts=3
            )
    await jobs.enqueue_many(session, ASSISTANT_REPLY_KIND, replies, tenant_id=tenant_id, max_attempts=3)
    return left


def _message_row(
    pending: Pending, conversation: Conversation, message_id: uuid.UUID, at: Any
) -> dict[str, Any]:
    item = pending.item
    meta: dict[str, Any] = {"event_id": str(pending.event.id)}
    if item.option:
        meta["option"] = item.option
    if item.media:
        meta["media"] = [m.as_dict() for m in item.media]
    if item.sender_name:
        meta["sender_name"] = item.sender_name
    text = item.text if item.text.strip() else " ".join(f"[{m.kind}]" for m in item.media) or "[—]"
    return {
        "id": message_id,
        "tenant_id": conversation.tenant_id,
        "conversation_id": None,  # set once the new conversations have their ids
        "channel": pending.account.channel,
        "direction": Direction.inbound,
        "author_kind": AuthorKind.customer,
        "body": text,
        "channel_message_id": item.external_id[:255],
        "meta": meta,
        "created_at": at,
    }


async def _customers_by_identity(
    session: AsyncSession, tenant_id: uuid.UUID, batch: list[Pending]
) -> dict[tuple[Channel, str], tuple[uuid.UUID, str]]:
    """(channel, address) → (customer id, their language), for the identities Allo already has."""
    wanted = {(p.account.channel, p.address) for p in batch}
    rows = await session.execute(
        select(
            CustomerIdentity.channel,
            CustomerIdentity.external_id,
            CustomerIdentity.customer_id,
            Customer.preferred_language,
        )
        .join(Customer, Customer.id == CustomerIdentity.customer_id)
        .where(
            CustomerIdentity.tenant_id == tenant_id,
            CustomerIdentity.external_id.in_({address for _, address in wanted}),
        )
    )
    return {
        (channel, address): (customer, language)
        for channel, address, customer, language in rows.all()
        if (channel, address) in wanted
    }


async def _open_conversations(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    customer_ids: set[uuid.UUID],
    account_ids: set[uuid.UUID],
    continue_within: timedelta,
) -> dict[tuple[uuid.UUID, uuid.UUID], Conversation]:
    """Each customer's latest conversation on each account, when the next message continues it."""
    if not customer_ids:
        return {}
    rows = await session.execute(
        select(Conversation)
        .where(
            Conversation.tenant_id == tenant_id,
            Conversation.customer_id.in_(customer_ids),
            Conversation.channel_account_id.in_(account_ids),
            Conversation.status != ConversationStatus.abandoned,
        )
        .order_by(Conversation.created_at.desc())
    )
    latest: dict[tuple[uuid.UUID, uuid.UUID], Conversation] = {}
    for conversation in rows.scalars():
        assert conversation.channel_account_id is not None
        latest.setdefault((conversation.customer_id, conversation.channel_account_id), conversation)
    return {key: c for key, c in latest.items() if continues(c, continue_within)}


def continues(conversation: Conversation, within: timedelta) -> bool:
    """The customer's next message belongs to this conversation: it is open, or closed less than
    `within` ago (a "thank you" after the answer)."""
    if conversation.status in (
        ConversationStatus.bot,
        ConversationStatus.queued,
        ConversationStatus.assigned,
    ):
        return True
    last = conversation.last_message_at or conversation.created_at
    return conversation.status is ConversationStatus.resolved and last > utc_now() - within
