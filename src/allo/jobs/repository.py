from __future__ import annotations

from sqlalchemy import Select

from allo.kit.repository import TenantRepository
from allo.models import Job
from allo.models.enums import JobStatus


class JobRepository(TenantRepository[Job]):
    model = Job
    noun = "job"

    def filtered(self, *, status: JobStatus | None = None, kind: str | None = None) -> Select[Job]:
        stmt = self.select()
        if status is not None:
            stmt = stmt.where(Job.status == status)
        if kind is not None:
            stmt = stmt.where(Job.kind == kind)
        return stmt
