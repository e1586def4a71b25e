"""knowledge article keys and sub-intents

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 15:38:09.411098
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import allo.kit.db  # noqa: F401, RUF100 - the types of generated columns live there

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    json_type = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
    # Batch mode: SQLite cannot add a unique constraint in place. Existing rows get an empty list.
    with op.batch_alter_table("knowledge_articles") as batch:
        batch.add_column(sa.Column("key", sa.String(length=80), nullable=True))
        batch.add_column(sa.Column("sub_intents", json_type, nullable=False, server_default=sa.text("'[]'")))
        batch.create_unique_constraint(
            op.f("uq_knowledge_articles_tenant_id_key_language"), ["tenant_id", "key", "language"]
        )
    with op.batch_alter_table("knowledge_articles") as batch:
        batch.alter_column(
            "sub_intents", server_default=None, existing_type=json_type, existing_nullable=False
        )


def downgrade() -> None:
    with op.batch_alter_table("knowledge_articles") as batch:
        batch.drop_constraint(op.f("uq_knowledge_articles_tenant_id_key_language"), type_="unique")
        batch.drop_column("sub_intents")
        batch.drop_column("key")
