"""Posts as the listener records them, without a Mastodon server: for the contact link and the pages."""

from __future__ import annotations

import uuid
from typing import Any

from allo.kit.db import Database
from allo.kit.time import utc_now
from allo.models import SocialPost
from allo.models.enums import PostDecision, ReplyState


async def make_post(db: Database, tenant_id: uuid.UUID, **fields: Any) -> SocialPost:
    status_id = str(fields.pop("status_id", uuid.uuid4().int % 10**18))
    values: dict[str, Any] = {
        "tenant_id": tenant_id,
        "network": "mastodon",
        "status_id": status_id,
        "url": f"https://piaille.fr/@lea/{status_id}",
        "source": "tag:freemobile",
        "author_id": "1001",
        "author_acct": "lea@piaille.fr",
        "author_name": "Léa",
        "posted_at": utc_now(),
        "visibility": "public",
        "language": "fr",
        "text": "Plus de réseau depuis ce matin, ras le bol #FreeMobile",
        "kind": "complaint",
        "kind_confidence": 0.9,
        "analysis": {"intent": "technical", "sub_intent": "no_network", "sentiment": -0.6, "flags": []},
        "decision": PostDecision.complaint,
        "urgency": "high",
        "reply_state": ReplyState.posted,
        "reply_text": "@lea@piaille.fr Bonjour…",
        **fields,
    }
    async with db.unit_of_work() as session:
        post = SocialPost(**values)
        session.add(post)
        await session.flush()
        return post
