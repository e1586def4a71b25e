from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field, computed_field

from allo.agents.schemas import Code
from allo.kit.schemas import ReadModel, StrictInput
from allo.models.enums import IncidentStatus
from allo.models.incident import incident_reference

ServiceCode = Field(pattern=r"^[a-z0-9_]{1,60}$", description="The service down: no_network, no_data…")


class IncidentCreate(StrictInput):
    title: str = Field(min_length=1, max_length=300)
    service: str = ServiceCode
    area: str | None = Field(default=None, max_length=80, description="None: the whole network")
    public_note: str | None = Field(default=None, max_length=2000, description="What customers are told")
    team: Code | None = Field(default=None, description="The team working on it; default: the tenant's")
    ticket_ids: list[uuid.UUID] = Field(default_factory=list, max_length=1000)


class IncidentUpdate(StrictInput):
    title: str | None = Field(default=None, min_length=1, max_length=300)
    public_note: str | None = Field(default=None, max_length=2000)


class IncidentAttach(StrictInput):
    ticket_ids: list[uuid.UUID] = Field(min_length=1, max_length=1000)


class IncidentResolve(StrictInput):
    resolution_note: str = Field(min_length=1, max_length=2000)
    notify_customers: bool = True


class IncidentRead(ReadModel):
    id: uuid.UUID
    number: int
    title: str
    service: str
    area: str | None
    status: IncidentStatus
    public_note: str | None
    resolution_note: str | None
    opened_automatically: bool
    team_id: uuid.UUID | None
    team_notified_at: datetime | None
    resolved_at: datetime | None
    created_at: datetime
    updated_at: datetime
    ticket_count: int = 0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def reference(self) -> str:
        return incident_reference(self.number)
