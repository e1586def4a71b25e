"""work items for routing; agents' load and idle time

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 17:40:00
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import allo.kit.db  # noqa: F401, RUF100 - the types of generated columns live there

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LIVE = "status IN ('queued', 'assigned')"


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(
        *values, name=name, native_enum=False, create_constraint=True, length=max(map(len, values)) + 4
    )


def upgrade() -> None:
    with op.batch_alter_table("users") as batch_op:
        batch_op.add_column(sa.Column("active_items", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("idle_since", allo.kit.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("last_assigned_at", allo.kit.db.UTCDateTime(timezone=True), nullable=True)
        )
    op.create_table(
        "work_items",
        sa.Column("kind", _enum("work_kind", "conversation", "ticket", "call", "callback"), nullable=False),
        sa.Column(
            "status", _enum("work_item_status", "queued", "assigned", "done", "cancelled"), nullable=False
        ),
        sa.Column("conversation_id", sa.Uuid(), nullable=True),
        sa.Column("ticket_id", sa.Uuid(), nullable=True),
        sa.Column("team_id", sa.Uuid(), nullable=True),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("skills", _json(), nullable=False),
        sa.Column("min_skill_level", sa.Integer(), nullable=False),
        sa.Column("min_tier", _enum("tier", "n1", "n2", "specialist"), nullable=False),
        sa.Column("segment", sa.String(length=40), nullable=True),
        sa.Column("preferred_agent_id", sa.Uuid(), nullable=True),
        sa.Column("priority", _enum("priority", "P1", "P2", "P3", "P4"), nullable=False),
        sa.Column("queue_rank", sa.Integer(), nullable=False),
        sa.Column("vip", sa.Boolean(), nullable=False),
        sa.Column("enqueued_at", allo.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("agent_id", sa.Uuid(), nullable=True),
        sa.Column("assigned_at", allo.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", allo.kit.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("history", _json(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("updated_at", allo.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", allo.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["agent_id"], ["users.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["conversation_id"], ["conversations.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["preferred_agent_id"], ["users.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["team_id"], ["teams.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_work_items_queue", "work_items", ["tenant_id", "status", "queue_rank", "enqueued_at", "id"]
    )
    op.create_index("ix_work_items_agent", "work_items", ["agent_id", "status"])
    op.create_index("ix_work_items_tenant_id", "work_items", ["tenant_id"])
    for column in ("conversation_id", "ticket_id"):
        where = sa.text(f"{column} IS NOT NULL AND {_LIVE}")
        op.create_index(
            f"uq_work_items_live_{column.removesuffix('_id')}",
            "work_items",
            [column],
            unique=True,
            sqlite_where=where,
            postgresql_where=where,
        )


def downgrade() -> None:
    op.drop_table("work_items")
    with op.batch_alter_table("users") as batch_op:
        batch_op.drop_column("last_assigned_at")
        batch_op.drop_column("idle_since")
        batch_op.drop_column("active_items")
