"""social listening: posts, cursors, listener leases

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22 21:51:20.141801
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import allo.kit.db  # noqa: F401, RUF100 - the types of generated columns live there

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "listener_leases",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=False),
        sa.Column("expires_at", allo.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_listener_leases")),
    )
    op.create_table(
        "social_cursors",
        sa.Column("network", sa.String(length=20), nullable=False),
        sa.Column("source", sa.String(length=120), nullable=False),
        sa.Column("last_id", sa.String(length=64), nullable=True),
        sa.Column("account_id", sa.String(length=64), nullable=True),
        sa.Column("last_polled_at", allo.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("updated_at", allo.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", allo.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_social_cursors_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_social_cursors")),
        sa.UniqueConstraint(
            "tenant_id", "network", "source", name=op.f("uq_social_cursors_tenant_id_network_source")
        ),
    )
    with op.batch_alter_table("social_cursors", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_social_cursors_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "social_posts",
        sa.Column("network", sa.String(length=20), nullable=False),
        sa.Column("status_id", sa.String(length=64), nullable=False),
        sa.Column("url", sa.String(length=1000), nullable=True),
        sa.Column("source", sa.String(length=120), nullable=False),
        sa.Column("author_id", sa.String(length=64), nullable=False),
        sa.Column("author_acct", sa.String(length=300), nullable=False),
        sa.Column("author_name", sa.String(length=200), nullable=True),
        sa.Column("posted_at", allo.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("visibility", sa.String(length=16), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("kind_confidence", sa.Float(), nullable=False),
        sa.Column(
            "analysis",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "decision",
            sa.Enum(
                "complaint",
                "ignored",
                name="post_decision",
                native_enum=False,
                create_constraint=True,
                length=13,
            ),
            nullable=False,
        ),
        sa.Column("reason", sa.String(length=40), nullable=True),
        sa.Column("urgency", sa.String(length=10), nullable=True),
        sa.Column("area", sa.String(length=80), nullable=True),
        sa.Column(
            "reply_state",
            sa.Enum(
                "none",
                "queued",
                "posted",
                "dry_run",
                "failed",
                name="reply_state",
                native_enum=False,
                create_constraint=True,
                length=11,
            ),
            nullable=False,
        ),
        sa.Column("reply_text", sa.Text(), nullable=True),
        sa.Column("reply_visibility", sa.String(length=16), nullable=True),
        sa.Column("reply_status_id", sa.String(length=64), nullable=True),
        sa.Column("reply_url", sa.String(length=1000), nullable=True),
        sa.Column("reply_error", sa.String(length=500), nullable=True),
        sa.Column("replied_at", allo.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ticket_id", sa.Uuid(), nullable=True),
        sa.Column("incident_id", sa.Uuid(), nullable=True),
        sa.Column("customer_id", sa.Uuid(), nullable=True),
        sa.Column("conversation_id", sa.Uuid(), nullable=True),
        sa.Column("link_opened_at", allo.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("updated_at", allo.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", allo.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_social_posts_conversation_id_conversations"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_social_posts_customer_id_customers"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name=op.f("fk_social_posts_incident_id_incidents"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_social_posts_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_social_posts_ticket_id_tickets"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_social_posts")),
        sa.UniqueConstraint(
            "tenant_id", "network", "status_id", name=op.f("uq_social_posts_tenant_id_network_status_id")
        ),
    )
    with op.batch_alter_table("social_posts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_social_posts_tenant_author", ["tenant_id", "network", "author_id", "created_at"], unique=False
        )
        batch_op.create_index(
            "ix_social_posts_tenant_created", ["tenant_id", "created_at", "id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_social_posts_tenant_id"), ["tenant_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("social_posts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_social_posts_tenant_id"))
        batch_op.drop_index("ix_social_posts_tenant_created")
        batch_op.drop_index("ix_social_posts_tenant_author")

    op.drop_table("social_posts")
    with op.batch_alter_table("social_cursors", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_social_cursors_tenant_id"))

    op.drop_table("social_cursors")
    op.drop_table("listener_leases")
