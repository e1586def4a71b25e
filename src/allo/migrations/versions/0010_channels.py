"""channels: accounts, raw events, opt-outs, delivery status, proactive messages

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-23 02:23:29.192228
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import allo.kit.db  # noqa: F401, RUF100 - the types of generated columns live there

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "channel_accounts",
        sa.Column(
            "channel",
            sa.Enum(
                "webchat",
                "sms",
                "whatsapp",
                "messenger",
                "email",
                "mastodon",
                "voice",
                name="channel",
                native_enum=False,
                create_constraint=True,
                length=13,
            ),
            nullable=False,
        ),
        sa.Column("provider", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("address", sa.String(length=255), nullable=False),
        sa.Column(
            "settings",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("secrets_encrypted", sa.Text(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("updated_at", allo.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", allo.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_channel_accounts_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_channel_accounts")),
        sa.UniqueConstraint(
            "tenant_id", "channel", "name", name=op.f("uq_channel_accounts_tenant_id_channel_name")
        ),
    )
    with op.batch_alter_table("channel_accounts", schema=None) as batch_op:
        batch_op.create_index("ix_channel_accounts_channel_address", ["channel", "address"], unique=False)
        batch_op.create_index(batch_op.f("ix_channel_accounts_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "opt_outs",
        sa.Column(
            "channel",
            sa.Enum(
                "webchat",
                "sms",
                "whatsapp",
                "messenger",
                "email",
                "mastodon",
                "voice",
                name="channel",
                native_enum=False,
                create_constraint=True,
                length=13,
            ),
            nullable=False,
        ),
        sa.Column("address", sa.String(length=255), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", allo.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_opt_outs_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_opt_outs")),
        sa.UniqueConstraint(
            "tenant_id", "channel", "address", name=op.f("uq_opt_outs_tenant_id_channel_address")
        ),
    )
    with op.batch_alter_table("opt_outs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_opt_outs_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "broadcasts",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "channel",
            sa.Enum(
                "webchat",
                "sms",
                "whatsapp",
                "messenger",
                "email",
                "mastodon",
                "voice",
                name="channel",
                native_enum=False,
                create_constraint=True,
                length=13,
            ),
            nullable=True,
        ),
        sa.Column(
            "texts",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "template",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "audience",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("respect_quiet_hours", sa.Boolean(), nullable=False),
        sa.Column("purpose", sa.String(length=20), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "running",
                "paused",
                "done",
                "cancelled",
                name="broadcast_state",
                native_enum=False,
                create_constraint=True,
                length=13,
            ),
            nullable=False,
        ),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("finished_at", allo.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("updated_at", allo.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", allo.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_broadcasts_created_by_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_broadcasts_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_broadcasts")),
    )
    with op.batch_alter_table("broadcasts", schema=None) as batch_op:
        batch_op.create_index("ix_broadcasts_tenant_created", ["tenant_id", "created_at", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_broadcasts_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "broadcast_recipients",
        sa.Column("broadcast_id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "pending",
                "queued",
                "skipped",
                name="recipient_state",
                native_enum=False,
                create_constraint=True,
                length=11,
            ),
            nullable=False,
        ),
        sa.Column(
            "channel",
            sa.Enum(
                "webchat",
                "sms",
                "whatsapp",
                "messenger",
                "email",
                "mastodon",
                "voice",
                name="channel",
                native_enum=False,
                create_constraint=True,
                length=13,
            ),
            nullable=True,
        ),
        sa.Column("address", sa.String(length=255), nullable=True),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.Column("message_id", sa.Uuid(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("updated_at", allo.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", allo.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["broadcast_id"],
            ["broadcasts.id"],
            name=op.f("fk_broadcast_recipients_broadcast_id_broadcasts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_broadcast_recipients_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_broadcast_recipients_message_id_messages"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_broadcast_recipients_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_broadcast_recipients")),
        sa.UniqueConstraint(
            "broadcast_id", "customer_id", name=op.f("uq_broadcast_recipients_broadcast_id_customer_id")
        ),
    )
    with op.batch_alter_table("broadcast_recipients", schema=None) as batch_op:
        batch_op.create_index(
            "ix_broadcast_recipients_broadcast_state", ["broadcast_id", "state"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_broadcast_recipients_customer_id"), ["customer_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_broadcast_recipients_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "channel_events",
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column(
            "channel",
            sa.Enum(
                "webchat",
                "sms",
                "whatsapp",
                "messenger",
                "email",
                "mastodon",
                "voice",
                name="channel",
                native_enum=False,
                create_constraint=True,
                length=13,
            ),
            nullable=False,
        ),
        sa.Column(
            "kind",
            sa.Enum(
                "message",
                "status",
                "unknown",
                name="channel_event_kind",
                native_enum=False,
                create_constraint=True,
                length=11,
            ),
            nullable=False,
        ),
        sa.Column("external_id", sa.String(length=255), nullable=False),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "state",
            sa.Enum(
                "received",
                "processed",
                "ignored",
                "failed",
                name="channel_event_state",
                native_enum=False,
                create_constraint=True,
                length=13,
            ),
            nullable=False,
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("processed_at", allo.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("message_id", sa.Uuid(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", allo.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["channel_accounts.id"],
            name=op.f("fk_channel_events_account_id_channel_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_channel_events_message_id_messages"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_channel_events_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_channel_events")),
        sa.UniqueConstraint(
            "tenant_id",
            "channel",
            "external_id",
            name=op.f("uq_channel_events_tenant_id_channel_external_id"),
        ),
    )
    with op.batch_alter_table("channel_events", schema=None) as batch_op:
        batch_op.create_index("ix_channel_events_account_created", ["account_id", "created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_channel_events_tenant_id"), ["tenant_id"], unique=False)

    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("channel_account_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("contact_address", sa.String(length=255), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_conversations_channel_account_id_channel_accounts"),
            "channel_accounts",
            ["channel_account_id"],
            ["id"],
            ondelete="SET NULL",
        )

    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "preferred_channel",
                sa.Enum(
                    "webchat",
                    "sms",
                    "whatsapp",
                    "messenger",
                    "email",
                    "mastodon",
                    "voice",
                    name="channel",
                    native_enum=False,
                    create_constraint=True,
                    length=13,
                ),
                nullable=True,
            )
        )

    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "delivery_status",
                sa.Enum(
                    "queued",
                    "sent",
                    "delivered",
                    "read",
                    "failed",
                    name="message_delivery",
                    native_enum=False,
                    create_constraint=True,
                    length=13,
                ),
                nullable=True,
            )
        )
        batch_op.add_column(sa.Column("delivery_error", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("delivery_updated_at", allo.kit.db.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:

    with op.batch_alter_table("messages", schema=None) as batch_op:
        # The enum's CHECK goes first: SQLite's table rebuild would otherwise keep it, naming a lost column.
        batch_op.drop_constraint(op.f("ck_messages_message_delivery"), type_="check")
        batch_op.drop_column("delivery_updated_at")
        batch_op.drop_column("delivery_error")
        batch_op.drop_column("delivery_status")

    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_customers_channel"), type_="check")
        batch_op.drop_column("preferred_channel")

    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_conversations_channel_account_id_channel_accounts"), type_="foreignkey"
        )
        batch_op.drop_column("contact_address")
        batch_op.drop_column("channel_account_id")

    with op.batch_alter_table("channel_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_channel_events_tenant_id"))
        batch_op.drop_index("ix_channel_events_account_created")

    op.drop_table("channel_events")
    with op.batch_alter_table("broadcast_recipients", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_broadcast_recipients_tenant_id"))
        batch_op.drop_index(batch_op.f("ix_broadcast_recipients_customer_id"))
        batch_op.drop_index("ix_broadcast_recipients_broadcast_state")

    op.drop_table("broadcast_recipients")
    with op.batch_alter_table("broadcasts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_broadcasts_tenant_id"))
        batch_op.drop_index("ix_broadcasts_tenant_created")

    op.drop_table("broadcasts")
    with op.batch_alter_table("opt_outs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_opt_outs_tenant_id"))

    op.drop_table("opt_outs")
    with op.batch_alter_table("channel_accounts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_channel_accounts_tenant_id"))
        batch_op.drop_index("ix_channel_accounts_channel_address")

    op.drop_table("channel_accounts")
