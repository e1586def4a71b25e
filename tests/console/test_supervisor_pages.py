"""Supervisor pages: the live floor, the KPIs page, agents on the map; and the role sweep over every
console page."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy import update

from allo.kit.db import Database
from allo.kit.time import utc_now
from allo.models import User
from allo.models.enums import WorkMode
from tests.console.test_workspace_pages import ENGLISH, a_waiting_case, sign_in
from tests.factories import Actor, ready_agent

AGENT_PAGES = ["/inbox", "/inbox/items", "/customers"]
SUPERVISOR_PAGES = ["/supervisor", "/supervisor/floor", "/supervisor/kpis", "/supervisor/agents", "/social"]
ADMIN_PAGES = ["/admin"]


async def test_the_floor_shows_the_waiting_work_the_agents_and_the_clocks_at_risk(
    client: httpx.AsyncClient, db: Database, tenant_actors: dict[str, Actor]
) -> None:
    admin, supervisor, agent = tenant_actors["admin"], tenant_actors["supervisor"], tenant_actors["agent"]
    await ready_agent(db, agent, skills={"billing": 3})
    case = await a_waiting_case(client, admin, priority="P1", category="technical")
    await sign_in(client, supervisor)
    page = await client.get("/supervisor", headers=ENGLISH)
    assert page.status_code == 200
    assert 'data-refresh="/supervisor/floor"' in page.text
    floor = await client.get("/supervisor/floor", headers=ENGLISH)
    assert "Waiting items per queue" in floor.text  # the queue chart
    assert f"Agent {agent.tenant.slug}" in floor.text  # the agents' table
    # A P1's first response is due within 15 minutes: it is on the watch list.
    watch = floor.text.split('data-testid="sla-watch"')[1]
    assert f"T-{case['ticket']['number']:06d}" in watch


async def test_the_agents_map_plots_fresh_positions_and_marks_stale_ones(
    client: httpx.AsyncClient, db: Database, tenant_actors: dict[str, Actor]
) -> None:
    supervisor, agent = tenant_actors["supervisor"], tenant_actors["agent"]
    agent_client = httpx.AsyncClient(transport=client._transport, base_url="http://testserver")
    async with agent_client:
        csrf = await sign_in(agent_client, agent)
        sent = await agent_client.put(
            "/api/v1/agents/me/location",
            json={"latitude": 6.3703, "longitude": 2.3912, "accuracy_m": 12},
            headers=csrf,
        )
        assert sent.status_code == 200, sent.text
    async with db.unit_of_work() as session:
        await session.execute(update(User).where(User.id == agent.user_id).values(work_mode=WorkMode.mobile))
    await sign_in(client, supervisor)
    page = await client.get("/supervisor/agents", headers=ENGLISH)
    assert page.status_code == 200
    assert "<circle" in page.text and "6.37030, 2.39120" in page.text and "± 12 m" in page.text
    assert "Mobile" in page.text and "stale" not in page.text.split('data-testid="agents-positions"')[1]

    async with db.unit_of_work() as session:
        await session.execute(
            update(User)
            .where(User.id == agent.user_id)
            .values(last_location_at=utc_now() - timedelta(hours=2))
        )
    page = await client.get("/supervisor/agents", headers=ENGLISH)
    assert 'class="badge stale"' in page.text


async def test_the_kpi_page_shows_each_kpi_against_its_objective(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor]
) -> None:
    await sign_in(client, tenant_actors["supervisor"])
    page = await client.get("/supervisor/kpis", headers=ENGLISH)
    assert page.status_code == 200
    for key in ("bot_resolution_rate", "first_response_avg", "first_response_p90", "csat", "escalation_rate"):
        assert f'data-testid="kpi-{key}"' in page.text
    assert "objective &gt; 70.0 %" in page.text and "objective &lt; 2 min 00 s" in page.text
    assert "/api/v1/kpis.csv?" in page.text and "/api/v1/kpis/agents.csv?" in page.text
    weekly = await client.get("/supervisor/kpis", params={"by": "week"}, headers=ENGLISH)
    assert weekly.status_code == 200 and "By week" in weekly.text
    backwards = await client.get(
        "/supervisor/kpis", params={"start": "2026-11-20", "end": "2026-11-01"}, headers=ENGLISH
    )
    # Explained, and the default period shown instead.
    assert backwards.status_code == 200 and 'role="alert"' in backwards.text
    edited = await client.get("/supervisor/kpis", params={"team": "no-such-team"}, headers=ENGLISH)
    assert edited.status_code == 200 and "no-such-team" in edited.text.split('role="alert"')[1]


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        ("agent", AGENT_PAGES),
        ("supervisor", AGENT_PAGES + SUPERVISOR_PAGES),
        ("admin", AGENT_PAGES + SUPERVISOR_PAGES + ADMIN_PAGES),
    ],
)
async def test_every_page_checks_the_role(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], role: str, allowed: list[str]
) -> None:
    await sign_in(client, tenant_actors[role])
    for path in AGENT_PAGES + SUPERVISOR_PAGES + ADMIN_PAGES:
        response = await client.get(path, headers=ENGLISH)
        if path in allowed:
            assert response.status_code == 200, (role, path)
        else:
            assert response.status_code == 403, (role, path)
            assert "Not allowed" in response.text
    menu = (await client.get("/inbox", headers=ENGLISH)).text.split('class="menu"')[1].split("</nav>")[0]
    assert ('href="/admin"' in menu) is (role == "admin")
    assert ('href="/supervisor/kpis"' in menu) is (role != "agent")


async def test_no_page_opens_without_a_session(client: httpx.AsyncClient) -> None:
    for path in AGENT_PAGES + SUPERVISOR_PAGES + ADMIN_PAGES:
        response = await client.get(path)
        assert response.status_code == 303 and response.headers["location"].startswith("/?next="), path
