"""What the social listening tests share: settings pointing at the Mastodon stand-in, a tenant set up as
the assistant needs it, and readers of what the listener recorded."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from sqlalchemy import select

from allo.config import Settings
from allo.kit.db import Database
from allo.models import SocialPost
from tests.mastodon_standin import MastodonStandin

MODEL_DIR = Path(__file__).resolve().parents[2] / "var" / "nlu"


def mastodon_settings(settings: Settings, standin: MastodonStandin, tenant: str, **changes: Any) -> Settings:
    values: dict[str, Any] = {
        "mastodon_api_base_url": standin.url,
        "mastodon_access_token": SecretStr(standin.token),
        "mastodon_hashtags": ["Free", "FreeMobile"],
        "mastodon_tenant": tenant,
        "mastodon_poll_seconds": 5,
        "mastodon_timeout_seconds": 5,
        "nlu_model_path": MODEL_DIR / "model.npz",
        "social_model_path": MODEL_DIR / "social.npz",
        "public_base_url": "https://allo.example",
        **changes,
    }
    return settings.model_copy(update=values)


async def posts(db: Database, tenant_id: uuid.UUID) -> list[SocialPost]:
    async with db.unit_of_work(write=False) as session:
        stmt = select(SocialPost).where(SocialPost.tenant_id == tenant_id).order_by(SocialPost.created_at)
        return list((await session.execute(stmt)).scalars())


async def post_of_status(db: Database, tenant_id: uuid.UUID, status_id: str) -> SocialPost:
    async with db.unit_of_work(write=False) as session:
        stmt = select(SocialPost).where(SocialPost.tenant_id == tenant_id, SocialPost.status_id == status_id)
        return (await session.execute(stmt)).scalar_one()
