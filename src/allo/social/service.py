"""Posts found by the listener, decided on and acted on, in the caller's transaction.

Each status is recorded once (unique per tenant and status id): another hashtag, a restart or the stream
and the poll both bringing it change nothing. A complaint gets a personal reply (a job run after commit,
or only recorded in dry-run mode), unless its author had one within the cooldown; a critical one also
opens a ticket, which joins or makes a major incident when it reports an outage in an area.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar
from urllib.parse import urlencode

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from allo.agents.repository import TeamRepository
from allo.assistant.analysis import Analyzer
from allo.auth.principal import Principal
from allo.config import Settings
from allo.conversations.service import store_message
from allo.i18n import N_, gettext_for
from allo.incidents import service as incidents
from allo.kit import jobs
from allo.kit.errors import AppError, BadRequest
from allo.kit.signing import ExpiredToken, InvalidToken, sign, unsign
from allo.kit.text import one_line
from allo.kit.time import utc_now
from allo.models import (
    Conversation,
    Customer,
    CustomerIdentity,
    Incident,
    Message,
    SocialCursor,
    SocialPost,
    Ticket,
    TicketEvent,
)
from allo.models.enums import AuthorKind, Category, Channel, PostDecision, ReplyState, Tier
from allo.social import replies
from allo.social.classifier import PostClassifier
from allo.social.decision import Decision, Status, decide
from allo.social.mastodon import sources_of
from allo.social.places import Gazetteer
from allo.tenants import service as tenants
from allo.tenants.schemas import SocialPolicy
from allo.tickets import service as tickets
from allo.tickets.priority import CaseSignals, compute_priority
from allo.tickets.schemas import TicketCreate

logger = logging.getLogger(__name__)
T = TypeVar("T")

NETWORK = "mastodon"
REPLY_KIND = "social.reply"
ESCALATE_KIND = "social.escalate"
CONTACT_PURPOSE = "social-contact"
AUTHOR_COOLDOWN = "author_cooldown"
ESCALATION_FAILED = "escalation_failed"
CRITICAL_TECHNICAL = frozenset({"sim_fraud", "lost_stolen"})
# A reply's visibility follows the post's: never public for a post that was not.
REPLY_VISIBILITY = {"public": "public", "unlisted": "unlisted", "private": "direct", "direct": "direct"}
_REPLIED = (ReplyState.queued, ReplyState.posted, ReplyState.dry_run)


@dataclass(frozen=True)
class Listening:
    """Who listens, and how: the tenant, our account on the server, and the settings that shape replies."""

    tenant_id: uuid.UUID
    account_id: str | None
    server_host: str
    analyzer: Analyzer
    classifier: PostClassifier
    places: Gazetteer
    settings: Settings
    max_characters: int = replies.MAX_CHARACTERS


@dataclass(frozen=True)
class SocialSettings:
    """What the listener does for one tenant: its policy's `social` values, the server's settings for
    those it leaves unset (None)."""

    hashtags: list[str]
    watch_mentions: bool
    dry_run: bool
    author_cooldown_minutes: int

    @property
    def sources(self) -> list[str]:
        return sources_of(self.hashtags, mentions=self.watch_mentions)


def social_settings(settings: Settings, policy: SocialPolicy) -> SocialSettings:
    return SocialSettings(
        hashtags=list(settings.mastodon_hashtags if policy.hashtags is None else policy.hashtags),
        watch_mentions=(
            settings.mastodon_watch_mentions if policy.watch_mentions is None else policy.watch_mentions
        ),
        dry_run=settings.mastodon_dry_run if policy.dry_run is None else policy.dry_run,
        author_cooldown_minutes=(
            settings.mastodon_author_cooldown_minutes
            if policy.author_cooldown_minutes is None
            else policy.author_cooldown_minutes
        ),
    )


async def tenant_social_settings(
    session: AsyncSession, settings: Settings, tenant_id: uuid.UUID
) -> SocialSettings:
    """The tenant's social settings as they are now in the database (an admin may change them any time)."""
    return social_settings(settings, tenants.policy_of(await tenants.get_or_raise(session, tenant_id)).social)


@dataclass
class IngestReport:
    seen: int = 0
    new: int = 0
    complaints: int = 0
    replies: int = 0
    tickets: int = 0
    ignored: dict[str, int] = field(default_factory=dict)
    posts: list[SocialPost] = field(default_factory=list)

    def add(self, other: IngestReport) -> None:
        self.seen += other.seen
        self.new += other.new
        self.complaints += other.complaints
        self.replies += other.replies
        self.tickets += other.tickets
        for reason, count in other.ignored.items():
            self.ignored[reason] = self.ignored.get(reason, 0) + count
        self.posts.extend(other.posts)


async def known_status_ids(session: AsyncSession, tenant_id: uuid.UUID, ids: Sequence[str]) -> set[str]:
    if not ids:
        return set()
    stmt = select(SocialPost.status_id).where(
        SocialPost.tenant_id == tenant_id, SocialPost.network == NETWORK, SocialPost.status_id.in_(ids)
    )
    return set((await session.execute(stmt)).scalars())


async def ingest(
    session: AsyncSession, listening: Listening, source: str, statuses: Sequence[Mapping[str, Any]]
) -> IngestReport:
    """Decide on and act on each status not seen before, with the tenant's policy as it is now."""
    report = IngestReport(seen=len(statuses))
    parsed = [Status.of(s) for s in statuses]
    known = await known_status_ids(session, listening.tenant_id, [s.id for s in parsed])
    tenant = await tenants.get_or_raise(session, listening.tenant_id)
    policy = tenants.policy_of(tenant)
    social = social_settings(listening.settings, policy.social)
    cooldown_off = social.author_cooldown_minutes <= 0
    # Authors answered within the cooldown, before this batch and in it.
    answered = (
        set()
        if cooldown_off
        else await _answered_recently(session, listening, parsed, social.author_cooldown_minutes)
    )
    for status in parsed:
        if status.id in known:
            continue
        known.add(status.id)
        decision = decide(
            status,
            own_account_id=listening.account_id,
            analyzer=listening.analyzer,
            classifier=listening.classifier,
            places=listening.places,
            policy=policy.escalation,
            default_language=policy.default_language,
        )
        post = _record(listening, source, status, decision)
        post.id = uuid.uuid4()  # known before the flush: the jobs name it
        session.add(post)
        report.new += 1
        report.posts.append(post)
        if not decision.complaint:
            report.ignored[post.reason or "other"] = report.ignored.get(post.reason or "other", 0) + 1
            continue
        report.complaints += 1
        replying = cooldown_off or post.author_id not in answered
        if replying:
            answered.add(post.author_id)
            report.replies += 1
        else:
            post.reason = AUTHOR_COOLDOWN
        if decision.urgency == "critical":
            # The ticket (and the incident it may make) comes first, then the reply that names them: a
            # job of its own, so that reading the timeline never waits on ticket creation.
            if replying:
                post.reply_state = ReplyState.queued  # its text is written once the ticket exists
            await jobs.enqueue(
                session,
                ESCALATE_KIND,
                {"post_id": str(post.id), "reply": replying},
                tenant_id=listening.tenant_id,
                idempotency_key=f"{ESCALATE_KIND}:{post.id}",
            )
            report.tickets += 1
        elif replying:
            await write_reply(
                session,
                listening.settings,
                post,
                tenant.slug,
                listening.max_characters,
                dry_run=social.dry_run,
            )
    return report


def _record(listening: Listening, source: str, status: Status, decision: Decision) -> SocialPost:
    analysis = decision.analysis
    return SocialPost(
        tenant_id=listening.tenant_id,
        network=NETWORK,
        status_id=status.id,
        url=status.url,
        source=source,
        author_id=status.author.id,
        author_acct=full_acct(status.author.acct, listening.server_host),
        author_name=status.author.display_name[:200] or None,
        posted_at=status.created_at,
        visibility=status.visibility,
        language=decision.language,
        text=decision.text,
        kind=decision.kind,
        kind_confidence=decision.kind_confidence,
        analysis=(
            {
                "intent": analysis.intent,
                "sub_intent": analysis.sub_intent,
                "sentiment": analysis.sentiment,
                "flags": analysis.flags,
                "confidence": analysis.confidence,
                "urgency_reasons": decision.urgency_reasons,
            }
            if analysis is not None
            else {}
        ),
        decision=PostDecision.complaint if decision.complaint else PostDecision.ignored,
        reason=decision.reason,
        urgency=decision.urgency,
        area=decision.area,
        reply_state=ReplyState.none,
    )


def full_acct(acct: str, server_host: str) -> str:
    """user@server for everyone: a local account's acct has no server part."""
    return acct if "@" in acct else f"{acct}@{server_host}"


async def _answered_recently(
    session: AsyncSession, listening: Listening, statuses: Sequence[Status], cooldown_minutes: int
) -> set[str]:
    authors = {s.author.id for s in statuses}
    if not authors:
        return set()
    since = utc_now() - timedelta(minutes=cooldown_minutes)
    stmt = select(SocialPost.author_id).where(
        SocialPost.tenant_id == listening.tenant_id,
        SocialPost.network == NETWORK,
        SocialPost.author_id.in_(authors),
        SocialPost.reply_state.in_(_REPLIED),
        SocialPost.created_at >= since,
    )
    return set((await session.execute(stmt)).scalars())


def contact_link(settings: Settings, post: SocialPost, tenant_slug: str) -> str:
    """The personal link of a reply: the tenant's chat (its page, its stored session) and a signed,
    expiring token naming the post."""
    token = sign(
        settings.secret_key.get_secret_value(),
        CONTACT_PURPOSE,
        {"s": str(post.id)},
        ttl_seconds=settings.contact_link_hours * 3600,
    )
    # The chat opens in the post's language; the token comes last (it is what a reader may cut short).
    language = post.language if post.language in ("fr", "en") else None
    query = urlencode({"tenant": tenant_slug, **({"lang": language} if language else {}), "c": token})
    return f"{settings.public_base_url.rstrip('/')}/chat?{query}"


async def write_reply(
    session: AsyncSession,
    settings: Settings,
    post: SocialPost,
    tenant_slug: str,
    max_characters: int,
    *,
    dry_run: bool,
) -> None:
    """The reply's text, from what the post row holds (its analysis, area, ticket, incident), and then
    its job (or, in dry-run mode, only the record)."""
    analysis = post.analysis or {}
    flags = set(analysis.get("flags") or [])
    urgency_reasons = set(analysis.get("urgency_reasons") or [])
    incident = await session.get(Incident, post.incident_id) if post.incident_id is not None else None
    ticket = await session.get(Ticket, post.ticket_id) if post.ticket_id is not None else None
    post.reply_text = replies.compose(
        replies.ReplyContext(
            acct=post.author_acct,
            language=post.language,
            sub_intent=analysis.get("sub_intent") if analysis.get("intent") not in (None, "other") else None,
            area=post.area,
            legal="legal" in flags,
            safety="safety" in urgency_reasons,
            outage="outage" in urgency_reasons,
            incident_reference=incident.reference if incident is not None else None,
            ticket_reference=ticket.reference if ticket is not None else None,
        ),
        contact_link(settings, post, tenant_slug),
        max_characters=max_characters,
    )
    post.reply_visibility = REPLY_VISIBILITY.get(post.visibility, "direct")
    if dry_run:
        post.reply_state = ReplyState.dry_run
        post.replied_at = utc_now()
        return
    post.reply_state = ReplyState.queued
    await jobs.enqueue(
        session,
        REPLY_KIND,
        {"post_id": str(post.id)},
        tenant_id=post.tenant_id,
        idempotency_key=f"{REPLY_KIND}:{post.id}",
        max_attempts=REPLY_ATTEMPTS,
    )


REPLY_ATTEMPTS = 8


async def customer_for(session: AsyncSession, tenant_id: uuid.UUID, post: SocialPost) -> Customer:
    """The customer behind a Mastodon account: found by the account, or created with it."""
    if post.customer_id is not None:
        customer = await session.get(Customer, post.customer_id)
        if customer is not None and customer.tenant_id == tenant_id:
            return customer
    identity = (
        await session.execute(
            select(CustomerIdentity).where(
                CustomerIdentity.tenant_id == tenant_id,
                CustomerIdentity.channel == Channel.mastodon,
                CustomerIdentity.external_id == post.author_acct.lower(),
            )
        )
    ).scalar_one_or_none()
    if identity is not None:
        customer = await session.get(Customer, identity.customer_id)
        assert customer is not None
    else:
        customer = Customer(
            tenant_id=tenant_id,
            name=(post.author_name or post.author_acct)[:200],
            preferred_language=post.language if post.language in ("fr", "en") else "fr",
            area=post.area,
        )
        session.add(customer)
        await session.flush()
        session.add(
            CustomerIdentity(
                tenant_id=tenant_id,
                customer_id=customer.id,
                channel=Channel.mastodon,
                external_id=post.author_acct.lower(),
            )
        )
    post.customer_id = customer.id
    return customer


async def _team(session: AsyncSession, tenant_id: uuid.UUID, code: str) -> str | None:
    return code if await TeamRepository(session, tenant_id).find_by_code(code) is not None else None


async def escalate(session: AsyncSession, post: SocialPost) -> None:
    """A critical complaint is a ticket, with the post's link and author; an outage one may join or make
    a major incident. A failure leaves the post recorded, marked, and still answered."""
    status_id = post.status_id
    try:
        async with session.begin_nested():
            await _open_ticket(session, post)
    except Exception:
        logger.exception("mastodon: no ticket opened for status %s", status_id)
        await session.refresh(post)  # the savepoint's rollback expired it
        post.reason = ESCALATION_FAILED


async def _open_ticket(session: AsyncSession, post: SocialPost) -> None:
    tenant = await tenants.get_or_raise(session, post.tenant_id)
    analysis = post.analysis or {}
    intent = str(analysis.get("intent") or "other")
    sub_intent = str(analysis.get("sub_intent") or "unrelated")
    urgency_reasons = list(analysis.get("urgency_reasons") or [])
    policy = tenants.policy_of(tenant)
    customer = await customer_for(session, tenant.id, post)
    flags = frozenset(analysis.get("flags") or []) | (
        {"outage"} if "outage" in urgency_reasons else frozenset()
    )
    priority = compute_priority(
        CaseSignals(
            flags=flags,
            sentiment=float(analysis.get("sentiment") or 0.0),
            vip=customer.vip,
            critical_technical=sub_intent in CRITICAL_TECHNICAL,
            intent=intent,
        ),
        policy.escalation,
    )
    legal = "legal" in flags
    team = await _team(session, tenant.id, policy.escalation.legal_team if legal else "technical")
    if team is not None and not legal and intent != "technical":
        team = None
    ticket = await tickets.create_ticket(
        session,
        Principal.system(tenant.id),
        TicketCreate(
            subject=f"Mastodon @{post.author_acct}: {one_line(post.text, 200)}",
            description=_ticket_description(post),
            category=Category(intent) if intent in Category.__members__ else Category.other,
            priority=priority.priority,
            customer_id=customer.id,
            team=team,
            tier=Tier.specialist if legal and team is not None else Tier.n1,
            service=incidents.outage_service(sub_intent, flags),
            area=post.area,
        ),
    )
    ticket.priority_reasons = priority.reasons
    session.add(
        TicketEvent(
            tenant_id=tenant.id,
            ticket_id=ticket.id,
            kind="opened_from_social",
            reason="; ".join(urgency_reasons),
            data={
                "network": NETWORK,
                "status_id": post.status_id,
                "url": post.url,
                "author": post.author_acct,
                "urgency_reasons": urgency_reasons,
            },
        )
    )
    post.ticket_id = ticket.id
    incident = await incidents.group_outage_ticket(session, ticket, tell_customer=False)
    if incident is not None:
        post.incident_id = incident.id
        # The earlier posts whose tickets made the incident with this one belong to it too.
        await session.execute(
            update(SocialPost)
            .where(
                SocialPost.tenant_id == tenant.id,
                SocialPost.incident_id.is_(None),
                SocialPost.ticket_id.in_(select(Ticket.id).where(Ticket.incident_id == incident.id)),
            )
            .values(incident_id=incident.id)
            .execution_options(synchronize_session=False)
        )


def _ticket_description(post: SocialPost) -> str:
    reasons = ", ".join((post.analysis or {}).get("urgency_reasons") or [])
    return "\n".join(
        [
            f"Mastodon post by @{post.author_acct}" + (f" ({post.author_name})" if post.author_name else ""),
            f"Link: {post.url or post.status_id}",
            f"Urgency: {post.urgency} ({reasons})",
            *([f"Area: {post.area}"] if post.area else []),
            "",
            post.text,
        ]
    )


async def cursor(session: AsyncSession, tenant_id: uuid.UUID, source: str) -> SocialCursor:
    row = (
        await session.execute(
            select(SocialCursor).where(
                SocialCursor.tenant_id == tenant_id,
                SocialCursor.network == NETWORK,
                SocialCursor.source == source,
            )
        )
    ).scalar_one_or_none()
    if row is None:
        row = SocialCursor(tenant_id=tenant_id, network=NETWORK, source=source)
        session.add(row)
        await session.flush()
    return row


def later_id(a: str | None, b: str | None) -> str | None:
    """The later of two ids (Mastodon ids are numbers in strings, compared as numbers)."""
    if a is None or b is None:
        return a or b
    try:
        return a if int(a) >= int(b) else b
    except ValueError:
        return max(a, b)


# The contact link ---------------------------------------------------------------------------------

ORIGIN = "mastodon"
OPENED_FROM_POST = N_("You wrote to us on Mastodon: “%(text)s”")


class ContactLinkInvalid(BadRequest):
    code = "contact_link_invalid"


class ContactLinkExpired(AppError):
    status_code = 410
    code = "contact_link_expired"


def read_link(settings: Settings, purpose: str, token: str, parse: Callable[[dict[str, Any]], T]) -> T:
    """What a personal link's token names, parsed: 410 when it expired, 400 when forged or damaged.
    Both kinds of contact link (a post's, a conversation's) read through here."""
    try:
        return parse(unsign(settings.secret_key.get_secret_value(), purpose, token))
    except ExpiredToken as exc:
        raise ContactLinkExpired("This contact link has expired; you can start a new chat.") from exc
    except (InvalidToken, KeyError, ValueError) as exc:
        raise ContactLinkInvalid("This contact link is not valid.") from exc


async def post_of_link(session: AsyncSession, settings: Settings, token: str) -> SocialPost:
    """The post a contact link was made for."""
    post_id = read_link(settings, CONTACT_PURPOSE, token, lambda data: uuid.UUID(str(data["s"])))
    post = await session.get(SocialPost, post_id)
    if post is None:
        raise ContactLinkInvalid("This contact link is not valid any more.")
    return post


def is_contact_link(settings: Settings, token: str) -> bool:
    """Whether the token was made by this module (expired or not), as opposed to another kind of link."""
    try:
        unsign(settings.secret_key.get_secret_value(), CONTACT_PURPOSE, token)
    except ExpiredToken:
        return True
    except InvalidToken:
        return False
    return True


async def open_contact_link(
    session: AsyncSession, settings: Settings, token: str, resumed: Conversation | None
) -> tuple[Conversation, bool]:
    """The web chat of a contact link, and whether it is new.

    The same browser opening the link again continues its conversation. Another browser (the link is in
    a public reply: anyone may click it) gets a conversation of its own, linked to the same account and
    post, and never sees the first one's messages.
    """
    post = await post_of_link(session, settings, token)
    if (
        resumed is not None
        and resumed.tenant_id == post.tenant_id
        and await _opened_from(session, resumed, post)
    ):
        return resumed, False
    customer = await customer_for(session, post.tenant_id, post)
    conversation = Conversation(
        tenant_id=post.tenant_id,
        customer_id=customer.id,
        channel=Channel.webchat,
        language=post.language if post.language in ("fr", "en") else customer.preferred_language,
        subject=f"Mastodon @{post.author_acct}"[:300],
    )
    session.add(conversation)
    await session.flush()
    _ = gettext_for(conversation.language)
    await store_message(
        session,
        conversation,
        author_kind=AuthorKind.system,
        body=_(OPENED_FROM_POST, text=one_line(post.text, 400)),
        meta={
            "origin": ORIGIN,
            "post_id": str(post.id),
            "status_id": post.status_id,
            "url": post.url,
            "author": post.author_acct,
        },
    )
    now = utc_now()
    if post.conversation_id is None:
        post.conversation_id = conversation.id
    post.link_opened_at = post.link_opened_at or now
    if post.ticket_id is not None:
        await tickets.link_conversation(
            session, Principal.system(post.tenant_id), post.ticket_id, conversation.id
        )
    return conversation, True


async def _opened_from(session: AsyncSession, conversation: Conversation, post: SocialPost) -> bool:
    if conversation.id == post.conversation_id:
        return True
    first = (
        await session.execute(
            select(Message)
            .where(Message.tenant_id == conversation.tenant_id, Message.conversation_id == conversation.id)
            .order_by(Message.created_at, Message.id)
            .limit(1)
        )
    ).scalar_one_or_none()
    return first is not None and (first.meta or {}).get("post_id") == str(post.id)
