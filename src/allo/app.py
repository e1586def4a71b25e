"""create_app(): the one place that builds and wires everything."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles

from allo import __version__
from allo.agents.endpoints import router as agents_router
from allo.assistant import tasks as assistant_tasks  # noqa: F401 - registers its job handlers
from allo.assistant.llm import LlmClient
from allo.auth.endpoints import router as auth_router
from allo.auth.service import ApiKeyCache, ApiKeyUsage
from allo.channels import tasks as channel_tasks  # noqa: F401 - registers its job handlers
from allo.channels.email.imap_poller import ImapPolling
from allo.channels.email.smtp_inbound import SmtpInbound
from allo.channels.endpoints import AccountCache
from allo.channels.endpoints import hooks as channel_hooks
from allo.channels.endpoints import router as channels_router
from allo.channels.ingest import Ingest
from allo.chat.endpoints import STATIC_DIR as CHAT_STATIC_DIR
from allo.chat.endpoints import api as chat_api_router
from allo.chat.endpoints import router as chat_router
from allo.chat.service import RateLimiter
from allo.config import Settings, get_settings
from allo.console.endpoints import router as console_router
from allo.console.pages import (
    PageForbidden,
    PageNotFound,
    SignInRequired,
    forbidden_page,
    not_found_page,
    sign_in_redirect,
)
from allo.conversations.endpoints import router as conversations_router
from allo.customers.endpoints import router as customers_router
from allo.diagnosis.endpoints import router as diagnosis_router
from allo.events.endpoints import router as events_router
from allo.health import router as health_router
from allo.incidents.endpoints import router as incidents_router
from allo.jobs import tasks as job_tasks
from allo.jobs.endpoints import router as jobs_router
from allo.kit.bus import BUS_INFO_KEY, Bus, PgListener, asyncpg_dsn
from allo.kit.db import Database, create_engine
from allo.kit.errors import install_error_handlers
from allo.kit.jobs import Worker
from allo.kit.limits import BodySizeLimit
from allo.knowledge.endpoints import router as knowledge_router
from allo.knowledge.endpoints import search_router as knowledge_search_router
from allo.kpis.endpoints import router as kpis_router
from allo.notifications.endpoints import router as notifications_router
from allo.proactive import tasks as proactive_tasks  # noqa: F401 - registers its job handlers
from allo.proactive.endpoints import router as proactive_router
from allo.routing import tasks as routing_tasks  # noqa: F401 - registers its job handlers
from allo.routing.endpoints import router as routing_router
from allo.social import tasks as social_tasks  # noqa: F401 - registers its job handlers
from allo.social.endpoints import pages as social_pages
from allo.social.endpoints import router as social_router
from allo.tenants.endpoints import router as tenants_router
from allo.tickets.endpoints import router as tickets_router
from allo.webhooks import tasks as webhook_tasks  # noqa: F401 - registers its job handlers
from allo.webhooks.endpoints import router as webhooks_router

logger = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
STATIC_DIR = Path(__file__).parent / "console" / "static"


def build_database(settings: Settings, bus: Bus) -> Database:
    if settings.sqlite_path is not None:
        settings.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(settings.database_url, pool_size=settings.db_pool_size)
    return Database(engine, info={BUS_INFO_KEY: bus})


def build_worker(settings: Settings, db: Database, bus: Bus) -> Worker:
    return Worker(
        db,
        concurrency=settings.worker_concurrency,
        kinds=frozenset(settings.worker_kinds) or None,
        lease_seconds=settings.job_lease_seconds,
        poll_seconds=settings.job_poll_seconds,
        backoff_base_seconds=settings.job_backoff_base_seconds,
        backoff_max_seconds=settings.job_backoff_max_seconds,
        wakeup=bus.job_wakeup,
        resources={"settings": settings},
    )


@contextlib.asynccontextmanager
async def background_services(
    settings: Settings, db: Database, bus: Bus, *, run_worker: bool
) -> AsyncIterator[None]:
    """The PostgreSQL event listener, the Mastodon listener when configured (one process at a time holds
    it), the e-mail SMTP server and IMAP polling when configured, the SMPP listener and, when asked, the
    job worker, for the lifetime of the block."""
    smtp_inbound: SmtpInbound | None = None
    if settings.smtp_inbound_port:
        # First: a port already taken by another program stops the start before anything else runs.
        smtp_inbound = SmtpInbound.from_settings(settings, db)
        await smtp_inbound.start()
    stop = asyncio.Event()
    listener: asyncio.Task[None] | None = None
    worker: asyncio.Task[None] | None = None
    mastodon: asyncio.Task[None] | None = None
    smpp: asyncio.Task[None] | None = None
    if settings.smpp_listener:
        from allo.channels.smpp.listener import SmppListener

        # Binds nothing until an SMPP account is active. The first look is done here, before anything
        # else uses the database; then every smpp_poll_seconds.
        smpp_listener = SmppListener(settings, db)
        await smpp_listener.refresh(stop)
        smpp = asyncio.create_task(smpp_listener.run(stop))
    if db.is_postgresql:
        listener = asyncio.create_task(PgListener(asyncpg_dsn(settings.database_url), bus).run())
    if settings.mastodon_configured:
        from allo.social.listener import Listener

        mastodon = asyncio.create_task(Listener(settings, db).listen(stop))
    imap: asyncio.Task[None] | None = None
    if settings.email_imap_polling:
        imap = asyncio.create_task(ImapPolling(settings, db).run(stop))
    if run_worker:
        async with db.unit_of_work() as session:
            await job_tasks.schedule_purge(session)
            await job_tasks.schedule_clock(session, timedelta(seconds=settings.clock_tick_seconds))
        worker = asyncio.create_task(build_worker(settings, db, bus).run(stop))
    try:
        yield
    finally:
        stop.set()
        if worker is not None:
            # Let running jobs finish; a job cut short is claimed again once its lease runs out.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(worker), timeout=10)
            worker.cancel()
        if listener is not None:
            listener.cancel()
        if mastodon is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(mastodon), timeout=5)
            mastodon.cancel()
        if smtp_inbound is not None:
            await smtp_inbound.close()
        if imap is not None:
            # A poll in progress finishes its message (stored, then marked seen) or is cut between two.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(imap), timeout=5)
            imap.cancel()
        if smpp is not None:
            # Each bind is closed with an unbind; a deliver_sm being stored is answered first.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(smpp), timeout=15)
            smpp.cancel()
        for task in (worker, listener, mastodon, imap, smpp):
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task


def create_app(
    settings: Settings | None = None, *, db: Database | None = None, run_background: bool = True
) -> FastAPI:
    settings = settings or get_settings()
    owns_db = db is None
    database = db or build_database(settings, Bus())
    # Sessions find the bus in their info: the one the database was built with (tests bring their own).
    bus: Bus = database.info.setdefault(BUS_INFO_KEY, Bus())

    llm = LlmClient.from_settings(settings)  # the optional LLM backend: None unless configured
    channel_ingest = Ingest(database)
    api_key_usage = ApiKeyUsage(database)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if run_background:
            async with background_services(settings, database, bus, run_worker=settings.run_worker):
                yield
        else:
            yield
        await channel_ingest.close()
        await api_key_usage.write()
        if llm is not None:
            await llm.aclose()
        if owns_db:
            await database.dispose()

    app = FastAPI(
        title="Allo",
        version=__version__,
        description="AI-first omnichannel contact center for telecom operators.",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url="/redoc",
        openapi_url=f"{API_PREFIX}/openapi.json",
    )
    app.state.settings = settings
    app.state.db = database
    app.state.bus = bus
    app.state.api_key_cache = ApiKeyCache(settings.api_key_cache_seconds)
    app.state.api_key_usage = api_key_usage
    app.state.channel_accounts = AccountCache(settings.channel_account_cache_seconds)
    app.state.channel_ingest = channel_ingest
    app.state.chat_limiter = RateLimiter()
    app.state.llm = llm

    install_error_handlers(app)
    app.add_exception_handler(SignInRequired, sign_in_redirect)
    app.add_exception_handler(PageForbidden, forbidden_page)
    app.add_exception_handler(PageNotFound, not_found_page)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)

    # First: providers' webhooks are the busiest routes, and routes are matched in order.
    app.include_router(channel_hooks, prefix=API_PREFIX)
    api = APIRouter(prefix=API_PREFIX)
    # Routes are matched in order, every route of each router listed before the one that matches tried
    # in turn: the busiest first (no two routers' paths overlap).
    for router in (
        tickets_router,
        conversations_router,
        customers_router,
        channels_router,
        auth_router,
        tenants_router,
        agents_router,
        incidents_router,
        routing_router,
        kpis_router,
        notifications_router,
        knowledge_router,
        knowledge_search_router,
        diagnosis_router,
        jobs_router,
        events_router,
        webhooks_router,
        social_router,
        proactive_router,
    ):
        api.include_router(router)
    app.include_router(api)
    app.include_router(health_router)
    app.include_router(chat_router)
    app.include_router(chat_api_router)
    app.include_router(console_router)
    app.include_router(social_pages)
    if STATIC_DIR.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    if CHAT_STATIC_DIR.is_dir():
        app.mount("/chat/static", StaticFiles(directory=CHAT_STATIC_DIR), name="chat-static")
    return app
