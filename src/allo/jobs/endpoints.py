from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from allo.audit.service import record_by
from allo.deps import SessionDep, SupervisorDep
from allo.jobs.repository import JobRepository
from allo.jobs.schemas import JobRead
from allo.kit import jobs
from allo.kit.errors import Conflict
from allo.kit.pagination import Page, PageParams, page_params
from allo.models.enums import JobStatus

router = APIRouter(prefix="/jobs", tags=["jobs"])


@router.get("", summary="The tenant's background jobs (supervisor): failures and the dead letter")
async def list_jobs(
    session: SessionDep,
    principal: SupervisorDep,
    page: Annotated[PageParams, Depends(page_params)],
    status: JobStatus | None = None,
    kind: Annotated[str | None, Query(max_length=80)] = None,
) -> Page[JobRead]:
    repo = JobRepository(session, principal.tenant_id)
    rows, cursor = await repo.paginate(repo.filtered(status=status, kind=kind), page)
    return Page(items=[JobRead.model_validate(j) for j in rows], next_cursor=cursor)


@router.post("/{job_id}/retry", summary="Put a dead job back in the queue (supervisor)")
async def retry_job(job_id: uuid.UUID, session: SessionDep, principal: SupervisorDep) -> JobRead:
    repo = JobRepository(session, principal.tenant_id)
    job = await repo.get_or_raise(job_id)
    if job.status is not JobStatus.dead:
        raise Conflict(
            "Only a dead job can be retried.", code="job_not_dead", details={"status": job.status.value}
        )
    await jobs.retry_dead_job(session, job.id)
    await record_by(session, principal, "job.retry", "job", job.id)
    await session.refresh(job)
    return JobRead.model_validate(job)
