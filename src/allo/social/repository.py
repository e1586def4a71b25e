from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import Select, select

from allo.kit.repository import TenantRepository, contains_text
from allo.models import SocialCursor, SocialPost
from allo.models.enums import PostDecision, ReplyState
from allo.social.schemas import DayCount, PostState

_ANSWERED = (ReplyState.posted, ReplyState.dry_run)


class SocialPostRepository(TenantRepository[SocialPost]):
    model = SocialPost
    noun = "post"

    def filtered(
        self,
        *,
        state: PostState | None = None,
        kind: str | None = None,
        urgency: str | None = None,
        reason: str | None = None,
        source: str | None = None,
        author: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        text: str | None = None,
    ) -> Select[SocialPost]:
        stmt = self.select()
        if state is PostState.detected:
            stmt = stmt.where(
                SocialPost.decision == PostDecision.complaint,
                SocialPost.reply_state.in_((ReplyState.none, ReplyState.queued)),
            )
        elif state is PostState.replied:
            stmt = stmt.where(SocialPost.reply_state.in_(_ANSWERED))
        elif state is PostState.escalated:
            stmt = stmt.where(SocialPost.ticket_id.is_not(None))
        elif state is PostState.ignored:
            stmt = stmt.where(SocialPost.decision == PostDecision.ignored)
        elif state is PostState.failed:
            stmt = stmt.where(SocialPost.reply_state == ReplyState.failed)
        for column, value in (
            (SocialPost.kind, kind),
            (SocialPost.urgency, urgency),
            (SocialPost.reason, reason),
            (SocialPost.source, source),
        ):
            if value is not None:
                stmt = stmt.where(column == value)
        if author is not None:
            stmt = stmt.where(SocialPost.author_acct == author.lstrip("@").lower())
        if since is not None:
            stmt = stmt.where(SocialPost.created_at >= since)
        if until is not None:
            stmt = stmt.where(SocialPost.created_at < until)
        if text:
            stmt = stmt.where(contains_text(text, SocialPost.text, SocialPost.author_acct))
        return stmt

    async def per_day(self, first: date, last: date) -> list[DayCount]:
        """Counts per day (UTC) from `first` to `last` included, every day listed."""
        start = datetime.combine(first, time.min, tzinfo=UTC)
        end = datetime.combine(last + timedelta(days=1), time.min, tzinfo=UTC)
        rows = await self.session.execute(
            select(
                SocialPost.created_at, SocialPost.decision, SocialPost.reply_state, SocialPost.ticket_id
            ).where(
                SocialPost.tenant_id == self.tenant_id,
                SocialPost.created_at >= start,
                SocialPost.created_at < end,
            )
        )
        days = {
            first + timedelta(days=i): DayCount(day=first + timedelta(days=i))
            for i in range((last - first).days + 1)
        }
        for created, decision, reply_state, ticket_id in rows:
            count = days.get(created.astimezone(UTC).date())
            if count is None:
                continue
            count.seen += 1
            if decision is PostDecision.ignored:
                count.ignored += 1
                continue
            count.complaints += 1
            if reply_state in _ANSWERED:
                count.replied += 1
            if ticket_id is not None:
                count.escalated += 1
        return list(days.values())


async def cursors(repo: SocialPostRepository) -> Sequence[SocialCursor]:
    stmt = select(SocialCursor).where(SocialCursor.tenant_id == repo.tenant_id).order_by(SocialCursor.source)
    return list((await repo.session.execute(stmt)).scalars())
