"""What `allo kpis` computes and how it prints it: the dashboard's figures for one tenant (or all)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import IO, Any, Literal

from rich.console import Console
from rich.markup import escape
from sqlalchemy import select

from allo.config import Settings
from allo.kit.db import Database, create_nullpool_engine
from allo.kit.errors import AppError
from allo.kpis import export, service
from allo.kpis.schemas import AgentPerformance, Granularity, KpiReport, KpiSeries, KpiValue
from allo.models import Tenant
from allo.models.enums import AgentStatus, Channel
from allo.routing.cli import format_duration, table, uncut
from allo.tenants import service as tenants

Format = Literal["table", "json", "csv"]
_NAMES = {
    "bot_resolution_rate": "Bot resolution rate",
    "first_response_avg": "First response, average",
    "first_response_p90": "First response, p90",
    "csat": "CSAT",
    "escalation_rate": "Escalation rate",
    "agent_first_response_avg": "Agent first response after hand-off, average",
    "agent_first_response_p90": "Agent first response after hand-off, p90",
}
_SHORT = {
    "bot_resolution_rate": "Bot",
    "first_response_avg": "1st resp",
    "first_response_p90": "1st p90",
    "csat": "CSAT",
    "escalation_rate": "Escal.",
    "agent_first_response_avg": "Agent resp",
    "agent_first_response_p90": "Agent p90",
}


class KpiCommandError(Exception):
    """Bad input to the command (unknown tenant or team, bad period): exit status 2."""


@dataclass(frozen=True)
class TenantKpis:
    tenant: str
    report: KpiReport
    series: KpiSeries | None
    agents: list[AgentPerformance]

    def to_json(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "report": self.report.model_dump(mode="json"),
            "series": self.series.model_dump(mode="json") if self.series else None,
            "agents": [a.model_dump(mode="json") for a in self.agents],
        }


async def compute(
    settings: Settings,
    tenant_slug: str | None,
    *,
    start: date | None,
    end: date | None,
    team: str | None = None,
    channel: str | None = None,
    granularity: Granularity | None = None,
) -> list[TenantKpis]:
    """The figures of one tenant, or of every active tenant when `tenant_slug` is None."""
    try:
        query = service.make_query(start, end, team, Channel(channel) if channel else None)
    except AppError as exc:
        raise KpiCommandError(exc.message) from exc
    db = Database(create_nullpool_engine(settings.database_url))
    try:
        async with db.unit_of_work(write=False) as session:
            if tenant_slug is None:
                chosen = list(
                    (
                        await session.execute(
                            select(Tenant).where(Tenant.active.is_(True)).order_by(Tenant.slug)
                        )
                    ).scalars()
                )
            else:
                tenant = await tenants.get_by_slug(session, tenant_slug)
                if tenant is None:
                    raise KpiCommandError(f"No tenant {tenant_slug!r}.")
                chosen = [tenant]
            results = []
            for tenant in chosen:
                try:
                    results.append(
                        TenantKpis(
                            tenant=tenant.slug,
                            report=await service.kpi_report(session, tenant.id, query),
                            series=await service.kpi_series(session, tenant.id, query, granularity)
                            if granularity
                            else None,
                            agents=await service.agent_performance(session, tenant.id, query),
                        )
                    )
                except AppError as exc:
                    if tenant_slug is None and exc.code == "unknown_team":
                        continue  # --all-tenants --team: the tenants that have this team
                    raise KpiCommandError(f"{exc.message} (tenant {tenant.slug!r})") from exc
            if not results:
                raise KpiCommandError(
                    f"No tenant has a team {team!r}." if team is not None else "No active tenant."
                )
            return results
    finally:
        await db.dispose()


# Printing.


def duration(seconds: float) -> str:
    """12.5s, 2m13s, 3h20m, 2d03h: precise enough to compare with a two-minute objective."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return format_duration(whole)


def format_value(unit: str, value: float | None) -> str:
    if value is None:
        return "—"
    if unit == "ratio":
        return f"{100 * value:.1f} %"
    if unit == "seconds":
        return duration(value)
    return f"{value:.2f}"


def _objective(kpi: KpiValue) -> str:
    if kpi.objective is None or kpi.direction is None:
        return ""
    return ("≥ " if kpi.direction == "at_least" else "≤ ") + format_value(kpi.unit, kpi.objective)


def _met(met: bool | None) -> str:
    if met is None:
        return "—"
    return "[green]✓ met[/green]" if met else "[red]✗ not met[/red]"


def _hours(seconds: float) -> str:
    return duration(seconds) if seconds else "—"


def print_tables(console: Console, result: TenantKpis) -> None:
    console = uncut(console)
    report = result.report
    filters = ", ".join(
        part
        for part in (
            f"team {report.team}" if report.team else "",
            f"channel {report.channel.value}" if report.channel else "",
        )
        if part
    )
    title = f"KPIs of {result.tenant}, {report.start} to {report.end} (UTC)" + (
        f", {filters}" if filters else ""
    )
    kpis = table("KPI", "Value", "Objective", "Met", "Sample", title=escape(title))
    for k in report.kpis:
        kpis.add_row(
            _NAMES.get(k.key, k.key), format_value(k.unit, k.value), _objective(k), _met(k.met), str(k.sample)
        )
    console.print(kpis)
    console.print(
        "[bold]Volumes[/bold]: "
        + ", ".join(f"{name.replace('_', ' ')} {n}" for name, n in report.volumes.items())
    )
    if result.series is not None:
        console.print()
        keys = [k.key for k in report.kpis]
        series = table(
            "Start",
            "End",
            *(_SHORT.get(k, k) for k in keys),
            "Contacts",
            title=f"Per {result.series.granularity}",
        )
        for point in result.series.points:
            series.add_row(
                str(point.start),
                str(point.end),
                *(format_value(k.unit, k.value) for k in point.kpis),
                str(point.volumes.get("contacts", 0)),
            )
        console.print(series)
    console.print()
    statuses = [s.value for s in AgentStatus]
    agents = table(
        "Agent",
        "Team",
        "Status",
        "Handled",
        "Resolved",
        "Avg handling",
        "CSAT",
        *(s.replace("_", "-") for s in statuses),
        title="Agents",
    )
    for a in result.agents:
        agents.add_row(
            escape(a.full_name),
            escape(a.team or "—"),
            a.status.value,
            str(a.handled),
            str(a.resolved),
            format_value("seconds", a.avg_handling_seconds),
            f"{a.csat:.2f} ({a.csat_count})" if a.csat is not None else "—",
            *(_hours(a.seconds_in_status.get(s, 0.0)) for s in statuses),
        )
    console.print(agents if result.agents else "No agents.")


def write_json(stream: IO[str], results: Sequence[TenantKpis], *, all_tenants: bool) -> None:
    """One JSON object: the tenant's figures, or {"tenants": [...]} for every tenant."""
    body = {"tenants": [r.to_json() for r in results]} if all_tenants else results[0].to_json()
    stream.write(json.dumps(body, ensure_ascii=False) + "\n")


def write_csv(stream: IO[str], results: Sequence[TenantKpis], *, all_tenants: bool) -> None:
    """The report's CSV (the series' with --by); for every tenant, with a first column "tenant"."""
    for index, result in enumerate(results):
        text = export.series_csv(result.series) if result.series else export.report_csv(result.report)
        if not all_tenants:
            stream.write(text)
            continue
        header, *lines = text.splitlines()
        if index == 0:
            stream.write(f"tenant,{header}\n")
        stream.writelines(f"{result.tenant},{line}\n" for line in lines)
