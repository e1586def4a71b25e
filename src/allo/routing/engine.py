"""The routing engine (ACD): queued work items to available agents, one batch at a time.

Order of service: priority (P1 first), VIP first within a priority, then the oldest. Choice of agent:
available, active, under capacity, in the item's team (when it has one), speaking its language, at or
above its tier, holding every required skill at the required level; the item's preferred (dedicated)
agent first when eligible; then by the tenant's strategy: the longest idle (default), round robin (the
longest since an assignment), or the least busy.

Correct with several engines running at once (web and worker processes on PostgreSQL):
- the batch of items is locked with `FOR UPDATE SKIP LOCKED`: two engines never hold the same item;
- capacity is claimed with one conditional UPDATE per agent (`active_items + n <= max_concurrent` and
  still available), so an agent never goes over capacity whatever the other engines decided; items whose
  agent claim failed stay queued for the next batch.
On SQLite, writers are serialised by the database, which gives the same guarantees.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from allo.kit.time import utc_now
from allo.models import User, WorkItem
from allo.models.enums import TIER_RANK, AgentStatus, Role, WorkItemStatus

DEFAULT_BATCH = 200


class Strategy(StrEnum):
    longest_idle = "longest_idle"
    round_robin = "round_robin"
    least_busy = "least_busy"


@dataclass
class Candidate:
    """An available agent as the engine sees it during one batch."""

    id: uuid.UUID
    team_id: uuid.UUID | None
    tier_rank: int
    languages: frozenset[str]
    skills: dict[str, int]
    free: int
    busy: int
    idle_since: datetime
    last_assigned_at: datetime | None
    planned: list[WorkItem] = field(default_factory=list)

    def can_take(self, item: WorkItem) -> bool:
        return (
            self.free > 0
            and (item.team_id is None or item.team_id == self.team_id)
            and TIER_RANK[item.min_tier] <= self.tier_rank
            and (not self.languages or item.language in self.languages)
            and all(self.skills.get(skill, 0) >= item.min_skill_level for skill in item.skills)
        )


@dataclass(frozen=True)
class Assignment:
    item_id: uuid.UUID
    agent_id: uuid.UUID
    conversation_id: uuid.UUID | None
    ticket_id: uuid.UUID | None


def _order(strategy: Strategy) -> Callable[[Candidate], tuple[Any, ...]]:
    epoch = datetime.min.replace(tzinfo=utc_now().tzinfo)
    if strategy is Strategy.round_robin:
        return lambda c: (c.last_assigned_at or epoch, c.id)
    if strategy is Strategy.least_busy:
        return lambda c: (c.busy, c.idle_since, c.id)
    return lambda c: (c.idle_since, c.id)


def choose(item: WorkItem, candidates: Sequence[Candidate], strategy: Strategy) -> Candidate | None:
    """The agent for one item among the batch's candidates, or None when nobody eligible is free."""
    if item.preferred_agent_id is not None:
        for candidate in candidates:
            if candidate.id == item.preferred_agent_id and candidate.can_take(item):
                return candidate
    eligible = [c for c in candidates if c.can_take(item)]
    if not eligible:
        return None
    return min(eligible, key=_order(strategy))


async def available_agents(session: AsyncSession, tenant_id: uuid.UUID) -> list[Candidate]:
    stmt = (
        select(User)
        .where(
            User.tenant_id == tenant_id,
            User.active.is_(True),
            User.role == Role.agent,
            User.status == AgentStatus.available,
            User.active_items < User.max_concurrent,
        )
        .options(selectinload(User.skills))
    )
    return [
        Candidate(
            id=user.id,
            team_id=user.team_id,
            tier_rank=TIER_RANK[user.tier],
            languages=frozenset(user.languages),
            skills={s.skill: s.level for s in user.skills},
            free=user.max_concurrent - user.active_items,
            busy=user.active_items,
            idle_since=user.idle_since or user.status_since,
            last_assigned_at=user.last_assigned_at,
        )
        for user in (await session.execute(stmt)).scalars()
    ]


async def assign_queued(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    *,
    strategy: Strategy = Strategy.longest_idle,
    limit: int = DEFAULT_BATCH,
    now: datetime | None = None,
) -> list[Assignment]:
    """Assign what can be assigned among the first `limit` queued items of the tenant."""
    moment = now or utc_now()
    items = list(
        (
            await session.execute(
                select(WorkItem)
                .where(WorkItem.tenant_id == tenant_id, WorkItem.status == WorkItemStatus.queued)
                .order_by(WorkItem.priority_rank, WorkItem.vip.desc(), WorkItem.enqueued_at, WorkItem.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        ).scalars()
    )
    if not items:
        return []
    candidates = await available_agents(session, tenant_id)
    for item in items:
        agent = choose(item, candidates, strategy)
        if agent is None:
            continue
        agent.free -= 1
        agent.busy += 1
        agent.planned.append(item)
        # Once given work, an agent is no longer the longest idle nor the longest unassigned.
        agent.idle_since = moment
        agent.last_assigned_at = moment
    assignments: list[Assignment] = []
    # Agents' rows are claimed in one order (their ids) by every engine: two engines never deadlock.
    for agent in sorted(candidates, key=lambda c: c.id):
        if not agent.planned:
            continue
        count = len(agent.planned)
        claimed = await session.execute(
            update(User)
            .where(
                User.id == agent.id,
                User.status == AgentStatus.available,
                User.active.is_(True),
                User.active_items + count <= User.max_concurrent,
            )
            .values(active_items=User.active_items + count, last_assigned_at=moment)
            .returning(User.id)
            .execution_options(synchronize_session=False)
        )
        if claimed.first() is None:
            continue  # another engine filled this agent, or they went away: the items stay queued
        for item in agent.planned:
            item.status = WorkItemStatus.assigned
            item.agent_id = agent.id
            item.assigned_at = moment
            item.attempts += 1
            item.history = [
                *item.history,
                {"at": moment.isoformat(), "event": "assigned", "agent": str(agent.id)},
            ]
            assignments.append(Assignment(item.id, agent.id, item.conversation_id, item.ticket_id))
    await session.flush()
    return assignments
