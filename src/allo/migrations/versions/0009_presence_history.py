"""presence history: every change of an agent's status, the wrap_up status, an index for the KPIs

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23 09:00:00.000000
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import allo.kit.db  # noqa: F401, RUF100 - the types of generated columns live there

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BEFORE = ("available", "busy", "away", "offline")
_AFTER = ("available", "busy", "wrap_up", "away", "offline")


def _status_check(values: Sequence[str]) -> str:
    return "status IN (" + ", ".join(f"'{v}'" for v in values) + ")"


def _status_enum(name: str) -> sa.Enum:
    return sa.Enum(*_AFTER, name=name, native_enum=False, create_constraint=True, length=13)


def _allow_statuses(values: Sequence[str]) -> None:
    """Rewrite the CHECK constraint of users.status (a VARCHAR: allo.models.base.enum_type).

    PostgreSQL alters the table. SQLite cannot alter a constraint, and a batch "recreate" drops the old
    users table, which with foreign keys on (they are, and cannot be turned off inside the migration's
    transaction) deletes every agent's skills and sessions and unassigns their conversations and tickets.
    So on SQLite the table's definition is edited in place, the procedure SQLite documents for changing a
    CHECK constraint (https://sqlite.org/lang_altertable.html#otheralter): every row already satisfies
    the new constraint (upgrade: a wider set; downgrade: rows moved out of the removed status first).
    """
    check = _status_check(values)
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        with op.batch_alter_table("users") as batch_op:
            batch_op.drop_constraint(op.f("ck_users_agent_status"), type_="check")
            batch_op.create_check_constraint(op.f("ck_users_agent_status"), check)
        return
    sql = bind.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'users'"
    ).scalar_one()
    new_sql, found = re.subn(
        r"CONSTRAINT ck_users_agent_status CHECK \(status IN \([^)]*\)\)",
        f"CONSTRAINT ck_users_agent_status CHECK ({check})",
        sql,
    )
    if found != 1:
        raise RuntimeError("users.status: the CHECK constraint ck_users_agent_status was not found")
    version = bind.exec_driver_sql("PRAGMA schema_version").scalar_one()
    bind.exec_driver_sql("PRAGMA writable_schema = ON")
    bind.exec_driver_sql(
        "UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = 'users'", (new_sql,)
    )
    bind.exec_driver_sql(f"PRAGMA schema_version = {int(version) + 1}")
    bind.exec_driver_sql("PRAGMA writable_schema = OFF")


def upgrade() -> None:
    _allow_statuses(_AFTER)

    op.create_table(
        "presence_changes",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("status", _status_enum("agent_status"), nullable=False),
        sa.Column("previous_status", _status_enum("previous_agent_status"), nullable=True),
        sa.Column("reason", sa.String(length=120), nullable=True),
        sa.Column("changed_at", allo.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_presence_changes_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_presence_changes_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_presence_changes")),
    )
    with op.batch_alter_table("presence_changes", schema=None) as batch_op:
        batch_op.create_index(
            "ix_presence_changes_user_changed", ["tenant_id", "user_id", "changed_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_presence_changes_tenant_id"), ["tenant_id"], unique=False)
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index(
            "ix_messages_conversation_author", ["conversation_id", "author_kind", "created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_conversation_author")
    with op.batch_alter_table("presence_changes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_presence_changes_tenant_id"))
        batch_op.drop_index("ix_presence_changes_user_changed")
    op.drop_table("presence_changes")

    # Whoever is wrapping up is away for the older schema.
    op.execute("UPDATE users SET status = 'away' WHERE status = 'wrap_up'")
    _allow_statuses(_BEFORE)
