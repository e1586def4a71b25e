"""The KPIs as CSV: the same documents for the API's downloads and `allo kpis --format csv`."""

from __future__ import annotations

from collections.abc import Sequence

from allo.kit.export import csv_text
from allo.kpis.schemas import AgentPerformance, KpiReport, KpiSeries
from allo.models.enums import AgentStatus

REPORT_COLUMNS = (
    "start",
    "end",
    "team",
    "channel",
    "key",
    "value",
    "unit",
    "objective",
    "direction",
    "met",
    "sample",
)
AGENT_COLUMNS = (
    "agent_id",
    "full_name",
    "team",
    "tier",
    "work_mode",
    "status",
    "handled",
    "resolved",
    "avg_handling_seconds",
    "csat",
    "csat_count",
    *(f"seconds_{status.value}" for status in AgentStatus),
)


def _flag(value: bool | None) -> str | None:
    return None if value is None else ("true" if value else "false")


def report_csv(report: KpiReport) -> str:
    """One line per KPI, then one per volume (unit "count")."""
    head = (report.start, report.end, report.team, report.channel)
    rows: list[Sequence[object]] = [
        (*head, k.key, k.value, k.unit, k.objective, k.direction, _flag(k.met), k.sample) for k in report.kpis
    ]
    rows += [(*head, name, count, "count", None, None, None, None) for name, count in report.volumes.items()]
    return csv_text(REPORT_COLUMNS, rows)


def series_csv(series: KpiSeries) -> str:
    """One line per bucket: its days, each KPI's value, then the volumes."""
    if not series.points:
        return csv_text(("start", "end"), [])
    keys = [k.key for k in series.points[0].kpis]
    volumes = list(series.points[0].volumes)
    return csv_text(
        ("start", "end", *keys, *volumes),
        (
            (
                p.start,
                p.end,
                *(k.value for k in p.kpis),
                *(p.volumes[name] for name in volumes),
            )
            for p in series.points
        ),
    )


def agents_csv(agents: Sequence[AgentPerformance]) -> str:
    return csv_text(
        AGENT_COLUMNS,
        (
            (
                a.agent_id,
                a.full_name,
                a.team,
                a.tier,
                a.work_mode,
                a.status,
                a.handled,
                a.resolved,
                a.avg_handling_seconds,
                a.csat,
                a.csat_count,
                *(a.seconds_in_status.get(status.value, 0.0) for status in AgentStatus),
            )
            for a in agents
        ),
    )
