"""The Mastodon listener: hashtag timelines and mentions, live and polled.

Polling is the backbone: each source is read from its persisted cursor (the last id seen), page after
page, and the cursor moves in the same transaction as the posts it covered, so a restart neither misses
nor repeats anything. Streams are the fast path on top: a status arriving live is decided on at once; a
dropped stream reconnects with backoff and triggers a poll that fills the gap; a server that refuses to
stream leaves polling alone doing the work (every `mastodon_poll_seconds`). Statuses arriving by both
ways are recorded once.

One listener per account runs across processes: it holds a lease in the database while it runs.

What is watched is the tenant's choice when its policy's `social` section says so (the ALLO_MASTODON_*
settings otherwise): the hashtags and mentions are read when the listener starts and again every
`mastodon_poll_seconds` while it runs, a change starting or stopping sources without a restart; dry run and
the author cooldown are read on every batch of statuses and again when a reply is posted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from mastodon import StreamListener
from sqlalchemy.exc import IntegrityError

from allo.assistant.service import analyzer_for
from allo.config import Settings
from allo.kit import lease
from allo.kit.db import Database
from allo.kit.time import utc_now
from allo.social import service
from allo.social.classifier import classifier_at
from allo.social.mastodon import MENTIONS, MastodonGateway, RateLimited, Unavailable, sources_of
from allo.social.places import gazetteer
from allo.social.tasks import gateway_for
from allo.tenants import service as tenants

logger = logging.getLogger(__name__)

# A first run reads the newest page only: the listener starts from now, not from the server's history.
MAX_PAGES_PER_POLL = 25
LEASE_TTL = timedelta(seconds=30)
LEASE_RENEW_SECONDS = 10.0
STREAM_READ_TIMEOUT = 90.0  # Mastodon's streaming server sends a heartbeat every few seconds
MAX_STREAM_BACKOFF = 300.0
MAX_POLL_BACKOFF = 300.0


class ListenerNotConfigured(RuntimeError):
    pass


@dataclass
class SourceState:
    source: str
    streaming: str = "off"  # off, connecting, live, reconnecting, refused
    stream_failures: int = 0
    last_poll_at: float | None = None
    last_error: str | None = None
    received_live: int = 0


@dataclass
class ListenerStatus:
    holder: str
    leader: bool = False
    sources: dict[str, SourceState] = field(default_factory=dict)


class _Stream(StreamListener):
    """Receives one stream's events in its thread and hands statuses to the event loop."""

    def __init__(self, source: str, deliver: Callable[[str, Mapping[str, Any]], None]) -> None:
        super().__init__()
        self.source = source
        self.deliver = deliver
        self.connected = threading.Event()
        self.on_open: Callable[[], object] = lambda: None
        self.closing = False
        self._response: Any = None

    def handle_stream(self, response: Any) -> None:
        self._response = response
        self.connected.set()
        self.on_open()
        super().handle_stream(response)  # type: ignore[no-untyped-call]

    def on_update(self, status: Any) -> None:
        if self.source != MENTIONS:
            self.deliver(self.source, status)

    def on_notification(self, notification: Any) -> None:
        if self.source == MENTIONS and notification.get("type") == "mention" and notification.get("status"):
            self.deliver(self.source, notification["status"])

    def on_unknown_event(self, name: str, unknown_event: Any = None) -> None:
        pass  # a newer server's event: not ours to read

    def close(self) -> None:
        self.closing = True
        response = self._response
        if response is not None:
            with contextlib.suppress(Exception):
                response.close()


class Listener:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        *,
        gateway: MastodonGateway | None = None,
        stream_read_timeout: float = STREAM_READ_TIMEOUT,
    ) -> None:
        if not settings.mastodon_configured:
            raise ListenerNotConfigured(
                "Set ALLO_MASTODON_API_BASE_URL and ALLO_MASTODON_ACCESS_TOKEN to listen to Mastodon."
            )
        self.settings = settings
        self.db = db
        # The reply job's client too: both spend the same rate-limit budget.
        self.gateway = gateway or gateway_for(settings)
        self.stream_read_timeout = stream_read_timeout
        self.status = ListenerStatus(holder=lease.holder_name())
        self._listening: service.Listening | None = None
        # One ingest at a time in this process: the stream and the poll may bring the same status.
        self._ingest_lock = asyncio.Lock()
        self._poll_locks: dict[str, asyncio.Lock] = {}
        self._poll_now: dict[str, asyncio.Event] = {}
        # The server's settings until prepare() has read the tenant's.
        self.sources: list[str] = []
        self._use_sources(sources_of(settings.mastodon_hashtags, mentions=settings.mastodon_watch_mentions))

    @property
    def tenant_id(self) -> uuid.UUID | None:
        return self._listening.tenant_id if self._listening is not None else None

    def _use_sources(self, sources: list[str]) -> bool:
        """Watch these sources from now on; True when they differ from the ones watched so far."""
        if sources == self.sources:
            return False
        self.sources = sources
        self.status.sources = {s: self.status.sources.get(s) or SourceState(s) for s in sources}
        for source in sources:
            self._poll_locks.setdefault(source, asyncio.Lock())
            self._poll_now.setdefault(source, asyncio.Event())
        return True

    async def refresh_sources(self) -> bool:
        """Re-read the tenant's hashtags and mentions setting; True when the sources changed."""
        listening = await self.prepare()
        async with self.db.unit_of_work(write=False) as session:
            social = await service.tenant_social_settings(session, self.settings, listening.tenant_id)
        changed = self._use_sources(social.sources)
        if changed:
            logger.info("mastodon: now watching %s", ", ".join(self.sources) or "nothing")
        return changed

    @property
    def lease_name(self) -> str:
        return f"mastodon:{self.gateway.base_url}"

    async def prepare(self) -> service.Listening:
        """Who we are on the server, for which tenant, with which models (once per listener)."""
        if self._listening is not None:
            return self._listening
        me = await asyncio.to_thread(self.gateway.me)
        max_characters = await asyncio.to_thread(self.gateway.max_characters)
        async with self.db.unit_of_work() as session:
            slug = self.settings.mastodon_tenant or self.settings.default_tenant
            tenant = await tenants.get_by_slug(session, slug)
            if tenant is None and self.settings.mastodon_tenant is not None:
                raise ListenerNotConfigured(f"Tenant {slug!r} (ALLO_MASTODON_TENANT) does not exist.")
            if tenant is None:
                # A freshly migrated database has no tenant yet: the default one is made for the listener.
                tenant = await tenants.create(session, slug=slug, name=slug.replace("-", " ").title())
                logger.info("mastodon: created the default tenant %r", slug)
            tenant_id = tenant.id
            social = service.social_settings(self.settings, tenants.policy_of(tenant).social)
            self._use_sources(social.sources)
        self._listening = service.Listening(
            tenant_id=tenant_id,
            account_id=str(me["id"]),
            server_host=self.gateway.host,
            analyzer=analyzer_for(self.settings),
            classifier=classifier_at(self.settings.social_model_path),
            places=gazetteer(self.settings.data_dir),
            settings=self.settings,
            max_characters=max_characters,
        )
        return self._listening

    # Polling ------------------------------------------------------------------------------------

    async def poll_once(
        self, progress: Callable[[str, service.IngestReport], None] | None = None
    ) -> service.IngestReport:
        """Every source read up to now, once."""
        await self.refresh_sources()
        total = service.IngestReport()
        for source in self.sources:
            report = await self.poll_source(source)
            total.add(report)
            if progress is not None:
                progress(source, report)
        return total

    async def poll_source(self, source: str) -> service.IngestReport:
        listening = await self.prepare()
        total = service.IngestReport()
        async with self._poll_locks[source]:
            async with self.db.unit_of_work() as session:
                after = (await service.cursor(session, listening.tenant_id, source)).last_id
            first_run = after is None
            fetching = asyncio.ensure_future(asyncio.to_thread(self.gateway.page, source, after=after))
            try:
                for _ in range(MAX_PAGES_PER_POLL):
                    items = await fetching
                    if not items:
                        break
                    last = items[-1].cursor_id
                    if not first_run:
                        # The next page travels while this one is decided.
                        fetching = asyncio.ensure_future(
                            asyncio.to_thread(self.gateway.page, source, after=last)
                        )
                    total.add(await self._ingest(source, [i.status for i in items], cursor_to=last))
                    if first_run:
                        break
            finally:
                if not fetching.done():
                    fetching.cancel()
            if source in self.status.sources:
                self.status.sources[source].last_poll_at = time.time()
                self.status.sources[source].last_error = None
        return total

    async def _ingest(
        self, source: str, statuses: list[Mapping[str, Any]], *, cursor_to: str | None = None
    ) -> service.IngestReport:
        listening = await self.prepare()
        async with self._ingest_lock:
            for attempt in (1, 2):
                try:
                    async with self.db.unit_of_work() as session:
                        report = await service.ingest(session, listening, source, statuses)
                        if cursor_to is not None:
                            row = await service.cursor(session, listening.tenant_id, source)
                            row.last_id = service.later_id(row.last_id, cursor_to)
                            row.account_id = listening.account_id
                            row.last_polled_at = utc_now()
                    break
                except IntegrityError:
                    # Another process recorded one of these statuses first: the second pass skips it.
                    if attempt == 2:
                        raise
        for post in report.posts:
            logger.info(
                "mastodon %s %s by @%s: %s%s",
                source,
                post.status_id,
                post.author_acct,
                post.decision.value,
                f" ({post.reason})" if post.reason else f", {post.urgency}, reply {post.reply_state.value}",
            )
        return report

    # Listening ----------------------------------------------------------------------------------

    async def listen(self, stop: asyncio.Event) -> None:
        """Until `stop` is set: hold the lease, stream and poll every source."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Mapping[str, Any]]] = asyncio.Queue()

        def deliver(source: str, status: Mapping[str, Any]) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, (source, status))

        while not stop.is_set():
            if await self._take_lease():
                break
            await lease.wait(stop, LEASE_RENEW_SECONDS)
        if stop.is_set():
            return
        try:
            await self._prepare_until_ready(stop)
        except Exception:
            # A wrong token, a missing model, an unknown tenant: no point trying again until restarted.
            logger.exception("mastodon: the listener cannot start")
            async with self.db.unit_of_work() as session:
                await lease.release(session, self.lease_name, self.status.holder)
            return
        if stop.is_set():
            return
        lost = asyncio.Event()
        tasks = [asyncio.create_task(self._keep_lease(stop, lost))]
        tasks.append(asyncio.create_task(self._consume(queue, stop)))
        # Each source's poll loop and stream, stopped when the tenant stops watching it.
        running: dict[str, list[asyncio.Task[None]]] = {}

        def start_sources() -> None:
            for source in list(running):
                if source not in self.sources:
                    for task in running.pop(source):
                        task.cancel()
            for source in self.sources:
                if source not in running:
                    running[source] = [asyncio.create_task(self._poll_loop(source, stop))]
                    if self.settings.mastodon_streaming:
                        running[source].append(asyncio.create_task(self._stream_loop(source, stop, deliver)))

        start_sources()
        try:
            waiters = {asyncio.create_task(stop.wait()), asyncio.create_task(lost.wait())}
            while not (stop.is_set() or lost.is_set()):
                await asyncio.wait(
                    waiters, timeout=self.settings.mastodon_poll_seconds, return_when=asyncio.FIRST_COMPLETED
                )
                if stop.is_set() or lost.is_set():
                    break
                try:
                    if await self.refresh_sources():
                        start_sources()
                except Exception:
                    logger.exception("mastodon: could not re-read the tenant's social settings")
            for waiter in waiters:
                waiter.cancel()
        finally:
            stop.set()
            tasks.extend(task for group in running.values() for task in group)
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            with contextlib.suppress(Exception):
                async with self.db.unit_of_work() as session:
                    await lease.release(session, self.lease_name, self.status.holder)
            self.status.leader = False

    async def _prepare_until_ready(self, stop: asyncio.Event) -> None:
        delay = 5.0
        while not stop.is_set():
            try:
                await self.prepare()
                return
            except RateLimited as exc:
                await lease.wait(stop, exc.retry_after)
            except Unavailable as exc:
                logger.warning("mastodon: server unavailable (%s); trying again in %.0f s", exc, delay)
                await lease.wait(stop, delay)
                delay = min(delay * 2, MAX_POLL_BACKOFF)

    async def _take_lease(self) -> bool:
        async with self.db.unit_of_work() as session:
            self.status.leader = await lease.acquire(session, self.lease_name, self.status.holder, LEASE_TTL)
        return self.status.leader

    async def _keep_lease(self, stop: asyncio.Event, lost: asyncio.Event) -> None:
        while not stop.is_set():
            await lease.wait(stop, LEASE_RENEW_SECONDS)
            if stop.is_set():
                return
            try:
                held = await self._take_lease()
            except Exception:
                logger.exception("mastodon: could not renew the listener's lease")
                continue
            if not held:
                logger.warning("mastodon: another process took over the listener")
                lost.set()
                return

    async def _consume(
        self, queue: asyncio.Queue[tuple[str, Mapping[str, Any]]], stop: asyncio.Event
    ) -> None:
        while not stop.is_set():
            source, status = await queue.get()
            batch = [status]
            while not queue.empty() and len(batch) < 40:
                other_source, other = queue.get_nowait()
                if other_source != source:
                    await self._ingest_logged(other_source, [other])
                    continue
                batch.append(other)
            if source in self.status.sources:
                self.status.sources[source].received_live += len(batch)
            await self._ingest_logged(source, batch)

    async def _ingest_logged(self, source: str, statuses: list[Mapping[str, Any]]) -> None:
        try:
            await self._ingest(source, statuses)
        except Exception:
            # The next poll reads them again from the cursor: nothing is lost.
            logger.exception("mastodon: live statuses from %s not recorded; the next poll retries", source)

    async def _poll_loop(self, source: str, stop: asyncio.Event) -> None:
        state = self.status.sources[source]
        failures = 0
        while not stop.is_set():
            delay = self.settings.mastodon_poll_seconds
            try:
                await self.poll_source(source)
                failures = 0
            except RateLimited as exc:
                state.last_error = str(exc)
                delay = exc.retry_after
                logger.warning("mastodon: rate limited; %s waits %.0f s", source, delay)
            except Unavailable as exc:
                failures += 1
                state.last_error = str(exc)
                delay = min(self.settings.mastodon_poll_seconds * 2 ** (failures - 1), MAX_POLL_BACKOFF)
                logger.warning("mastodon: %s not read (%s); next try in %.0f s", source, exc, delay)
            except Exception as exc:
                failures += 1
                state.last_error = f"{type(exc).__name__}: {exc}"
                logger.exception("mastodon: polling %s failed", source)
                delay = min(self.settings.mastodon_poll_seconds * 2 ** (failures - 1), MAX_POLL_BACKOFF)
            self._poll_now[source].clear()
            await lease.wait(stop, delay, self._poll_now[source])

    async def _stream_loop(
        self, source: str, stop: asyncio.Event, deliver: Callable[[str, Mapping[str, Any]], None]
    ) -> None:
        state = self.status.sources[source]
        while not stop.is_set():
            state.streaming = "connecting" if state.stream_failures == 0 else "reconnecting"
            stream = _Stream(source, deliver)
            was_live = await self._run_stream(source, stream, stop, state)
            if stop.is_set():
                break
            state.stream_failures = 0 if was_live else state.stream_failures + 1
            state.streaming = "refused" if state.stream_failures >= 3 else "reconnecting"
            # Whatever came while the stream was down, the poll reads it now.
            self._poll_now[source].set()
            await lease.wait(stop, min(2.0**state.stream_failures, MAX_STREAM_BACKOFF))
        state.streaming = "off"

    async def _run_stream(
        self, source: str, stream: _Stream, stop: asyncio.Event, state: SourceState
    ) -> bool:
        """Runs one connection until it ends; True when it had been live."""
        loop = asyncio.get_running_loop()
        ended: asyncio.Future[None] = loop.create_future()

        def run() -> None:
            error: BaseException | None = None
            try:
                self.gateway.stream(source, stream, timeout=self.stream_read_timeout)
            except BaseException as exc:
                error = exc
            loop.call_soon_threadsafe(_settle, ended, error)

        # A daemon thread: a connection stuck in a read must not hold the process at exit.
        threading.Thread(target=run, name=f"mastodon-stream-{source}", daemon=True).start()
        opened = asyncio.Event()
        stream.on_open = lambda: loop.call_soon_threadsafe(opened.set)
        connected: asyncio.Future[Any] = asyncio.ensure_future(opened.wait())
        stopper: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
        try:
            first: set[asyncio.Future[Any]] = {ended, connected, stopper}
            done, _ = await asyncio.wait(first, return_when=asyncio.FIRST_COMPLETED)
            if connected in done:
                state.streaming = "live"
                logger.info("mastodon: streaming %s", source)
                self._poll_now[source].set()  # the gap before the stream opened
            rest: set[asyncio.Future[Any]] = {ended, stopper}
            await asyncio.wait(rest, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            connected.cancel()
            if not ended.done():
                stream.close()
                ended.cancel()  # the thread ends on its own; what it raises then is nobody's concern
        error = ended.exception() if ended.done() and not ended.cancelled() else None
        if error is not None:
            state.last_error = str(error)
            logger.warning("mastodon: stream %s ended: %s", source, error)
        return stream.connected.is_set()


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
