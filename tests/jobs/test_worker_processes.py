"""Workers as real processes on a real database: a killed worker's job is finished by another."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from sqlalchemy import func, select

from allo.jobs.tasks import PING_KIND
from allo.kit.db import Database
from allo.kit.jobs import Worker, enqueue
from allo.models import AuditEvent, Job
from allo.models.enums import JobStatus

LEASE_SECONDS = 1.5


def _start_worker(url: str, tmp_path: Path, name: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "ALLO_DATABASE_URL": url,
        "ALLO_JOB_LEASE_SECONDS": str(LEASE_SECONDS),
        "ALLO_JOB_POLL_SECONDS": "0.2",
        "ALLO_MODE": "dev",
    }
    log = (tmp_path / f"{name}.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "allo", "worker"], env=env, stdout=log, stderr=subprocess.STDOUT
    )


async def _wait_for(db: Database, job_id: uuid.UUID, predicate: str, seconds: float = 30.0) -> Job:
    for _ in range(int(seconds / 0.1)):
        async with db.unit_of_work(write=False) as s:
            job = await s.get(Job, job_id)
            assert job is not None
            if predicate == "running" and job.status is JobStatus.running and job.locked_by:
                return job
            if predicate == "done" and job.status in (JobStatus.succeeded, JobStatus.dead):
                return job
        await asyncio.sleep(0.1)
    raise AssertionError(f"job {job_id} never became {predicate}")


async def test_a_job_whose_worker_is_killed_is_run_again_by_another_worker(
    own_db: Database, fresh_database_url: str, tmp_path: Path
) -> None:
    async with own_db.unit_of_work() as s:
        job_id = await enqueue(s, PING_KIND, {"delay": 2.0})
    assert job_id is not None

    first = _start_worker(fresh_database_url, tmp_path, "first")
    try:
        running = await _wait_for(own_db, job_id, "running")
        first.send_signal(signal.SIGKILL)  # dies mid-job, holding the lease
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
    second = _start_worker(fresh_database_url, tmp_path, "second")
    try:
        done = await _wait_for(own_db, job_id, "done")
    finally:
        second.send_signal(signal.SIGTERM)
        try:
            second.wait(timeout=15)
        except subprocess.TimeoutExpired:
            second.kill()
    assert done.status is JobStatus.succeeded
    assert done.attempts == 2
    assert running.locked_by != done.locked_by or done.locked_by is None
    async with own_db.unit_of_work(write=False) as s:
        pings = (await s.execute(select(AuditEvent).where(AuditEvent.action == "jobs.ping"))).scalars().all()
    assert len(pings) == 1  # the killed attempt left nothing behind
    assert pings[0].data["attempt"] == 2
    assert pings[0].data["worker"] != running.locked_by
    assert second.returncode == 0  # SIGTERM stops a worker cleanly


async def test_concurrent_workers_never_run_a_job_twice(own_db: Database) -> None:
    async with own_db.unit_of_work() as s:
        for _ in range(60):
            await enqueue(s, PING_KIND, {"delay": 0})
    workers = [Worker(own_db, concurrency=5, lease_seconds=30) for _ in range(4)]
    claims = await asyncio.gather(*(w.claim(20) for w in workers))
    claimed_ids = [job.id for batch in claims for job in batch]
    assert len(claimed_ids) == len(set(claimed_ids)) == 60
    for worker, batch in zip(workers, claims, strict=True):
        for job in batch:
            await worker.execute(job)
    async with own_db.unit_of_work(write=False) as s:
        done = (await s.execute(select(func.count()).where(Job.status == JobStatus.succeeded))).scalar_one()
        pings = (await s.execute(select(func.count()).where(AuditEvent.action == "jobs.ping"))).scalar_one()
    assert done == 60 and pings == 60


async def test_a_worker_loop_picks_up_work_and_stops_on_request(own_db: Database) -> None:
    stop = asyncio.Event()
    worker = Worker(own_db, concurrency=2, poll_seconds=0.05)
    task = asyncio.create_task(worker.run(stop))
    async with own_db.unit_of_work() as s:
        job_id = await enqueue(s, PING_KIND, {"delay": 0})
    assert job_id is not None
    done = await _wait_for(own_db, job_id, "done", seconds=10)
    stop.set()
    await asyncio.wait_for(task, timeout=5)
    assert done.status is JobStatus.succeeded
    assert worker.stats.succeeded >= 1
