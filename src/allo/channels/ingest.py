"""Group commit for webhooks: the requests arriving together are stored in one transaction.

Each webhook must be stored before its 2xx, and a transaction per webhook spends most of its time in round
trips to the database while the event loop serves other requests; on SQLite, where writers take turns,
that caps a process at a few hundred webhooks a second. Here the hook hands its items to one writer task
that stores everything waiting in one transaction, then answers every request of the batch. Nothing is
acknowledged before it is committed. When a batch fails, each request is retried alone, so that one bad
request fails only itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from allo.channels import service
from allo.channels.base import InboundItem
from allo.kit.db import Database
from allo.models import ChannelAccount

logger = logging.getLogger(__name__)

MAX_BATCH = 500


@dataclass
class _Submission:
    account: ChannelAccount
    items: list[InboundItem]
    done: asyncio.Future[service.Received] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class Ingest:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._queue: asyncio.Queue[_Submission] | None = None
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, account: ChannelAccount, items: list[InboundItem]) -> service.Received:
        """Stored and queued for processing when this returns; raises what storing raised."""
        if self._queue is None or self._writer is None or self._writer.done():
            self._queue = asyncio.Queue()
            self._writer = asyncio.create_task(self._write_forever(self._queue))
        submission = _Submission(account, items)
        self._queue.put_nowait(submission)
        return await asyncio.shield(submission.done)

    async def close(self) -> None:
        """Stop the writer (at shutdown, once the requests it served are answered)."""
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
            self._writer = None

    async def _write_forever(self, queue: asyncio.Queue[_Submission]) -> None:
        while True:
            batch = [await queue.get()]
            while len(batch) < MAX_BATCH and not queue.empty():
                batch.append(queue.get_nowait())
            await self._write(batch)

    async def _write(self, batch: list[_Submission]) -> None:
        try:
            async with self.db.unit_of_work() as session:
                results = await service.accept_many(session, [(s.account, s.items) for s in batch])
        except Exception:
            if len(batch) == 1:
                submission = batch[0]
                logger.exception("storing a channel event failed")
                if not submission.done.done():
                    submission.done.set_exception(service.StorageFailed("The event could not be stored."))
                return
            for submission in batch:
                await self._write([submission])
            return
        for submission, received in zip(batch, results, strict=True):
            if not submission.done.done():
                submission.done.set_result(received)
