"""dialogue state, escalation and resolution on conversations; priority reasons on tickets

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 17:00:00
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import allo.kit.db  # noqa: F401, RUF100 - the types of generated columns live there

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    # Existing rows get empty JSON through a server default; the application always writes the value.
    with op.batch_alter_table("conversations") as batch_op:
        batch_op.add_column(sa.Column("resolved_by", sa.String(length=10), nullable=True))
        batch_op.add_column(sa.Column("escalated_at", allo.kit.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("escalation_reasons", _json(), server_default="[]", nullable=False))
        batch_op.add_column(sa.Column("bot_state", _json(), server_default="{}", nullable=False))
    with op.batch_alter_table("tickets") as batch_op:
        batch_op.add_column(sa.Column("priority_reasons", _json(), server_default="[]", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("tickets") as batch_op:
        batch_op.drop_column("priority_reasons")
    with op.batch_alter_table("conversations") as batch_op:
        batch_op.drop_column("bot_state")
        batch_op.drop_column("escalation_reasons")
        batch_op.drop_column("escalated_at")
        batch_op.drop_column("resolved_by")
