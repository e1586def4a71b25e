"""What `allo routing status` reads and how it prints it: the floor as the ACD sees it."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from allo.config import Settings
from allo.kit.db import Database, create_nullpool_engine
from allo.kit.errors import NotFound
from allo.kit.time import utc_now
from allo.routing import service
from allo.routing.schemas import RoutingStatus
from allo.tenants import service as tenants

# Wide enough for any row.
UNCUT_WIDTH = 400
_STATUS_STYLES = {
    "available": "green",
    "busy": "yellow",
    "wrap_up": "cyan",
    "away": "magenta",
    "offline": "dim",
}


async def floor(settings: Settings, tenant_slug: str) -> RoutingStatus:
    """The tenant's queues and agents now (the same figures as GET /api/v1/routing/status)."""
    db = Database(create_nullpool_engine(settings.database_url))
    try:
        async with db.unit_of_work(write=False) as session:
            tenant = await tenants.get_by_slug(session, tenant_slug)
            if tenant is None:
                raise NotFound(
                    f"No tenant {tenant_slug!r}.", code="tenant_not_found", details={"tenant": tenant_slug}
                )
            return RoutingStatus.model_validate(await service.floor_status(session, tenant.id, utc_now()))
    finally:
        await db.dispose()


def format_duration(seconds: int) -> str:
    """45s, 12m, 1h05m, 2d03h; negative past a deadline (-1h05m): short enough for a table cell."""
    sign = "-" if seconds < 0 else ""
    left = abs(seconds)
    if left < 60:
        return f"{sign}{left}s"
    minutes = left // 60
    if minutes < 60:
        return f"{sign}{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{sign}{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{sign}{days}d{hours:02d}h"


def uncut(console: Console) -> Console:
    """The console itself on a terminal; piped or redirected, one as wide as any table (never cut to 80
    columns, never coloured)."""
    if console.is_terminal:
        return console
    return Console(file=console.file, width=UNCUT_WIDTH, no_color=True, highlight=False)


def table(*headers: str, title: str | None = None) -> Table:
    """The look of every table the operator commands print."""
    return Table(
        *headers, title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False
    )


def print_floor(console: Console, status: RoutingStatus) -> None:
    console = uncut(console)
    queues = table(
        "Team",
        "Tier",
        "Language",
        "Waiting",
        "By priority",
        "Longest wait",
        title="Queues",
    )
    for q in status.queues:
        queues.add_row(
            escape(q.team or "—"),
            q.tier.value,
            q.language,
            str(q.waiting),
            " ".join(f"{p}:{n}" for p, n in sorted(q.by_priority.items())),
            format_duration(q.longest_wait_seconds),
        )
    agents = table("Agent", "Team", "Tier", "Status", "Load", "Wrapping up", title="Agents")
    for a in status.agents:
        style = _STATUS_STYLES.get(a.status.value)
        state = a.status.value + (f" ({a.status_reason})" if a.status_reason else "")
        agents.add_row(
            escape(a.full_name),
            escape(a.team or "—"),
            a.tier.value,
            f"[{style}]{escape(state)}[/{style}]" if style else escape(state),
            f"{a.active_items}/{a.max_concurrent}",
            "yes" if a.wrapping_up else "",
        )
    console.print(queues if status.queues else "[bold]Queues[/bold]: nothing waiting.")
    console.print()
    console.print(
        "[bold]Agents by status[/bold]: "
        + ", ".join(f"{name} {count}" for name, count in status.agents_by_status.items())
    )
    console.print(agents if status.agents else "No agents.")
    console.print()
    console.print(
        f"[bold]Totals[/bold]: {status.waiting} waiting, {status.assigned} assigned "
        f"({status.offers_pending} offers not accepted yet), {len(status.agents)} agents, "
        f"at {status.at:%Y-%m-%d %H:%M:%S} UTC"
    )
