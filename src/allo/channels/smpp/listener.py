"""The SMPP listener: a receiver bind per active SMPP account, held by one process at a time.

Every `smpp_poll_seconds` the listener reads which SMPP accounts are active and starts or stops their
sessions. A session takes the account's lease in the database (`allo.kit.lease`), binds as a receiver and
reads PDUs in a thread (smpplib is synchronous). Each deliver_sm is read into items
(`allo.channels.smpp.inbound`) and stored through `service.accept` in a unit of work before the SMSC gets
its deliver_sm_resp: a message the SMSC was told we have is in the database. A store that fails answers
with a temporary error, and the SMSC sends the message again later. A dropped connection, a refused bind
or a lost lease ends the session; it starts again after a backoff that doubles up to a few minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import select
import threading
import time
import uuid
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Any

import smpplib.consts  # type: ignore[import-untyped]
import smpplib.exceptions  # type: ignore[import-untyped]
import smpplib.smpp  # type: ignore[import-untyped]
from sqlalchemy import select as sql_select

from allo.channels import service
from allo.channels.base import ChannelError
from allo.channels.smpp.adapter import SmppSecrets, SmppSettings, bind, close, new_client, respond
from allo.channels.smpp.inbound import Deliver, Reassembly
from allo.config import Settings
from allo.kit import lease
from allo.kit.db import Database
from allo.models import ChannelAccount

logger = logging.getLogger(__name__)

LEASE_TTL = timedelta(seconds=30)
LEASE_RENEW_SECONDS = 10.0
MAX_BACKOFF_SECONDS = 300.0
# How often the reading thread looks up from the socket to see whether it must stop.
READ_WAKE_SECONDS = 0.5
ENQUIRE_LINK_SECONDS = 30.0
STORE_TIMEOUT_SECONDS = 30.0


class SmppListener:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        *,
        poll_seconds: float | None = None,
        first_backoff_seconds: float = 1.0,
        lease_renew_seconds: float = LEASE_RENEW_SECONDS,
    ) -> None:
        self.settings = settings
        self.db = db
        self.poll_seconds = poll_seconds if poll_seconds is not None else settings.smpp_poll_seconds
        self.first_backoff_seconds = first_backoff_seconds
        # How often a session renews its lease, or looks whether another process's lease has run out.
        self.lease_renew_seconds = lease_renew_seconds
        self.holder = lease.holder_name()
        self._sessions: dict[uuid.UUID, tuple[AccountSession, asyncio.Task[None]]] = {}
        self.looked = False

    async def active_accounts(self) -> set[uuid.UUID]:
        async with self.db.unit_of_work(write=False) as session:
            rows = await session.execute(
                sql_select(ChannelAccount.id).where(
                    ChannelAccount.provider == "smpp", ChannelAccount.active.is_(True)
                )
            )
            return set(rows.scalars())

    async def refresh(self, stop: asyncio.Event) -> None:
        """Start a session for each active SMPP account that has none, end those of the others."""
        self.looked = True
        try:
            wanted = await self.active_accounts()
        except Exception:
            logger.exception("smpp: could not read the SMPP accounts")
            return
        for account_id, (session, task) in list(self._sessions.items()):
            if account_id not in wanted or task.done():
                del self._sessions[account_id]
                session.ended.set()
                await _finish(task)
        for account_id in wanted - self._sessions.keys():
            session = AccountSession(self, account_id)
            self._sessions[account_id] = (session, asyncio.create_task(session.run(stop)))

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop` is set: a session for each active SMPP account, none for the others, looked up
        every poll (at once too, unless `refresh` was called before)."""
        try:
            if not self.looked:
                await self.refresh(stop)
            while not stop.is_set():
                await lease.wait(stop, self.poll_seconds)
                if not stop.is_set():
                    await self.refresh(stop)
        finally:
            for session, _ in self._sessions.values():
                session.ended.set()
            for _, task in self._sessions.values():
                await _finish(task)
            self._sessions.clear()


class AccountSession:
    """One account's receiver bind, again and again until the account is stopped."""

    def __init__(self, listener: SmppListener, account_id: uuid.UUID) -> None:
        self.listener = listener
        self.account_id = account_id
        self.ended = asyncio.Event()
        self.lease_name = f"smpp:{account_id}"
        # Parts of long messages outlive a dropped bind: the SMSC sends the missing ones on the next.
        self.reassembly = Reassembly()

    @property
    def db(self) -> Database:
        return self.listener.db

    async def run(self, stop: asyncio.Event) -> None:
        backoff = self.listener.first_backoff_seconds
        while not (stop.is_set() or self.ended.is_set()):
            if not await self._take_lease():
                await lease.wait(stop, self.listener.lease_renew_seconds, self.ended)
                continue
            try:
                was_bound = await self._bound_session(stop)
            except Exception as exc:
                was_bound = False
                logger.warning("smpp %s: session ended: %s: %s", self.account_id, type(exc).__name__, exc)
            finally:
                with contextlib.suppress(Exception):
                    async with self.db.unit_of_work() as session:
                        await lease.release(session, self.lease_name, self.listener.holder)
            if stop.is_set() or self.ended.is_set():
                return
            backoff = (
                self.listener.first_backoff_seconds if was_bound else min(backoff * 2, MAX_BACKOFF_SECONDS)
            )
            await lease.wait(stop, backoff, self.ended)

    async def _take_lease(self) -> bool:
        try:
            async with self.db.unit_of_work() as session:
                return await lease.acquire(session, self.lease_name, self.listener.holder, LEASE_TTL)
        except Exception:
            logger.exception("smpp %s: could not take the listener's lease", self.account_id)
            return False

    async def _account(self) -> tuple[ChannelAccount, SmppSettings, str] | None:
        """The account (kept for the bind's stores), its settings and its password; None once inactive."""
        async with self.db.unit_of_work(write=False) as session:
            account = await session.get(ChannelAccount, self.account_id)
            if account is None or not account.active:
                return None
            view = service.account_view(self.listener.settings, account)
        settings = SmppSettings.model_validate(view.settings)
        return account, settings, SmppSecrets.model_validate(view.secrets).password

    async def _bound_session(self, stop: asyncio.Event) -> bool:
        """Bind, read until the connection ends or we must stop; True when the bind had succeeded."""
        found = await self._account()
        if found is None:
            self.ended.set()
            return False
        account, settings, password = found
        client = new_client(settings)
        try:
            await asyncio.to_thread(bind, client, "receiver", settings, password)
        except ChannelError:
            await asyncio.to_thread(close, client)
            raise
        quitting = threading.Event()
        store = functools.partial(self.store, account)
        reader = _Reader(self.account_id, client, asyncio.get_running_loop(), quitting, store)
        logger.info("smpp %s: bound as a receiver to %s:%s", self.account_id, settings.host, settings.port)
        reading = asyncio.ensure_future(asyncio.to_thread(reader.run))
        try:
            while not reading.done():
                waiter = asyncio.ensure_future(
                    lease.wait(stop, self.listener.lease_renew_seconds, self.ended)
                )
                try:
                    await asyncio.wait({reading, waiter}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waiter.cancel()
                if reading.done() or stop.is_set() or self.ended.is_set():
                    break
                if not await self._take_lease():
                    logger.warning("smpp %s: another process took over the bind", self.account_id)
                    break
        finally:
            quitting.set()
            with contextlib.suppress(Exception):
                await reading
        error = reading.exception()
        if error is not None:
            logger.warning("smpp %s: the bind ended: %s: %s", self.account_id, type(error).__name__, error)
        return True

    async def store(self, account: ChannelAccount, deliver: Deliver) -> None:
        """What the deliver_sm completes, stored; raises when it could not be (a deleted account too: its
        events' foreign key refuses them)."""
        items = self.reassembly.items(deliver)
        if not items:
            return
        try:
            async with self.db.unit_of_work() as session:
                received = await service.accept(session, account, items)
        except BaseException:
            self.reassembly.undo()
            raise
        logger.info(
            "smpp %s: %d stored, %d already had, %d ignored",
            self.account_id,
            received.accepted,
            received.duplicates,
            received.ignored,
        )


class _Reader:
    """The bind's PDUs, read in a thread; each deliver_sm stored (`store`, on the event loop) before it is
    answered."""

    def __init__(
        self,
        account_id: uuid.UUID,
        client: Any,
        loop: asyncio.AbstractEventLoop,
        quitting: threading.Event,
        store: Callable[[Deliver], Coroutine[Any, Any, None]],
    ) -> None:
        self.account_id = account_id
        self.client = client
        self.loop = loop
        self.quitting = quitting
        self.store = store

    def run(self) -> None:
        client = self.client
        # smpplib reads PDUs with a blocking socket: select() on it first wakes the thread to check whether
        # it must stop, and to keep the link alive with enquire_link when the SMSC is quiet.
        last_heard = time.monotonic()
        try:
            while not self.quitting.is_set():
                readable, _, _ = select.select([client._socket], [], [], READ_WAKE_SECONDS)
                if not readable:
                    if time.monotonic() - last_heard > ENQUIRE_LINK_SECONDS:
                        client.send_pdu(smpplib.smpp.make_pdu("enquire_link", client=client))
                        last_heard = time.monotonic()
                    continue
                pdu = client.read_pdu()
                last_heard = time.monotonic()
                self._answer(pdu)
        finally:
            close(client)

    def _answer(self, pdu: Any) -> None:
        if pdu.command == "deliver_sm":
            respond(self.client, pdu, "deliver_sm_resp", self._stored(pdu))
        elif pdu.command == "enquire_link":
            respond(self.client, pdu, "enquire_link_resp")
        elif pdu.command == "unbind":
            respond(self.client, pdu, "unbind_resp")
            raise smpplib.exceptions.ConnectionError("the SMSC unbound us")

    def _stored(self, pdu: Any) -> int:
        try:
            deliver = Deliver.of(pdu)
        except (TypeError, ValueError):
            logger.exception("smpp %s: unreadable deliver_sm", self.account_id)
            return int(smpplib.consts.SMPP_ESME_ROK)  # sending it again would not make it readable
        future = asyncio.run_coroutine_threadsafe(self.store(deliver), self.loop)
        try:
            future.result(timeout=STORE_TIMEOUT_SECONDS)
        except Exception:
            future.cancel()
            logger.exception(
                "smpp %s: a deliver_sm was not stored; the SMSC will send it again", self.account_id
            )
            return int(smpplib.consts.SMPP_ESME_RX_T_APPN)
        return int(smpplib.consts.SMPP_ESME_ROK)


async def _finish(task: asyncio.Task[None]) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(task), timeout=10)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
