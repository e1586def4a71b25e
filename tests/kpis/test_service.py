"""Every KPI computed exactly on a recorded week (tests/kpis/world.py), its filters, its series per day
and per ISO week, and per-agent performance with the time spent in each presence status."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from allo.kit.errors import Unprocessable
from allo.kpis import service
from allo.kpis.schemas import KpiQuery, KpiValue
from allo.models.enums import AgentStatus, Channel
from tests.kpis.world import D, World, at, build_world

WEEK = KpiQuery(start=D, end=D + timedelta(days=6))


@pytest.fixture
async def world(session: AsyncSession) -> World:
    return await build_world(session, f"kpi-{uuid.uuid4().hex[:8]}")


def values(kpis: list[KpiValue]) -> dict[str, float | None]:
    return {k.key: k.value for k in kpis}


def by_key(kpis: list[KpiValue]) -> dict[str, KpiValue]:
    return {k.key: k for k in kpis}


async def test_the_week_s_kpis_to_the_second(session: AsyncSession, world: World) -> None:
    report = await service.kpi_report(session, world.tenant.id, WEEK)
    assert values(report.kpis) == {
        "bot_resolution_rate": 2 / 6,  # c1, c2 of six contacts (c6 had no customer message)
        "first_response_avg": (5 + 10 + 20 + 30 + 600) / 5,  # c4 never answered
        "first_response_p90": 600,
        "csat": (5 + 3 + 4) / 3,
        "escalation_rate": 3 / 6,  # c3, c4 (assistant), c7 (taken by an agent)
        "agent_first_response_avg": (180 + 600) / 2,  # the internal note is not an answer
        "agent_first_response_p90": 600,
    }
    assert report.volumes == {
        "conversations": 7,
        "contacts": 6,
        "resolved_by_bot": 2,
        "resolved_by_agent": 2,
        "escalated": 3,
        "abandoned": 1,
        "open": 1,
        "answered": 5,
        "unanswered": 1,
        "handed_over": 3,
        "agent_answered": 2,
        "csat_responses": 3,
    }
    kpis = by_key(report.kpis)
    assert [(k.objective, k.direction, k.met, k.sample) for k in report.kpis[:5]] == [
        (0.70, "at_least", False, 6),
        (120, "at_most", False, 5),
        (120, "at_most", False, 5),
        (4.0, "at_least", True, 3),  # 4.0 meets an objective of 4.0
        (0.30, "at_most", False, 6),
    ]
    assert (kpis["csat"].unit, kpis["bot_resolution_rate"].unit, kpis["first_response_avg"].unit) == (
        "score",
        "ratio",
        "seconds",
    )
    hand_off = kpis["agent_first_response_avg"]
    assert (hand_off.objective, hand_off.met, hand_off.sample) == (None, None, 2)
    assert (report.start, report.end, report.team, report.channel) == (WEEK.start, WEEK.end, None, None)


async def test_an_empty_period_has_nothing_to_measure(session: AsyncSession, world: World) -> None:
    report = await service.kpi_report(
        session, world.tenant.id, KpiQuery(start=D - timedelta(days=30), end=D - timedelta(days=20))
    )
    assert all(k.value is None and k.met is None and k.sample == 0 for k in report.kpis)
    assert set(report.volumes.values()) == {0}


async def test_the_tenant_s_own_objectives_are_used(session: AsyncSession, world: World) -> None:
    policy = world.tenant.policy | {"kpi_objectives": {"bot_resolution_rate_min": 0.3, "csat_min": 4.5}}
    world.tenant.policy = policy
    await session.flush()
    kpis = by_key((await service.kpi_report(session, world.tenant.id, WEEK)).kpis)
    assert (kpis["bot_resolution_rate"].objective, kpis["bot_resolution_rate"].met) == (0.3, True)
    assert (kpis["csat"].objective, kpis["csat"].met) == (4.5, False)


async def test_filters_by_channel_and_team(session: AsyncSession, world: World) -> None:
    webchat = await service.kpi_report(
        session, world.tenant.id, WEEK.model_copy(update={"channel": Channel.webchat})
    )
    assert values(webchat.kpis) | {} == {
        "bot_resolution_rate": 2 / 3,
        "first_response_avg": 15.0,
        "first_response_p90": 30,
        "csat": 5.0,
        "escalation_rate": 0.0,
        "agent_first_response_avg": None,
        "agent_first_response_p90": None,
    }
    assert by_key(webchat.kpis)["escalation_rate"].met is True
    assert (webchat.volumes["conversations"], webchat.volumes["contacts"]) == (4, 3)

    # c3's ticket is billing's; its CSAT is about that ticket.
    billing = await service.kpi_report(session, world.tenant.id, WEEK.model_copy(update={"team": "billing"}))
    assert values(billing.kpis) == {
        "bot_resolution_rate": 0.0,
        "first_response_avg": 20.0,
        "first_response_p90": 20,
        "csat": 3.0,
        "escalation_rate": 1.0,
        "agent_first_response_avg": 180.0,
        "agent_first_response_p90": 180,
    }
    # c4 by its ticket, c7 (no ticket) by its agent's team; c7's CSAT names bob.
    technical = await service.kpi_report(
        session, world.tenant.id, WEEK.model_copy(update={"team": "technical"})
    )
    assert values(technical.kpis) == {
        "bot_resolution_rate": 0.0,
        "first_response_avg": 600.0,
        "first_response_p90": 600,
        "csat": 4.0,
        "escalation_rate": 1.0,
        "agent_first_response_avg": 600.0,
        "agent_first_response_p90": 600,
    }
    assert (
        technical.volumes["contacts"],
        technical.volumes["handed_over"],
        technical.volumes["unanswered"],
    ) == (
        2,
        2,
        1,
    )
    with pytest.raises(Unprocessable) as refused:
        await service.kpi_report(session, world.tenant.id, WEEK.model_copy(update={"team": "nope"}))
    assert refused.value.code == "unknown_team"


async def test_another_tenant_sees_only_its_own(session: AsyncSession, world: World) -> None:
    report = await service.kpi_report(session, world.other.id, WEEK)
    assert report.volumes["contacts"] == 1
    assert values(report.kpis)["csat"] == 1.0
    assert values(report.kpis)["bot_resolution_rate"] == 1.0


async def test_the_series_per_day(session: AsyncSession, world: World) -> None:
    series = await service.kpi_series(session, world.tenant.id, WEEK, "day")
    assert [(p.start, p.end) for p in series.points] == [(D + timedelta(days=i),) * 2 for i in range(7)]
    rows = [values(p.kpis) for p in series.points]
    assert [r["bot_resolution_rate"] for r in rows] == [0.5, 1.0, 0.0, 0.0, None, None, None]
    assert [r["escalation_rate"] for r in rows] == [0.5, 0.0, 0.5, 1.0, None, None, None]
    assert [r["first_response_avg"] for r in rows] == [12.5, 10.0, 30.0, 600.0, None, None, None]
    assert [r["first_response_p90"] for r in rows] == [20, 10, 30, 600, None, None, None]
    assert [r["agent_first_response_avg"] for r in rows] == [180.0, None, None, 600.0, None, None, None]
    # CSAT by the day of the response.
    assert [r["csat"] for r in rows] == [5.0, 3.0, None, None, 4.0, None, None]
    assert [p.volumes["conversations"] for p in series.points] == [2, 1, 2, 2, 0, 0, 0]
    assert series.points[2].volumes["handed_over"] == 1 and series.points[2].volumes["agent_answered"] == 0


async def test_the_series_per_iso_week_is_cut_to_the_period(session: AsyncSession, world: World) -> None:
    query = KpiQuery(start=D - timedelta(days=1), end=D + timedelta(days=7))  # Sunday to next Monday
    series = await service.kpi_series(session, world.tenant.id, query, "week")
    assert [(p.start, p.end) for p in series.points] == [
        (D - timedelta(days=1), D - timedelta(days=1)),
        (D, D + timedelta(days=6)),
        (D + timedelta(days=7), D + timedelta(days=7)),
    ]
    before, week, after = (values(p.kpis) for p in series.points)
    assert before["bot_resolution_rate"] == 1.0 and before["csat"] == 1.0
    assert week == values((await service.kpi_report(session, world.tenant.id, WEEK)).kpis)
    assert after["first_response_avg"] == 1.0
    # The whole period is the sum of its buckets.
    report = await service.kpi_report(session, world.tenant.id, query)
    assert report.volumes["contacts"] == sum(p.volumes["contacts"] for p in series.points) == 8


async def test_per_agent_performance(session: AsyncSession, world: World) -> None:
    alice, bob = await service.agent_performance(session, world.tenant.id, WEEK)
    assert (alice.full_name, alice.team, alice.status) == ("Alice", "billing", AgentStatus.offline)
    assert (alice.handled, alice.resolved, alice.avg_handling_seconds) == (2, 2, (86_400 + 1_800) / 2)
    assert (alice.csat, alice.csat_count) == (3.0, 1)  # by her ticket
    assert (bob.handled, bob.resolved, bob.avg_handling_seconds) == (1, 0, None)
    assert (bob.csat, bob.csat_count, bob.status) == (4.0, 1, AgentStatus.wrap_up)
    week = 7 * 86_400
    assert alice.seconds_in_status == {
        "available": 8 * 3600,
        "busy": 0,
        "wrap_up": 0,
        "away": 3600,
        "offline": week - 9 * 3600,
    }
    # No change before the week: what bob was before his first change counts from its start.
    assert bob.seconds_in_status == {
        "available": 3600,
        "busy": 9 * 3600,
        "wrap_up": week - 10 * 3600,
        "away": 0,
        "offline": 0,
    }


async def test_time_in_status_is_clipped_to_the_period(session: AsyncSession, world: World) -> None:
    day = KpiQuery(start=D, end=D)
    alice, bob = await service.agent_performance(session, world.tenant.id, day)
    assert alice.seconds_in_status == {
        "available": 8 * 3600,
        "busy": 0,
        "wrap_up": 0,
        "away": 3600,
        "offline": 15 * 3600,
    }
    assert sum(bob.seconds_in_status.values()) == 86_400
    # Alice's first item was still hers at the end of the day: held, not finished in it.
    assert (alice.handled, alice.resolved, alice.avg_handling_seconds) == (1, 0, None)
    # A later day without any change: the status left by the last change before it, all day long.
    later = KpiQuery(start=D + timedelta(days=3), end=D + timedelta(days=3))
    alice, bob = await service.agent_performance(session, world.tenant.id, later)
    assert alice.seconds_in_status["offline"] == 86_400
    assert bob.seconds_in_status["wrap_up"] == 86_400
    # Before any recorded change: what the first change replaced.
    earlier = KpiQuery(start=D - timedelta(days=5), end=D - timedelta(days=5))
    alice, bob = await service.agent_performance(session, world.tenant.id, earlier)
    assert alice.seconds_in_status["available"] == 86_400
    assert bob.seconds_in_status["busy"] == 86_400


async def test_a_period_reaching_today_counts_time_up_to_now(session: AsyncSession, world: World) -> None:
    from allo.kit.time import utc_now

    today = utc_now().date()
    performance = await service.agent_performance(session, world.tenant.id, KpiQuery(start=today, end=today))
    elapsed = sum(performance[0].seconds_in_status.values())
    assert (
        0
        < elapsed
        <= (utc_now() - at(0).replace(year=today.year, month=today.month, day=today.day)).total_seconds()
    )


async def test_per_agent_filters(session: AsyncSession, world: World) -> None:
    (alice,) = await service.agent_performance(
        session, world.tenant.id, WEEK.model_copy(update={"team": "billing"})
    )
    assert alice.full_name == "Alice"
    alice, bob = await service.agent_performance(
        session, world.tenant.id, WEEK.model_copy(update={"channel": Channel.sms})
    )
    assert (alice.handled, alice.resolved, alice.avg_handling_seconds, alice.csat) == (1, 1, 86_400, 3.0)
    assert (bob.handled, bob.csat) == (0, None)


def test_a_query_is_whole_days_at_most_a_year() -> None:
    query = KpiQuery(start=D, end=D)
    assert (query.since, query.until) == (at(0), at(1))
    with pytest.raises(ValidationError, match="after the end"):
        KpiQuery(start=D, end=D - timedelta(days=1))
    with pytest.raises(ValidationError, match="at most 366"):
        KpiQuery(start=D, end=D + timedelta(days=366))
    assert KpiQuery(start=D, end=D + timedelta(days=365)).days == 366
    assert KpiQuery.last_days(D).start == D - timedelta(days=6)


def test_percentile_is_the_nearest_rank() -> None:
    assert service.percentile([], 0.9) is None
    assert service.percentile([7.0], 0.9) == 7.0
    assert service.percentile([float(n) for n in range(1, 11)], 0.9) == 9.0
    assert service.percentile([float(n) for n in range(1, 12)], 0.9) == 10.0
    assert service.percentile([float(n) for n in range(10, 0, -1)], 0.5) == 5.0
