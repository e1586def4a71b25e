"""The procedure's KPIs computed from stored events (docs/kpis.md has every definition): the report of a
period, the same values per day or ISO week, and per-agent performance."""

from __future__ import annotations

import math
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import date, datetime, timedelta

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from allo.agents.service import team_id_for_code
from allo.kit.errors import Unprocessable
from allo.kit.time import utc_now
from allo.kpis.repository import DayCounts, KpiRepository, Scope
from allo.kpis.schemas import (
    DEFAULT_DAYS,
    AgentPerformance,
    Direction,
    Granularity,
    KpiPoint,
    KpiQuery,
    KpiReport,
    KpiSeries,
    KpiValue,
    Unit,
)
from allo.models import PresenceChange
from allo.models.enums import AgentStatus, Channel, Role, WorkItemStatus
from allo.tenants import service as tenants
from allo.tenants.schemas import KpiObjectives

KPI_KEYS = (
    "bot_resolution_rate",
    "first_response_avg",
    "first_response_p90",
    "csat",
    "escalation_rate",
    "agent_first_response_avg",
    "agent_first_response_p90",
)


@dataclass
class Bucket:
    """What the KPIs of a day, a week or a whole period are computed from; buckets add up."""

    counts: DayCounts = field(default_factory=DayCounts)
    first_responses: list[float] = field(default_factory=list)
    agent_first_responses: list[float] = field(default_factory=list)
    handed_over: int = 0
    csat_count: int = 0
    csat_sum: int = 0

    def add(self, other: Bucket) -> None:
        for name in (f.name for f in fields(DayCounts)):
            setattr(self.counts, name, getattr(self.counts, name) + getattr(other.counts, name))
        self.first_responses.extend(other.first_responses)
        self.agent_first_responses.extend(other.agent_first_responses)
        self.handed_over += other.handed_over
        self.csat_count += other.csat_count
        self.csat_sum += other.csat_sum

    def volumes(self) -> dict[str, int]:
        c = self.counts
        return {
            "conversations": c.conversations,
            "contacts": c.contacts,
            "resolved_by_bot": c.resolved_by_bot,
            "resolved_by_agent": c.resolved_by_agent,
            "escalated": c.escalated,
            "abandoned": c.abandoned,
            "open": c.open,
            "answered": len(self.first_responses),
            "unanswered": c.contacts - len(self.first_responses),
            "handed_over": self.handed_over,
            "agent_answered": len(self.agent_first_responses),
            "csat_responses": self.csat_count,
        }


def percentile(values: Sequence[float], share: float) -> float | None:
    """The nearest-rank percentile: the smallest value with at least `share` of the values at or below
    it (p90 of ten values is the 9th smallest); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(share * len(ordered)), 1) - 1]


def _mean(values: Sequence[float]) -> float | None:
    return math.fsum(values) / len(values) if values else None


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def kpi_value(
    key: str,
    value: float | None,
    unit: Unit,
    sample: int,
    objective: float | None = None,
    direction: Direction | None = None,
) -> KpiValue:
    met = None
    if value is not None and objective is not None and direction is not None:
        met = value >= objective if direction == "at_least" else value <= objective
    return KpiValue(
        key=key, value=value, unit=unit, objective=objective, direction=direction, met=met, sample=sample
    )


def kpi_values(bucket: Bucket, objectives: KpiObjectives) -> list[KpiValue]:
    """The KPIs of a bucket, in KPI_KEYS order, against the tenant's objectives."""
    c = bucket.counts
    responses, agent_responses = bucket.first_responses, bucket.agent_first_responses
    response_max = objectives.first_response_seconds_max
    return [
        kpi_value(
            "bot_resolution_rate",
            _ratio(c.resolved_by_bot, c.contacts),
            "ratio",
            c.contacts,
            objectives.bot_resolution_rate_min,
            "at_least",
        ),
        kpi_value("first_response_avg", _mean(responses), "seconds", len(responses), response_max, "at_most"),
        kpi_value(
            "first_response_p90",
            percentile(responses, 0.9),
            "seconds",
            len(responses),
            response_max,
            "at_most",
        ),
        kpi_value(
            "csat",
            bucket.csat_sum / bucket.csat_count if bucket.csat_count else None,
            "score",
            bucket.csat_count,
            objectives.csat_min,
            "at_least",
        ),
        kpi_value(
            "escalation_rate",
            _ratio(c.escalated, c.contacts),
            "ratio",
            c.contacts,
            objectives.escalation_rate_max,
            "at_most",
        ),
        # The human hand-off, for the breakdown: no objective of its own in the procedure.
        kpi_value("agent_first_response_avg", _mean(agent_responses), "seconds", len(agent_responses)),
        kpi_value(
            "agent_first_response_p90", percentile(agent_responses, 0.9), "seconds", len(agent_responses)
        ),
    ]


def make_query(start: date | None, end: date | None, team: str | None, channel: Channel | None) -> KpiQuery:
    """The query of a request or a command: by default the last 7 days up to today (UTC); a start after
    the end or a period over a year is a 422 (invalid_period)."""
    end = end or utc_now().date()
    start = start or end - timedelta(days=DEFAULT_DAYS - 1)
    try:
        return KpiQuery(start=start, end=end, team=team or None, channel=channel)
    except ValidationError as exc:
        problem = exc.errors()[0]
        message = str(problem["ctx"]["error"]) if "error" in problem.get("ctx", {}) else problem["msg"]
        raise Unprocessable(
            f"Invalid period: {message}.",
            code="invalid_period",
            details={"start": start.isoformat(), "end": end.isoformat()},
        ) from None


async def _scope(session: AsyncSession, tenant_id: uuid.UUID, query: KpiQuery) -> Scope:
    """The query for the repository; an unknown team code is a 422 (unknown_team)."""
    return Scope(
        tenant_id=tenant_id,
        since=query.since,
        until=query.until,
        team_id=await team_id_for_code(session, tenant_id, query.team),
        channel=query.channel,
    )


async def _days(session: AsyncSession, tenant_id: uuid.UUID, query: KpiQuery) -> dict[date, Bucket]:
    """One bucket per UTC day of the period that has anything in it."""
    scope = await _scope(session, tenant_id, query)
    repo = KpiRepository(session, tenant_id)
    days: dict[date, Bucket] = defaultdict(Bucket)
    for day, counts in (await repo.conversation_counts(scope)).items():
        days[day].counts = counts
    for day, seconds in await repo.first_responses(scope):
        if seconds is not None:
            days[day].first_responses.append(seconds)
    for day, seconds in await repo.agent_first_responses(scope):
        days[day].handed_over += 1
        if seconds is not None:
            days[day].agent_first_responses.append(seconds)
    for day, (count, total) in (await repo.csat_by_day(scope)).items():
        days[day].csat_count, days[day].csat_sum = count, total
    return days


async def _objectives(session: AsyncSession, tenant_id: uuid.UUID) -> KpiObjectives:
    return tenants.policy_of(await tenants.get_or_raise(session, tenant_id)).kpi_objectives


async def kpi_report(session: AsyncSession, tenant_id: uuid.UUID, query: KpiQuery) -> KpiReport:
    """The KPIs of the whole period."""
    objectives = await _objectives(session, tenant_id)
    total = Bucket()
    for bucket in (await _days(session, tenant_id, query)).values():
        total.add(bucket)
    return KpiReport(
        start=query.start,
        end=query.end,
        team=query.team,
        channel=query.channel,
        kpis=kpi_values(total, objectives),
        volumes=total.volumes(),
        generated_at=utc_now(),
    )


def bucket_bounds(query: KpiQuery, granularity: Granularity) -> list[tuple[date, date]]:
    """The buckets of the period: each day, or each ISO week (Monday to Sunday) cut to the period."""
    bounds = []
    day = query.start
    while day <= query.end:
        last = day if granularity == "day" else day + timedelta(days=6 - day.weekday())
        last = min(last, query.end)
        bounds.append((day, last))
        day = last + timedelta(days=1)
    return bounds


async def kpi_series(
    session: AsyncSession, tenant_id: uuid.UUID, query: KpiQuery, granularity: Granularity
) -> KpiSeries:
    """The same KPIs per day or per ISO week of the period; a bucket with nothing in it has None values."""
    objectives = await _objectives(session, tenant_id)
    days = await _days(session, tenant_id, query)
    points = []
    for first, last in bucket_bounds(query, granularity):
        bucket = Bucket()
        for offset in range((last - first).days + 1):
            day = days.get(first + timedelta(days=offset))
            if day is not None:
                bucket.add(day)
        points.append(
            KpiPoint(start=first, end=last, kpis=kpi_values(bucket, objectives), volumes=bucket.volumes())
        )
    return KpiSeries(
        granularity=granularity,
        start=query.start,
        end=query.end,
        team=query.team,
        channel=query.channel,
        points=points,
    )


def time_in_status(
    start: datetime,
    end: datetime,
    initial: AgentStatus | None,
    changes: Iterable[PresenceChange],
) -> dict[str, float]:
    """Seconds spent in each status between `start` and `end`, from the status at `start` (None: not
    known, nothing counted until the first change) and the changes after it, oldest first."""
    totals = dict.fromkeys((s.value for s in AgentStatus), 0.0)
    if end <= start:
        return totals
    current, at = initial, start
    for change in changes:
        if change.changed_at <= start:
            current = change.status
            continue
        if change.changed_at >= end:
            break
        if current is not None:
            totals[current.value] += (change.changed_at - at).total_seconds()
        current, at = change.status, change.changed_at
    if current is not None:
        totals[current.value] += (end - at).total_seconds()
    return totals


async def agent_performance(
    session: AsyncSession, tenant_id: uuid.UUID, query: KpiQuery
) -> list[AgentPerformance]:
    """Per agent (the team's, with a team filter): work handled and resolved, handling time, CSAT and
    time in each presence status over the period. Active agents are listed even with nothing done; other
    users only when they handled work or got CSAT in the period."""
    scope = await _scope(session, tenant_id, query)
    repo = KpiRepository(session, tenant_id)
    now = utc_now()
    held: dict[uuid.UUID, int] = defaultdict(int)
    handling: dict[uuid.UUID, list[float]] = defaultdict(list)
    for agent_id, status, assigned, finished in await repo.work_items(scope):
        held[agent_id] += 1
        if status is WorkItemStatus.done and finished is not None and scope.since <= finished < scope.until:
            handling[agent_id].append((finished - assigned).total_seconds())
    csat = await repo.csat_by_agent(scope)
    users = [
        (user, team)
        for user, team in await repo.agents(scope.team_id)
        if (user.role is Role.agent and user.active) or user.id in held or user.id in csat
    ]
    end = min(scope.until, now)
    ids = [user.id for user, _team in users]
    before, during, after = await repo.presence(ids, scope.since, end)
    changes: dict[uuid.UUID, list[PresenceChange]] = defaultdict(list)
    for change in during:
        changes[change.user_id].append(change)
    performances = []
    for user, team in users:
        start = max(scope.since, user.created_at)
        own = changes.get(user.id, [])
        if user.id in before:
            initial: AgentStatus | None = before[user.id].status
        elif own:
            initial = own[0].previous_status
        elif user.id in after:
            initial = after[user.id].previous_status
        else:
            # No change recorded at all: the current status, since it was set.
            initial, start = user.status, max(start, user.status_since)
        count, total = csat.get(user.id, (0, 0))
        durations = handling.get(user.id, [])
        performances.append(
            AgentPerformance(
                agent_id=user.id,
                full_name=user.full_name,
                team=team,
                tier=user.tier,
                work_mode=user.work_mode,
                status=user.status,
                handled=held.get(user.id, 0),
                resolved=len(durations),
                avg_handling_seconds=_mean(durations),
                csat=total / count if count else None,
                csat_count=count,
                seconds_in_status=time_in_status(start, end, initial, own),
            )
        )
    return performances
