from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from allo.kit.schemas import ReadModel
from allo.models.enums import JobStatus


class JobRead(ReadModel):
    id: uuid.UUID
    kind: str
    status: JobStatus
    attempts: int
    max_attempts: int
    run_at: datetime
    last_error: str | None
    payload: dict[str, Any]
    created_at: datetime
    finished_at: datetime | None
