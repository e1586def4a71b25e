"""`allo kpis` as an operator runs it, against a database of the suite's kind that the command opens."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import timedelta

import pytest
from typer.testing import CliRunner, Result

from allo.cli import app
from allo.config import get_settings
from allo.kit.db import Database, create_nullpool_engine
from allo.kit.migrate import upgrade
from tests.kpis.world import D, build_world

SLUG = "kpi-cli"
WEEK = ("--from", D.isoformat(), "--to", (D + timedelta(days=6)).isoformat())


@pytest.fixture
async def url(fresh_database_url: str) -> str:
    await upgrade(fresh_database_url)
    db = Database(create_nullpool_engine(fresh_database_url))
    try:
        async with db.unit_of_work() as session:
            await build_world(session, SLUG)
    finally:
        await db.dispose()
    return fresh_database_url


async def allo(url: str, *args: str) -> Result:
    env = {"ALLO_DATABASE_URL": url, "ALLO_MODE": "dev", "ALLO_DEFAULT_TENANT": SLUG}
    get_settings.cache_clear()
    try:
        return await asyncio.to_thread(
            lambda: CliRunner().invoke(app, ["kpis", *args], env=env, catch_exceptions=False)
        )
    finally:
        get_settings.cache_clear()


async def test_the_table_shows_each_kpi_its_objective_and_whether_it_is_met(url: str) -> None:
    result = await allo(url, *WEEK)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()

    def line(label: str) -> str:
        return next(text for text in lines if text.strip().startswith(label))

    assert "KPIs of kpi-cli, 2026-11-02 to 2026-11-08" in result.stdout
    assert "33.3 %" in line("Bot resolution rate") and "≥ 70.0 %" in line("Bot resolution rate")
    assert "✗ not met" in line("Bot resolution rate")
    assert "4.00" in line("CSAT") and "✓ met" in line("CSAT")
    assert "2m13s" in line("First response, average") and "≤ 2m00s" in line("First response, average")
    assert "50.0 %" in line("Escalation rate")
    assert "contacts 6" in result.stdout
    alice = line("Alice")
    assert "billing" in alice and "12h15m" in alice  # 44,100 s handling on average
    assert "1h00m" in alice  # an hour away
    assert "Bob" in result.stdout and "wrap_up" in line("Bob")


async def test_the_series_by_week_with_filters(url: str) -> None:
    result = await allo(url, *WEEK, "--by", "week", "--team", "billing", "--channel", "SMS")
    assert result.exit_code == 0, result.stderr
    assert "team billing, channel sms" in result.stdout
    assert "Per week" in result.stdout and "2026-11-02   2026-11-08" in result.stdout
    assert "Bob" not in result.stdout


async def test_json_is_one_object(url: str) -> None:
    result = await allo(url, *WEEK, "--by", "day", "--format", "json")
    assert result.exit_code == 0, result.stderr
    (line,) = result.stdout.splitlines()
    body = json.loads(line)
    assert body["tenant"] == SLUG
    kpis = {k["key"]: k for k in body["report"]["kpis"]}
    assert kpis["first_response_p90"]["value"] == 600 and kpis["csat"]["met"] is True
    assert len(body["series"]["points"]) == 7
    assert [a["full_name"] for a in body["agents"]] == ["Alice", "Bob"]

    everyone = await allo(url, *WEEK, "--all-tenants", "--format", "json")
    assert everyone.exit_code == 0, everyone.stderr
    tenants = json.loads(everyone.stdout)["tenants"]
    assert [(t["tenant"], t["report"]["volumes"]["contacts"]) for t in tenants] == [
        (SLUG, 6),
        (f"{SLUG}-other", 1),
    ]


async def test_csv(url: str) -> None:
    result = await allo(url, *WEEK, "--format", "csv")
    assert result.exit_code == 0, result.stderr
    rows = {r["key"]: r for r in csv.DictReader(io.StringIO(result.stdout))}
    assert (rows["escalation_rate"]["value"], rows["escalation_rate"]["met"]) == ("0.5", "false")
    series = await allo(url, *WEEK, "--format", "csv", "--by", "week", "--all-tenants")
    assert series.exit_code == 0, series.stderr
    lines = list(csv.DictReader(io.StringIO(series.stdout)))
    assert [(r["tenant"], r["start"], r["contacts"]) for r in lines] == [
        (SLUG, D.isoformat(), "6"),
        (f"{SLUG}-other", D.isoformat(), "1"),
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--tenant", "nobody"), "No tenant 'nobody'"),
        (("--team", "nope"), "Unknown team 'nope'"),
        (("--from", "2026-11-09", "--to", "2026-11-02"), "is after the end"),
        (("--from", "2024-01-01", "--to", "2026-11-02"), "at most 366"),
        (("--from", "02/11/2026"), "Invalid value for '--from'"),
        (("--channel", "pigeon"), "is not one of"),
        (("--by", "month"), "is not one of"),
        (("--tenant", SLUG, "--all-tenants"), "not both"),
    ],
)
async def test_bad_input_is_a_clear_error_and_exit_status_2(
    url: str, args: tuple[str, ...], message: str
) -> None:
    result = await allo(url, *args)
    assert result.exit_code == 2, result.stdout
    assert message in " ".join(result.stderr.split())
    assert result.stdout == ""
