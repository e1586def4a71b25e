from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from allo.kit.db import GUID, JSONType
from allo.kit.time import utc_now
from allo.models.base import Base, IdMixin, TimestampMixin, enum_type
from allo.models.enums import JobStatus


class Job(IdMixin, TimestampMixin, Base):
    """A side effect to run after commit (the outbox): sends, notifications, timers, webhooks."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_status_run_at", "status", "run_at"),)

    tenant_id: Mapped[uuid.UUID | None] = mapped_column(
        GUID, ForeignKey("tenants.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(80), nullable=False)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict, nullable=False)
    status: Mapped[JobStatus] = mapped_column(
        enum_type(JobStatus, "job_status"), default=JobStatus.queued, nullable=False
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    max_attempts: Mapped[int] = mapped_column(Integer, default=8, nullable=False)
    run_at: Mapped[datetime] = mapped_column(default=utc_now, nullable=False)
    locked_by: Mapped[str | None] = mapped_column(String(120))
    # A running job whose lease ran out belongs to a dead worker and is claimed again.
    locked_until: Mapped[datetime | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(Text)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    finished_at: Mapped[datetime | None] = mapped_column()
