"""What the `allo mastodon` commands do and how they print it."""

from __future__ import annotations

import asyncio
import json
import signal
from dataclasses import dataclass, field
from typing import IO, Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import func, select

from allo.config import Settings
from allo.kit.bus import Bus
from allo.kit.db import Database, create_nullpool_engine
from allo.kit.errors import NotFound
from allo.kit.jobs import RetryLater
from allo.kit.text import one_line
from allo.models import SocialPost
from allo.models.enums import ReplyState
from allo.social import service
from allo.social.listener import Listener
from allo.social.mastodon import MastodonProblem
from allo.social.repository import SocialPostRepository, cursors
from allo.social.tasks import send_reply, settle_critical
from allo.tenants import service as tenants


@dataclass
class PollResult:
    report: service.IngestReport
    posts: list[dict[str, Any]] = field(default_factory=list)
    replies_waiting: int = 0


async def poll_once(settings: Settings, err: Console) -> PollResult:
    """Every source read once, every reply posted (or recorded in dry-run mode), then return."""
    db = Database(create_nullpool_engine(settings.database_url))
    try:
        listener = Listener(settings, db)
        with err.status(f"Connecting to {settings.mastodon_api_base_url}…"):
            await listener.prepare()
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} {task.fields[unit]} {task.fields[found]}"),
            TimeElapsedColumn(),
            console=err,
            transient=False,
        ) as progress:
            task = progress.add_task(
                "Reading Mastodon", total=len(listener.sources), unit="sources", found=""
            )
            total = service.IngestReport()

            def advance(source: str, report: service.IngestReport) -> None:
                total.add(report)
                found = f"· {total.new} new, {total.complaints} complaints"
                progress.update(task, advance=1, description=f"Read {source}", found=found)

            report = await listener.poll_once(progress=advance)
            critical = [p for p in report.posts if p.urgency == "critical"]
            if critical:
                escalating = progress.add_task("Opening tickets", total=len(critical), unit="posts", found="")
                for post in critical:
                    async with db.unit_of_work() as session:
                        await settle_critical(
                            session,
                            settings,
                            post.id,
                            listener.tenant_id,
                            reply=post.reason != service.AUTHOR_COOLDOWN,
                        )
                    progress.update(escalating, advance=1)
            queued = [p.id for p in report.posts if p.reply_state is ReplyState.queued]
            waiting = 0
            if queued:
                sending = progress.add_task("Posting replies", total=len(queued), unit="replies", found="")
                for post_id in queued:
                    try:
                        async with db.unit_of_work() as session:
                            await send_reply(session, settings, post_id, listener.tenant_id, attempt=1)
                    except (RetryLater, MastodonProblem):
                        waiting += 1  # its job posts it later, with backoff (allo serve or allo worker)
                    progress.update(sending, advance=1)
        posts = await _rows(db, [p.id for p in report.posts])
        return PollResult(report, posts, waiting)
    finally:
        await db.dispose()


async def _rows(db: Database, ids: list[Any]) -> list[dict[str, Any]]:
    if not ids:
        return []
    async with db.unit_of_work(write=False) as session:
        rows = (
            (
                await session.execute(
                    select(SocialPost).where(SocialPost.id.in_(ids)).order_by(SocialPost.created_at)
                )
            )
            .scalars()
            .all()
        )
        return [
            {
                "id": str(p.id),
                "status_id": p.status_id,
                "url": p.url,
                "author": p.author_acct,
                "source": p.source,
                "language": p.language,
                "kind": p.kind,
                "decision": p.decision.value,
                "reason": p.reason,
                "urgency": p.urgency,
                "area": p.area,
                "reply_state": p.reply_state.value,
                "reply_text": p.reply_text,
                "reply_url": p.reply_url,
                "reply_error": p.reply_error,
                "ticket_id": str(p.ticket_id) if p.ticket_id else None,
                "incident_id": str(p.incident_id) if p.incident_id else None,
                "text": p.text,
            }
            for p in rows
        ]


def print_result(out: Console, err: Console, result: PollResult, *, as_json: bool, stream: IO[str]) -> None:
    if as_json:
        for row in result.posts:
            stream.write(json.dumps(row, ensure_ascii=False) + "\n")
    elif result.posts:
        table = Table("Author", "Post", "Decision", show_lines=True)
        table.add_column("Reply", overflow="fold")  # the whole link, to be copied
        for row in result.posts:
            decision = (
                f"complaint, {row['urgency']}" + (f"\n{row['area']}" if row["area"] else "")
                if row["decision"] == "complaint"
                else f"ignored: {row['reason']}"
            )
            if row["ticket_id"]:
                decision += "\nticket opened"
            reply = (
                row["reply_state"] if not row["reply_text"] else f"[{row['reply_state']}] {row['reply_text']}"
            )
            if row["reply_error"]:
                reply += f"\n{row['reply_error']}"
            if row["decision"] == "complaint" and row["reason"]:
                reply = f"not answered: {row['reason']}"
            table.add_row(
                escape("@" + row["author"]),
                escape(one_line(row["text"], 160)),
                escape(decision),
                escape(reply),
            )
        out.print(table)
    report = result.report
    ignored = ", ".join(f"{k} {v}" for k, v in sorted(report.ignored.items())) or "none"
    err.print(
        f"{report.new} new posts ({report.seen - report.new} already seen): {report.complaints} complaints, "
        f"{report.replies} replies, {report.tickets} tickets; ignored: {ignored}.",
        highlight=False,
    )
    if result.replies_waiting:
        err.print(
            f"[yellow]{result.replies_waiting} replies could not be posted now[/yellow]: "
            "their jobs try again (run `allo serve` or `allo worker`).",
            highlight=False,
        )


async def listen(settings: Settings, err: Console, *, run_worker: bool) -> None:
    """The listener (and the job worker that posts replies) until Ctrl-C."""
    from allo.app import background_services, build_database

    bus = Bus()
    db = build_database(settings, bus)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    err.print(
        f"Listening to {settings.mastodon_api_base_url} for #{', #'.join(settings.mastodon_hashtags)}"
        f"{' and mentions' if settings.mastodon_watch_mentions else ''}"
        f"{' (dry run)' if settings.mastodon_dry_run else ''}; Ctrl-C stops.",
        highlight=False,
    )
    try:
        async with background_services(settings, db, bus, run_worker=run_worker):
            await stop.wait()
    finally:
        await db.dispose()


async def status(settings: Settings, tenant_slug: str) -> tuple[list[Any], dict[str, int]]:
    """Where each source was read up to, and the posts by what became of their reply."""
    db = Database(create_nullpool_engine(settings.database_url))
    try:
        async with db.unit_of_work(write=False) as session:
            tenant = await tenants.get_by_slug(session, tenant_slug)
            if tenant is None:
                raise NotFound(f"Tenant {tenant_slug!r} does not exist.", code="unknown_tenant")
            rows = await cursors(SocialPostRepository(session, tenant.id))
            counts = (
                await session.execute(
                    select(SocialPost.reply_state, func.count())
                    .where(SocialPost.tenant_id == tenant.id)
                    .group_by(SocialPost.reply_state)
                )
            ).all()
            return [(r.source, r.last_id, r.last_polled_at) for r in rows], {
                state.value: int(count) for state, count in counts
            }
    finally:
        await db.dispose()
