"""Polling the mailboxes of e-mail accounts that have IMAP settings, for mail that does not reach Allo's
SMTP server (a hosted mailbox, say).

Each poll reads the unseen messages without marking them (BODY.PEEK), stores each one through the shared
`accept` and marks it \\Seen only once it is committed: a poll cut short leaves the rest unseen for the
next one, and a message read twice is stored once (its Message-ID). One process at a time polls a given
account: it holds a lease in the database, renewed at every poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import imaplib
import logging
import ssl
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from allo.channels.email import inbound
from allo.channels.email.adapter import EmailSettings
from allo.channels.service import account_view
from allo.config import Settings
from allo.kit import lease
from allo.kit.db import Database
from allo.models import ChannelAccount

logger = logging.getLogger(__name__)

LEASE_PREFIX = "email:imap:"
# How often the list of accounts to poll is read again (an account added or switched off is seen then).
TICK_SECONDS = 10.0
IMAP_TIMEOUT_SECONDS = 30.0
# A first poll of a full mailbox is spread over several polls.
MAX_MESSAGES_PER_POLL = 100
MAX_BACKOFF_SECONDS = 900.0


class MailboxError(RuntimeError):
    """The IMAP server refused a command; the message is the server's (never a password)."""


@dataclass(frozen=True)
class ImapConfig:
    host: str
    port: int
    tls: bool
    username: str
    password: str
    folder: str

    @classmethod
    def of(cls, address: str, settings: EmailSettings, password: str) -> ImapConfig:
        assert settings.imap_host is not None
        return cls(
            host=settings.imap_host,
            port=settings.imap_port or (993 if settings.imap_tls else 143),
            tls=settings.imap_tls,
            username=settings.imap_username or address,
            password=password,
            folder=settings.imap_folder,
        )


def _quoted(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Mailbox:
    """One IMAP connection, blocking (imaplib): each call runs in a worker thread."""

    def __init__(self, config: ImapConfig) -> None:
        self.config = config
        self._connection: imaplib.IMAP4 | None = None

    def open(self) -> None:
        config = self.config
        connection: imaplib.IMAP4
        if config.tls:
            context = ssl.create_default_context()
            connection = imaplib.IMAP4_SSL(
                config.host, config.port, ssl_context=context, timeout=IMAP_TIMEOUT_SECONDS
            )
        else:
            connection = imaplib.IMAP4(config.host, config.port, timeout=IMAP_TIMEOUT_SECONDS)
        self._connection = connection
        try:
            connection.login(config.username, config.password)
        except imaplib.IMAP4.error as exc:
            raise MailboxError(f"login refused for {config.username}: {exc}") from exc
        status, data = connection.select(_quoted(config.folder))
        if status != "OK":
            raise MailboxError(f"cannot open the folder {config.folder!r}: {data!r}")

    @property
    def connection(self) -> imaplib.IMAP4:
        if self._connection is None:
            raise MailboxError("the mailbox is not open")
        return self._connection

    def unseen(self) -> list[str]:
        status, data = self.connection.uid("SEARCH", "UNSEEN")
        if status != "OK":
            raise MailboxError(f"SEARCH UNSEEN refused: {data!r}")
        found = data[0] if data and isinstance(data[0], bytes) else b""
        return [uid.decode("ascii") for uid in found.split()]

    def fetch(self, uid: str) -> bytes | None:
        """The whole message, without setting \\Seen; None when it was expunged meanwhile."""
        status, data = self.connection.uid("FETCH", uid, "(BODY.PEEK[])")
        if status != "OK":
            raise MailboxError(f"FETCH {uid} refused: {data!r}")
        for part in data:
            if isinstance(part, tuple) and len(part) == 2 and isinstance(part[1], bytes):
                return part[1]
        return None

    def mark_seen(self, uid: str) -> None:
        status, data = self.connection.uid("STORE", uid, "+FLAGS", "(\\Seen)")
        if status != "OK":
            raise MailboxError(f"STORE {uid} refused: {data!r}")

    def close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                self._connection.logout()
            self._connection = None


@dataclass
class PollReport:
    unseen: int = 0
    stored: int = 0
    duplicates: int = 0
    ignored: int = 0


@dataclass
class _Schedule:
    next_at: float = 0.0
    failures: int = 0


def _lease_name(account_id: uuid.UUID) -> str:
    return LEASE_PREFIX + str(account_id)


@dataclass
class ImapPolling:
    settings: Settings
    db: Database
    holder: str = field(default_factory=lease.holder_name)
    _schedule: dict[uuid.UUID, _Schedule] = field(default_factory=dict)

    async def polled_accounts(self) -> list[tuple[uuid.UUID, EmailSettings]]:
        """The active e-mail accounts with IMAP settings."""
        async with self.db.unit_of_work(write=False) as session:
            accounts = list((await session.execute(inbound.active_accounts())).scalars())
        polled: list[tuple[uuid.UUID, EmailSettings]] = []
        for account in accounts:
            try:
                settings = EmailSettings.model_validate(account.settings or {})
            except ValueError:
                continue  # saved before a settings change: shown to the admin, not polled
            if settings.imap_host:
                polled.append((account.id, settings))
        return polled

    async def poll_due(self) -> dict[uuid.UUID, PollReport]:
        """Poll every account whose time has come and whose lease this process holds or can take."""
        reports: dict[uuid.UUID, PollReport] = {}
        accounts = await self.polled_accounts()
        for gone in set(self._schedule) - {account_id for account_id, _ in accounts}:
            del self._schedule[gone]
        for account_id, email_settings in accounts:
            schedule = self._schedule.setdefault(account_id, _Schedule())
            if time.monotonic() < schedule.next_at:
                continue
            ttl = timedelta(seconds=email_settings.poll_seconds * 3 + 60)
            async with self.db.unit_of_work() as session:
                held = await lease.acquire(session, _lease_name(account_id), self.holder, ttl)
            if not held:
                continue  # another process polls it; asked again at the next tick, to take over soon
            try:
                reports[account_id] = await self.poll_account(account_id)
                schedule.failures = 0
                schedule.next_at = time.monotonic() + email_settings.poll_seconds
            except Exception as exc:
                schedule.failures += 1
                delay = min(email_settings.poll_seconds * 2 ** (schedule.failures - 1), MAX_BACKOFF_SECONDS)
                schedule.next_at = time.monotonic() + delay
                logger.warning(
                    "e-mail: polling account %s failed (%s: %s); next try in %.0f s",
                    account_id,
                    type(exc).__name__,
                    exc,
                    delay,
                )
        return reports

    async def poll_account(self, account_id: uuid.UUID) -> PollReport:
        async with self.db.unit_of_work(write=False) as session:
            account = await session.get(ChannelAccount, account_id)
            if account is None or not account.active:
                return PollReport()
            view = account_view(self.settings, account)
        email_settings = view.settings_as(EmailSettings)
        config = ImapConfig.of(view.address, email_settings, view.secret("imap_password"))
        mailbox = Mailbox(config)
        report = PollReport()
        try:
            await asyncio.to_thread(mailbox.open)
            uids = await asyncio.to_thread(mailbox.unseen)
            report.unseen = len(uids)
            for uid in uids[:MAX_MESSAGES_PER_POLL]:
                raw = await asyncio.to_thread(mailbox.fetch, uid)
                if raw is None:
                    continue
                item = await inbound.read(raw, {"via": "imap", "folder": config.folder, "uid": uid})
                stored = await inbound.store(self.db, item, account_id=account_id)
                # Committed: only now may the server forget it is new.
                await asyncio.to_thread(mailbox.mark_seen, uid)
                report.stored += stored.accepted
                report.duplicates += stored.duplicates
                report.ignored += stored.ignored
        finally:
            await asyncio.to_thread(mailbox.close)
        if report.unseen:
            logger.info(
                "e-mail: account %s: %d unseen, %d stored, %d already here, %d ignored",
                account_id,
                report.unseen,
                report.stored,
                report.duplicates,
                report.ignored,
            )
        return report

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop` is set: poll the accounts as they come due, then give up the leases."""
        try:
            while not stop.is_set():
                try:
                    await self.poll_due()
                except Exception:
                    logger.exception("e-mail: the IMAP polling pass failed")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=TICK_SECONDS)
        finally:
            with contextlib.suppress(Exception):
                await self.release()

    async def release(self) -> None:
        async with self.db.unit_of_work() as session:
            for account_id in self._schedule:
                await lease.release(session, _lease_name(account_id), self.holder)


async def poll_all_once(settings: Settings) -> dict[uuid.UUID, PollReport]:
    """`allo email poll --once`: every IMAP account this process can take the lease of, polled once."""
    from allo.app import build_database
    from allo.kit.bus import Bus

    db = build_database(settings, Bus())
    polling = ImapPolling(settings, db)
    try:
        return await polling.poll_due()
    finally:
        await polling.release()
        await db.dispose()
