"""One customer's story on every channel: each message in and out, each ticket, satisfaction answer and
public post, newest first, in pages.

Each kind of record is read with the same keyset (created_at, id) and the pages are merged: a page holds
the `limit` newest entries of all kinds before the cursor, so nothing is skipped or repeated between pages.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from allo.kit.pagination import PageParams, apply_keyset, encode_cursor
from allo.models import Conversation, CsatResponse, Customer, Message, SocialPost, Ticket
from allo.models.enums import Channel, MessageDelivery
from allo.models.ticket import ticket_reference

PREVIEW_CHARS = 2000


class TimelineItem(BaseModel):
    kind: Literal["message", "ticket", "csat", "social_post"]
    id: uuid.UUID
    at: datetime
    channel: Channel | None = None
    conversation_id: uuid.UUID | None = None
    ticket_id: uuid.UUID | None = None
    direction: str | None = None
    author_kind: str | None = None
    author_user_id: uuid.UUID | None = None
    text: str = ""
    internal: bool = False
    delivery_status: MessageDelivery | None = None
    delivery_error: str | None = None
    status: str | None = None
    reference: str | None = None
    score: int | None = None
    url: str | None = None


class Timeline(BaseModel):
    customer_id: uuid.UUID
    items: list[TimelineItem]
    next_cursor: str | None = None


async def timeline(
    session: AsyncSession, customer: Customer, page: PageParams, *, channel: Channel | None = None
) -> Timeline:
    tenant_id = customer.tenant_id
    messages = (
        select(Message)
        .join(Conversation, Conversation.id == Message.conversation_id)
        .where(Message.tenant_id == tenant_id, Conversation.customer_id == customer.id)
    )
    if channel is not None:
        messages = messages.where(Message.channel == channel)
    entries: list[TimelineItem] = [
        _message(m)
        for m in (
            await session.execute(apply_keyset(messages, page, Message.created_at, Message.id))
        ).scalars()
    ]
    if channel is None:
        tickets = select(Ticket).where(Ticket.tenant_id == tenant_id, Ticket.customer_id == customer.id)
        entries += [
            TimelineItem(
                kind="ticket",
                id=t.id,
                at=t.created_at,
                ticket_id=t.id,
                conversation_id=t.conversation_id,
                text=t.subject,
                status=t.status.value,
                reference=ticket_reference(t.number),
            )
            for t in (
                await session.execute(apply_keyset(tickets, page, Ticket.created_at, Ticket.id))
            ).scalars()
        ]
    csat = select(CsatResponse).where(
        CsatResponse.tenant_id == tenant_id, CsatResponse.customer_id == customer.id
    )
    if channel is not None:
        csat = csat.where(CsatResponse.channel == channel)
    entries += [
        TimelineItem(
            kind="csat",
            id=r.id,
            at=r.created_at,
            channel=r.channel,
            conversation_id=r.conversation_id,
            ticket_id=r.ticket_id,
            score=r.score,
            text=r.comment or "",
        )
        for r in (
            await session.execute(apply_keyset(csat, page, CsatResponse.created_at, CsatResponse.id))
        ).scalars()
    ]
    if channel in (None, Channel.mastodon):
        posts = select(SocialPost).where(
            SocialPost.tenant_id == tenant_id, SocialPost.customer_id == customer.id
        )
        entries += [
            TimelineItem(
                kind="social_post",
                id=p.id,
                at=p.created_at,
                channel=Channel.mastodon,
                conversation_id=p.conversation_id,
                ticket_id=p.ticket_id,
                text=p.text[:PREVIEW_CHARS],
                status=p.reply_state.value,
                url=p.url,
            )
            for p in (
                await session.execute(apply_keyset(posts, page, SocialPost.created_at, SocialPost.id))
            ).scalars()
        ]
    entries.sort(key=lambda e: (e.at, e.id.int), reverse=True)
    next_cursor = None
    if len(entries) > page.limit:
        entries = entries[: page.limit]
        next_cursor = encode_cursor(entries[-1].at, entries[-1].id)
    return Timeline(customer_id=customer.id, items=entries, next_cursor=next_cursor)


def _message(message: Message) -> TimelineItem:
    meta: dict[str, Any] = message.meta or {}
    return TimelineItem(
        kind="message",
        id=message.id,
        at=message.created_at,
        channel=message.channel,
        conversation_id=message.conversation_id,
        direction=message.direction.value,
        author_kind=message.author_kind.value,
        author_user_id=message.author_user_id,
        text=message.body[:PREVIEW_CHARS],
        internal=bool(meta.get("internal")),
        delivery_status=message.delivery_status,
        delivery_error=message.delivery_error,
    )
