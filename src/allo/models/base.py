from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import Enum, ForeignKey
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from allo.kit.db import GUID, Base, IdMixin
from allo.kit.time import utc_now

__all__ = ["Base", "CreatedMixin", "IdMixin", "TenantMixin", "TimestampMixin", "enum_type"]


def enum_type(enum_class: type[enum.StrEnum], name: str) -> Enum:
    """A portable enum: VARCHAR plus a CHECK constraint, the same on SQLite and PostgreSQL."""
    return Enum(
        enum_class,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=max(len(m.value) for m in enum_class) + 4,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


class TenantMixin:
    """Every business row belongs to one tenant; repositories filter on it by construction."""

    @declared_attr
    def tenant_id(cls) -> Mapped[uuid.UUID]:
        return mapped_column(GUID, ForeignKey("tenants.id", ondelete="CASCADE"), index=True, nullable=False)


class CreatedMixin:
    created_at: Mapped[datetime] = mapped_column(default=utc_now, nullable=False)


class TimestampMixin(CreatedMixin):
    updated_at: Mapped[datetime] = mapped_column(default=utc_now, onupdate=utc_now, nullable=False)
