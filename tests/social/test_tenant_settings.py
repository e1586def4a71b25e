"""A tenant's own social settings (policy.social) drive its listener: the sources it reads, dry run and
the author cooldown; what it leaves unset comes from the ALLO_MASTODON_* settings."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from allo.config import Settings
from allo.kit.db import Database
from allo.models.enums import ReplyState
from allo.social import service
from allo.social.listener import Listener
from allo.social.tasks import send_reply
from allo.tenants import service as tenants
from allo.tenants.schemas import SocialPolicy
from tests.factories import make_assistant_tenant
from tests.mastodon_standin import (  # noqa: F401
    MastodonStandin,
    mastodon_standin_fixture,
    mastodon_standin_server_fixture,
)
from tests.social.helpers import mastodon_settings, posts
from tests.social.test_listener import escalate_critical

BILLING = "Ça fait 3 mois que vous me facturez 40 € de hors forfait injustifiés, j'en ai marre #FreeMobile"
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


async def set_social(db: Database, slug: str, **values: Any) -> None:
    """What PATCH /api/v1/tenant does to the policy's social section."""
    async with db.unit_of_work() as session:
        tenant = await tenants.get_by_slug(session, slug)
        assert tenant is not None
        policy = tenants.policy_of(tenant)
        policy.social = SocialPolicy(**values)
        tenant.policy = policy.model_dump(mode="json")


def test_unset_values_fall_back_to_the_server_settings(settings: Settings) -> None:
    server = settings.model_copy(
        update={
            "mastodon_hashtags": ["Free"],
            "mastodon_watch_mentions": True,
            "mastodon_dry_run": False,
            "mastodon_author_cooldown_minutes": 60,
        }
    )
    assert service.social_settings(server, SocialPolicy()) == service.SocialSettings(
        ["Free"], True, False, 60
    )
    own = SocialPolicy(hashtags=["#SAVFree"], watch_mentions=False, dry_run=True, author_cooldown_minutes=0)
    effective = service.social_settings(server, own)
    assert effective == service.SocialSettings(["SAVFree"], False, True, 0)
    assert effective.sources == ["tag:savfree"]


async def test_the_tenants_hashtags_and_mentions_choose_the_sources(
    db: Database, social_settings: Settings, tenant_slug: str, mastodon_standin: MastodonStandin
) -> None:
    await set_social(db, tenant_slug, hashtags=["SAVFree"], watch_mentions=False)
    mastodon_standin.add_status(BILLING, account="lea@piaille.fr", hashtags=["SAVFree"])
    listener = Listener(social_settings, db)
    await listener.prepare()
    assert listener.sources == ["tag:savfree"]
    report = await listener.poll_once()
    assert report.new == 1
    assert mastodon_standin.requests_to("/api/v1/timelines/tag/savfree")
    assert not mastodon_standin.requests_to("/api/v1/timelines/tag/free")
    assert not mastodon_standin.requests_to("/api/v1/notifications")


async def test_a_change_of_sources_is_seen_without_a_restart(
    db: Database, social_settings: Settings, tenant_slug: str
) -> None:
    listener = Listener(social_settings, db)
    await listener.prepare()
    assert listener.sources == ["tag:free", "tag:freemobile", "mentions"]
    await set_social(db, tenant_slug, hashtags=["Free"], watch_mentions=False)
    assert await listener.refresh_sources() is True
    assert listener.sources == ["tag:free"] and list(listener.status.sources) == ["tag:free"]
    assert await listener.refresh_sources() is False
    await set_social(db, tenant_slug)  # back to the server's settings
    await listener.poll_once()
    assert listener.sources == ["tag:free", "tag:freemobile", "mentions"]


async def test_the_tenants_dry_run_overrides_the_server(
    db: Database, social_settings: Settings, tenant_slug: str, mastodon_standin: MastodonStandin
) -> None:
    assert social_settings.mastodon_dry_run is False
    await set_social(db, tenant_slug, dry_run=True)
    mastodon_standin.add_status(BILLING, account="lea@piaille.fr")
    listener = Listener(social_settings, db)
    await listener.prepare()
    assert listener.tenant_id is not None
    report = await listener.poll_once()
    assert report.replies == 1
    await escalate_critical(db, social_settings, listener.tenant_id)
    [post] = await posts(db, listener.tenant_id)
    assert post.reply_state is ReplyState.dry_run and post.reply_text
    assert mastodon_standin.posted == []


async def test_dry_run_switched_on_stops_replies_already_queued(
    db: Database, social_settings: Settings, tenant_slug: str, mastodon_standin: MastodonStandin
) -> None:
    mastodon_standin.add_status(BILLING, account="lea@piaille.fr")
    listener = Listener(social_settings, db)
    await listener.prepare()
    tenant_id = listener.tenant_id
    assert tenant_id is not None
    await listener.poll_once()
    await escalate_critical(db, social_settings, tenant_id)
    [post] = await posts(db, tenant_id)
    assert post.reply_state is ReplyState.queued and post.reply_text
    await set_social(db, tenant_slug, dry_run=True)
    async with db.unit_of_work() as session:
        await send_reply(session, social_settings, post.id, tenant_id, attempt=1)
    [post] = await posts(db, tenant_id)
    assert post.reply_state is ReplyState.dry_run and mastodon_standin.posted == []


async def test_the_tenants_cooldown_overrides_the_server(
    db: Database, social_settings: Settings, tenant_slug: str, mastodon_standin: MastodonStandin
) -> None:
    assert social_settings.mastodon_author_cooldown_minutes > 0
    await set_social(db, tenant_slug, author_cooldown_minutes=0)
    mastodon_standin.add_status(BILLING, account="lea@piaille.fr")
    mastodon_standin.add_status(SLOW, account="lea@piaille.fr")
    report = await Listener(social_settings, db).poll_once()
    assert (report.complaints, report.replies) == (2, 2)
