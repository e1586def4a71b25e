"""Proactive messages: one text (or template) to a list or segment of customers, each on their preferred
channel, never to those who opted out, never during the tenant's quiet hours.

`create_broadcast` writes the send and one row per recipient, and queues the dispatch job. The job works
through the recipients in batches: for each, a conversation on the chosen channel and a message that the
channel's outbound path delivers (`allo.channels`), so its delivery status is the message's. Outage
notices, campaigns and satisfaction surveys send through here.
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Select, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from allo.audit.service import record_by
from allo.auth.principal import Principal
from allo.channels import service as channels
from allo.conversations.service import DELIVERED_CHANNELS, store_message
from allo.customers.service import address_on
from allo.kit import jobs
from allo.kit.errors import NotFound, Unprocessable
from allo.kit.time import utc_now
from allo.models import (
    Broadcast,
    BroadcastRecipient,
    ChannelAccount,
    Conversation,
    Customer,
    CustomerIdentity,
    Job,
    Message,
)
from allo.models.enums import (
    AuthorKind,
    BroadcastState,
    Channel,
    ConversationStatus,
    JobStatus,
    MessageDelivery,
    RecipientState,
)
from allo.proactive.schemas import Audience, BroadcastCreate, BroadcastReport
from allo.tenants import service as tenants
from allo.tenants.schemas import TenantPolicy

DISPATCH_KIND = "proactive.dispatch"
MAX_AUDIENCE = 200_000


def _audience_query(tenant_id: uuid.UUID, audience: Audience) -> Select[uuid.UUID]:
    stmt = select(Customer.id).where(Customer.tenant_id == tenant_id)
    if audience.customer_ids is not None:
        stmt = stmt.where(Customer.id.in_(audience.customer_ids))
    if audience.segment is not None:
        stmt = stmt.where(Customer.segment == audience.segment)
    if audience.vip is not None:
        stmt = stmt.where(Customer.vip == audience.vip)
    if audience.language is not None:
        stmt = stmt.where(Customer.preferred_language == audience.language)
    if audience.area is not None:
        stmt = stmt.where(Customer.area == audience.area)
    return stmt.order_by(Customer.created_at, Customer.id)


async def create_broadcast(session: AsyncSession, principal: Principal, data: BroadcastCreate) -> Broadcast:
    policy = tenants.policy_of(await tenants.get_or_raise(session, principal.tenant_id))
    if policy.default_language not in data.texts:
        raise Unprocessable(
            f"A text in the tenant's default language ({policy.default_language}) is needed: "
            "customers of other languages fall back to it.",
            code="default_text_missing",
        )
    channel = None if data.channel == "preferred" else Channel(data.channel)
    if channel is not None and channel not in DELIVERED_CHANNELS:
        raise Unprocessable(
            f"Allo cannot write first on {channel.value}.",
            code="channel_not_proactive",
            details={"channels": sorted(c.value for c in DELIVERED_CHANNELS)},
        )
    ids = list(
        (
            await session.execute(_audience_query(principal.tenant_id, data.audience).limit(MAX_AUDIENCE + 1))
        ).scalars()
    )
    if data.audience.customer_ids is not None:
        unknown = set(data.audience.customer_ids) - set(ids)
        if unknown and not any(
            v is not None
            for v in (data.audience.segment, data.audience.vip, data.audience.language, data.audience.area)
        ):
            raise NotFound(
                "Some customers are not known here.",
                code="unknown_customers",
                details={"customer_ids": sorted(str(i) for i in unknown)[:20]},
            )
    if not ids:
        raise Unprocessable("No customer matches this audience.", code="empty_audience")
    if len(ids) > MAX_AUDIENCE:
        raise Unprocessable(
            f"The audience is over {MAX_AUDIENCE} customers; split it.", code="audience_too_large"
        )
    broadcast = Broadcast(
        tenant_id=principal.tenant_id,
        name=data.name,
        channel=channel,
        texts=data.texts,
        template=data.template.model_dump() if data.template else None,
        audience=data.audience.model_dump(mode="json", exclude_none=True),
        respect_quiet_hours=data.respect_quiet_hours,
        purpose=data.purpose,
        total=len(ids),
        created_by=principal.user_id,
    )
    session.add(broadcast)
    await session.flush()
    now = utc_now()
    rows = [
        {
            "id": uuid.uuid4(),
            "tenant_id": principal.tenant_id,
            "broadcast_id": broadcast.id,
            "customer_id": customer_id,
            "state": RecipientState.pending,
            "created_at": now,
            "updated_at": now,
        }
        for customer_id in ids
    ]
    for start in range(0, len(rows), 5000):
        await session.execute(insert(BroadcastRecipient), rows[start : start + 5000])
    await _queue_dispatch(session, broadcast, now, step="start")
    await record_by(
        session,
        principal,
        "broadcast.create",
        "broadcast",
        broadcast.id,
        {"total": len(ids), "purpose": data.purpose},
    )
    return broadcast


async def _queue_dispatch(session: AsyncSession, broadcast: Broadcast, at: datetime, *, step: str) -> None:
    """The next run of the send; `step` names it, so that a run retried queues its successor once."""
    await jobs.enqueue(
        session,
        DISPATCH_KIND,
        {"broadcast_id": str(broadcast.id)},
        tenant_id=broadcast.tenant_id,
        run_at=at,
        idempotency_key=f"{DISPATCH_KIND}:{broadcast.id}:{step}",
        max_attempts=5,
    )


def quiet_until(policy: TenantPolicy, at: datetime) -> datetime | None:
    """The end of the quiet hours when `at` falls in them (in the tenant's time zone), else None."""
    zone = ZoneInfo(policy.business_hours.timezone)
    local = at.astimezone(zone)
    start = time.fromisoformat(policy.proactive.quiet_hours_start)
    end = time.fromisoformat(policy.proactive.quiet_hours_end)
    now = local.time()
    if start == end:
        return None
    inside = (start <= now or now < end) if start > end else (start <= now < end)
    if not inside:
        return None
    end_day = local.date() + timedelta(days=1) if start > end and now >= start else local.date()
    return datetime.combine(end_day, end, tzinfo=zone)


async def dispatch(session: AsyncSession, broadcast_id: uuid.UUID) -> None:
    """One batch of recipients; the next batch is queued until none is left."""
    broadcast = await session.get(Broadcast, broadcast_id)
    if broadcast is None or broadcast.state in (BroadcastState.done, BroadcastState.cancelled):
        return
    policy = tenants.policy_of(await tenants.get_or_raise(session, broadcast.tenant_id))
    now = utc_now()
    if broadcast.respect_quiet_hours:
        resume = quiet_until(policy, now)
        if resume is not None:
            broadcast.state = BroadcastState.paused
            await _queue_dispatch(session, broadcast, resume, step=f"resume:{resume.isoformat()}")
            return
    broadcast.state = BroadcastState.running
    batch = (
        (
            await session.execute(
                select(BroadcastRecipient)
                .where(
                    BroadcastRecipient.broadcast_id == broadcast.id,
                    BroadcastRecipient.state == RecipientState.pending,
                )
                .order_by(BroadcastRecipient.created_at, BroadcastRecipient.id)
                .limit(policy.proactive.batch_size)
            )
        )
        .scalars()
        .all()
    )
    # The batch's customers in one query, and each channel's account looked up once.
    customers = {
        c.id: c
        for c in (
            await session.execute(select(Customer).where(Customer.id.in_([r.customer_id for r in batch])))
        ).scalars()
    }
    accounts: dict[Channel, ChannelAccount | None] = {}
    for recipient in batch:
        await _send_to(session, broadcast, recipient, policy, customers.get(recipient.customer_id), accounts)
    if len(batch) == policy.proactive.batch_size:
        await _queue_dispatch(session, broadcast, now, step=f"after:{batch[-1].id}")
    else:
        broadcast.state = BroadcastState.done
        broadcast.finished_at = now


async def preferred_channel(session: AsyncSession, customer: Customer) -> Channel | None:
    """The channel the customer chose, else the one they last wrote on, else SMS or e-mail if known."""
    if customer.preferred_channel in DELIVERED_CHANNELS:
        return customer.preferred_channel
    last = (
        await session.execute(
            select(Conversation.channel)
            .where(
                Conversation.tenant_id == customer.tenant_id,
                Conversation.customer_id == customer.id,
                Conversation.channel.in_(DELIVERED_CHANNELS),
            )
            .order_by(Conversation.created_at.desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    if last is not None:
        return last
    if customer.phone:
        return Channel.sms
    if customer.email:
        return Channel.email
    return None


async def _address(session: AsyncSession, customer: Customer, channel: Channel) -> str | None:
    known = address_on(customer, channel)
    if known:
        return known
    return (
        await session.execute(
            select(CustomerIdentity.external_id)
            .where(
                CustomerIdentity.tenant_id == customer.tenant_id,
                CustomerIdentity.customer_id == customer.id,
                CustomerIdentity.channel == channel,
            )
            .order_by(CustomerIdentity.created_at.desc())
            .limit(1)
        )
    ).scalar_one_or_none()


def _skip(recipient: BroadcastRecipient, reason: str) -> None:
    recipient.state = RecipientState.skipped
    recipient.reason = reason


async def _send_to(
    session: AsyncSession,
    broadcast: Broadcast,
    recipient: BroadcastRecipient,
    policy: TenantPolicy,
    customer: Customer | None,
    accounts: dict[Channel, ChannelAccount | None],
) -> None:
    if customer is None:
        _skip(recipient, "customer_deleted")
        return
    channel = broadcast.channel or await preferred_channel(session, customer)
    if channel is None:
        _skip(recipient, "no_channel")
        return
    recipient.channel = channel
    if channel not in accounts:
        accounts[channel] = await channels.default_account(session, broadcast.tenant_id, channel)
    account = accounts[channel]
    if account is None:
        _skip(recipient, "no_account")
        return
    address = await _address(session, customer, channel)
    if not address:
        _skip(recipient, "no_address")
        return
    recipient.address = address
    if await channels.opted_out(session, broadcast.tenant_id, channel, address):
        _skip(recipient, "opted_out")
        return
    language = (
        customer.preferred_language
        if customer.preferred_language in broadcast.texts
        else policy.default_language
    )
    text = broadcast.texts[language].replace("{name}", customer.name or "").strip()
    now = utc_now()
    # Closed from the start: a customer who answers reopens it and the assistant takes the turn.
    conversation = Conversation(
        tenant_id=broadcast.tenant_id,
        customer_id=customer.id,
        channel=channel,
        language=language,
        subject=broadcast.name[:300],
        channel_account_id=account.id,
        contact_address=address,
        status=ConversationStatus.resolved,
        resolved_at=now,
    )
    session.add(conversation)
    await session.flush()
    meta: dict[str, object] = {"deliver": True, "kind": "proactive", "broadcast_id": str(broadcast.id)}
    if broadcast.template and channel is Channel.whatsapp:
        meta["template"] = broadcast.template
    message = await store_message(session, conversation, author_kind=AuthorKind.system, body=text, meta=meta)
    recipient.state = RecipientState.queued
    recipient.message_id = message.id


async def report(session: AsyncSession, broadcast: Broadcast) -> BroadcastReport:
    rows = await session.execute(
        select(BroadcastRecipient.state, BroadcastRecipient.reason, Message.delivery_status, func.count())
        .outerjoin(Message, Message.id == BroadcastRecipient.message_id)
        .where(BroadcastRecipient.broadcast_id == broadcast.id)
        .group_by(BroadcastRecipient.state, BroadcastRecipient.reason, Message.delivery_status)
    )
    skipped: Counter[str] = Counter()
    delivery: Counter[MessageDelivery] = Counter()
    pending = queued = 0
    for state, reason, status, count in rows.all():
        if state is RecipientState.pending:
            pending += count
        elif state is RecipientState.skipped:
            skipped[reason or "unknown"] += count
        else:
            queued += count
            delivery[status or MessageDelivery.queued] += count
    return BroadcastReport(
        total=broadcast.total,
        pending=pending,
        skipped=dict(skipped),
        queued=delivery[MessageDelivery.queued],
        sent=delivery[MessageDelivery.sent],
        delivered=delivery[MessageDelivery.delivered],
        read=delivery[MessageDelivery.read],
        failed=delivery[MessageDelivery.failed],
    )


async def stalled(session: AsyncSession, broadcast: Broadcast) -> bool:
    """Recipients wait but no dispatch job will run for them (it died): an operator must look."""
    if broadcast.state in (BroadcastState.done, BroadcastState.cancelled):
        return False
    waiting = await session.execute(
        select(Job.id)
        .where(
            Job.kind == DISPATCH_KIND,
            Job.status.in_([JobStatus.queued, JobStatus.running]),
            Job.idempotency_key.like(f"{DISPATCH_KIND}:{broadcast.id}:%"),
        )
        .limit(1)
    )
    return waiting.first() is None


async def cancel(session: AsyncSession, principal: Principal, broadcast: Broadcast) -> None:
    """Stop before the next batch; messages already handed to channels go on."""
    if broadcast.state in (BroadcastState.done, BroadcastState.cancelled):
        return
    broadcast.state = BroadcastState.cancelled
    broadcast.finished_at = utc_now()
    await record_by(session, principal, "broadcast.cancel", "broadcast", broadcast.id)
