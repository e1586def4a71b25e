"""The supervisor dashboard's figures (docs/kpis.md): the period's KPIs, their series per day or week,
per-agent performance, and the same as CSV."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from allo.deps import SessionDep, SupervisorDep
from allo.kit.export import csv_response
from allo.kpis import export, service
from allo.kpis.schemas import AgentPerformance, KpiQuery, KpiReport, KpiSeries
from allo.models.enums import Channel

router = APIRouter(tags=["KPIs"])


async def kpi_query(
    start: Annotated[date | None, Query(description="First day, UTC (default: 6 days before end)")] = None,
    end: Annotated[date | None, Query(description="Last day, included, UTC (default: today)")] = None,
    team: Annotated[str | None, Query(max_length=40, description="Team code")] = None,
    channel: Channel | None = None,
) -> KpiQuery:
    return service.make_query(start, end, team, channel)


QueryDep = Annotated[KpiQuery, Depends(kpi_query)]
GranularityQuery = Annotated[Literal["day", "week"], Query(description="One point per day or ISO week")]


@router.get("/kpis", summary="The procedure's KPIs over a period, against the tenant's objectives")
async def report(session: SessionDep, principal: SupervisorDep, query: QueryDep) -> KpiReport:
    return await service.kpi_report(session, principal.tenant_id, query)


@router.get("/kpis/series", summary="The same KPIs per day or per ISO week of the period")
async def series(
    session: SessionDep, principal: SupervisorDep, query: QueryDep, granularity: GranularityQuery = "day"
) -> KpiSeries:
    return await service.kpi_series(session, principal.tenant_id, query, granularity)


@router.get("/kpis/agents", summary="Per-agent performance over the period")
async def agents(session: SessionDep, principal: SupervisorDep, query: QueryDep) -> list[AgentPerformance]:
    return await service.agent_performance(session, principal.tenant_id, query)


def _name(kind: str, query: KpiQuery) -> str:
    return f"{kind}-{query.start:%Y%m%d}-{query.end:%Y%m%d}.csv"


@router.get("/kpis.csv", summary="The KPIs and volumes as CSV", response_class=Response)
async def report_csv(session: SessionDep, principal: SupervisorDep, query: QueryDep) -> Response:
    result = await service.kpi_report(session, principal.tenant_id, query)
    return csv_response(export.report_csv(result), _name("kpis", query))


@router.get("/kpis/series.csv", summary="The series as CSV, one line per bucket", response_class=Response)
async def series_csv(
    session: SessionDep, principal: SupervisorDep, query: QueryDep, granularity: GranularityQuery = "day"
) -> Response:
    result = await service.kpi_series(session, principal.tenant_id, query, granularity)
    return csv_response(export.series_csv(result), _name(f"kpis-{granularity}", query))


@router.get("/kpis/agents.csv", summary="Per-agent performance as CSV", response_class=Response)
async def agents_csv(session: SessionDep, principal: SupervisorDep, query: QueryDep) -> Response:
    result = await service.agent_performance(session, principal.tenant_id, query)
    return csv_response(export.agents_csv(result), _name("kpis-agents", query))
