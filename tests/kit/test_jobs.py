"""The job table: transactional enqueue, retries, dead letter, idempotency, timers and leases."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from allo.kit.db import Database
from allo.kit.jobs import (
    JobContext,
    JobRegistry,
    PermanentFailure,
    RetryLater,
    Worker,
    backoff_seconds,
    enqueue,
    enqueue_on_commit,
)
from allo.kit.time import utc_now
from allo.models import AuditEvent, Job
from allo.models.enums import ActorKind, JobStatus
from tests.factories import ensure_tenant


class Boom(Exception):
    pass


def _worker(db: Database, registry: JobRegistry, **kwargs: float) -> Worker:
    return Worker(db, job_registry=registry, backoff_base_seconds=1.0, **kwargs)  # type: ignore[arg-type]


async def _job(db: Database, job_id: uuid.UUID) -> Job:
    async with db.unit_of_work(write=False) as s:
        job = await s.get(Job, job_id)
        assert job is not None
        return job


async def _audit_count(db: Database, action: str) -> int:
    async with db.unit_of_work(write=False) as s:
        return int((await s.execute(select(func.count()).where(AuditEvent.action == action))).scalar_one())


def _recording_registry(kind: str, calls: list[JobContext], *, error: Exception | None = None) -> JobRegistry:
    registry = JobRegistry()

    @registry.handler(kind)
    async def handler(ctx: JobContext) -> None:
        calls.append(ctx)
        await _write_audit(ctx, kind)
        if error is not None:
            raise error

    return registry


async def _write_audit(ctx: JobContext, action: str) -> None:
    ctx.session.add(AuditEvent(tenant_id=None, actor_kind=ActorKind.system, action=action, data={}))
    await ctx.session.flush()


async def test_a_job_enqueued_in_a_rolled_back_transaction_never_exists(db: Database) -> None:
    with pytest.raises(Boom):
        async with db.unit_of_work() as s:
            await enqueue(s, "test.never")
            raise Boom
    async with db.unit_of_work(write=False) as s:
        assert (await s.execute(select(func.count()).where(Job.kind == "test.never"))).scalar_one() == 0


async def test_a_committed_job_runs_once_and_its_effects_commit_with_it(db: Database) -> None:
    calls: list[JobContext] = []
    worker = _worker(db, _recording_registry("test.ok", calls))
    async with db.unit_of_work() as s:
        job_id = await enqueue(s, "test.ok", {"n": 1})
    assert job_id is not None
    assert await worker.run_until_idle() == 1
    assert await worker.run_until_idle() == 0
    job = await _job(db, job_id)
    assert job.status is JobStatus.succeeded
    assert job.attempts == 1 and job.finished_at is not None and job.locked_by is None
    assert [c.payload for c in calls] == [{"n": 1}]
    assert await _audit_count(db, "test.ok") == 1


async def test_enqueue_wakes_the_worker_only_after_commit(db: Database) -> None:
    bus = db.info["allo_bus"]
    bus.job_wakeup.clear()
    async with db.unit_of_work() as s:
        await enqueue(s, "test.wake")
        assert not bus.job_wakeup.is_set()
    assert bus.job_wakeup.is_set()


async def test_a_deferred_job_is_inserted_once_at_commit_and_never_after_a_rollback(db: Database) -> None:
    bus = db.info["allo_bus"]
    bus.job_wakeup.clear()
    key = f"wake:{uuid.uuid4()}"
    async with db.unit_of_work() as s:
        for _ in range(3):
            enqueue_on_commit(s, "test.deferred", idempotency_key=key)
        async with s.begin_nested():
            enqueue_on_commit(s, "test.deferred", {"other": True})
        # Nothing yet, not even after the SAVEPOINT was released.
        assert (await s.execute(select(func.count()).where(Job.kind == "test.deferred"))).scalar_one() == 0
    assert bus.job_wakeup.is_set()
    with pytest.raises(Boom):
        async with db.unit_of_work() as s:
            enqueue_on_commit(s, "test.deferred", {"rolled_back": True})
            raise Boom
    async with db.unit_of_work() as s:
        enqueue_on_commit(s, "test.deferred", idempotency_key=key)  # the key exists: nothing new
    async with db.unit_of_work(write=False) as s:
        payloads = (await s.execute(select(Job.payload).where(Job.kind == "test.deferred"))).scalars().all()
    assert sorted(map(str, payloads)) == sorted(map(str, [{}, {"other": True}]))


async def test_a_failing_job_is_rolled_back_and_retried_later_with_backoff(db: Database) -> None:
    calls: list[JobContext] = []
    worker = _worker(db, _recording_registry("test.fail", calls, error=Boom("provider down")))
    async with db.unit_of_work() as s:
        job_id = await enqueue(s, "test.fail", max_attempts=3)
    assert job_id is not None
    before = utc_now()
    await worker.run_until_idle()
    job = await _job(db, job_id)
    assert job.status is JobStatus.queued
    assert job.attempts == 1
    assert job.last_error == "Boom: provider down"
    assert job.run_at > before  # not due again at once
    assert await _audit_count(db, "test.fail") == 0  # the handler's writes were rolled back
    assert await worker.run_until_idle() == 0  # backoff: nothing due yet


async def test_a_job_failing_every_attempt_lands_in_the_dead_letter(db: Database) -> None:
    calls: list[JobContext] = []
    worker = _worker(db, _recording_registry("test.dead", calls, error=Boom("always")))
    async with db.unit_of_work() as s:
        job_id = await enqueue(s, "test.dead", max_attempts=3)
    assert job_id is not None
    for _ in range(3):
        async with db.unit_of_work() as s:
            await s.execute(update(Job).where(Job.id == job_id).values(run_at=utc_now()))
        await worker.run_until_idle()
    job = await _job(db, job_id)
    assert job.status is JobStatus.dead
    assert job.attempts == 3
    assert [c.attempt for c in calls] == [1, 2, 3]
    assert await worker.run_until_idle() == 0


async def test_retry_later_postpones_without_spending_an_attempt(db: Database) -> None:
    calls: list[JobContext] = []
    worker = _worker(
        db, _recording_registry("test.later", calls, error=RetryLater("rate limited", delay=120))
    )
    async with db.unit_of_work() as s:
        job_id = await enqueue(s, "test.later")
    assert job_id is not None
    await worker.run_until_idle()
    job = await _job(db, job_id)
    assert job.status is JobStatus.queued
    assert job.attempts == 0
    assert job.run_at > utc_now() + timedelta(seconds=100)


async def test_a_permanent_failure_goes_straight_to_the_dead_letter(db: Database) -> None:
    calls: list[JobContext] = []
    worker = _worker(db, _recording_registry("test.perm", calls, error=PermanentFailure("bad address")))
    async with db.unit_of_work() as s:
        job_id = await enqueue(s, "test.perm")
    assert job_id is not None
    await worker.run_until_idle()
    job = await _job(db, job_id)
    assert job.status is JobStatus.dead
    assert job.last_error == "PermanentFailure: bad address"


async def test_an_unknown_kind_is_dead_lettered_with_a_clear_error(db: Database) -> None:
    async with db.unit_of_work() as s:
        job_id = await enqueue(s, "test.nobody-handles-this")
    assert job_id is not None
    await _worker(db, JobRegistry()).run_until_idle()
    job = await _job(db, job_id)
    assert job.status is JobStatus.dead
    assert "no handler" in (job.last_error or "")


async def test_an_idempotency_key_enqueues_once(db: Database) -> None:
    async with db.unit_of_work() as s:
        first = await enqueue(s, "test.once", idempotency_key="send:42")
        second = await enqueue(s, "test.once", idempotency_key="send:42")
    async with db.unit_of_work() as s:
        third = await enqueue(s, "test.once", idempotency_key="send:42")
    assert first is not None and second is None and third is None
    async with db.unit_of_work(write=False) as s:
        assert (await s.execute(select(func.count()).where(Job.kind == "test.once"))).scalar_one() == 1


async def test_a_scheduled_job_waits_for_its_time(db: Database) -> None:
    calls: list[JobContext] = []
    worker = _worker(db, _recording_registry("test.timer", calls))
    async with db.unit_of_work() as s:
        job_id = await enqueue(s, "test.timer", run_at=utc_now() + timedelta(hours=1))
    assert await worker.run_until_idle() == 0
    async with db.unit_of_work() as s:
        await s.execute(update(Job).where(Job.id == job_id).values(run_at=utc_now() - timedelta(seconds=1)))
    assert await worker.run_until_idle() == 1
    assert len(calls) == 1


async def test_a_running_job_whose_lease_expired_is_claimed_again(db: Database) -> None:
    calls: list[JobContext] = []
    registry = _recording_registry("test.lease", calls)
    first, second = _worker(db, registry), _worker(db, registry)
    async with db.unit_of_work() as s:
        job_id = await enqueue(s, "test.lease")
    [claimed] = await first.claim(10)
    assert await second.claim(10) == []  # leased to the first worker
    async with db.unit_of_work() as s:  # the first worker dies; its lease runs out
        await s.execute(
            update(Job).where(Job.id == job_id).values(locked_until=utc_now() - timedelta(seconds=1))
        )
    [reclaimed] = await second.claim(10)
    assert reclaimed.id == job_id and reclaimed.attempts == 2
    await first.execute(claimed)  # the late first worker finishes: its work is discarded
    assert await _audit_count(db, "test.lease") == 0
    await second.execute(reclaimed)
    assert await _audit_count(db, "test.lease") == 1
    job = await _job(db, job_id)
    assert job.status is JobStatus.succeeded


def test_backoff_grows_exponentially_and_is_capped() -> None:
    assert 1.0 <= backoff_seconds(1, base=2.0, cap=3600) <= 2.0
    assert 8.0 <= backoff_seconds(4, base=2.0, cap=3600) <= 16.0
    assert 1800.0 <= backoff_seconds(30, base=2.0, cap=3600) <= 3600.0


async def test_coalesced_wake_ups_share_one_waiting_job(db: Database) -> None:
    async with db.unit_of_work() as s:
        tenant = (await ensure_tenant(s, f"wake-{uuid.uuid4().hex[:6]}")).id
    for _ in range(3):
        async with db.unit_of_work() as s:
            enqueue_on_commit(s, "test.wake_up", tenant_id=tenant, coalesce=True)
    async with db.unit_of_work(write=False) as s:
        waiting = (
            await s.execute(select(func.count()).where(Job.kind == "test.wake_up", Job.tenant_id == tenant))
        ).scalar_one()
    assert waiting == 1
    async with db.unit_of_work() as s:
        await s.execute(
            update(Job)
            .where(Job.kind == "test.wake_up", Job.tenant_id == tenant)
            .values(status=JobStatus.running)
        )
    async with db.unit_of_work() as s:
        enqueue_on_commit(s, "test.wake_up", tenant_id=tenant, coalesce=True)  # the running one has started
    async with db.unit_of_work(write=False) as s:
        total = (
            await s.execute(select(func.count()).where(Job.kind == "test.wake_up", Job.tenant_id == tenant))
        ).scalar_one()
    assert total == 2
