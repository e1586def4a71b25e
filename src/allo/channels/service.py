"""Channel accounts, and the path every channel shares.

Inbound, always four steps: the adapter verifies the request (`read_request`) → each item is stored as a
raw event, unique on (channel, provider id) → a processing run is queued (`accept`) → the provider gets
its 2xx. The run (`process_pending`) finds the customers and conversations, stores the messages and hands
them to the assistant, in bulk for the common case (`bulk`) and one at a time for the rest
(`process_event`); a delivery report moves the outbound message's status forward.

Outbound (`deliver`): a bot or agent message on an external channel is queued by
`conversations.service.store_message`; the job renders it for the channel, checks opt-outs and the
customer-service window, and hands it to the provider. 429 and 5xx are retried with backoff; after the
last attempt the message is marked failed (`give_up`).
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import orjson
from pydantic import BaseModel, ValidationError
from sqlalchemy import delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from allo.audit.service import record_by
from allo.auth.principal import Principal
from allo.channels import bulk, reading
from allo.channels.base import (
    Account,
    ChannelAdapter,
    InboundItem,
    InboundRequest,
    MalformedPayload,
    Option,
    Outgoing,
    ProviderRejected,
    SignatureInvalid,
    Template,
)
from allo.channels.registry import adapter_for
from allo.channels.repository import ChannelAccountRepository
from allo.channels.schemas import ChannelAccountCreate, ChannelAccountUpdate
from allo.config import Settings
from allo.conversations.service import (
    DELIVERED_CHANNELS,
    announce_conversation,
    queue_assistant_turn,
    store_message,
)
from allo.customers import service as customers
from allo.i18n import N_, gettext_for
from allo.kit import jobs
from allo.kit.bus import Event, publish_on_commit
from allo.kit.crypto import decrypt_secret, encrypt_secret
from allo.kit.db import is_postgresql, table_of
from allo.kit.errors import AppError, Conflict, NotFound, Unprocessable
from allo.kit.time import utc_now
from allo.models import ChannelAccount, ChannelEvent, Conversation, Customer, Message, OptOut
from allo.models.enums import (
    AuthorKind,
    Channel,
    ChannelEventKind,
    ChannelEventState,
    ConversationStatus,
    MessageDelivery,
)
from allo.tenants import service as tenants
from allo.tenants.schemas import TenantPolicy

logger = logging.getLogger(__name__)

INBOUND_KIND = "channels.inbound"
HOOK_PATH = "/api/v1/channels/hooks"
# A conversation answered and closed less than this long ago is continued by the customer's next
# message; after it, the next message opens a new conversation.
CONTINUE_WITHIN = timedelta(hours=24)
OPTED_OUT = N_(
    "You will no longer receive messages from us on this number. Reply START to receive them again."
)
OPTED_IN = N_("You will receive our messages again on this number. Reply STOP to stop them.")
CHOOSE_BY_NUMBER = N_("Reply with the number of your choice.")
_MAX_RAW_BODY = 64 * 1024


class BadSignature(AppError):
    status_code = 401
    code = "bad_signature"


class StorageFailed(AppError):
    """The event could not be stored: the provider gets a 503 and sends it again."""

    status_code = 503
    code = "storage_failed"


class MalformedEvent(AppError):
    status_code = 400
    code = "malformed_payload"


# ----- accounts


def _validated(model: type[BaseModel], values: dict[str, Any], what: str) -> dict[str, Any]:
    try:
        return model.model_validate(values).model_dump(mode="json", exclude_none=True)
    except ValidationError as exc:
        raise Unprocessable(
            f"The account's {what} are not valid for this provider.",
            code="invalid_account",
            details={
                what: [
                    {"field": ".".join(str(p) for p in e["loc"]), "problem": e["msg"]} for e in exc.errors()
                ]
            },
        ) from exc


def _adapter_for_channel(provider: str, channel: Channel) -> ChannelAdapter:
    adapter = adapter_for(provider)
    if adapter.channel is not channel:
        raise Unprocessable(
            f"The provider {provider!r} serves the {adapter.channel.value} channel, not {channel.value}.",
            code="provider_channel_mismatch",
        )
    return adapter


def account_view(settings: Settings, account: ChannelAccount) -> Account:
    secrets: dict[str, str] = {}
    if account.secrets_encrypted:
        secrets = orjson.loads(decrypt_secret(settings, account.secrets_encrypted))
    return Account(
        id=str(account.id),
        tenant_id=str(account.tenant_id),
        address=account.address,
        settings=dict(account.settings or {}),
        secrets=secrets,
    )


def secret_names(settings: Settings, account: ChannelAccount) -> list[str]:
    return sorted(account_view(settings, account).secrets)


def hook_url(settings: Settings, account_id: uuid.UUID) -> str:
    return f"{settings.public_base_url.rstrip('/')}{HOOK_PATH}/{account_id}"


async def _clear_other_defaults(session: AsyncSession, account: ChannelAccount) -> None:
    if not account.is_default:
        return
    repo = ChannelAccountRepository(session, account.tenant_id)
    others = await session.execute(repo.filtered(channel=account.channel).where(ChannelAccount.is_default))
    for other in others.scalars():
        if other.id != account.id:
            other.is_default = False


async def create_account(
    session: AsyncSession, principal: Principal, settings: Settings, data: ChannelAccountCreate
) -> ChannelAccount:
    adapter = _adapter_for_channel(data.provider, data.channel)
    repo = ChannelAccountRepository(session, principal.tenant_id)
    first = not await repo.defaults(data.channel)
    account = repo.add(
        ChannelAccount(
            channel=data.channel,
            provider=data.provider,
            name=data.name,
            address=data.address.strip(),
            settings=_validated(adapter.settings_model, data.settings, "settings"),
            secrets_encrypted=encrypt_secret(
                settings, orjson.dumps(_validated(adapter.secrets_model, data.secrets, "secrets")).decode()
            ),
            active=data.active,
            # The first account of a channel is where proactive messages leave from, until told otherwise.
            is_default=data.is_default if data.is_default is not None else first,
        )
    )
    await _flush_account(session)
    await _clear_other_defaults(session, account)
    await record_by(
        session,
        principal,
        "channel_account.create",
        "channel_account",
        account.id,
        {"provider": data.provider},
    )
    return account


async def update_account(
    session: AsyncSession,
    principal: Principal,
    settings: Settings,
    account_id: uuid.UUID,
    data: ChannelAccountUpdate,
) -> ChannelAccount:
    account = await ChannelAccountRepository(session, principal.tenant_id).get_or_raise(account_id)
    adapter = adapter_for(account.provider)
    changes = data.model_dump(exclude_unset=True)
    if "settings" in changes:
        account.settings = _validated(
            adapter.settings_model, {**account.settings, **changes["settings"]}, "settings"
        )
    if "secrets" in changes:
        # Secrets are replaced one by one; an empty value removes one. They are never read back.
        current = account_view(settings, account).secrets
        merged = {k: v for k, v in {**current, **changes["secrets"]}.items() if v}
        account.secrets_encrypted = encrypt_secret(
            settings, orjson.dumps(_validated(adapter.secrets_model, merged, "secrets")).decode()
        )
    for field in ("name", "address", "active", "is_default"):
        if field in changes and changes[field] is not None:
            setattr(account, field, changes[field].strip() if field == "address" else changes[field])
    await _flush_account(session)
    await _clear_other_defaults(session, account)
    await record_by(
        session,
        principal,
        "channel_account.update",
        "channel_account",
        account.id,
        {"fields": sorted(data.model_fields_set)},
    )
    return account


async def delete_account(session: AsyncSession, principal: Principal, account_id: uuid.UUID) -> None:
    account = await ChannelAccountRepository(session, principal.tenant_id).get_or_raise(account_id)
    await session.delete(account)
    await record_by(session, principal, "channel_account.delete", "channel_account", account_id)


async def _flush_account(session: AsyncSession) -> None:
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:
        raise Conflict("Another account of this channel has this name.", code="account_exists") from exc


# ----- inbound: the four steps


@dataclass
class Received:
    accepted: int = 0
    duplicates: int = 0
    ignored: int = 0


async def account_for_hook(session: AsyncSession, account_id: uuid.UUID) -> ChannelAccount:
    """The account a provider posts to. Its id is in the URL; the signature proves the rest."""
    account = await session.get(ChannelAccount, account_id)
    if account is None or not account.active:
        raise NotFound("No active channel account here.", code="unknown_channel_account")
    return account


def verified(
    settings: Settings, account: ChannelAccount, request: InboundRequest, view: Account | None = None
) -> ChannelAdapter:
    adapter = adapter_for(account.provider)
    try:
        adapter.verify(view or account_view(settings, account), request)
    except SignatureInvalid as exc:
        # Logged without the signature or the body: enough to see who is knocking.
        logger.warning(
            "refused an inbound %s request for channel account %s: %s", account.provider, account.id, exc
        )
        raise BadSignature("The request's signature is not valid.") from exc
    return adapter


def handshake(account: ChannelAccount, view: Account, request: InboundRequest) -> str | None:
    adapter = adapter_for(account.provider)
    try:
        return adapter.handshake(view, request)
    except SignatureInvalid as exc:
        logger.warning("refused a %s subscription check for channel account %s", account.provider, account.id)
        raise BadSignature("The verification token is not valid.") from exc


def read_request(
    settings: Settings, account: ChannelAccount, request: InboundRequest, view: Account | None = None
) -> list[InboundItem]:
    """The items of a provider's request, once its signature is checked (BadSignature otherwise). A signed
    body that cannot be read raises MalformedEvent carrying it, to be kept (`keep_malformed`). `view`: the
    account's decrypted settings, when the caller has them already."""
    view = view or account_view(settings, account)
    adapter = verified(settings, account, request, view)
    try:
        return adapter.parse(view, request)
    except MalformedPayload as exc:
        raise MalformedEvent(f"The payload could not be read: {exc}", details={"kept": True}) from exc


async def keep_malformed(
    session: AsyncSession, account: ChannelAccount, request: InboundRequest, problem: str
) -> None:
    """Signed but unreadable: kept for a human to look at (the sender is told it was refused)."""
    await _store_event(session, account, _malformed_item(request, problem), ChannelEventState.failed)


async def accept(session: AsyncSession, account: ChannelAccount, items: list[InboundItem]) -> Received:
    """Store each item as a raw event and queue its processing, in the caller's transaction: the path of
    webhooks, and of channels that are not HTTP (an SMTP session, an SMPP bind, an IMAP poll).

    One processing job per tenant waits at a time and works through the events in batches
    (`process_pending`): a burst of webhooks costs one job, not one each."""
    (received,) = await accept_many(session, [(account, items)])
    return received


async def accept_many(
    session: AsyncSession, requests: Sequence[tuple[ChannelAccount, list[InboundItem]]]
) -> list[Received]:
    """`accept` for several requests at once (a group commit's batch), with one INSERT for all their
    events; what each request got, in their order."""
    rows: list[tuple[int, bool, dict[str, Any]]] = []
    for index, (account, items) in enumerate(requests):
        for item in items:
            unknown = item.kind == ChannelEventKind.unknown.value
            state = ChannelEventState.ignored if unknown else ChannelEventState.received
            rows.append((index, unknown, _event_row(account, item, state)))
    inserted = await _insert_events(session, [row for _, _, row in rows])
    received = [Received() for _ in requests]
    tenants_to_process: set[uuid.UUID] = set()
    for index, unknown, row in rows:
        counts = received[index]
        if row["id"] not in inserted:
            counts.duplicates += 1
        elif unknown:
            counts.ignored += 1
        else:
            counts.accepted += 1
            tenants_to_process.add(row["tenant_id"])
    for tenant_id in tenants_to_process:
        queue_processing(session, tenant_id)
    return received


# Query parameters that are credentials: never kept with a refused request.
_CREDENTIAL_PARAMETERS = frozenset(
    {"token", "sig", "signature", "hub.verify_token", "password", "access_token"}
)


def _malformed_item(request: InboundRequest, problem: str) -> InboundItem:
    """A refused request as it came (a GET's query, a POST's body, credentials left out), named by its
    content so that the same request sent again is recognised."""
    query = {k: v for k, v in sorted(request.query.items()) if k.lower() not in _CREDENTIAL_PARAMETERS}
    fingerprint = hashlib.sha256(
        request.method.encode() + orjson.dumps(query, option=orjson.OPT_SORT_KEYS) + request.body
    ).hexdigest()
    raw = request.body[:_MAX_RAW_BODY].decode("utf-8", errors="replace")
    return InboundItem(
        kind="unknown",
        external_id=f"malformed:{fingerprint}",
        payload={"method": request.method, "query": query, "raw": raw},
        error=problem[:500],
    )


async def _store_event(
    session: AsyncSession, account: ChannelAccount, item: InboundItem, state: ChannelEventState
) -> uuid.UUID | None:
    """Insert the raw event; None when the provider sent it before (the replay creates nothing)."""
    row = _event_row(account, item, state)
    return row["id"] if row["id"] in await _insert_events(session, [row]) else None


def _event_row(account: ChannelAccount, item: InboundItem, state: ChannelEventState) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "tenant_id": account.tenant_id,
        "account_id": account.id,
        "channel": account.channel,
        "kind": ChannelEventKind(item.kind),
        "external_id": item.external_id[:255],
        "payload": item.stored(),
        "state": state,
        "error": item.error if state is ChannelEventState.failed else None,
        "created_at": utc_now(),
    }


async def _insert_events(session: AsyncSession, rows: list[dict[str, Any]]) -> set[uuid.UUID]:
    """The ids of the rows inserted: an event the provider sent before is skipped, and so is the second
    of two copies in the same batch."""
    if not rows:
        return set()
    dialect_insert = postgresql.insert if is_postgresql(session) else sqlite.insert
    # The table, not the mapped class: the ORM's bookkeeping for an INSERT costs more than the INSERT. One
    # statement executed with many rows: compiled once, sent as multi-row INSERTs.
    stmt = (
        dialect_insert(table_of(ChannelEvent))
        .on_conflict_do_nothing(index_elements=["tenant_id", "channel", "external_id"])
        .returning(table_of(ChannelEvent).c.id)
    )
    return set((await session.execute(stmt, rows)).scalars())


# ----- inbound: the job


# Small enough that a batch holds SQLite's write lock briefly: webhooks keep being accepted meanwhile.
INBOUND_BATCH = 50
# A processing run starts this long after the first event that wants it, gathering the ones that follow.
GATHER_SECONDS = 0.05
STALE_AFTER = timedelta(minutes=1)


async def process_pending(session: AsyncSession, settings: Settings, tenant_id: uuid.UUID) -> int:
    """Process the tenant's received events, oldest first, a batch at a time; each in a SAVEPOINT so that
    one that fails is marked failed without undoing the others. Queues the next batch when there is one."""
    stmt = (
        select(ChannelEvent)
        .where(ChannelEvent.tenant_id == tenant_id, ChannelEvent.state == ChannelEventState.received)
        .order_by(ChannelEvent.created_at, ChannelEvent.id)
        .limit(INBOUND_BATCH)
        .with_for_update(skip_locked=True)
    )
    events = list((await session.execute(stmt)).scalars())
    if not events:
        return 0
    policy = tenants.policy_of(await tenants.get_or_raise(session, tenant_id))
    accounts: dict[uuid.UUID, ChannelAccount | None] = {}
    for event in events:
        if event.account_id not in accounts:
            accounts[event.account_id] = await session.get(ChannelAccount, event.account_id)
    events = await _in_bulk(session, policy, events, accounts)
    for event in events:
        try:
            async with session.begin_nested():
                await process_event(session, settings, event, accounts[event.account_id], policy)
        except AppError as exc:
            # An address that is no phone number, say: nothing to retry, the event keeps the reason.
            event.state, event.error = ChannelEventState.failed, f"{exc.code}: {exc.message}"[:1000]
            event.processed_at = utc_now()
        except Exception as exc:
            logger.exception("channel event %s could not be processed", event.id)
            event.state, event.error = ChannelEventState.failed, f"{type(exc).__name__}: {exc}"[:1000]
            event.processed_at = utc_now()
    # Again while there was work: events committed while this batch ran get a run of their own.
    queue_processing(session, tenant_id)
    return len(events)


def queue_processing(session: AsyncSession, tenant_id: uuid.UUID) -> None:
    """One processing run per tenant waits at a time, gathering the events that arrive meanwhile."""
    jobs.enqueue_on_commit(
        session,
        INBOUND_KIND,
        {},
        tenant_id=tenant_id,
        coalesce=True,
        gather_seconds=GATHER_SECONDS,
        max_attempts=5,
    )


async def sweep(session: AsyncSession, now: datetime) -> None:
    """The clock's safety net: a tenant with events waiting longer than a minute gets a processing run
    (one lost with a crashed process, say)."""
    stale = await session.execute(
        select(ChannelEvent.tenant_id)
        .where(ChannelEvent.state == ChannelEventState.received, ChannelEvent.created_at < now - STALE_AFTER)
        .distinct()
    )
    for tenant_id in stale.scalars():
        queue_processing(session, tenant_id)


async def _in_bulk(
    session: AsyncSession,
    policy: TenantPolicy,
    events: list[ChannelEvent],
    accounts: dict[uuid.UUID, ChannelAccount | None],
) -> list[ChannelEvent]:
    """Store the batch's plain customer messages together (`bulk`); the events left for one at a time."""
    common: list[bulk.Pending] = []
    rest: list[ChannelEvent] = []
    for event in events:
        account = accounts[event.account_id]
        item = InboundItem.from_stored(event.payload) if account is not None else None
        if account is not None and item is not None and bulk.takes(item, account):
            common.append(bulk.Pending(event, account, item))
        else:
            rest.append(event)
    if not common:
        return rest
    try:
        async with session.begin_nested():
            left = await bulk.store(session, policy, common, CONTINUE_WITHIN)
    except Exception:
        logger.exception("storing %d channel messages together failed; one at a time instead", len(common))
        for pending in common:
            # The rolled-back SAVEPOINT expired what it changed: read the events again.
            await session.refresh(pending.event)
        return [p.event for p in common] + rest
    return [p.event for p in left] + rest


async def process_event(
    session: AsyncSession,
    settings: Settings,
    event: ChannelEvent,
    account: ChannelAccount | None,
    policy: TenantPolicy,
) -> None:
    if event.state is not ChannelEventState.received:
        return  # handled by an earlier attempt
    if account is None:
        event.state, event.error = ChannelEventState.failed, "the channel account was deleted"
        return
    item = InboundItem.from_stored(event.payload)
    if item.kind == "status":
        await apply_status(session, account, item)
        event.state = ChannelEventState.processed
    elif item.kind == "message":
        message = await _customer_message(session, account, event, item, policy)
        event.state = ChannelEventState.processed
        event.message_id = message.id if message is not None else None
    else:
        event.state = ChannelEventState.ignored
    event.processed_at = utc_now()


async def _customer_message(
    session: AsyncSession,
    account: ChannelAccount,
    event: ChannelEvent,
    item: InboundItem,
    policy: TenantPolicy,
) -> Message | None:
    if not item.sender:
        event.error = "no sender"
        return None
    customer, address = await customers.customer_for_contact(
        session, account.tenant_id, account.channel, item.sender, name=item.sender_name, policy=policy
    )
    conversation = await conversation_for(session, account, customer, address, item)
    keyword = reading.keyword_in(account.channel, item.text)
    option = item.option or await _numbered_choice(session, conversation, item.text)
    try:
        message = await store_message(
            session,
            conversation,
            author_kind=AuthorKind.customer,
            body=reading.body_of(item),
            channel_message_id=item.external_id[:255],
            meta=reading.meta_of(item, event, option),
            # When it arrived, whatever the order the worker reads it in: a conversation reads in order.
            created_at=event.created_at,
        )
    except Conflict:
        return None  # the same provider message came in through another event: already stored
    if keyword is not None:
        await _keyword(session, conversation, address, stop=keyword is reading.Keyword.stop)
        return message
    await queue_assistant_turn(session, conversation, message)
    return message


async def _numbered_choice(session: AsyncSession, conversation: Conversation, text: str) -> str | None:
    """ "2" answering a question whose options were written as a numbered list is the second option."""
    number = reading.number_in(text)
    if number is None:
        return None
    last_bot = (
        await session.execute(
            select(Message.meta)
            .where(
                Message.tenant_id == conversation.tenant_id,
                Message.conversation_id == conversation.id,
                Message.author_kind == AuthorKind.bot,
            )
            .order_by(Message.created_at.desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    options = (last_bot or {}).get("options") or []
    index = number - 1
    if index < len(options) and isinstance(options[index], dict):
        return str(options[index].get("id")) or None
    return None


async def conversation_for(
    session: AsyncSession, account: ChannelAccount, customer: Customer, address: str, item: InboundItem
) -> Conversation:
    """The conversation the message belongs to: the e-mail thread it answers, else the customer's open
    (or just closed) one on this account, else a new one."""
    tenant_id = account.tenant_id
    if item.replies_to:
        threaded = (
            await session.execute(
                select(Conversation)
                .join(Message, Message.conversation_id == Conversation.id)
                .where(
                    Message.tenant_id == tenant_id,
                    Message.channel == account.channel,
                    Message.channel_message_id.in_(item.replies_to),
                    Conversation.customer_id == customer.id,
                )
                .order_by(Message.created_at.desc())
                .limit(1)
            )
        ).scalar_one_or_none()
        if threaded is not None:
            return threaded
    if account.channel is not Channel.email:
        # E-mail threads by its headers only: a mail that answers nothing starts a new conversation.
        recent = (
            await session.execute(
                select(Conversation)
                .where(
                    Conversation.tenant_id == tenant_id,
                    Conversation.customer_id == customer.id,
                    Conversation.channel == account.channel,
                    Conversation.channel_account_id == account.id,
                    Conversation.status != ConversationStatus.abandoned,
                )
                .order_by(Conversation.created_at.desc())
                .limit(1)
            )
        ).scalar_one_or_none()
        if recent is not None and bulk.continues(recent, CONTINUE_WITHIN):
            recent.contact_address = address
            return recent
    conversation = Conversation(
        tenant_id=tenant_id,
        customer_id=customer.id,
        channel=account.channel,
        language=customer.preferred_language,
        subject=(item.subject or "")[:300] or None,
        channel_account_id=account.id,
        contact_address=address,
    )
    session.add(conversation)
    await session.flush()
    announce_conversation(session, conversation)
    return conversation


async def _keyword(session: AsyncSession, conversation: Conversation, address: str, *, stop: bool) -> None:
    if stop:
        await opt_out(session, conversation.tenant_id, conversation.channel, address, source="keyword")
    else:
        await opt_in(session, conversation.tenant_id, conversation.channel, address)
    _ = gettext_for(conversation.language)
    await store_message(
        session,
        conversation,
        author_kind=AuthorKind.system,
        body=_(OPTED_OUT if stop else OPTED_IN),
        # The one message an opted-out number still gets: the confirmation the rules require.
        meta={"deliver": True, "confirms_opt_out": True, "kind": "opt_out" if stop else "opt_in"},
    )


async def apply_status(session: AsyncSession, account: ChannelAccount, item: InboundItem) -> None:
    """A delivery report moves the message forward (sent → delivered → read), never back."""
    if item.status is None:
        return
    if not item.message_ref:
        if item.sender and item.sent_at:
            await _read_up_to(session, account, item.sender, item.sent_at, item.status)
        return
    message = (
        await session.execute(
            select(Message).where(
                Message.tenant_id == account.tenant_id,
                Message.channel == account.channel,
                Message.channel_message_id == item.message_ref,
            )
        )
    ).scalar_one_or_none()
    if message is None:
        try:
            message = await session.get(Message, uuid.UUID(item.message_ref))
        except ValueError:
            message = None
        if message is not None and message.tenant_id != account.tenant_id:
            message = None
    if message is None:
        logger.info("a %s delivery report names no message of ours", account.provider)
        return
    set_delivery(session, message, item.status, item.error)


async def _read_up_to(
    session: AsyncSession, account: ChannelAccount, contact: str, moment: Any, status: MessageDelivery
) -> None:
    """A watermark report ("read everything up to this time"): every message sent to the contact before."""
    rows = await session.execute(
        select(Message)
        .join(Conversation, Conversation.id == Message.conversation_id)
        .where(
            Message.tenant_id == account.tenant_id,
            Conversation.channel_account_id == account.id,
            Conversation.contact_address == contact,
            Message.delivery_status.in_([MessageDelivery.sent, MessageDelivery.delivered]),
            Message.created_at <= moment,
        )
    )
    for message in rows.scalars():
        set_delivery(session, message, status)


def set_delivery(
    session: AsyncSession, message: Message, status: MessageDelivery, error: str | None = None
) -> bool:
    current = message.delivery_status
    if current is not None and status.rank <= current.rank:
        return False
    message.delivery_status = status
    message.delivery_error = error[:1000] if error else None
    message.delivery_updated_at = utc_now()
    publish_on_commit(
        session,
        Event(
            "message.delivery",
            message.tenant_id,
            {
                "conversation_id": str(message.conversation_id),
                "message_id": str(message.id),
                "status": status.value,
            },
        ),
    )
    return True


# ----- opt-outs


async def opt_out(
    session: AsyncSession, tenant_id: uuid.UUID, channel: Channel, address: str, *, source: str
) -> None:
    dialect_insert = postgresql.insert if is_postgresql(session) else sqlite.insert
    await session.execute(
        dialect_insert(OptOut)
        .values(
            id=uuid.uuid4(),
            tenant_id=tenant_id,
            channel=channel,
            address=address,
            source=source,
            created_at=utc_now(),
        )
        .on_conflict_do_nothing(index_elements=["tenant_id", "channel", "address"])
    )


async def opt_in(session: AsyncSession, tenant_id: uuid.UUID, channel: Channel, address: str) -> None:
    await session.execute(
        delete(OptOut).where(
            OptOut.tenant_id == tenant_id, OptOut.channel == channel, OptOut.address == address
        )
    )


async def opted_out(session: AsyncSession, tenant_id: uuid.UUID, channel: Channel, address: str) -> bool:
    stmt = select(OptOut.id).where(
        OptOut.tenant_id == tenant_id, OptOut.channel == channel, OptOut.address == address
    )
    return (await session.execute(stmt)).first() is not None


# ----- outbound


async def default_account(
    session: AsyncSession, tenant_id: uuid.UUID, channel: Channel
) -> ChannelAccount | None:
    accounts = await ChannelAccountRepository(session, tenant_id).defaults(channel)
    return accounts[0] if accounts else None


def outgoing_text(message: Message, max_options: int, language: str) -> tuple[str, str, list[Option]]:
    """The message as the channel can show it: its body, and a tail of links written out and of options
    as a numbered list the customer answers with a number when the channel has not enough buttons; the
    options left are for buttons. The adapter joins them (`shape_text`)."""
    meta = message.meta or {}
    tail = ""
    links = [link for link in meta.get("links") or [] if isinstance(link, dict) and link.get("url")]
    if links:
        tail += "\n" + "\n".join(f"{link.get('title') or ''} : {link['url']}".strip(" :") for link in links)
    options = [
        Option(id=str(o["id"]), title=str(o.get("label") or o["id"]))
        for o in meta.get("options") or []
        if isinstance(o, dict) and o.get("id")
    ]
    if options and len(options) > max_options:
        _ = gettext_for(language)
        numbered = "\n".join(f"{n}. {option.title}" for n, option in enumerate(options, start=1))
        tail += f"\n\n{numbered}\n{_(CHOOSE_BY_NUMBER)}"
        options = []
    return message.body, tail, options


def _template_of(meta: dict[str, Any]) -> Template | None:
    raw = meta.get("template")
    if not isinstance(raw, dict) or not raw.get("name"):
        return None
    return Template(
        name=str(raw["name"]),
        language=str(raw.get("language") or "fr"),
        parameters=tuple(str(p) for p in raw.get("parameters") or []),
    )


async def _last_customer_message_at(session: AsyncSession, conversation: Conversation, address: str) -> Any:
    stmt = (
        select(func.max(Message.created_at))
        .join(Conversation, Conversation.id == Message.conversation_id)
        .where(
            Message.tenant_id == conversation.tenant_id,
            Message.channel == conversation.channel,
            Message.author_kind == AuthorKind.customer,
            Conversation.customer_id == conversation.customer_id,
            Conversation.contact_address == address,
        )
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def deliver(
    session: AsyncSession, settings: Settings, http: httpx.AsyncClient, message_id: uuid.UUID
) -> None:
    """Hand one outbound message to its provider. A message already sent or failed is left alone, so a
    job run twice sends nothing twice."""
    message = await session.get(Message, message_id)
    if message is None or message.delivery_status is not MessageDelivery.queued:
        return
    conversation = await session.get(Conversation, message.conversation_id)
    if conversation is None or conversation.channel not in DELIVERED_CHANNELS:
        return
    account = (
        await session.get(ChannelAccount, conversation.channel_account_id)
        if conversation.channel_account_id
        else await default_account(session, conversation.tenant_id, conversation.channel)
    )
    if account is None or not account.active:
        set_delivery(
            session, message, MessageDelivery.failed, f"no active {conversation.channel.value} account"
        )
        return
    customer = await session.get(Customer, conversation.customer_id)
    address = conversation.contact_address or (
        customers.address_on(customer, conversation.channel) if customer is not None else None
    )
    if not address:
        set_delivery(session, message, MessageDelivery.failed, "the customer has no address on this channel")
        return
    meta = message.meta or {}
    if not meta.get("confirms_opt_out") and await opted_out(
        session, conversation.tenant_id, conversation.channel, address
    ):
        set_delivery(
            session, message, MessageDelivery.failed, "opted_out: the customer asked for no messages here"
        )
        return
    adapter = adapter_for(account.provider)
    template = _template_of(meta)
    window = adapter.capabilities.service_window
    if window is not None and template is None:
        last = await _last_customer_message_at(session, conversation, address)
        if last is None or last < utc_now() - window:
            set_delivery(
                session,
                message,
                MessageDelivery.failed,
                "window_closed: the customer last wrote more than "
                f"{int(window.total_seconds() // 3600)} h ago; only a template can be sent",
            )
            return
    caps = adapter.capabilities
    view = account_view(settings, account)
    body, tail, options = outgoing_text(
        message, max(caps.max_buttons, caps.max_list_rows), conversation.language
    )
    outgoing = Outgoing(
        message_id=str(message.id),
        to=address,
        text=adapter.shape_text(view, body, tail),
        options=options,
        template=template,
        subject=conversation.subject,
        replies_to=await _thread_of(session, conversation) if caps.subject else [],
        status_url=hook_url(settings, account.id),
    )
    try:
        result = await adapter.send(view, outgoing, http)
    except ProviderRejected as exc:
        set_delivery(session, message, MessageDelivery.failed, f"{exc.code}: {exc}")
        return
    if result.external_id and not await _provider_id_taken(session, message, result.external_id):
        message.channel_message_id = result.external_id
    message.meta = {**meta, **result.meta, "parts": result.parts} if result.parts > 1 or result.meta else meta
    set_delivery(session, message, MessageDelivery.sent)


async def _provider_id_taken(session: AsyncSession, message: Message, external_id: str) -> bool:
    stmt = select(Message.id).where(
        Message.tenant_id == message.tenant_id,
        Message.channel == message.channel,
        Message.channel_message_id == external_id,
    )
    return (await session.execute(stmt)).first() is not None


async def _thread_of(session: AsyncSession, conversation: Conversation) -> list[str]:
    """The conversation's provider message ids, newest first: an e-mail reply's In-Reply-To and
    References."""
    rows = await session.execute(
        select(Message.channel_message_id)
        .where(
            Message.tenant_id == conversation.tenant_id,
            Message.conversation_id == conversation.id,
            Message.channel_message_id.is_not(None),
        )
        .order_by(Message.created_at.desc())
        .limit(20)
    )
    return [row for row in rows.scalars() if row]


async def give_up(session: AsyncSession, message_id: uuid.UUID, error: str) -> None:
    """The last attempt failed: the message is marked failed, for the agent to see and act on."""
    message = await session.get(Message, message_id)
    if message is not None and message.delivery_status is MessageDelivery.queued:
        set_delivery(session, message, MessageDelivery.failed, f"gave up: {error}")
