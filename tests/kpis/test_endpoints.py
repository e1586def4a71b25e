"""GET /api/v1/kpis, /kpis/series, /kpis/agents and their CSV: supervisors only, the caller's tenant only,
the last 7 days by default, 422 for a bad period or an unknown team."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest

from allo.kit.db import Database
from allo.kit.time import utc_now
from allo.models import Conversation
from tests.api_helpers import assert_api_error
from tests.factories import Actor, make_actor
from tests.kpis.world import D, World, build_world

KPIS = "/api/v1/kpis"
WEEK = {"start": D.isoformat(), "end": (D + timedelta(days=6)).isoformat()}


@pytest.fixture
async def world(db: Database) -> World:
    async with db.unit_of_work() as session:
        return await build_world(session, f"kpi-{uuid.uuid4().hex[:8]}")


@pytest.fixture
async def actors(db: Database, world: World) -> dict[str, Actor]:
    async with db.unit_of_work() as session:
        return {
            role: await make_actor(session, world.tenant.slug, role)
            for role in ("agent", "supervisor", "admin")
        }


async def get(client: httpx.AsyncClient, path: str, actor: Actor, **params: str) -> Any:
    response = await client.get(path, params=params, headers=actor.bearer)
    assert response.status_code == 200, response.text
    return response.json()


def _values(kpis: list[dict[str, Any]]) -> dict[str, Any]:
    return {k["key"]: k["value"] for k in kpis}


async def test_supervisors_and_admins_read_the_kpis_agents_do_not(
    client: httpx.AsyncClient, actors: dict[str, Actor]
) -> None:
    for path in (
        KPIS,
        f"{KPIS}/series",
        f"{KPIS}/agents",
        f"{KPIS}.csv",
        f"{KPIS}/series.csv",
        f"{KPIS}/agents.csv",
    ):
        assert_api_error(await client.get(path, headers=actors["agent"].bearer), 403, "insufficient_role")
        assert_api_error(await client.get(path), 401)
        for role in ("supervisor", "admin"):
            assert (await client.get(path, params=WEEK, headers=actors[role].bearer)).status_code == 200


async def test_the_report(client: httpx.AsyncClient, actors: dict[str, Actor]) -> None:
    report = await get(client, KPIS, actors["supervisor"], **WEEK)
    assert (report["start"], report["end"], report["team"], report["channel"]) == (
        WEEK["start"],
        WEEK["end"],
        None,
        None,
    )
    assert [k["key"] for k in report["kpis"]][:5] == [
        "bot_resolution_rate",
        "first_response_avg",
        "first_response_p90",
        "csat",
        "escalation_rate",
    ]
    bot = report["kpis"][0]
    assert bot == {
        "key": "bot_resolution_rate",
        "value": 2 / 6,
        "unit": "ratio",
        "objective": 0.7,
        "direction": "at_least",
        "met": False,
        "sample": 6,
    }
    assert report["volumes"]["contacts"] == 6
    technical = await get(client, KPIS, actors["supervisor"], **WEEK, team="technical", channel="email")
    assert _values(technical["kpis"])["first_response_avg"] == 600
    assert (technical["team"], technical["channel"], technical["volumes"]["contacts"]) == (
        "technical",
        "email",
        1,
    )


async def test_another_tenant_s_data_is_never_counted(
    client: httpx.AsyncClient, db: Database, world: World, actors: dict[str, Actor]
) -> None:
    async with db.unit_of_work() as session:
        outsider = await make_actor(session, world.other.slug, "supervisor")
    theirs = await get(client, KPIS, outsider, **WEEK)
    ours = await get(client, KPIS, actors["supervisor"], **WEEK)
    assert (theirs["volumes"]["contacts"], ours["volumes"]["contacts"]) == (1, 6)
    assert _values(theirs["kpis"])["csat"] == 1.0
    assert await get(client, f"{KPIS}/agents", outsider, **WEEK) == []  # no agent of theirs
    # Their team codes are not ours either.
    assert_api_error(
        await client.get(KPIS, params={**WEEK, "team": "billing"}, headers=outsider.bearer),
        422,
        "unknown_team",
    )


async def test_the_series_and_the_agents(client: httpx.AsyncClient, actors: dict[str, Actor]) -> None:
    days = await get(client, f"{KPIS}/series", actors["supervisor"], **WEEK)
    assert days["granularity"] == "day" and len(days["points"]) == 7
    assert [_values(p["kpis"])["bot_resolution_rate"] for p in days["points"]] == [
        0.5,
        1.0,
        0.0,
        0.0,
        None,
        None,
        None,
    ]
    weeks = await get(client, f"{KPIS}/series", actors["supervisor"], **WEEK, granularity="week")
    assert [(p["start"], p["end"]) for p in weeks["points"]] == [(WEEK["start"], WEEK["end"])]
    assert_api_error(
        await client.get(
            f"{KPIS}/series", params={**WEEK, "granularity": "month"}, headers=actors["supervisor"].bearer
        ),
        422,
        "validation_error",
    )
    agents = await get(client, f"{KPIS}/agents", actors["supervisor"], **WEEK)
    alice = next(a for a in agents if a["full_name"] == "Alice")
    assert (alice["handled"], alice["resolved"], alice["avg_handling_seconds"], alice["csat"]) == (
        2,
        2,
        44_100,
        3.0,
    )
    assert alice["seconds_in_status"]["away"] == 3600
    # The supervisor and the admin have no role of agent: listed only with work or CSAT to show.
    assert {a["full_name"] for a in agents} == {
        "Alice",
        "Bob",
        f"Agent {actors['agent'].tenant.slug}",
    }


async def test_the_default_period_is_the_last_7_days(
    client: httpx.AsyncClient, db: Database, world: World, actors: dict[str, Actor]
) -> None:
    async with db.unit_of_work() as session:
        conversation = await session.get(Conversation, world.conversations["c1"].id)
        assert conversation is not None
        conversation.created_at = utc_now() - timedelta(days=6)
    report = await get(client, KPIS, actors["supervisor"])
    today = utc_now().date()
    assert (report["start"], report["end"]) == ((today - timedelta(days=6)).isoformat(), today.isoformat())
    assert report["volumes"]["contacts"] == 1
    only_end = await get(client, KPIS, actors["supervisor"], end=WEEK["end"])
    assert only_end["start"] == WEEK["start"]


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"start": "2026-11-09", "end": "2026-11-02"}, "invalid_period"),
        ({"start": "2025-01-01", "end": "2026-11-02"}, "invalid_period"),
        ({"start": "2026-13-01"}, "validation_error"),
        ({"start": "yesterday"}, "validation_error"),
        ({"channel": "pigeon"}, "validation_error"),
        ({"team": "nope"}, "unknown_team"),
    ],
)
async def test_bad_queries_are_422(
    client: httpx.AsyncClient, actors: dict[str, Actor], params: dict[str, str], code: str
) -> None:
    for path in (KPIS, f"{KPIS}/series", f"{KPIS}/agents.csv"):
        error = assert_api_error(
            await client.get(path, params=params, headers=actors["supervisor"].bearer), 422, code
        )
        if code == "invalid_period":
            assert "Invalid period" in error["message"]


def _rows(response: httpx.Response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"].startswith("attachment; filename=")
    return list(csv.DictReader(io.StringIO(response.text)))


async def test_csv_exports(
    client: httpx.AsyncClient, db: Database, world: World, actors: dict[str, Actor]
) -> None:
    headers = actors["supervisor"].bearer
    report = _rows(await client.get(f"{KPIS}.csv", params=WEEK, headers=headers))
    by_key = {r["key"]: r for r in report}
    assert by_key["bot_resolution_rate"] == {
        "start": WEEK["start"],
        "end": WEEK["end"],
        "team": "",
        "channel": "",
        "key": "bot_resolution_rate",
        "value": str(2 / 6),
        "unit": "ratio",
        "objective": "0.7",
        "direction": "at_least",
        "met": "false",
        "sample": "6",
    }
    assert by_key["csat"]["met"] == "true"
    assert by_key["agent_first_response_avg"]["objective"] == ""
    assert (by_key["contacts"]["unit"], by_key["contacts"]["value"]) == ("count", "6")

    series = _rows(
        await client.get(f"{KPIS}/series.csv", params={**WEEK, "granularity": "day"}, headers=headers)
    )
    assert [r["start"] for r in series] == [(D + timedelta(days=i)).isoformat() for i in range(7)]
    assert [r["bot_resolution_rate"] for r in series] == ["0.5", "1.0", "0.0", "0.0", "", "", ""]
    assert series[0]["contacts"] == "2"

    # A name a spreadsheet would run as a formula is quoted out.
    async with db.unit_of_work() as session:
        alice = await session.get(type(world.alice), world.alice.id)
        assert alice is not None
        alice.full_name = '=HYPERLINK("http://evil")'
    agents = _rows(await client.get(f"{KPIS}/agents.csv", params=WEEK, headers=headers))
    row = next(r for r in agents if r["agent_id"] == str(world.alice.id))
    assert row["full_name"] == '\'=HYPERLINK("http://evil")'
    assert (row["team"], row["status"], row["handled"], row["resolved"], row["seconds_away"]) == (
        "billing",
        "offline",
        "2",
        "2",
        "3600.0",
    )
    assert row["avg_handling_seconds"] == "44100.0"
