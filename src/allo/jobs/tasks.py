"""Housekeeping that keeps the database small: expired sessions and old finished jobs."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from allo.kit import jobs
from allo.kit.time import utc_now
from allo.models import AuthSession, Job
from allo.models.enums import JobStatus

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
