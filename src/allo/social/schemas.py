from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel

from allo.kit.schemas import ReadModel
from allo.models.enums import PostDecision, ReplyState


class PostState(StrEnum):
    """The supervisor page's filter: what became of a post."""

    detected = "detected"  # a complaint not (yet) answered
    replied = "replied"  # answered (posted, or recorded in dry-run mode)
    escalated = "escalated"  # a ticket was opened
    ignored = "ignored"
    failed = "failed"  # the reply could not be posted


class PostRead(ReadModel):
    id: uuid.UUID
    network: str
    status_id: str
    url: str | None
    source: str
    author_acct: str
    author_name: str | None
    posted_at: datetime | None
    visibility: str
    language: str
    text: str
    kind: str
    kind_confidence: float
    analysis: dict[str, Any]
    decision: PostDecision
    reason: str | None
    urgency: str | None
    area: str | None
    reply_state: ReplyState
    reply_text: str | None
    reply_visibility: str | None
    reply_url: str | None
    reply_error: str | None
    replied_at: datetime | None
    ticket_id: uuid.UUID | None
    incident_id: uuid.UUID | None
    customer_id: uuid.UUID | None
    conversation_id: uuid.UUID | None
    link_opened_at: datetime | None
    created_at: datetime


class DayCount(BaseModel):
    day: date
    seen: int = 0
    complaints: int = 0
    replied: int = 0
    escalated: int = 0
    ignored: int = 0


class SourceRead(BaseModel):
    source: str
    last_id: str | None
    last_polled_at: datetime | None


class ListeningStatus(BaseModel):
    """The caller's tenant's listening: its own social settings where set, the server's otherwise."""

    configured: bool
    server: str | None
    hashtags: list[str]
    watch_mentions: bool = True
    dry_run: bool
    author_cooldown_minutes: int = 0
    sources: list[SourceRead]
