"""Social listening: the posts seen on a social network (Mastodon), what was decided about each, and where
each watched source was read up to."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from allo.kit.db import GUID, JSONType
from allo.models.base import Base, IdMixin, TenantMixin, TimestampMixin, enum_type
from allo.models.enums import PostDecision, ReplyState


class SocialPost(IdMixin, TenantMixin, TimestampMixin, Base):
    """One status seen once, whichever hashtag or mention brought it, with the decision and its outcome."""

    __tablename__ = "social_posts"
    __table_args__ = (
        # A status seen again (another hashtag, a restart, a replay of the stream) is the same row.
        UniqueConstraint("tenant_id", "network", "status_id"),
        Index("ix_social_posts_tenant_created", "tenant_id", "created_at", "id"),
        Index("ix_social_posts_tenant_author", "tenant_id", "network", "author_id", "created_at"),
    )

    network: Mapped[str] = mapped_column(String(20), nullable=False, default="mastodon")
    status_id: Mapped[str] = mapped_column(String(64), nullable=False)
    url: Mapped[str | None] = mapped_column(String(1000))
    # What brought it: "tag:freemobile", "mentions".
    source: Mapped[str] = mapped_column(String(120), nullable=False)
    author_id: Mapped[str] = mapped_column(String(64), nullable=False)
    author_acct: Mapped[str] = mapped_column(String(300), nullable=False)
    author_name: Mapped[str | None] = mapped_column(String(200))
    posted_at: Mapped[datetime | None] = mapped_column()
    visibility: Mapped[str] = mapped_column(String(16), nullable=False)
    language: Mapped[str] = mapped_column(String(8), nullable=False)
    text: Mapped[str] = mapped_column(Text, nullable=False)
    # complaint, praise, news, question, other; with the classifier's probability.
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    kind_confidence: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    # The assistant's analysis: intent, sub_intent, sentiment, flags.
    analysis: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict, nullable=False)
    decision: Mapped[PostDecision] = mapped_column(enum_type(PostDecision, "post_decision"), nullable=False)
    # Why it was ignored, or why a complaint got no reply (author_cooldown…).
    reason: Mapped[str | None] = mapped_column(String(40))
    # critical, high, normal, low: complaints only.
    urgency: Mapped[str | None] = mapped_column(String(10))
    area: Mapped[str | None] = mapped_column(String(80))
    reply_state: Mapped[ReplyState] = mapped_column(
        enum_type(ReplyState, "reply_state"), default=ReplyState.none, nullable=False
    )
    reply_text: Mapped[str | None] = mapped_column(Text)
    reply_visibility: Mapped[str | None] = mapped_column(String(16))
    reply_status_id: Mapped[str | None] = mapped_column(String(64))
    reply_url: Mapped[str | None] = mapped_column(String(1000))
    reply_error: Mapped[str | None] = mapped_column(String(500))
    replied_at: Mapped[datetime | None] = mapped_column()
    ticket_id: Mapped[uuid.UUID | None] = mapped_column(GUID, ForeignKey("tickets.id", ondelete="SET NULL"))
    incident_id: Mapped[uuid.UUID | None] = mapped_column(
        GUID, ForeignKey("incidents.id", ondelete="SET NULL")
    )
    customer_id: Mapped[uuid.UUID | None] = mapped_column(
        GUID, ForeignKey("customers.id", ondelete="SET NULL")
    )
    # The web chat opened from the contact link the first time (a second browser gets its own).
    conversation_id: Mapped[uuid.UUID | None] = mapped_column(
        GUID, ForeignKey("conversations.id", ondelete="SET NULL")
    )
    link_opened_at: Mapped[datetime | None] = mapped_column()


class SocialCursor(IdMixin, TenantMixin, TimestampMixin, Base):
    """Where one watched source (a hashtag, the mentions) was read up to: a restart goes on from here."""

    __tablename__ = "social_cursors"
    __table_args__ = (UniqueConstraint("tenant_id", "network", "source"),)

    network: Mapped[str] = mapped_column(String(20), nullable=False, default="mastodon")
    source: Mapped[str] = mapped_column(String(120), nullable=False)
    last_id: Mapped[str | None] = mapped_column(String(64))
    # The operator's own account on this network, learnt from verify_credentials.
    account_id: Mapped[str | None] = mapped_column(String(64))
    last_polled_at: Mapped[datetime | None] = mapped_column()


class ListenerLease(Base):
    """One running listener per account across processes: the holder renews it, others wait for it."""

    __tablename__ = "listener_leases"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(nullable=False)
