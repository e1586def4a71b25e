from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from allo.kit.schemas import ReadModel, StrictInput
from allo.models.enums import AgentStatus, Priority, Tier, WorkItemStatus, WorkKind


class QueueRead(BaseModel):
    """Waiting work of one queue: a team, a tier and a language."""

    team: str | None
    tier: Tier
    language: str
    waiting: int
    by_priority: dict[str, int]
    longest_wait_seconds: int


class AgentLoad(BaseModel):
    id: uuid.UUID
    full_name: str
    team: str | None
    tier: Tier
    status: AgentStatus
    status_reason: str | None
    active_items: int
    max_concurrent: int
    wrapping_up: bool


class RoutingStatus(BaseModel):
    at: datetime
    queues: list[QueueRead]
    waiting: int
    assigned: int
    offers_pending: int
    agents_by_status: dict[str, int]
    agents: list[AgentLoad]


class WorkItemRead(ReadModel):
    id: uuid.UUID
    kind: WorkKind
    status: WorkItemStatus
    conversation_id: uuid.UUID | None
    ticket_id: uuid.UUID | None
    team_id: uuid.UUID | None
    language: str
    skills: list[str]
    min_tier: Tier
    segment: str | None
    priority: Priority
    vip: bool
    preferred_agent_id: uuid.UUID | None
    enqueued_at: datetime
    agent_id: uuid.UUID | None
    assigned_at: datetime | None
    accepted_at: datetime | None
    accept_deadline: datetime | None
    declined_by: list[str]
    attempts: int
    history: list[dict[str, Any]]


class DeclineRequest(StrictInput):
    reason: str = Field(default="declined by the agent", min_length=1, max_length=200)
