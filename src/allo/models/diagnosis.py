from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from allo.kit.db import JSONType
from allo.models.base import Base, IdMixin, TenantMixin, TimestampMixin


class DiagnosisTree(IdMixin, TenantMixin, TimestampMixin, Base):
    """A guided diagnosis stored as data: questions, answers, solutions and escalations (see
    diagnosis.schemas.TreeDefinition for the shape of `definition`)."""

    __tablename__ = "diagnosis_trees"
    __table_args__ = (UniqueConstraint("tenant_id", "key"),)

    key: Mapped[str] = mapped_column(String(80), nullable=False)
    sub_intents: Mapped[list[str]] = mapped_column(JSONType, default=list, nullable=False)
    title: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict, nullable=False)
    definition: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict, nullable=False)
    published: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)
