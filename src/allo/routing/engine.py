"""The routing engine (ACD): queued work items to available agents, one batch at a time.

Order of service: priority (P1 first), VIP first within a priority, then the oldest. Choice of agent:
available, active, under capacity, not wrapping up, in the item's team (when it has one), speaking its
language, serving its customer segment, at its tier, holding every required skill at the required level,
and not one who already let this item go; the item's preferred (dedicated) agent first when eligible;
then by the tenant's strategy: the longest idle (default), round robin (the longest since an
assignment), or the least busy.

Overflow: an item that has waited the tenant's overflow time may also go to higher tiers (kept to their
own work until then when the tenant reserves them) and to its team's overflow teams.

Correct with several engines running at once (web and worker processes on PostgreSQL):
- the batch of items is locked with `FOR UPDATE SKIP LOCKED`: two engines never hold the same item;
- capacity is claimed with one conditional UPDATE per agent (`active_items + n <= max_concurrent` and
  still available), so an agent never goes over capacity whatever the other engines decided; items whose
  agent claim failed stay queued for the next batch.
On SQLite, writers are serialised by the database, which gives the same guarantees.
"""

from __future__ import annotations

import bisect
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from sqlalchemy import ColumnElement, case, literal, or_, select, text, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from allo.kit.db import GUID, is_postgresql
from allo.kit.time import utc_now
from allo.models import AgentSkill, Team, User, WorkItem
from allo.models.enums import TIER_RANK, AgentStatus, Role, Tier, WorkItemStatus
from allo.tenants.schemas import RoutingPolicy

DEFAULT_BATCH = 200
MIN_BATCH = 20
# Pages of the queue one pass may read when the first ones find too few takers.
MAX_PAGES = 5


class Strategy(StrEnum):
    longest_idle = "longest_idle"
    round_robin = "round_robin"
    least_busy = "least_busy"


class Routable(Protocol):
    """What the engine reads of a work item (a row of the batch, or a WorkItem)."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def team_id(self) -> uuid.UUID | None: ...
    @property
    def language(self) -> str: ...
    @property
    def skills(self) -> list[str]: ...
    @property
    def min_skill_level(self) -> int: ...
    @property
    def min_tier(self) -> Tier: ...
    @property
    def preferred_agent_id(self) -> uuid.UUID | None: ...
    @property
    def conversation_id(self) -> uuid.UUID | None: ...
    @property
    def ticket_id(self) -> uuid.UUID | None: ...
    @property
    def segment(self) -> str | None: ...
    @property
    def enqueued_at(self) -> datetime: ...
    @property
    def declined_by(self) -> list[str]: ...


@dataclass(frozen=True)
class Rules:
    """The tenant's routing rules as one batch applies them."""

    reserve_higher_tiers: bool = True
    overflow_after: timedelta | None = None  # None: never (a policy's 0 means at once)
    overflow_teams: dict[uuid.UUID, frozenset[uuid.UUID]] = field(default_factory=dict)

    def overflowed(self, item: Routable, now: datetime) -> bool:
        return self.overflow_after is not None and item.enqueued_at <= now - self.overflow_after


@dataclass(eq=False)  # compared by identity: the roster moves agents around its lists
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
    segments: frozenset[str] = frozenset()
    planned: list[Routable] = field(default_factory=list)

    def can_take(
        self, item: Routable, rules: Rules = Rules(), *, overflowed: bool = False, dedicated: bool = False
    ) -> bool:
        """`dedicated`: the customer's own advisor, who handles their cases whatever the team, at or above
        the case's tier, as long as they speak the language and hold the skills."""
        item_rank = TIER_RANK[item.min_tier]
        return (
            self.free > 0
            and (
                dedicated
                or item.team_id is None
                or item.team_id == self.team_id
                or (overflowed and self.team_id in rules.overflow_teams.get(item.team_id, ()))
            )
            and (
                self.tier_rank == item_rank
                or (
                    self.tier_rank > item_rank and (dedicated or overflowed or not rules.reserve_higher_tiers)
                )
            )
            and (not self.languages or item.language in self.languages)
            and (not self.segments or item.segment is None or item.segment in self.segments)
            and all(self.skills.get(skill, 0) >= item.min_skill_level for skill in item.skills)
            and str(self.id) not in item.declined_by
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


class Roster:
    """The batch's candidates kept in the strategy's order, in buckets by (team, tier): an item looks only
    at the buckets that may serve it and takes the first agent, in that order, who can take it."""

    def __init__(
        self,
        candidates: Sequence[Candidate],
        strategy: Strategy,
        rules: Rules = Rules(),
        now: datetime | None = None,
    ) -> None:
        self.key = _order(strategy)
        self.buckets: dict[tuple[uuid.UUID | None, int], list[Candidate]] = {}
        for candidate in sorted(candidates, key=self.key):
            self.buckets.setdefault((candidate.team_id, candidate.tier_rank), []).append(candidate)
        self.by_id = {c.id: c for c in candidates}
        self.rules = rules
        self.now = now or utc_now()
        self.nobody: set[tuple[Any, ...]] = set()

    def _buckets_for(self, item: Routable, overflowed: bool) -> list[list[Candidate]]:
        rank = TIER_RANK[item.min_tier]
        higher = overflowed or not self.rules.reserve_higher_tiers
        teams: set[uuid.UUID | None] | None = None  # None: any team
        if item.team_id is not None:
            teams = {item.team_id}
            if overflowed:
                teams |= self.rules.overflow_teams.get(item.team_id, frozenset())
        return [
            bucket
            for (team, tier_rank), bucket in self.buckets.items()
            if (teams is None or team in teams) and (tier_rank == rank or (higher and tier_rank > rank))
        ]

    def choose(self, item: Routable) -> Candidate | None:
        """The agent for one item, or None when nobody eligible is free."""
        overflowed = self.rules.overflowed(item, self.now)
        preferred = self.by_id.get(item.preferred_agent_id) if item.preferred_agent_id else None
        if (
            preferred is not None
            and preferred.free > 0
            and preferred.can_take(item, self.rules, overflowed=overflowed, dedicated=True)
        ):
            return preferred
        # Items alike find the same agents: once one found nobody, the others will not either in this
        # batch (agents only fill up), so a long queue nobody can serve costs one scan, not one per item.
        key = (
            None
            if item.declined_by
            else (
                item.team_id,
                item.min_tier,
                item.language,
                item.segment,
                tuple(item.skills),
                item.min_skill_level,
                overflowed,
            )
        )
        if key is not None and key in self.nobody:
            return None
        chosen: Candidate | None = None
        for bucket in self._buckets_for(item, overflowed):
            first = next((c for c in bucket if c.can_take(item, self.rules, overflowed=overflowed)), None)
            if first is not None and (chosen is None or self.key(first) < self.key(chosen)):
                chosen = first
        if chosen is None and key is not None:
            self.nobody.add(key)
        return chosen

    def has_room(self) -> bool:
        return any(self.buckets.values())

    def give(self, agent: Candidate, item: Routable, moment: datetime) -> None:
        agent.free -= 1
        agent.busy += 1
        agent.planned.append(item)
        bucket = self.buckets[(agent.team_id, agent.tier_rank)]
        bucket.remove(agent)
        # Once given work, an agent is no longer the longest idle nor the longest unassigned.
        agent.idle_since = moment
        agent.last_assigned_at = moment
        if agent.free > 0:
            bisect.insort(bucket, agent, key=self.key)


@dataclass(frozen=True)
class _Profile:
    """What rarely changes about an agent: read again at most every PROFILE_TTL seconds per process."""

    team_id: uuid.UUID | None
    tier_rank: int
    languages: frozenset[str]
    skills: dict[str, int]
    segments: frozenset[str]


PROFILE_TTL = 2.0
_profiles: dict[uuid.UUID, tuple[float, dict[uuid.UUID, _Profile]]] = {}


async def _agent_profiles(
    session: AsyncSession, tenant_id: uuid.UUID, *, refresh: bool = False
) -> dict[uuid.UUID, _Profile]:
    cached = _profiles.get(tenant_id)
    if not refresh and cached is not None and time.monotonic() - cached[0] < PROFILE_TTL:
        return cached[1]
    users = (
        await session.execute(
            select(User.id, User.team_id, User.tier, User.languages, User.segments).where(
                User.tenant_id == tenant_id, User.active.is_(True), User.role == Role.agent
            )
        )
    ).all()
    skills: dict[uuid.UUID, dict[str, int]] = {}
    for user_id, skill, level in (
        await session.execute(
            select(AgentSkill.user_id, AgentSkill.skill, AgentSkill.level).where(
                AgentSkill.tenant_id == tenant_id
            )
        )
    ).all():
        skills.setdefault(user_id, {})[skill] = level
    profiles = {
        u.id: _Profile(
            u.team_id, TIER_RANK[u.tier], frozenset(u.languages), skills.get(u.id, {}), frozenset(u.segments)
        )
        for u in users
    }
    _profiles[tenant_id] = (time.monotonic(), profiles)
    return profiles


async def available_agents(
    session: AsyncSession, tenant_id: uuid.UUID, *, now: datetime | None = None
) -> list[Candidate]:
    """Who can take work now: their load and status read fresh, their profile (team, tier, languages,
    skills, segments) from a cache of PROFILE_TTL seconds, so an admin's change to a profile applies
    within that time; capacity and availability are always checked again by the claim."""
    profiles = await _agent_profiles(session, tenant_id)
    rows = (
        await session.execute(
            select(
                User.id,
                User.max_concurrent,
                User.active_items,
                User.idle_since,
                User.status_since,
                User.last_assigned_at,
            ).where(
                User.tenant_id == tenant_id,
                User.active.is_(True),
                User.role == Role.agent,
                User.status == AgentStatus.available,
                User.active_items < User.max_concurrent,
                or_(User.wrap_up_until.is_(None), User.wrap_up_until <= (now or utc_now())),
            )
        )
    ).all()
    if any(row.id not in profiles for row in rows):
        profiles = await _agent_profiles(session, tenant_id, refresh=True)  # someone new logged in
    candidates = []
    for row in rows:
        profile = profiles.get(row.id)
        if profile is None:
            continue  # created after the read above: next batch
        candidates.append(
            Candidate(
                id=row.id,
                team_id=profile.team_id,
                tier_rank=profile.tier_rank,
                languages=profile.languages,
                skills=profile.skills,
                free=row.max_concurrent - row.active_items,
                busy=row.active_items,
                idle_since=row.idle_since or row.status_since,
                last_assigned_at=row.last_assigned_at,
                segments=profile.segments,
            )
        )
    return candidates


def _servable_by(candidates: Sequence[Candidate], rules: Rules) -> list[ColumnElement[bool]]:
    """Necessary conditions for an item to find one of these agents (team, language, tier), so that a
    batch locks work someone can take rather than the head of a queue nobody free can serve. The exact
    choice is still the roster's."""
    teams = {c.team_id for c in candidates if c.team_id is not None}
    # A team whose overflow teams have someone free may be served once its items overflow.
    teams |= {team for team, fallbacks in rules.overflow_teams.items() if fallbacks & teams}
    conditions: list[ColumnElement[bool]] = [
        or_(
            WorkItem.team_id.is_(None),
            WorkItem.team_id.in_(sorted(teams, key=str)),
            WorkItem.preferred_agent_id.in_(sorted((c.id for c in candidates), key=str)),
        )
    ]
    if all(c.languages for c in candidates):
        conditions.append(WorkItem.language.in_(sorted(set().union(*(c.languages for c in candidates)))))
    top = max(c.tier_rank for c in candidates)
    conditions.append(WorkItem.min_tier.in_([tier for tier, rank in TIER_RANK.items() if rank <= top]))
    return conditions


async def assign_queued(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    *,
    strategy: Strategy = Strategy.longest_idle,
    rules: Rules = Rules(),
    limit: int = DEFAULT_BATCH,
    now: datetime | None = None,
    accept_timeout: timedelta | None = None,
) -> list[Assignment]:
    """Assign what can be assigned among the first `limit` queued items of the tenant.

    Set-based: five statements a batch whatever its size (agents, items, lock, claim, assign).
    """
    moment = now or utc_now()
    candidates = await available_agents(session, tenant_id, now=moment)
    if not candidates:
        return []  # nobody to give work to: leave the queue unlocked for the other engines
    roster = Roster(candidates, strategy, rules, moment)
    page = min(limit, max(2 * sum(c.free for c in candidates), MIN_BATCH))
    after: tuple[int, datetime, uuid.UUID] | None = None
    for _ in range(MAX_PAGES):
        # No more than the free slots can take (twice, for items the filter lets through that the
        # roster then finds nobody for): a nearly full floor locks and reads little. When a page finds
        # too few takers (items reserved for a tier, needing a skill nobody free has…), the next page
        # is read in the same pass, so that work further back is not stuck behind them.
        stmt = (
            select(
                WorkItem.id,
                WorkItem.team_id,
                WorkItem.language,
                WorkItem.skills,
                WorkItem.min_skill_level,
                WorkItem.min_tier,
                WorkItem.preferred_agent_id,
                WorkItem.conversation_id,
                WorkItem.ticket_id,
                WorkItem.segment,
                WorkItem.enqueued_at,
                WorkItem.declined_by,
                WorkItem.queue_rank,
            )
            .where(
                WorkItem.tenant_id == tenant_id,
                WorkItem.status == WorkItemStatus.queued,
                *_servable_by(candidates, rules),
            )
            .order_by(WorkItem.queue_rank, WorkItem.enqueued_at, WorkItem.id)
            .limit(page)
            .with_for_update(skip_locked=True)
        )
        if after is not None:
            stmt = stmt.where(tuple_(WorkItem.queue_rank, WorkItem.enqueued_at, WorkItem.id) > tuple_(*after))
        items = (await session.execute(stmt)).all()
        for item in items:
            agent = roster.choose(item)
            if agent is not None:
                roster.give(agent, item, moment)
        if len(items) < page or not roster.has_room() or sum(len(c.planned) for c in candidates) >= limit:
            break
        last = items[-1]
        after = (last.queue_rank, last.enqueued_at, last.id)
    planned = {c.id: c for c in candidates if c.planned}
    if not planned:
        return []
    # Agents' rows are locked in one order (their ids) by every engine: two engines never deadlock.
    await session.execute(
        select(User.id).where(User.id.in_(sorted(planned))).order_by(User.id).with_for_update()
    )
    counts = {agent_id: len(c.planned) for agent_id, c in planned.items()}
    claimed = await _claim(session, counts, moment)
    # Items of agents whose claim failed (another engine filled them, or they went away) stay queued.
    owner = {item.id: agent_id for agent_id in claimed for item in planned[agent_id].planned}
    if not owner:
        return []
    await _assign(session, owner, moment, accept_timeout)
    return [
        Assignment(item.id, agent_id, item.conversation_id, item.ticket_id)
        for agent_id in sorted(claimed)
        for item in planned[agent_id].planned
    ]


async def rules_for(session: AsyncSession, tenant_id: uuid.UUID, policy: RoutingPolicy) -> Rules:
    """The tenant's routing policy with its team codes resolved to ids."""
    teams: dict[str, uuid.UUID] = {}
    if policy.overflow_teams:
        teams = {
            code: team_id
            for code, team_id in (
                await session.execute(select(Team.code, Team.id).where(Team.tenant_id == tenant_id))
            ).all()
        }
    return Rules(
        reserve_higher_tiers=policy.reserve_higher_tiers,
        overflow_after=timedelta(seconds=policy.overflow_after_seconds),
        overflow_teams={
            teams[code]: frozenset(teams[c] for c in fallbacks if c in teams)
            for code, fallbacks in policy.overflow_teams.items()
            if code in teams
        },
    )


# PostgreSQL: one statement each, the values in two array parameters joined by unnest (the statement is
# compiled once and cached, whatever the batch). SQLite: CASE on the primary key, resolved through the
# index (a joined VALUES list makes SQLite scan the table).
_PG_CLAIM = text(
    "UPDATE users SET active_items = users.active_items + d.n, last_assigned_at = :at, idle_since = :at "
    "FROM unnest(CAST(:ids AS uuid[]), CAST(:ns AS integer[])) AS d(id, n) "
    "WHERE users.id = d.id AND users.status = 'available' AND users.active "
    "AND users.active_items + d.n <= users.max_concurrent RETURNING users.id"
)
_PG_ASSIGN = text(
    "UPDATE work_items SET status = 'assigned', agent_id = d.agent, assigned_at = :at, "
    "accepted_at = :accepted, accept_deadline = :deadline, attempts = work_items.attempts + 1, "
    "updated_at = :at "
    "FROM unnest(CAST(:ids AS uuid[]), CAST(:agents AS uuid[])) AS d(id, agent) WHERE work_items.id = d.id"
)


async def _claim(session: AsyncSession, counts: dict[uuid.UUID, int], moment: datetime) -> set[uuid.UUID]:
    """Take `n` slots of each agent, only where they still fit; returns the agents whose claim held."""
    if is_postgresql(session):
        rows = await session.execute(
            _PG_CLAIM, {"ids": list(counts), "ns": list(counts.values()), "at": moment}
        )
        return {row[0] for row in rows}
    extra = case(counts, value=User.id, else_=0)
    return set(
        (
            await session.execute(
                update(User)
                .where(
                    User.id.in_(list(counts)),
                    User.status == AgentStatus.available,
                    User.active.is_(True),
                    User.active_items + extra <= User.max_concurrent,
                )
                .values(active_items=User.active_items + extra, last_assigned_at=moment, idle_since=moment)
                .returning(User.id)
                .execution_options(synchronize_session=False)
            )
        ).scalars()
    )


async def _assign(
    session: AsyncSession,
    owner: dict[uuid.UUID, uuid.UUID],
    moment: datetime,
    accept_timeout: timedelta | None,
) -> None:
    accepted = None if accept_timeout else moment
    deadline = moment + accept_timeout if accept_timeout else None
    if is_postgresql(session):
        await session.execute(
            _PG_ASSIGN,
            {
                "ids": list(owner),
                "agents": list(owner.values()),
                "at": moment,
                "accepted": accepted,
                "deadline": deadline,
            },
        )
        return
    await session.execute(
        update(WorkItem)
        .where(WorkItem.id.in_(list(owner)))
        .values(
            status=WorkItemStatus.assigned,
            agent_id=case({item: literal(agent, GUID) for item, agent in owner.items()}, value=WorkItem.id),
            assigned_at=moment,
            accepted_at=accepted,
            accept_deadline=deadline,
            attempts=WorkItem.attempts + 1,
            updated_at=moment,
        )
        .execution_options(synchronize_session=False)
    )
