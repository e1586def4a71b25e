"""What both ways in (an SMTP delivery, an IMAP poll) do with a received message: find the account it
was sent to, read it, and store it through the channels' shared `accept`, in one transaction."""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from allo.channels import service
from allo.channels.base import InboundItem
from allo.channels.email.adapter import EmailAdapter
from allo.channels.email.mime import inbound_item, unreadable_item
from allo.kit.db import Database
from allo.models import ChannelAccount
from allo.models.enums import Channel

logger = logging.getLogger(__name__)


def active_accounts() -> Select[ChannelAccount]:
    """The e-mail accounts that take mail: the SMTP server's recipients, the IMAP poller's mailboxes."""
    return select(ChannelAccount).where(
        ChannelAccount.channel == Channel.email,
        ChannelAccount.provider == EmailAdapter.provider,
        ChannelAccount.active.is_(True),
    )


async def account_for_address(session: AsyncSession, address: str) -> ChannelAccount | None:
    """The active e-mail account whose address this is. When two tenants claim one address, the account
    set up first keeps it: a later claim cannot divert another tenant's mail."""
    rows = await session.execute(
        active_accounts()
        .where(func.lower(ChannelAccount.address) == address.strip().lower())
        .order_by(ChannelAccount.created_at, ChannelAccount.id)
        .limit(2)
    )
    accounts = list(rows.scalars())
    if len(accounts) > 1:
        logger.warning("e-mail: several accounts claim %s; mail goes to account %s", address, accounts[0].id)
    return accounts[0] if accounts else None


def item_for(account: ChannelAccount, item: InboundItem) -> InboundItem:
    """The item as this account receives it: our own mail coming back (a customer's Cc, a forwarding
    rule) is kept but never answered, which would loop."""
    if item.kind == "message" and item.sender == account.address.strip().lower():
        return InboundItem(
            kind="unknown",
            external_id=item.external_id,
            payload={**item.payload, "ignored": "sent by this mailbox"},
        )
    return item


@dataclass
class Stored(service.Received):
    """`accept`'s counts summed over the accounts the message was stored for."""

    accounts: list[str] = field(default_factory=list)


async def read(raw: bytes, envelope: dict[str, Any] | None = None) -> InboundItem:
    """The message read off the event loop (a large one takes a while to take apart). A message the
    reader trips on is still kept, as an unknown item with its raw bytes, for a human to look at:
    refusing it would only make the sender retry it for days."""
    try:
        return await asyncio.to_thread(inbound_item, raw, envelope=envelope)
    except Exception as exc:
        logger.exception("e-mail: a message could not be read; it is kept as it came")
        return unreadable_item(raw, f"{type(exc).__name__}: {exc}", envelope=envelope)


async def store(
    db: Database,
    item: InboundItem,
    recipients: list[str] | None = None,
    *,
    account_id: uuid.UUID | None = None,
) -> Stored:
    """Store the message for each account it was sent to (by address, or the polled account), committed
    when this returns: the caller may then tell the sender it has it."""
    stored = Stored()
    async with db.unit_of_work() as session:
        accounts: dict[uuid.UUID, ChannelAccount] = {}
        if account_id is not None:
            account = await session.get(ChannelAccount, account_id)
            if account is not None and account.active:
                accounts[account.id] = account
        for address in recipients or []:
            found = await account_for_address(session, address)
            if found is not None:
                accounts.setdefault(found.id, found)
        for account in accounts.values():
            received = await service.accept(session, account, [item_for(account, item)])
            stored.accounts.append(str(account.id))
            stored.accepted += received.accepted
            stored.duplicates += received.duplicates
            stored.ignored += received.ignored
    return stored
