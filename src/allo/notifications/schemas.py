from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import Field

from allo.kit.schemas import ReadModel, StrictInput


class NotificationRead(ReadModel):
    id: uuid.UUID
    kind: str
    data: dict[str, Any]
    ticket_id: uuid.UUID | None
    read_at: datetime | None
    created_at: datetime


class MarkRead(StrictInput):
    ids: list[uuid.UUID] | None = Field(default=None, max_length=500, description="None: all of yours")


class MarkedRead(ReadModel):
    marked: int
