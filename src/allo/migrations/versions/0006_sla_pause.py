"""SLA pause on tickets

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 17:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import allo.kit.db  # noqa: F401, RUF100 - the types of generated columns live there

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch_op:
        batch_op.add_column(sa.Column("sla_paused_at", allo.kit.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("sla_paused_seconds", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("tickets") as batch_op:
        batch_op.drop_column("sla_paused_seconds")
        batch_op.drop_column("sla_paused_at")
