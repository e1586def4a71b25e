"""Supervisor pages: the live floor, the procedure's KPIs over time, the agents on the map."""

from __future__ import annotations

import math
from datetime import date, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlalchemy import select

from allo.console import repository as console
from allo.console.pages import ConsoleUser, SupervisorPage, render_page
from allo.console.workspace import labels
from allo.deps import SessionDep
from allo.i18n import N_
from allo.kit.errors import Unprocessable
from allo.kit.time import utc_now
from allo.kpis import service as kpis
from allo.models import Team, User
from allo.models.enums import AgentStatus, Channel, Role
from allo.routing import service as routing

router = APIRouter(include_in_schema=False)

# A position older than this is shown as stale: the agent closed the console or lost the signal.
STALE_AFTER = timedelta(minutes=15)
CHART_DAYS = 14

KPI_LABELS = {
    "bot_resolution_rate": N_("Bot resolution rate"),
    "first_response_avg": N_("First response, average"),
    "first_response_p90": N_("First response, 90th percentile"),
    "agent_first_response_avg": N_("Agent first response after hand-over, average"),
    "agent_first_response_p90": N_("Agent first response after hand-over, 90th percentile"),
    "csat": N_("Customer satisfaction (CSAT)"),
    "escalation_rate": N_("Escalation rate"),
}


# ---- The live floor -----------------------------------------------------------------------------------


async def _floor_context(session: SessionDep, current: ConsoleUser) -> dict[str, Any]:
    now = utc_now()
    floor = await routing.floor_status(session, current.tenant_id, now)
    peak = max((q["waiting"] for q in floor["queues"]), default=0) or 1
    return {
        "floor": floor,
        "peak": peak,
        "watch": await console.sla_watch(session, current.tenant_id, now),
        "longest_wait": max((q["longest_wait_seconds"] for q in floor["queues"]), default=0),
        "labels": labels(),
        "now": now,
    }


@router.get("/supervisor")
async def floor_page(request: Request, session: SessionDep, current: SupervisorPage) -> Response:
    return render_page(request, current, "supervisor/floor.html", await _floor_context(session, current))


@router.get("/supervisor/floor")
async def floor_fragment(request: Request, session: SessionDep, current: SupervisorPage) -> Response:
    return render_page(request, current, "supervisor/_floor.html", await _floor_context(session, current))


# ---- KPIs ---------------------------------------------------------------------------------------------


def _line_chart(points: list[Any], key: str, objective: float | None, unit: str) -> dict[str, Any]:
    """One KPI over the buckets as an SVG polyline on a 0–100 box, with the objective as a dashed line."""
    values = [next((k.value for k in p.kpis if k.key == key), None) for p in points]
    known = [v for v in values if v is not None]
    top = {"ratio": 1.0, "score": 5.0}.get(unit) or max([*known, objective or 0, 1.0]) * 1.15
    width = max(len(points) - 1, 1)

    def y(value: float) -> float:
        return round(100 - 100 * min(value, top) / top, 2)

    dots = [
        {"x": round(100 * i / width, 2), "y": y(v), "value": v, "label": p.start.isoformat()}
        for i, (p, v) in enumerate(zip(points, values, strict=True))
        if v is not None
    ]
    return {
        "path": " ".join(f"{d['x']},{d['y']}" for d in dots),
        "dots": dots,
        "objective_y": y(objective) if objective is not None else None,
        "top": top,
    }


@router.get("/supervisor/kpis")
async def kpis_page(
    request: Request,
    session: SessionDep,
    current: SupervisorPage,
    start: date | None = None,
    end: date | None = None,
    team: Annotated[str | None, Query(max_length=40)] = None,
    channel: Channel | None = None,
    by: Literal["day", "week"] = "day",
) -> Response:
    # The page opens on two weeks (the API's default is one): enough days for the charts to say something.
    default_start = utc_now().date() - timedelta(days=CHART_DAYS - 1)
    error: str | None = None
    try:
        query = kpis.make_query(start or default_start, end, team, channel)
        report = await kpis.kpi_report(session, current.tenant_id, query)
    except Unprocessable as exc:  # a period backwards or too long, a team code edited in the address
        error = exc.message
        query = kpis.make_query(default_start, None, None, channel)
        report = await kpis.kpi_report(session, current.tenant_id, query)
    series = await kpis.kpi_series(session, current.tenant_id, query, by)
    agents = await kpis.agent_performance(session, current.tenant_id, query)
    teams = list(
        (
            await session.execute(select(Team).where(Team.tenant_id == current.tenant_id).order_by(Team.code))
        ).scalars()
    )
    charts = {k.key: _line_chart(series.points, k.key, k.objective, k.unit) for k in report.kpis}
    statuses = [s.value for s in AgentStatus]
    longest = max((sum(a.seconds_in_status.values()) for a in agents), default=0) or 1
    csv_query = urlencode(
        {
            name: value
            for name, value in (
                ("start", query.start.isoformat()),
                ("end", query.end.isoformat()),
                ("team", query.team),
                ("channel", query.channel.value if query.channel else None),
            )
            if value
        }
    )
    return render_page(
        request,
        current,
        "supervisor/kpis.html",
        {
            "query": query,
            "by": by,
            "error": error,
            "report": report,
            "series": series,
            "agents": agents,
            "teams": teams,
            "channels": list(Channel),
            "charts": charts,
            "kpi_labels": KPI_LABELS,
            "statuses": statuses,
            "longest": longest,
            "csv_query": csv_query,
            "labels": labels(),
        },
    )


# ---- Agents on the map ----------------------------------------------------------------------------------


def _plot(agents: list[User]) -> dict[str, Any]:
    """Positions on an equirectangular plot framed around the agents (no tile server needed)."""
    placed = [a for a in agents if a.last_latitude is not None and a.last_longitude is not None]
    if not placed:
        return {"points": [], "box": None}
    lats = [a.last_latitude for a in placed if a.last_latitude is not None]
    lons = [a.last_longitude for a in placed if a.last_longitude is not None]
    margin = 0.01
    south, north = min(lats) - margin, max(lats) + margin
    west, east = min(lons) - margin, max(lons) + margin
    # Longitude degrees shrink with latitude: keep the plot's proportions true at its middle.
    squash = math.cos(math.radians((south + north) / 2)) or 1
    width, height = (east - west) * squash, north - south
    scale = 100 / max(width, height)
    points = [
        {
            "agent": a,
            "x": round(((a.last_longitude or 0) - west) * squash * scale, 2),
            "y": round((north - (a.last_latitude or 0)) * scale, 2),
        }
        for a in placed
    ]
    return {
        "points": points,
        "box": {"w": round(width * scale, 2), "h": round(height * scale, 2)},
        "bounds": {"south": south, "north": north, "west": west, "east": east},
    }


@router.get("/supervisor/agents")
async def agents_map_page(request: Request, session: SessionDep, current: SupervisorPage) -> Response:
    now = utc_now()
    agents = list(
        (
            await session.execute(
                select(User)
                .where(User.tenant_id == current.tenant_id, User.active.is_(True), User.role == Role.agent)
                .order_by(User.work_mode, User.full_name)
            )
        ).scalars()
    )
    teams = {
        t.id: t
        for t in (await session.execute(select(Team).where(Team.tenant_id == current.tenant_id))).scalars()
    }
    stale = {a.id for a in agents if a.last_location_at is None or now - a.last_location_at > STALE_AFTER}
    return render_page(
        request,
        current,
        "supervisor/agents.html",
        {"agents": agents, "teams": teams, "stale": stale, "plot": _plot(agents), "now": now},
    )
