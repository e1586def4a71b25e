"""Customers' messages of a batch of inbound events, stored with a handful of statements for the batch.

The common case of a busy channel: plain messages from customers Allo knows, in conversations that are
open, and from phone numbers it has never seen. Identities and conversations are read with one query
each; new customers with their identities, messages and the assistant's turns are inserted with one
statement each. What is not that common case goes the way of one event at a time
(`service.process_event`): a known number on a new channel, an e-mail thread, a digit answering a
numbered question, STOP and START, a delivery report.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from allo.channels import reading
from allo.channels.base import InboundItem
from allo.conversations.service import (
    BOT_HANDLES,
    announce_conversation,
    announce_message,
    queue_assistant_turns,
)
from allo.customers import service as customers
from allo.kit.db import is_postgresql, table_of
from allo.kit.errors import AppError
from allo.kit.time import utc_now
from allo.models import ChannelAccount, ChannelEvent, Conversation, Customer, CustomerIdentity, Message
from allo.models.enums import AuthorKind, Channel, ChannelEventState, ConversationStatus, Direction
from allo.tenants.schemas import TenantPolicy


@dataclass
class Pending:
    event: ChannelEvent
    account: ChannelAccount
    item: InboundItem
    address: str = ""


def takes(item: InboundItem, account: ChannelAccount) -> bool:
    """Whether the event is the common case this module stores in bulk."""
    if item.kind != "message" or not item.sender or account.channel is Channel.email or item.replies_to:
        return False
    if not item.option and reading.number_in(item.text) is not None:
        return False  # may answer a numbered question: read with its conversation
    return reading.keyword_in(account.channel, item.text) is None


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
    known.update(
        await _record_new_senders(
            session, tenant_id, policy, [p for p in ready if (p.account.channel, p.address) not in known]
        )
    )
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
            left.append(pending)  # a known number new on this channel, say: the one-at-a-time path
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
        announce_conversation(session, conversation)
    for row, (_, conversation, _) in zip(rows, placed, strict=True):
        row["conversation_id"] = conversation.id
    dialect_insert = postgresql.insert if is_postgresql(session) else sqlite.insert
    inserted = set(
        (
            await session.execute(
                dialect_insert(table_of(Message))
                .on_conflict_do_nothing(index_elements=["tenant_id", "channel", "channel_message_id"])
                .returning(table_of(Message).c.id),
                rows,
            )
        ).scalars()
    )
    replies: list[uuid.UUID] = []
    for pending, conversation, message_id in placed:
        pending.event.state = ChannelEventState.processed
        pending.event.processed_at = now
        if message_id not in inserted:
            continue  # the same provider message came through another event: already stored
        pending.event.message_id = message_id
        announce_message(session, conversation, message_id, AuthorKind.customer)
        if conversation.status in BOT_HANDLES:
            replies.append(message_id)
    await queue_assistant_turns(session, tenant_id, replies)
    return left


def _message_row(
    pending: Pending, conversation: Conversation, message_id: uuid.UUID, at: Any
) -> dict[str, Any]:
    item = pending.item
    return {
        "id": message_id,
        "tenant_id": conversation.tenant_id,
        "conversation_id": None,  # set once the new conversations have their ids
        "channel": pending.account.channel,
        "direction": Direction.inbound,
        "author_kind": AuthorKind.customer,
        "body": reading.body_of(item),
        "channel_message_id": item.external_id[:255],
        "meta": reading.meta_of(item, pending.event, item.option),
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


async def _record_new_senders(
    session: AsyncSession, tenant_id: uuid.UUID, policy: TenantPolicy, batch: list[Pending]
) -> dict[tuple[Channel, str], tuple[uuid.UUID, str]]:
    """Customers for the phone numbers Allo has never seen, with their identities, in two inserts:
    (channel, number) → (customer id, language), as `_customers_by_identity`.

    A number that belongs to a customer already (known by SMS, writing on WhatsApp for the first time)
    is left to `customers.customer_for_contact`, one at a time, which also fills their name."""
    senders: dict[str, list[Pending]] = {}
    for pending in batch:
        if pending.account.channel in customers.PHONE_CHANNELS:
            senders.setdefault(pending.address, []).append(pending)
    if not senders:
        return {}
    taken = set(
        (
            await session.execute(
                select(Customer.phone).where(Customer.tenant_id == tenant_id, Customer.phone.in_(senders))
            )
        ).scalars()
    )
    now = utc_now()
    rows = [
        {
            "id": uuid.uuid4(),
            "tenant_id": tenant_id,
            "phone": number,
            "name": _first_name(found),
            "preferred_language": policy.default_language,
            "created_at": now,
            "updated_at": now,
        }
        for number, found in senders.items()
        if number not in taken
    ]
    if not rows:
        return {}
    dialect_insert = postgresql.insert if is_postgresql(session) else sqlite.insert
    # A concurrent run (PostgreSQL) may record one of these numbers first: its row is skipped here and
    # the message goes the one-at-a-time way.
    inserted = await session.execute(
        dialect_insert(table_of(Customer))
        .on_conflict_do_nothing(index_elements=["tenant_id", "phone"])
        .returning(table_of(Customer).c.phone, table_of(Customer).c.id),
        rows,
    )
    created: dict[str, uuid.UUID] = {phone: customer_id for phone, customer_id in inserted.all()}
    identities = {
        (p.account.channel, number): customer_id
        for number, customer_id in created.items()
        for p in senders[number]
    }
    await session.execute(
        dialect_insert(table_of(CustomerIdentity)),
        [
            {
                "id": uuid.uuid4(),
                "tenant_id": tenant_id,
                "customer_id": customer_id,
                "channel": channel,
                "external_id": number,
                "created_at": now,
            }
            for (channel, number), customer_id in identities.items()
        ],
    )
    return {key: (customer_id, policy.default_language) for key, customer_id in identities.items()}


def _first_name(batch: list[Pending]) -> str | None:
    """The name the provider gives the sender (a WhatsApp profile name), from the first message that
    has one."""
    return next((name for p in batch if (name := customers.name_given(p.item.sender_name))), None)


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
    # Only the latest per customer and account comes back, however long their history.
    ranked = (
        select(
            Conversation.id,
            func.row_number()
            .over(
                partition_by=(Conversation.customer_id, Conversation.channel_account_id),
                order_by=Conversation.created_at.desc(),
            )
            .label("rank"),
        )
        .where(
            Conversation.tenant_id == tenant_id,
            Conversation.customer_id.in_(customer_ids),
            Conversation.channel_account_id.in_(account_ids),
            Conversation.status != ConversationStatus.abandoned,
        )
        .subquery()
    )
    rows = await session.execute(
        select(Conversation).join(ranked, ranked.c.id == Conversation.id).where(ranked.c.rank == 1)
    )
    latest: dict[tuple[uuid.UUID, uuid.UUID], Conversation] = {}
    for conversation in rows.scalars():
        assert conversation.channel_account_id is not None
        if continues(conversation, continue_within):
            latest[(conversation.customer_id, conversation.channel_account_id)] = conversation
    return latest


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
