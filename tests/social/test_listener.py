"""The listener against a Mastodon stand-in, through the real Mastodon.py client: what it reads, decides,
posts, and what it never does (reply twice, reply to itself, to a boost, to a non-complaint)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from allo.config import Settings
from allo.kit.db import Database
from allo.kit.jobs import RetryLater
from allo.models import Job, SocialCursor, Ticket
from allo.models.enums import PostDecision, ReplyState
from allo.social import service
from allo.social.listener import Listener
from allo.social.mastodon import RateLimited, Unavailable
from allo.social.tasks import send_reply, settle_critical
from allo.tickets import service as ticket_service
from tests.factories import make_assistant_tenant
from tests.mastodon_standin import (  # noqa: F401
    MastodonStandin,
    mastodon_standin_fixture,
    mastodon_standin_server_fixture,
)
from tests.social.helpers import mastodon_settings, post_of_status, posts

BILLING = "Ça fait 3 mois que vous me facturez 40 € de hors forfait injustifiés, j'en ai marre #FreeMobile"
PRAISE = "Merci #Free, la fibre est enfin installée et elle marche super bien, technicien adorable !"
NEWS = (
    "Free annonce une nouvelle offre 5G à 9,99 € par mois dès lundi #FreeMobile https://news.example/free-5g"
)
SLOW = "Internet mobile hyper lent depuis une semaine, impossible de charger une page, ras le bol #FreeMobile"


@pytest.fixture
async def tenant_slug(db: Database) -> str:
    slug = f"soc-{uuid.uuid4().hex[:8]}"
    async with db.unit_of_work() as session:
        await make_assistant_tenant(session, slug)
    return slug


@pytest.fixture
def social_settings(settings: Settings, mastodon_standin: MastodonStandin, tenant_slug: str) -> Settings:
    return mastodon_settings(settings, mastodon_standin, tenant_slug)


async def tenant_id_of(listener: Listener) -> uuid.UUID:
    await listener.prepare()
    assert listener.tenant_id is not None
    return listener.tenant_id


async def post_replies(db: Database, settings: Settings, tenant_id: uuid.UUID) -> None:
    """What the escalation and reply jobs do, run now."""
    await escalate_critical(db, settings, tenant_id)
    for post in await posts(db, tenant_id):
        if post.reply_state is ReplyState.queued:
            async with db.unit_of_work() as session:
                await send_reply(session, settings, post.id, tenant_id, attempt=1)


async def escalate_critical(db: Database, settings: Settings, tenant_id: uuid.UUID) -> None:
    async with db.unit_of_work(write=False) as session:
        waiting = (
            (
                await session.execute(
                    select(Job.payload).where(Job.kind == service.ESCALATE_KIND, Job.tenant_id == tenant_id)
                )
            )
            .scalars()
            .all()
        )
    for payload in waiting:
        async with db.unit_of_work() as session:
            await settle_critical(
                session, settings, uuid.UUID(payload["post_id"]), tenant_id, reply=payload["reply"]
            )


async def test_complaints_get_a_personal_reply_and_the_rest_is_ignored_with_its_reason(
    db: Database, social_settings: Settings, mastodon_standin: MastodonStandin
) -> None:
    billing = mastodon_standin.add_status(BILLING, account="lea@piaille.fr")
    praise = mastodon_standin.add_status(PRAISE, account="marc@piaille.fr")
    news = mastodon_standin.add_status(NEWS, account="journal@news.example")
    own = mastodon_standin.add_status("Nos équipes sont mobilisées #Free", account="sav_operateur")
    listener = Listener(social_settings, db)
    tenant_id = await tenant_id_of(listener)

    report = await listener.poll_once()
    await post_replies(db, social_settings, tenant_id)

    assert (report.new, report.complaints, report.replies) == (4, 1, 1)
    assert (await post_of_status(db, tenant_id, praise["id"])).reason == "praise"
    assert (await post_of_status(db, tenant_id, news["id"])).reason == "news"
    assert (await post_of_status(db, tenant_id, own["id"])).reason == "own_account"
    complaint = await post_of_status(db, tenant_id, billing["id"])
    assert complaint.decision is PostDecision.complaint
    assert complaint.reply_state is ReplyState.posted
    [reply] = mastodon_standin.posted
    assert reply.in_reply_to_id == billing["id"]
    assert reply.text.startswith("@lea@piaille.fr Bonjour")
    assert "https://allo.example/chat?tenant=" in reply.text and "&c=" in reply.text
    assert reply.visibility == "public" and reply.language == "fr"
    assert reply.idempotency_key == f"allo-reply-{complaint.id}"
    assert complaint.reply_status_id == reply.id and complaint.reply_url


async def test_a_direct_message_is_answered_by_direct_message(
    db: Database, social_settings: Settings, mastodon_standin: MastodonStandin
) -> None:
    mastodon_standin.add_mention(
        "Mon internet mobile ne marche plus du tout depuis 3 jours, c'est inadmissible", visibility="direct"
    )
    listener = Listener(social_settings, db)
    tenant_id = await tenant_id_of(listener)
    await listener.poll_once()
    await post_replies(db, social_settings, tenant_id)
    [reply] = mastodon_standin.posted
    assert reply.visibility == "direct"
    [post] = await posts(db, tenant_id)
    assert post.source == "mentions" and post.reply_visibility == "direct"


async def test_english_complaints_are_answered_in_english(
    db: Database, social_settings: Settings, mastodon_standin: MastodonStandin
) -> None:
    mastodon_standin.add_status(
        "Charged twice this month by @freemobile and nobody answers the phone. Unacceptable. #FreeMobile",
        account="sam@mastodon.example",
        language="en",
    )
    listener = Listener(social_settings, db)
    tenant_id = await tenant_id_of(listener)
    await listener.poll_once()
    await post_replies(db, social_settings, tenant_id)
    [reply] = mastodon_standin.posted
    assert reply.text.startswith("@sam@mastodon.example Hello") and reply.language == "en"


async def test_a_restart_neither_misses_nor_repeats(
    db: Database, social_settings: Settings, mastodon_standin: MastodonStandin
) -> None:
    first = mastodon_standin.add_status(BILLING, account="lea@piaille.fr", hashtags=["Free"])
    listener = Listener(social_settings, db)
    tenant_id = await tenant_id_of(listener)
    assert (await listener.poll_once()).new == 1
    # Statuses arrive while the listener is down; the new process reads from the saved cursors.
    later = [mastodon_standin.add_status(PRAISE, account=f"fan{i}@piaille.fr") for i in range(45)]
    restarted = Listener(social_settings, db)
    report = await restarted.poll_once()
    assert report.new == 45  # more than one page (40): every one, none twice
    assert (await restarted.poll_once()).new == 0
    assert {p.status_id for p in await posts(db, tenant_id)} == {first["id"], *(s["id"] for s in later)}
    timeline_reads = mastodon_standin.requests_to("/api/v1/timelines/tag/free")
    assert timeline_reads[-1].params.get("min_id") == later[-1]["id"]
    async with db.unit_of_work(write=False) as session:
        cursors = dict(
            (await session.execute(select(SocialCursor.source, SocialCursor.last_id).where(
                SocialCursor.tenant_id == tenant_id
            ))).all()
        )  # fmt: skip
    assert cursors["tag:free"] == later[-1]["id"]


async def test_a_status_under_two_watched_hashtags_is_one_post_and_one_reply(
    db: Database, social_settings: Settings, mastodon_standin: MastodonStandin
) -> None:
    mastodon_standin.add_status(BILLING, account="lea@piaille.fr", hashtags=["Free", "FreeMobile"])
    listener = Listener(social_settings, db)
    tenant_id = await tenant_id_of(listener)
    report = await listener.poll_once()
    assert (report.seen, report.new, report.replies) == (2, 1, 1)
    await post_replies(db, social_settings, tenant_id)
    await post_replies(db, social_settings, tenant_id)  # a job run twice posts nothing more
    assert len(mastodon_standin.posted) == 1


async def test_one_reply_per_author_within_the_cooldown(
    db: Database, social_settings: Settings, mastodon_standin: MastodonStandin
) -> None:
    mastodon_standin.add_status(BILLING, account="lea@piaille.fr")
    mastodon_standin.add_status(SLOW, account="lea@piaille.fr")
    listener = Listener(social_settings, db)
    tenant_id = await tenant_id_of(listener)
    report = await listener.poll_once()
    assert (report.complaints, report.replies) == (2, 1)
    second = (await posts(db, tenant_id))[-1]
    assert second.reason == service.AUTHOR_COOLDOWN and second.reply_state is ReplyState.none

    no_cooldown = social_settings.model_copy(update={"mastodon_author_cooldown_minutes": 0})
    mastodon_standin.add_status(BILLING + " encore", account="lea@piaille.fr")
    assert (await Listener(no_cooldown, db).poll_once()).replies == 1


async def test_boosts_and_bot_accounts_are_never_answered(
    db: Database, social_settings: Settings, mastodon_standin: MastodonStandin
) -> None:
    original = mastodon_standin.add_status(BILLING, account="lea@piaille.fr")
    boost = mastodon_standin.add_status("", account="marc@piaille.fr", reblog_of=original)
    bot = mastodon_standin.add_account("panne_bot", "bots.example", bot=True)
    by_bot = mastodon_standin.add_status(SLOW, account=bot)
    listener = Listener(social_settings, db)
    tenant_id = await tenant_id_of(listener)
    async with db.unit_of_work() as session:
        report = await service.ingest(session, await listener.prepare(), "tag:free", [boost, by_bot])
    assert report.replies == 0
    assert (await post_of_status(db, tenant_id, boost["id"])).reason == "boost"
    assert (await post_of_status(db, tenant_id, by_bot["id"])).reason == "bot_account"


async def test_dry_run_records_the_reply_without_posting_it(
    db: Database, social_settings: Settings, mastodon_standin: MastodonStandin
) -> None:
    mastodon_standin.add_status(BILLING, account="lea@piaille.fr")
    dry = social_settings.model_copy(update={"mastodon_dry_run": True})
    listener = Listener(dry, db)
    tenant_id = await tenant_id_of(listener)
    await listener.poll_once()
    await escalate_critical(db, dry, tenant_id)
    [post] = await posts(db, tenant_id)
    assert post.reply_state is ReplyState.dry_run and post.reply_text and "@lea@piaille.fr" in post.reply_text
    assert mastodon_standin.posted == [] and not mastodon_standin.requests_to("/api/v1/statuses", "POST")
    async with db.unit_of_work(write=False) as session:
        jobs = (
            await session.execute(select(func.count()).where(Job.kind == service.REPLY_KIND))
        ).scalar_one()
    assert jobs == 0


async def test_rate_limits_are_respected_and_the_poll_resumes_after_the_reset(
    db: Database, social_settings: Settings, mastodon_standin: MastodonStandin
) -> None:
    mastodon_standin.add_status(BILLING, account="lea@piaille.fr")
    listener = Listener(social_settings, db)
    tenant_id = await tenant_id_of(listener)
    mastodon_standin.rate_limit(remaining=0, reset_in=1.5)
    with pytest.raises(RateLimited) as limited:
        await listener.poll_once()
    assert 0 < limited.value.retry_after <= 4  # the server's reset, in whole seconds
    assert await posts(db, tenant_id) == []
    # The budget being spent, the client does not even ask before the reset.
    asked = len(mastodon_standin.requests)
    with pytest.raises(RateLimited):
        await listener.poll_once()
    assert len(mastodon_standin.requests) == asked
    await asyncio.sleep(limited.value.retry_after + 0.2)
    assert (await listener.poll_once()).new == 1


async def test_a_rate_limited_reply_waits_for_the_reset_without_counting_a_failure(
    db: Database, social_settings: Settings, mastodon_standin: MastodonStandin
) -> None:
    mastodon_standin.add_status(BILLING, account="lea@piaille.fr")
    listener = Listener(social_settings, db)
    tenant_id = await tenant_id_of(listener)
    await listener.poll_once()
    await escalate_critical(db, social_settings, tenant_id)
    [post] = await posts(db, tenant_id)
    mastodon_standin.rate_limit(remaining=0, reset_in=30)
    with pytest.raises(RetryLater) as later:
        async with db.unit_of_work() as session:
            await send_reply(session, social_settings, post.id, tenant_id, attempt=1)
    assert later.value.delay is not None and 20 < later.value.delay <= 32
    assert (await posts(db, tenant_id))[0].reply_state is ReplyState.queued


async def test_server_errors_lose_nothing(
    db: Database, social_settings: Settings, mastodon_standin: MastodonStandin
) -> None:
    listener = Listener(social_settings, db)
    tenant_id = await tenant_id_of(listener)
    await listener.poll_once()  # Mastodon.py reads the instance once first, and swallows its failures
    mastodon_standin.add_status(BILLING, account="lea@piaille.fr")
    mastodon_standin.fail_next(1, 503)
    with pytest.raises(Unavailable):
        await listener.poll_once()
    assert await posts(db, tenant_id) == []
    await listener.poll_once()
    await escalate_critical(db, social_settings, tenant_id)
    [post] = await posts(db, tenant_id)
    # Posting fails too: the job tries again later; on its last attempt the failure is shown.
    mastodon_standin.fail_next(1, 502)
    with pytest.raises(Unavailable):
        async with db.unit_of_work() as session:
            await send_reply(session, social_settings, post.id, tenant_id, attempt=1)
    mastodon_standin.fail_next(1, 500)
    async with db.unit_of_work() as session:
        await send_reply(session, social_settings, post.id, tenant_id, attempt=service.REPLY_ATTEMPTS)
    failed = (await posts(db, tenant_id))[0]
    assert failed.reply_state is ReplyState.failed and "unavailable" in (failed.reply_error or "")
    assert mastodon_standin.posted == []


async def test_a_reply_the_server_refuses_is_final(
    db: Database, social_settings: Settings, mastodon_standin: MastodonStandin
) -> None:
    status = mastodon_standin.add_status(BILLING, account="lea@piaille.fr")
    listener = Listener(social_settings, db)
    tenant_id = await tenant_id_of(listener)
    await listener.poll_once()
    await escalate_critical(db, social_settings, tenant_id)
    mastodon_standin.delete_status(status)  # the author deleted the post before we answered
    [post] = await posts(db, tenant_id)
    async with db.unit_of_work() as session:
        await send_reply(session, social_settings, post.id, tenant_id, attempt=1)
    refused = (await posts(db, tenant_id))[0]
    assert refused.reply_state is ReplyState.failed and "refused" in (refused.reply_error or "")


async def test_a_critical_complaint_opens_a_ticket_with_the_post_and_its_author(
    db: Database, social_settings: Settings, mastodon_standin: MastodonStandin
) -> None:
    status = mastodon_standin.add_status(
        "Troisième facture fausse, j'ai saisi le médiateur des communications électroniques et mon avocat "
        "#FreeMobile",
        account="lea@piaille.fr",
    )
    listener = Listener(social_settings, db)
    tenant_id = await tenant_id_of(listener)
    report = await listener.poll_once()
    assert report.tickets == 1
    await escalate_critical(db, social_settings, tenant_id)
    await escalate_critical(db, social_settings, tenant_id)  # a job run twice opens one ticket
    post = await post_of_status(db, tenant_id, status["id"])
    assert post.urgency == "critical" and post.ticket_id is not None
    async with db.unit_of_work(write=False) as session:
        ticket = await session.get(Ticket, post.ticket_id)
        assert ticket is not None
        assert status["url"] in (ticket.description or "") and "@lea@piaille.fr" in ticket.subject
        assert ticket.customer_id == post.customer_id


async def test_outage_complaints_from_one_area_raise_a_major_incident(
    db: Database, social_settings: Settings, mastodon_standin: MastodonStandin
) -> None:
    for i, text in enumerate(
        [
            "Plus de réseau du tout à Cotonou depuis ce matin, tout le quartier est coupé #Free",
            "Aucun réseau à Cotonou depuis des heures, c'est une panne générale ? #Free",
            "Toujours aucun réseau à Cotonou depuis hier soir, on est fatigués de vos coupures #Free",
        ]
    ):
        mastodon_standin.add_status(text, account=f"client{i}@piaille.fr")
    listener = Listener(social_settings, db)
    tenant_id = await tenant_id_of(listener)
    await listener.poll_once()
    await escalate_critical(db, social_settings, tenant_id)
    found = await posts(db, tenant_id)
    assert [p.area for p in found] == ["Cotonou"] * 3
    assert all(p.ticket_id is not None for p in found), [
        (p.kind, p.urgency, p.reason, p.analysis) for p in found
    ]
    incidents = {p.incident_id for p in found}
    assert len(incidents) == 1 and None not in incidents
    await post_replies(db, social_settings, tenant_id)
    assert any("INC-" in reply.text for reply in mastodon_standin.posted)


async def test_a_forgotten_cursor_starts_from_the_newest_page_only(
    db: Database, social_settings: Settings, mastodon_standin: MastodonStandin
) -> None:
    for i in range(50):
        mastodon_standin.add_status(PRAISE, account=f"fan{i}@piaille.fr", hashtags=["Free"])
    only_free = social_settings.model_copy(
        update={"mastodon_hashtags": ["Free"], "mastodon_watch_mentions": False}
    )
    listener = Listener(only_free, db)
    assert (await listener.poll_once()).new == 40  # not the server's whole history


def test_old_enough_for_the_cooldown_query() -> None:
    assert timedelta(minutes=Settings().mastodon_author_cooldown_minutes) == timedelta(hours=24)


async def test_a_ticket_that_cannot_be_opened_neither_blocks_the_source_nor_loses_the_post(
    db: Database,
    social_settings: Settings,
    mastodon_standin: MastodonStandin,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the ticket service is down")

    monkeypatch.setattr(ticket_service, "create_ticket", broken)
    status = mastodon_standin.add_status(
        "J'ai saisi le médiateur et mon avocat pour ces factures fausses #FreeMobile",
        account="lea@piaille.fr",
    )
    later = mastodon_standin.add_status(BILLING, account="marc@piaille.fr")
    listener = Listener(social_settings, db)
    tenant_id = await tenant_id_of(listener)
    report = await listener.poll_once()
    assert report.new == 2
    await escalate_critical(db, social_settings, tenant_id)
    post = await post_of_status(db, tenant_id, status["id"])
    assert post.reason == service.ESCALATION_FAILED and post.ticket_id is None and post.customer_id is None
    assert post.reply_state is ReplyState.queued and post.reply_text  # still answered
    assert (await post_of_status(db, tenant_id, later["id"])).reply_state is ReplyState.queued
