"""The job system's own jobs: housekeeping that keeps the database small, the periodic clock (SLA alarms,
offer deadlines, overflow), and a diagnostic ping."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from allo.audit.service import record
from allo.channels import service as channels
from allo.kit import jobs
from allo.kit.time import utc_now
from allo.models import AuthSession, Job
from allo.models.enums import ActorKind, JobStatus
from allo.routing import tasks as routing_tasks
from allo.tickets import tasks as ticket_tasks

logger = logging.getLogger(__name__)

PURGE_KIND = "maintenance.purge"
PURGE_EVERY = timedelta(hours=1)
FINISHED_JOB_RETENTION = timedelta(days=7)


@jobs.job_handler(PURGE_KIND)
async def purge(ctx: jobs.JobContext) -> None:
    now = utc_now()
    await ctx.session.execute(delete(AuthSession).where(AuthSession.expires_at < now))
    await ctx.session.execute(
        delete(Job).where(Job.status == JobStatus.succeeded, Job.finished_at < now - FINISHED_JOB_RETENTION)
    )
    await schedule_purge(ctx.session, after=now)


async def schedule_purge(session: AsyncSession, *, after: datetime | None = None) -> None:
    """Enqueue the next hourly purge; the idempotency key makes every process agree on one."""
    start = after or utc_now()
    slot = start.replace(minute=0, second=0, microsecond=0) + PURGE_EVERY
    await jobs.enqueue(session, PURGE_KIND, run_at=slot, idempotency_key=f"{PURGE_KIND}:{slot.isoformat()}")


CLOCK_KIND = "maintenance.clock"
DEFAULT_TICK = timedelta(seconds=15)


@jobs.job_handler(CLOCK_KIND)
async def clock(ctx: jobs.JobContext) -> None:
    """One tick: alarms of the SLA clocks, offers not accepted in time, a routing pass where work waits."""
    now = utc_now()
    for part in (ticket_tasks.raise_sla_alarms, routing_tasks.tick, channels.sweep):
        # Each part in a SAVEPOINT: one failing must neither undo the other nor stop the clock.
        try:
            async with ctx.session.begin_nested():
                await part(ctx.session, now)
        except Exception:
            logger.exception("clock tick: %s failed; the next tick tries again", part.__qualname__)
    settings = ctx.resources.get("settings")
    every = timedelta(seconds=settings.clock_tick_seconds) if settings is not None else DEFAULT_TICK
    await schedule_clock(ctx.session, every, after=now)


async def schedule_clock(session: AsyncSession, every: timedelta, *, after: datetime | None = None) -> None:
    """Enqueue the next tick at the next multiple of `every`; every process computes the same slot, and
    the idempotency key keeps one job per slot."""
    start = after or utc_now()
    step = max(int(every.total_seconds()), 1)
    slot = datetime.fromtimestamp((int(start.timestamp()) // step + 1) * step, tz=start.tzinfo)
    await jobs.enqueue(
        session, CLOCK_KIND, run_at=slot, max_attempts=2, idempotency_key=f"{CLOCK_KIND}:{slot.isoformat()}"
    )


PING_KIND = "diagnostics.ping"


@jobs.job_handler(PING_KIND)
async def ping(ctx: jobs.JobContext) -> None:
    """Proves that a worker runs jobs end to end: waits `delay` seconds, then writes an audit event."""
    delay = float(ctx.payload.get("delay", 0))
    await asyncio.sleep(min(max(delay, 0.0), 300.0))
    await record(
        ctx.session,
        ctx.tenant_id,
        ActorKind.system,
        None,
        "jobs.ping",
        "job",
        ctx.job_id,
        {"attempt": ctx.attempt, "worker": ctx.worker},
    )
