"""The reply job: posts one complaint's reply, once.

The job's idempotency key keeps one job per post, and the post's id is the Idempotency-Key Mastodon
honours: a retry after a lost answer does not post twice. A rate limit waits for the server's reset
without counting as a failure; a server error retries with backoff; a refusal (the post was deleted,
the text is refused) is final and shown on the supervisor page.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from allo.config import Settings
from allo.kit import jobs
from allo.kit.time import utc_now
from allo.models import SocialPost
from allo.models.enums import ReplyState
from allo.social.mastodon import MastodonGateway, RateLimited, Rejected, Unavailable
from allo.social.replies import MAX_CHARACTERS
from allo.social.service import (
    ESCALATE_KIND,
    ESCALATION_FAILED,
    REPLY_ATTEMPTS,
    REPLY_KIND,
    escalate,
    social_settings,
    tenant_social_settings,
    write_reply,
)
from allo.tenants import service as tenants

logger = logging.getLogger(__name__)

_gateways: dict[tuple[str, str], MastodonGateway] = {}
_gateways_lock = threading.Lock()


def forget_gateways() -> None:
    """Drop the clients (and what they know of the servers' rate limits): for tests."""
    with _gateways_lock:
        _gateways.clear()


def gateway_for(settings: Settings) -> MastodonGateway:
    """One client per server and token in this process: it carries the server's rate-limit state."""
    assert settings.mastodon_api_base_url is not None
    assert settings.mastodon_access_token is not None
    key = (settings.mastodon_api_base_url, settings.mastodon_access_token.get_secret_value())
    with _gateways_lock:
        gateway = _gateways.get(key)
        if gateway is None:
            gateway = MastodonGateway(key[0], key[1], timeout=settings.mastodon_timeout_seconds)
            _gateways[key] = gateway
        return gateway


@jobs.job_handler(ESCALATE_KIND)
async def escalate_post(ctx: jobs.JobContext) -> None:
    post_id = uuid.UUID(ctx.payload["post_id"])
    settings: Settings = ctx.resources["settings"]
    await settle_critical(ctx.session, settings, post_id, ctx.tenant_id, reply=bool(ctx.payload.get("reply")))


async def settle_critical(
    session: AsyncSession, settings: Settings, post_id: uuid.UUID, tenant_id: uuid.UUID | None, *, reply: bool
) -> SocialPost | None:
    """A critical complaint's ticket (and incident), then its reply, which names them. Run again, it
    does nothing more."""
    post = await session.get(SocialPost, post_id, with_for_update=True)
    if post is None or post.tenant_id != tenant_id:
        return None
    if post.ticket_id is None and post.reason != ESCALATION_FAILED:
        await escalate(session, post)
    if reply and post.reply_text is None:
        tenant = await tenants.get_or_raise(session, post.tenant_id)
        limit = MAX_CHARACTERS
        if settings.mastodon_configured:
            limit = await asyncio.to_thread(gateway_for(settings).max_characters)
        dry_run = social_settings(settings, tenants.policy_of(tenant).social).dry_run
        await write_reply(session, settings, post, tenant.slug, limit, dry_run=dry_run)
    return post


@jobs.job_handler(REPLY_KIND)
async def post_reply(ctx: jobs.JobContext) -> None:
    settings: Settings = ctx.resources["settings"]
    if not settings.mastodon_configured:
        raise jobs.RetryLater("Mastodon is not configured in this process", delay=300)
    await send_reply(
        ctx.session, settings, uuid.UUID(ctx.payload["post_id"]), ctx.tenant_id, attempt=ctx.attempt
    )


async def send_reply(
    session: AsyncSession,
    settings: Settings,
    post_id: uuid.UUID,
    tenant_id: uuid.UUID | None,
    *,
    attempt: int,
) -> SocialPost | None:
    """Post one queued reply; also what `allo mastodon poll --once` runs before it exits. A later run
    of the job finds the post settled and does nothing."""
    post = await session.get(SocialPost, post_id, with_for_update=True)
    if post is None or post.tenant_id != tenant_id or post.reply_state is not ReplyState.queued:
        return post  # gone, or settled by an earlier attempt
    if post.reply_text is None:
        raise jobs.RetryLater("the reply is written once the post's ticket exists", delay=5)
    # Read now, not when the reply was queued: switching a tenant to dry run stops what is still waiting.
    if (await tenant_social_settings(session, settings, post.tenant_id)).dry_run:
        post.reply_state = ReplyState.dry_run
        post.replied_at = utc_now()
        return post
    try:
        status = await asyncio.to_thread(
            gateway_for(settings).post,
            post.reply_text,
            in_reply_to_id=post.status_id,
            visibility=post.reply_visibility or "direct",
            language=post.language,
            idempotency_key=f"allo-reply-{post.id}",
        )
    except RateLimited as exc:
        raise jobs.RetryLater("Mastodon rate limit", delay=exc.retry_after) from exc
    except Rejected as exc:
        _failed(post, f"refused by the server: {exc}")
        return post
    except Unavailable as exc:
        if attempt >= REPLY_ATTEMPTS:  # the last one: say so on the post
            _failed(post, f"server unavailable after {REPLY_ATTEMPTS} attempts: {exc}")
            return post
        raise
    post.reply_state = ReplyState.posted
    post.reply_status_id = str(status["id"])
    post.reply_url = status.get("url") or status.get("uri")
    post.replied_at = utc_now()
    post.reply_error = None
    return post


def _failed(post: SocialPost, why: str) -> None:
    logger.warning("reply to Mastodon status %s not posted: %s", post.status_id, why)
    post.reply_state = ReplyState.failed
    post.reply_error = why[:500]
