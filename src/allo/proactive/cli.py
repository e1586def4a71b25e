"""`allo broadcast send` and `allo broadcast status`: a proactive send from the command line, its progress
as a bar, and its delivery report at the end."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from allo.auth.principal import Principal
from allo.config import Settings
from allo.kit.db import Database, create_nullpool_engine
from allo.kit.errors import NotFound
from allo.kit.jobs import Worker
from allo.models import Broadcast
from allo.models.enums import BroadcastState
from allo.proactive import service
from allo.proactive.repository import BroadcastRepository
from allo.proactive.schemas import BroadcastCreate, BroadcastReport
from allo.tenants import service as tenants

_FINISHED = (BroadcastState.done, BroadcastState.cancelled)


async def send(settings: Settings, tenant_slug: str, data: BroadcastCreate) -> uuid.UUID:
    db = Database(create_nullpool_engine(settings.database_url))
    try:
        async with db.unit_of_work() as session:
            tenant = await tenants.get_by_slug(session, tenant_slug)
            if tenant is None:
                raise NotFound(f"No tenant {tenant_slug!r}.", code="tenant_not_found")
            broadcast = await service.create_broadcast(session, Principal.system(tenant.id), data)
            return broadcast.id
    finally:
        await db.dispose()


async def state_of(
    settings: Settings, tenant_slug: str, broadcast_id: uuid.UUID
) -> tuple[Broadcast, BroadcastReport, bool]:
    db = Database(create_nullpool_engine(settings.database_url))
    try:
        async with db.unit_of_work(write=False) as session:
            tenant = await tenants.get_by_slug(session, tenant_slug)
            if tenant is None:
                raise NotFound(f"No tenant {tenant_slug!r}.", code="tenant_not_found")
            broadcast = await BroadcastRepository(session, tenant.id).get_or_raise(broadcast_id)
            return (
                broadcast,
                await service.report(session, broadcast),
                await service.stalled(session, broadcast),
            )
    finally:
        await db.dispose()


async def follow(
    settings: Settings,
    tenant_slug: str,
    broadcast_id: uuid.UUID,
    console: Console,
    *,
    run_worker: bool,
    poll_seconds: float = 1.0,
    timeout_seconds: float = 3600.0,
) -> BroadcastReport:
    """Show the send's progress until every recipient is handled and every message has left the queue
    (or the time runs out). With `run_worker`, this process runs the jobs itself: no server needed."""
    stop = asyncio.Event()
    worker_task = None
    db = None
    if run_worker:
        import allo.app  # noqa: F401 - registers every job handler, as `allo worker` does

        db = Database(create_nullpool_engine(settings.database_url))
        worker = Worker(db, poll_seconds=0.2, resources={"settings": settings})
        worker_task = asyncio.create_task(worker.run(stop))
    try:
        broadcast, report, _ = await state_of(settings, tenant_slug, broadcast_id)
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=False) as progress:
            handled = progress.add_task("Recipients handled", total=broadcast.total)
            left = progress.add_task("Messages handed to the channels", total=broadcast.total)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout_seconds
            while True:
                broadcast, report, stuck = await state_of(settings, tenant_slug, broadcast_id)
                progress.update(handled, completed=broadcast.total - report.pending)
                skipped = sum(report.skipped.values())
                progress.update(
                    left, completed=broadcast.total - report.pending - report.queued, total=broadcast.total
                )
                settled = report.pending == 0 and report.queued == 0
                if (broadcast.state in _FINISHED and settled) or skipped == broadcast.total:
                    break
                if broadcast.state is BroadcastState.paused:
                    console.print(
                        "[yellow]Paused for the tenant's quiet hours: it resumes by itself when they end "
                        "(follow it with `allo broadcast status`).[/yellow]"
                    )
                    break
                if stuck or loop.time() > deadline:
                    console.print(
                        "[yellow]The send is not moving: its job stopped (see `allo jobs stats`) "
                        "or no worker runs (start `allo serve`, `allo worker`, or use --run-worker).[/yellow]"
                    )
                    break
                await asyncio.sleep(poll_seconds)
        return report
    finally:
        stop.set()
        if worker_task is not None:
            await worker_task
        if db is not None:
            await db.dispose()


def report_table(report: BroadcastReport, label: Callable[[str], str] = str) -> Table:
    table = Table(title="Delivery report")
    table.add_column("")
    table.add_column("Recipients", justify="right")
    for name in ("total", "pending", "queued", "sent", "delivered", "read", "failed"):
        table.add_row(label(name), str(getattr(report, name)))
    for reason, count in sorted(report.skipped.items()):
        table.add_row(f"skipped: {reason}", str(count))
    return table
