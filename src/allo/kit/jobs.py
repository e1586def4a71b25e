"""The job table: side effects written in the request's transaction and run after commit.

`enqueue()` adds a row in the caller's transaction. A `Worker` claims due rows (`FOR UPDATE SKIP
LOCKED` on PostgreSQL; SQLite's single writer gives the same guarantee), runs the handler in a
transaction of its own that also marks the job done, and on failure reschedules it with exponential
backoff until it lands in the dead-letter state. A claimed job carries a lease: if its worker dies,
the lease runs out and another worker claims it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, event, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from allo.kit.bus import mark_jobs_enqueued
from allo.kit.db import Database, is_postgresql, table_of
from allo.kit.lease import holder_name
from allo.kit.time import utc_now
from allo.models.enums import JobStatus
from allo.models.job import Job

logger = logging.getLogger(__name__)


class RetryLater(Exception):
    """Raised by a handler to be run again after `delay` seconds without counting as a failure."""

    def __init__(self, reason: str, *, delay: float | None = None) -> None:
        super().__init__(reason)
        self.delay = delay


class _LeaseLost(Exception):
    pass


class PermanentFailure(Exception):
    """Raised by a handler when retrying cannot help: the job goes straight to the dead letter."""


@dataclass
class JobContext:
    session: AsyncSession
    job_id: uuid.UUID
    kind: str
    tenant_id: uuid.UUID | None
    payload: dict[str, Any]
    attempt: int
    worker: str
    # What the application hands every job (its settings, say): the kit does not know the application.
    resources: Mapping[str, Any] = field(default_factory=dict)


JobHandler = Callable[[JobContext], Awaitable[None]]


@dataclass
class JobRegistry:
    handlers: dict[str, JobHandler] = field(default_factory=dict)
    # Run once, in a transaction of their own, when a job of the kind lands in the dead letter (to mark
    # what the job was for as failed: a message that could not be delivered, say).
    dead_handlers: dict[str, JobHandler] = field(default_factory=dict)

    def handler(self, kind: str) -> Callable[[JobHandler], JobHandler]:
        def register(func: JobHandler) -> JobHandler:
            if kind in self.handlers and self.handlers[kind] is not func:
                raise ValueError(f"a handler for job kind {kind!r} is already registered")
            self.handlers[kind] = func
            return func

        return register

    def on_dead(self, kind: str) -> Callable[[JobHandler], JobHandler]:
        def register(func: JobHandler) -> JobHandler:
            self.dead_handlers[kind] = func
            return func

        return register


# The application's handlers register here from each module's tasks.py.
registry = JobRegistry()
job_handler = registry.handler
on_dead = registry.on_dead


def _job_row(
    kind: str,
    payload: dict[str, Any] | None,
    *,
    tenant_id: uuid.UUID | None,
    run_at: datetime,
    idempotency_key: str | None,
    max_attempts: int,
    now: datetime,
) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "tenant_id": tenant_id,
        "kind": kind,
        "payload": payload or {},
        "status": JobStatus.queued,
        "attempts": 0,
        "max_attempts": max_attempts,
        "run_at": run_at,
        "idempotency_key": idempotency_key,
        "created_at": now,
        "updated_at": now,
    }


async def enqueue(
    session: AsyncSession,
    kind: str,
    payload: dict[str, Any] | None = None,
    *,
    tenant_id: uuid.UUID | None = None,
    run_at: datetime | None = None,
    idempotency_key: str | None = None,
    max_attempts: int = 8,
) -> uuid.UUID | None:
    """Add a job in the caller's transaction. Returns its id, or None when the idempotency key exists."""
    now = utc_now()
    values = _job_row(
        kind,
        payload,
        tenant_id=tenant_id,
        run_at=run_at or now,
        idempotency_key=idempotency_key,
        max_attempts=max_attempts,
        now=now,
    )
    dialect_insert = postgresql.insert if is_postgresql(session) else sqlite.insert
    stmt = dialect_insert(Job).values(**values)
    if idempotency_key is not None:
        stmt = stmt.on_conflict_do_nothing(index_elements=["idempotency_key"])
    result = await session.execute(stmt.returning(Job.id))
    inserted = result.scalar_one_or_none()
    if inserted is not None:
        mark_jobs_enqueued(session)
    return inserted


async def enqueue_many(
    session: AsyncSession,
    kind: str,
    jobs: list[tuple[dict[str, Any], str]],
    *,
    tenant_id: uuid.UUID | None = None,
    max_attempts: int = 8,
) -> None:
    """Add many jobs of one kind in one statement, each (payload, idempotency key); a key that exists
    already adds nothing."""
    if not jobs:
        return
    now = utc_now()
    rows = [
        _job_row(
            kind,
            payload,
            tenant_id=tenant_id,
            run_at=now,
            idempotency_key=key,
            max_attempts=max_attempts,
            now=now,
        )
        for payload, key in jobs
    ]
    dialect_insert = postgresql.insert if is_postgresql(session) else sqlite.insert
    # Executed with many rows: compiled once whatever their number, sent as multi-row INSERTs.
    await session.execute(
        dialect_insert(table_of(Job)).on_conflict_do_nothing(index_elements=["idempotency_key"]), rows
    )
    mark_jobs_enqueued(session)


_DEFERRED_JOBS = "allo.deferred_jobs"


def enqueue_on_commit(
    session: AsyncSession | Session,
    kind: str,
    payload: dict[str, Any] | None = None,
    *,
    tenant_id: uuid.UUID | None = None,
    idempotency_key: str | None = None,
    max_attempts: int = 8,
    coalesce: bool = False,
    gather_seconds: float = 0.0,
) -> None:
    """Add a job as the transaction's last statement, once per key and transaction.

    `coalesce`: skip it when a job of the same kind and tenant is already waiting to run (a wake-up: one
    waiting is enough, and it will see what this transaction committed).

    `gather_seconds` (with `coalesce`): the job runs that much later, gathering what other transactions
    commit meanwhile, and a waiting job counts only while its start is still more than half of that
    away. A job about to start may be claimed and read the database before this transaction commits; it
    would not see this transaction's rows, so it must not stand for them.

    For wake-up jobs whose idempotency key many concurrent transactions share ("route this tenant now"):
    inserting the key takes a lock on it, and a transaction that took it early and then waited for a row
    held by another one waiting for the key would deadlock. Taken last, the key only ever waits for
    transactions that are committing.
    """
    sync_session = session.sync_session if isinstance(session, AsyncSession) else session
    deferred: dict[tuple[str, str], dict[str, Any]] = sync_session.info.setdefault(_DEFERRED_JOBS, {})
    key = idempotency_key or (f"coalesce:{tenant_id}" if coalesce else str(uuid.uuid4()))
    deferred[(kind, key)] = {
        "coalesce": coalesce,
        "gather_seconds": gather_seconds,
        "tenant_id": tenant_id,
        "kind": kind,
        "payload": payload or {},
        "idempotency_key": idempotency_key,
        "max_attempts": max_attempts,
    }


# Inserted first among the commit hooks, so that the bus's hook sees the jobs and wakes the workers.
@event.listens_for(Session, "before_commit", insert=True)
def _insert_deferred_jobs(session: Session) -> None:
    if session.in_nested_transaction():
        return
    deferred: dict[tuple[str, str], dict[str, Any]] = session.info.pop(_DEFERRED_JOBS, {})
    if not deferred:
        return
    now = utc_now()
    postgres = session.get_bind().dialect.name == "postgresql"
    for spec in deferred.values():
        gather = timedelta(seconds=spec.pop("gather_seconds"))
        if spec.pop("coalesce"):
            waiting = select(Job.id).where(
                Job.kind == spec["kind"], Job.tenant_id == spec["tenant_id"], Job.status == JobStatus.queued
            )
            if gather:
                waiting = waiting.where(Job.run_at > now + gather / 2)
            if session.execute(waiting.limit(1)).first() is not None:
                continue
        dialect_insert = postgresql.insert if postgres else sqlite.insert
        stmt = dialect_insert(Job).values(_job_row(run_at=now + gather, now=now, **spec))
        if spec["idempotency_key"] is not None:
            stmt = stmt.on_conflict_do_nothing(index_elements=["idempotency_key"])
        session.execute(stmt)
    mark_jobs_enqueued(session)


@event.listens_for(Session, "after_rollback")
def _drop_deferred_jobs(session: Session) -> None:
    if not session.in_nested_transaction():
        session.info.pop(_DEFERRED_JOBS, None)


def backoff_seconds(attempt: int, *, base: float, cap: float) -> float:
    """Exponential backoff with full jitter over the upper half, so retries of a burst spread out."""
    ceiling = min(cap, base * 2.0 ** max(0, attempt - 1))
    jitter: float = random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not security
    return ceiling / 2 + jitter


@dataclass(frozen=True)
class ClaimedJob:
    id: uuid.UUID
    kind: str
    tenant_id: uuid.UUID | None
    payload: dict[str, Any]
    attempts: int
    max_attempts: int


@dataclass
class WorkerStats:
    succeeded: int = 0
    retried: int = 0
    dead: int = 0


class Worker:
    def __init__(
        self,
        db: Database,
        *,
        job_registry: JobRegistry | None = None,
        concurrency: int = 4,
        lease_seconds: float = 60.0,
        poll_seconds: float = 1.0,
        backoff_base_seconds: float = 2.0,
        backoff_max_seconds: float = 3600.0,
        wakeup: asyncio.Event | None = None,
        name: str | None = None,
        resources: Mapping[str, Any] | None = None,
        kinds: frozenset[str] | None = None,
    ) -> None:
        self.db = db
        # Only these kinds of jobs (a worker dedicated to sends, say); None: every kind.
        self.kinds = kinds
        self.resources = dict(resources or {})
        self.registry = job_registry or registry
        self.concurrency = concurrency
        self.lease = timedelta(seconds=lease_seconds)
        self.poll_seconds = poll_seconds
        self.backoff_base = backoff_base_seconds
        self.backoff_max = backoff_max_seconds
        self.wakeup = wakeup or asyncio.Event()
        self.name = name or holder_name()
        self.stats = WorkerStats()

    async def claim(self, limit: int) -> list[ClaimedJob]:
        now = utc_now()
        due = or_(
            and_(Job.status == JobStatus.queued, Job.run_at <= now),
            and_(Job.status == JobStatus.running, Job.locked_until < now),
        )
        candidates = select(Job.id).where(due)
        if self.kinds is not None:
            candidates = candidates.where(Job.kind.in_(self.kinds))
        candidates = candidates.order_by(Job.run_at).limit(limit).with_for_update(skip_locked=True)
        stmt = (
            update(Job)
            .where(Job.id.in_(candidates.scalar_subquery()))
            .values(
                status=JobStatus.running,
                locked_by=self.name,
                locked_until=now + self.lease,
                attempts=Job.attempts + 1,
                updated_at=now,
            )
            .returning(Job.id, Job.kind, Job.tenant_id, Job.payload, Job.attempts, Job.max_attempts)
            .execution_options(synchronize_session=False)
        )
        async with self.db.unit_of_work(write=True) as session:
            rows = (await session.execute(stmt)).all()
        return [ClaimedJob(*row) for row in rows]

    async def run_until_idle(self, *, max_rounds: int = 1000) -> int:
        """Run every due job, including the ones they enqueue, then return how many ran."""
        ran = 0
        for _ in range(max_rounds):
            claimed = await self.claim(self.concurrency)
            if not claimed:
                break
            for job in claimed:
                await self.execute(job)
            ran += len(claimed)
        return ran

    async def run(self, stop: asyncio.Event) -> None:
        """Claim and run jobs until `stop` is set; between batches, sleep until woken or the next poll.

        One event wakes the loop: a job enqueued (the bus sets it), a job finished (a slot is free) or
        `stop`. Waiting on it costs nothing per running job; waiting on the set of running jobs with
        `asyncio.wait` registered and removed a callback on each of them at every wake-up.
        """
        logger.info("job worker %s started", self.name)
        running: set[asyncio.Task[None]] = set()

        def finished(task: asyncio.Task[None]) -> None:
            running.discard(task)
            self.wakeup.set()

        async def relay_stop() -> None:
            await stop.wait()
            self.wakeup.set()

        stopping = asyncio.create_task(relay_stop())
        try:
            while not stop.is_set():
                free = self.concurrency - len(running)
                # Cleared before claiming: a job enqueued meanwhile sets it again. Cleared too when every
                # slot is taken: a finishing job wakes the loop, whose claim finds whatever is due.
                self.wakeup.clear()
                claimed: list[ClaimedJob] = []
                if free > 0:
                    try:
                        claimed = await self.claim(free)
                    except Exception:
                        logger.exception("claiming jobs failed; trying again at the next poll")
                for job in claimed:
                    task = asyncio.create_task(self.execute(job))
                    running.add(task)
                    task.add_done_callback(finished)
                if free > 0 and len(claimed) == free:
                    continue  # a full batch: more jobs may be due right now
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.poll_seconds):
                        await self.wakeup.wait()
        finally:
            stopping.cancel()
            if running:
                await asyncio.wait(running)
            logger.info("job worker %s stopped", self.name)

    async def execute(self, job: ClaimedJob) -> None:
        handler = self.registry.handlers.get(job.kind)
        if job.attempts > job.max_attempts:
            await self._finish(job, JobStatus.dead, "gave up: the job's worker stopped during every attempt")
            return
        if handler is None:
            await self._finish(job, JobStatus.dead, f"no handler registered for job kind {job.kind!r}")
            return
        heartbeat = asyncio.create_task(self._heartbeat(job))
        try:
            async with self.db.unit_of_work(write=True) as session:
                ctx = JobContext(
                    session,
                    job.id,
                    job.kind,
                    job.tenant_id,
                    dict(job.payload),
                    job.attempts,
                    self.name,
                    self.resources,
                )
                await handler(ctx)
                if not await self._mark(session, job, JobStatus.succeeded, None):
                    raise _LeaseLost
            self.stats.succeeded += 1
        except _LeaseLost:
            # Another worker took the job over after our lease ran out; our work was rolled back.
            logger.warning("job %s (%s) lost its lease; leaving it to its new owner", job.id, job.kind)
        except RetryLater as exc:
            await self._reschedule(job, str(exc), exc.delay, counts=False)
        except PermanentFailure as exc:
            await self._finish(job, JobStatus.dead, f"{type(exc).__name__}: {exc}")
        except Exception as exc:
            logger.warning(
                "job %s (%s) attempt %d failed: %s", job.id, job.kind, job.attempts, type(exc).__name__
            )
            await self._reschedule(job, f"{type(exc).__name__}: {exc}", None, counts=True)
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await heartbeat

    async def _heartbeat(self, job: ClaimedJob) -> None:
        """Extend the lease of a long-running job so that no other worker takes it over."""
        interval = self.lease.total_seconds() / 3
        while True:
            await asyncio.sleep(interval)
            try:
                async with self.db.unit_of_work(write=True) as session:
                    await session.execute(
                        update(Job)
                        .where(Job.id == job.id, Job.locked_by == self.name, Job.status == JobStatus.running)
                        .values(locked_until=utc_now() + self.lease)
                        .execution_options(synchronize_session=False)
                    )
            except Exception as exc:
                # A missed beat only shortens the lease; the job itself is unaffected.
                logger.warning("could not extend the lease of job %s: %s", job.id, type(exc).__name__)

    async def _mark(
        self, session: AsyncSession, job: ClaimedJob, status: JobStatus, error: str | None
    ) -> bool:
        now = utc_now()
        result = await session.execute(
            update(Job)
            .where(Job.id == job.id, Job.locked_by == self.name)
            .values(
                status=status,
                finished_at=now,
                locked_by=None,
                locked_until=None,
                last_error=error,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0))

    async def _finish(self, job: ClaimedJob, status: JobStatus, error: str) -> None:
        async with self.db.unit_of_work(write=True) as session:
            await self._mark(session, job, status, error)
        if status is JobStatus.dead:
            self.stats.dead += 1
            logger.error("job %s (%s) moved to the dead letter: %s", job.id, job.kind, error)
            await self._after_dead(job, error)

    async def _after_dead(self, job: ClaimedJob, error: str) -> None:
        handler = self.registry.dead_handlers.get(job.kind)
        if handler is None:
            return
        try:
            async with self.db.unit_of_work(write=True) as session:
                payload = {**job.payload, "error": error}
                ctx = JobContext(
                    session, job.id, job.kind, job.tenant_id, payload, job.attempts, self.name, self.resources
                )
                await handler(ctx)
        except Exception:
            logger.exception("the dead-letter handler of job %s (%s) failed", job.id, job.kind)

    async def _reschedule(self, job: ClaimedJob, error: str, delay: float | None, *, counts: bool) -> None:
        if counts and job.attempts >= job.max_attempts:
            await self._finish(job, JobStatus.dead, error)
            return
        if delay is None:
            delay = backoff_seconds(job.attempts, base=self.backoff_base, cap=self.backoff_max)
        now = utc_now()
        async with self.db.unit_of_work(write=True) as session:
            await session.execute(
                update(Job)
                .where(Job.id == job.id, Job.locked_by == self.name)
                .values(
                    status=JobStatus.queued,
                    run_at=now + timedelta(seconds=delay),
                    # A deliberate postponement is not a failed attempt.
                    attempts=job.attempts if counts else job.attempts - 1,
                    locked_by=None,
                    locked_until=None,
                    last_error=error[:4000],
                    updated_at=now,
                )
                .execution_options(synchronize_session=False)
            )
        self.stats.retried += 1


async def retry_dead_job(session: AsyncSession, job_id: uuid.UUID) -> bool:
    """Put a dead job back in the queue (an operator's decision after fixing the cause)."""
    now = utc_now()
    result = await session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.dead)
        .values(status=JobStatus.queued, attempts=0, run_at=now, finished_at=None, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    retried = bool(getattr(result, "rowcount", 0))
    if retried:
        mark_jobs_enqueued(session)
    return retried
