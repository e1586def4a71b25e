from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, computed_field

from allo.agents.schemas import Code
from allo.kit.schemas import ReadModel, StrictInput
from allo.models.enums import Category, Priority, TicketStatus, Tier
from allo.models.ticket import ticket_reference


class TicketCreate(StrictInput):
    subject: str = Field(min_length=1, max_length=300)
    description: str | None = Field(default=None, max_length=20_000)
    category: Category = Category.other
    priority: Priority = Priority.p3
    customer_id: uuid.UUID
    conversation_id: uuid.UUID | None = None
    team: Code | None = None
    tier: Tier = Tier.n1
    assignee_id: uuid.UUID | None = None
    service: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9_]{1,60}$",
        description="For an outage report, the service down (no_network, no_data…): groups major incidents",
    )
    area: str | None = Field(default=None, max_length=80, description="Default: the customer's area")


class TicketUpdate(StrictInput):
    subject: str | None = Field(default=None, min_length=1, max_length=300)
    status: TicketStatus | None = None
    priority: Priority | None = None
    category: Category | None = None
    tier: Tier | None = None
    team: Code | None = None
    assignee_id: uuid.UUID | None = None
    disposition: str | None = Field(
        default=None, max_length=40, description="Resolution code from the tenant's dispositions"
    )
    reason: str | None = Field(default=None, max_length=2000, description="Why: kept in the ticket's history")


class TicketEscalate(StrictInput):
    """Up one level (N1 -> N2 -> specialist) by default, or to the named tier and/or team."""

    tier: Tier | None = None
    team: Code | None = Field(default=None, description="Team code: legal, technical, a vendor's support…")
    reason: str = Field(min_length=1, max_length=2000)


class TicketMerge(StrictInput):
    into_ticket_id: uuid.UUID = Field(
        description="The ticket that stays; this one is closed as its duplicate"
    )
    reason: str | None = Field(default=None, max_length=2000)


class ConversationLink(StrictInput):
    conversation_id: uuid.UUID


class TicketReply(StrictInput):
    body: str = Field(min_length=1, max_length=20_000)
    internal: bool = Field(default=False, description="An internal note: never shown to the customer")
    conversation_id: uuid.UUID | None = Field(
        default=None, description="Which of the ticket's conversations; default: the latest"
    )


class TicketReplyRead(BaseModel):
    internal: bool
    message_id: uuid.UUID | None
    conversation_id: uuid.UUID | None
    event_id: uuid.UUID | None


class TicketEventRead(ReadModel):
    id: uuid.UUID
    kind: str
    field: str | None
    from_value: str | None
    to_value: str | None
    reason: str | None
    actor_user_id: uuid.UUID | None
    data: dict[str, Any]
    created_at: datetime


class SlaClockRead(BaseModel):
    due_at: datetime
    target_seconds: int
    spent_seconds: int = Field(
        description="SLA time spent so far (business hours when the target counts them)"
    )
    remaining_seconds: int = Field(description="Negative once breached")
    state: Literal["running", "warning", "breached", "paused", "met", "missed"]


class SlaRead(BaseModel):
    """The ticket's running clocks ("chronomètres"), as of the response."""

    first_response: SlaClockRead
    resolution: SlaClockRead


class TicketRead(ReadModel):
    id: uuid.UUID
    number: int
    subject: str
    description: str | None
    category: Category
    priority: Priority
    status: TicketStatus
    tier: Tier
    team_id: uuid.UUID | None
    assignee_id: uuid.UUID | None
    customer_id: uuid.UUID
    conversation_id: uuid.UUID | None
    first_response_due_at: datetime | None
    resolution_due_at: datetime | None
    first_responded_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    priority_reasons: list[str]
    sla_paused_at: datetime | None
    sla_alerts: list[str]
    disposition: str | None
    merged_into_id: uuid.UUID | None
    incident_id: uuid.UUID | None
    reopened_count: int
    service: str | None
    area: str | None
    created_at: datetime
    updated_at: datetime
    sla: SlaRead | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def reference(self) -> str:
        """What people quote: T-000042."""
        return ticket_reference(self.number)


class TicketDetail(TicketRead):
    events: list[TicketEventRead]
    conversation_ids: list[uuid.UUID] = Field(
        default_factory=list, description="Every conversation of the ticket, on any channel, oldest first"
    )
