"""The long-running listener: live statuses from the streams, reconnects that fill the gap by polling,
polling alone when the server refuses to stream, one listener per account across processes."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from allo.config import Settings
from allo.kit.db import Database
from allo.social.listener import Listener
from tests.factories import make_assistant_tenant
from tests.mastodon_standin import (  # noqa: F401
    MastodonStandin,
    mastodon_standin_fixture,
    mastodon_standin_server_fixture,
)
from tests.social.helpers import mastodon_settings, posts

COMPLAINT = "Ma facture est encore fausse ce mois-ci, 30 € de trop, ça devient insupportable #Free"


@pytest.fixture
async def live_settings(own_db: Database, settings: Settings, mastodon_standin: MastodonStandin) -> Settings:
    slug = f"live-{uuid.uuid4().hex[:8]}"
    async with own_db.unit_of_work() as session:
        await make_assistant_tenant(session, slug)
    # Polling every minute: whatever arrives sooner came by the stream (or a reconnect's catch-up).
    return mastodon_settings(
        settings,
        mastodon_standin,
        slug,
        mastodon_hashtags=["Free"],
        mastodon_poll_seconds=60,
        database_url=str(own_db.engine.url.render_as_string(hide_password=False)),
    )


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("not reached in time")
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def listening(listener: Listener) -> AsyncIterator[asyncio.Event]:
    stop = asyncio.Event()
    task = asyncio.create_task(listener.listen(stop))
    try:
        yield stop
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)


async def count_posts(db: Database, listener: Listener) -> int:
    tenant_id = listener.tenant_id
    return len(await posts(db, tenant_id)) if tenant_id is not None else 0


async def test_statuses_arrive_live_and_a_dropped_stream_reconnects_and_catches_up(
    own_db: Database, live_settings: Settings, mastodon_standin: MastodonStandin
) -> None:
    listener = Listener(live_settings, own_db)
    async with listening(listener):
        await asyncio.to_thread(mastodon_standin.wait_for_streams, 2, 10.0)  # #Free and the mentions
        mastodon_standin.add_status(COMPLAINT, account="lea@piaille.fr")
        await eventually(lambda: _has(own_db, listener, 1))
        assert listener.status.sources["tag:free"].streaming == "live"
        assert listener.status.sources["tag:free"].received_live == 1

        assert mastodon_standin.drop_streams() == 2
        # Posted while no stream is open: the reconnect's poll finds it, long before the next minute.
        mastodon_standin.add_status(
            "Et maintenant plus de réseau du tout, génial #Free", account="marc@piaille.fr"
        )
        await asyncio.to_thread(mastodon_standin.wait_for_streams, 2, 10.0)
        await eventually(lambda: _has(own_db, listener, 2))
        mastodon_standin.add_mention("Toujours rien, vous répondez quand ?", account="lea@piaille.fr")
        await eventually(lambda: _has(own_db, listener, 3))
    assert listener.tenant_id is not None
    assert {p.source for p in await posts(own_db, listener.tenant_id)} == {"tag:free", "mentions"}


async def _has(db: Database, listener: Listener, count: int) -> bool:
    return await count_posts(db, listener) >= count


async def test_polling_takes_over_when_the_server_refuses_to_stream(
    own_db: Database, live_settings: Settings, mastodon_standin: MastodonStandin
) -> None:
    mastodon_standin.refuse_streaming(503)
    listener = Listener(live_settings, own_db)
    async with listening(listener):
        await eventually(lambda: _polled(listener))
        mastodon_standin.add_status(COMPLAINT, account="lea@piaille.fr")
        # Each refused connection triggers a poll (backoff 2 s, 4 s…): the status is found.
        await eventually(lambda: _has(own_db, listener, 1), within=15)
        assert listener.status.sources["tag:free"].streaming in ("reconnecting", "refused")
        assert mastodon_standin.open_streams == 0


async def _polled(listener: Listener) -> bool:
    return listener.status.sources["tag:free"].last_poll_at is not None


async def test_one_listener_per_account_across_processes(
    own_db: Database, live_settings: Settings, mastodon_standin: MastodonStandin
) -> None:
    first, second = Listener(live_settings, own_db), Listener(live_settings, own_db)
    async with listening(first):
        await eventually(lambda: _leader(first))
        async with listening(second):
            await asyncio.to_thread(mastodon_standin.wait_for_streams, 2, 10.0)
            await asyncio.sleep(0.5)
            assert not second.status.leader and mastodon_standin.open_streams == 2
    # The first one released its lease on the way out: a new one takes over at once.
    third = Listener(live_settings, own_db)
    async with listening(third):
        await eventually(lambda: _leader(third))


async def _leader(listener: Listener) -> bool:
    return listener.status.leader
