from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from allo.kit.db import JSONType
from allo.models.base import Base, IdMixin, TimestampMixin


class Tenant(IdMixin, TimestampMixin, Base):
    """A client company served by the contact center, with its policy (validated by tenants.schemas)."""

    __tablename__ = "tenants"

    slug: Mapped[str] = mapped_column(String(63), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)
    policy: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict, nullable=False)
    # Allocated with UPDATE … RETURNING so that concurrent ticket creations never share a number.
    next_ticket_number: Mapped[int] = mapped_column(Integer, default=1, nullable=False)
    next_incident_number: Mapped[int] = mapped_column(Integer, default=1, server_default="1", nullable=False)
