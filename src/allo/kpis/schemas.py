"""The supervisor dashboard's figures: the procedure's KPIs over a period, per day or week, per agent.
Every definition is in docs/kpis.md."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from allo.models.enums import AgentStatus, Channel, Tier, WorkMode

MAX_DAYS = 366
DEFAULT_DAYS = 7

Granularity = Literal["day", "week"]
Unit = Literal["ratio", "seconds", "score"]
Direction = Literal["at_least", "at_most"]


class KpiQuery(BaseModel):
    """A period of whole UTC days, `end` included, and optional filters."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: date
    end: date
    team: str | None = Field(default=None, description="Team code")
    channel: Channel | None = None

    @model_validator(mode="after")
    def _period(self) -> KpiQuery:
        if self.start > self.end:
            raise ValueError(f"the start ({self.start}) is after the end ({self.end})")
        if self.days > MAX_DAYS:
            raise ValueError(f"the period spans {self.days} days; at most {MAX_DAYS}")
        return self

    @classmethod
    def last_days(cls, today: date, days: int = DEFAULT_DAYS, **filters: object) -> KpiQuery:
        """The `days` days up to `today` included: the dashboard's default period."""
        return cls.model_validate({"start": today - timedelta(days=days - 1), "end": today, **filters})

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def since(self) -> datetime:
        """The first instant of the period (00:00 UTC on `start`)."""
        return datetime.combine(self.start, time(), UTC)

    @property
    def until(self) -> datetime:
        """The first instant after the period (00:00 UTC the day after `end`)."""
        return datetime.combine(self.end + timedelta(days=1), time(), UTC)


class KpiValue(BaseModel):
    key: str
    value: float | None = Field(description="None when there is nothing to measure")
    unit: Unit
    objective: float | None
    direction: Direction | None
    met: bool | None
    sample: int = Field(description="How many conversations or responses the value is computed from")


class KpiReport(BaseModel):
    start: date
    end: date
    team: str | None
    channel: Channel | None
    kpis: list[KpiValue]
    volumes: dict[str, int]
    generated_at: datetime


class KpiPoint(BaseModel):
    start: date = Field(description="First day of the bucket inside the period")
    end: date = Field(description="Last day of the bucket inside the period")
    kpis: list[KpiValue]
    volumes: dict[str, int]


class KpiSeries(BaseModel):
    granularity: Granularity
    start: date
    end: date
    team: str | None
    channel: Channel | None
    points: list[KpiPoint]


class AgentPerformance(BaseModel):
    agent_id: uuid.UUID
    full_name: str
    team: str | None
    tier: Tier
    work_mode: WorkMode
    status: AgentStatus
    handled: int = Field(description="Work items held during the period")
    resolved: int = Field(description="Work items finished (done) during the period")
    avg_handling_seconds: float | None = Field(description="Assignment to finish, over the resolved items")
    csat: float | None
    csat_count: int
    seconds_in_status: dict[str, float]
