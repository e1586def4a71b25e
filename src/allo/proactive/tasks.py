from __future__ import annotations

import uuid

from allo.kit import jobs
from allo.proactive import service


@jobs.job_handler(service.DISPATCH_KIND)
async def dispatch(ctx: jobs.JobContext) -> None:
    await service.dispatch(ctx.session, uuid.UUID(str(ctx.payload["broadcast_id"])))
