"""The supervisor's view of social listening: the posts seen, what was decided and done, counts per day,
CSV export (API), and the same as a console page."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from allo.console.pages import SupervisorPage, render_page
from allo.deps import SessionDep, SettingsDep, SupervisorDep
from allo.i18n import N_
from allo.kit.errors import BadRequest
from allo.kit.export import csv_text
from allo.kit.pagination import Page, PageParams, page_params
from allo.kit.time import utc_now
from allo.models import SocialPost
from allo.social.repository import SocialPostRepository, cursors
from allo.social.schemas import DayCount, ListeningStatus, PostRead, PostState, SourceRead
from allo.social.service import tenant_social_settings

router = APIRouter(prefix="/social", tags=["social listening"])
pages = APIRouter(include_in_schema=False)

MAX_DAYS = 366
CSV_LIMIT = 50_000
CSV_COLUMNS = (
    "created_at",
    "posted_at",
    "source",
    "author_acct",
    "url",
    "language",
    "kind",
    "decision",
    "reason",
    "urgency",
    "area",
    "reply_state",
    "reply_url",
    "ticket_id",
    "incident_id",
    "text",
    "reply_text",
)


LABELS = {
    "state": {
        "detected": N_("Detected, not answered"),
        "replied": N_("Replied"),
        "escalated": N_("Escalated"),
        "ignored": N_("Ignored"),
        "failed": N_("Reply failed"),
    },
    "urgency": {"critical": N_("Critical"), "high": N_("High"), "normal": N_("Normal"), "low": N_("Low")},
    "kind": {
        "complaint": N_("Complaint"),
        "praise": N_("Praise"),
        "news": N_("News"),
        "question": N_("Question"),
        "other": N_("Other"),
    },
    "reason": {
        "boost": N_("a boost"),
        "own_account": N_("our own post"),
        "bot_account": N_("an automated account"),
        "empty": N_("nothing but links, mentions or hashtags"),
        "praise": N_("praise"),
        "news": N_("news"),
        "question": N_("a neutral question"),
        "other": N_("not about our service"),
        "author_cooldown": N_("this author had a reply recently"),
        "escalation_failed": N_("the ticket could not be opened (see the logs)"),
    },
    "reply": {
        "none": N_("No reply"),
        "queued": N_("Being posted"),
        "posted": N_("Posted"),
        "dry_run": N_("Dry run: not posted"),
        "failed": N_("Failed"),
    },
}


class PostFilters:
    def __init__(
        self,
        state: PostState | None = None,
        kind: Annotated[str | None, Query(max_length=16)] = None,
        urgency: Annotated[str | None, Query(max_length=10)] = None,
        reason: Annotated[str | None, Query(max_length=40)] = None,
        source: Annotated[str | None, Query(max_length=120)] = None,
        author: Annotated[str | None, Query(max_length=300)] = None,
        since: Annotated[datetime | None, Query(description="Seen at or after (ISO 8601)")] = None,
        until: Annotated[datetime | None, Query(description="Seen before (ISO 8601)")] = None,
        q: Annotated[str | None, Query(max_length=200, description="Text or author contains")] = None,
    ) -> None:
        self.values: dict[str, Any] = {
            "state": state,
            "kind": kind or None,
            "urgency": urgency or None,
            "reason": reason or None,
            "source": source or None,
            "author": author or None,
            "since": since,
            "until": until,
            "text": q or None,
        }


FiltersDep = Annotated[PostFilters, Depends()]


@router.get("/posts", summary="Posts seen by the listener, newest first, with what became of them")
async def list_posts(
    session: SessionDep,
    principal: SupervisorDep,
    filters: FiltersDep,
    page: Annotated[PageParams, Depends(page_params)],
) -> Page[PostRead]:
    repo = SocialPostRepository(session, principal.tenant_id)
    rows, cursor = await repo.paginate(repo.filtered(**filters.values), page)
    return Page(items=[PostRead.model_validate(r) for r in rows], next_cursor=cursor)


@router.get("/posts.csv", summary="The same posts as CSV (at most 50,000)", response_class=Response)
async def export_posts(session: SessionDep, principal: SupervisorDep, filters: FiltersDep) -> Response:
    repo = SocialPostRepository(session, principal.tenant_id)
    stmt = (
        repo.filtered(**filters.values).order_by(SocialPost.created_at.desc(), SocialPost.id).limit(CSV_LIMIT)
    )
    rows = (await session.execute(stmt)).scalars()
    return Response(
        _csv(rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="social-posts-{utc_now():%Y%m%d}.csv"'},
    )


def _csv(rows: Iterable[SocialPost]) -> str:
    return csv_text(CSV_COLUMNS, ([getattr(row, column) for column in CSV_COLUMNS] for row in rows))


@router.get("/posts/{post_id}", summary="One post")
async def read_post(post_id: uuid.UUID, session: SessionDep, principal: SupervisorDep) -> PostRead:
    return PostRead.model_validate(
        await SocialPostRepository(session, principal.tenant_id).get_or_raise(post_id)
    )


def _period(first: date | None, last: date | None) -> tuple[date, date]:
    last = last or utc_now().date()
    first = first or last - timedelta(days=29)
    if first > last:
        raise BadRequest(
            "`from` is after `to`.", code="bad_period", details={"from": str(first), "to": str(last)}
        )
    if (last - first).days >= MAX_DAYS:
        raise BadRequest(f"At most {MAX_DAYS} days at once.", code="bad_period")
    return first, last


@router.get("/stats", summary="Posts seen, complaints, replies, escalations and ignored posts per day (UTC)")
async def stats(
    session: SessionDep,
    principal: SupervisorDep,
    first: Annotated[date | None, Query(alias="from", description="First day (default: 30 days ago)")] = None,
    last: Annotated[date | None, Query(alias="to", description="Last day, included (default: today)")] = None,
) -> list[DayCount]:
    return await SocialPostRepository(session, principal.tenant_id).per_day(*_period(first, last))


@router.get("/status", summary="What is watched, and where each source was read up to")
async def listening_status(
    session: SessionDep, principal: SupervisorDep, settings: SettingsDep
) -> ListeningStatus:
    rows = await cursors(SocialPostRepository(session, principal.tenant_id))
    social = await tenant_social_settings(session, settings, principal.tenant_id)
    return ListeningStatus(
        configured=settings.mastodon_configured,
        server=settings.mastodon_api_base_url,
        hashtags=social.hashtags,
        watch_mentions=social.watch_mentions,
        dry_run=social.dry_run,
        author_cooldown_minutes=social.author_cooldown_minutes,
        sources=[
            SourceRead(source=r.source, last_id=r.last_id, last_polled_at=r.last_polled_at) for r in rows
        ],
    )


# The console page ---------------------------------------------------------------------------------


@pages.get("/social")
async def social_page(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    filters: FiltersDep,
    page: Annotated[PageParams, Depends(page_params)],
    current: SupervisorPage,
) -> Response:
    repo = SocialPostRepository(session, current.tenant_id)
    rows, cursor = await repo.paginate(repo.filtered(**filters.values), page)
    first, last = _period(None, None)
    days = await repo.per_day(first, last)
    query = {k: v for k, v in request.query_params.items() if k != "cursor" and v}
    return render_page(
        request,
        current,
        "social.html",
        {
            "posts": rows,
            "next_cursor": cursor,
            "days": days,
            "chart": _chart(days),
            "filters": {
                k: request.query_params.get(k, "") for k in ("state", "kind", "urgency", "q", "source")
            },
            "labels": LABELS,
            "query": query,
            "settings": settings,
        },
    )


def _chart(days: list[DayCount]) -> dict[str, Any]:
    """Bars of complaints and ignored posts per day, scaled to the busiest day, for an inline SVG."""
    peak = max((d.seen for d in days), default=0) or 1
    width = 12
    bars = []
    for i, d in enumerate(days):
        complaint_height = round(100 * d.complaints / peak, 1)
        ignored_height = round(100 * d.ignored / peak, 1)
        bars.append(
            {
                "x": i * (width + 2),
                "complaints": complaint_height,
                "ignored": ignored_height,
                "label": f"{d.day.isoformat()}: {d.complaints} / {d.seen}",
            }
        )
    return {"bars": bars, "width": len(days) * (width + 2), "bar": width, "peak": peak}
