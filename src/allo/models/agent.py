from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from allo.kit.db import GUID, JSONType
from allo.kit.time import utc_now
from allo.models.base import Base, CreatedMixin, IdMixin, TenantMixin, TimestampMixin, enum_type
from allo.models.enums import AgentStatus, Role, Tier, WorkMode


class Team(IdMixin, TenantMixin, CreatedMixin, Base):
    """A group of agents sharing a queue: billing, technical, legal…"""

    __tablename__ = "teams"
    __table_args__ = (UniqueConstraint("tenant_id", "code"),)

    code: Mapped[str] = mapped_column(String(40), nullable=False)
    name: Mapped[str] = mapped_column(String(120), nullable=False)


class User(IdMixin, TenantMixin, TimestampMixin, Base):
    """A console user: an agent, a supervisor or an admin."""

    __tablename__ = "users"
    __table_args__ = (
        UniqueConstraint("tenant_id", "email"),
        CheckConstraint("max_concurrent >= 1 AND max_concurrent <= 50", name="max_concurrent_range"),
    )

    email: Mapped[str] = mapped_column(String(254), nullable=False)  # stored lower-cased
    full_name: Mapped[str] = mapped_column(String(200), nullable=False)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(enum_type(Role, "role"), default=Role.agent, nullable=False)
    tier: Mapped[Tier] = mapped_column(enum_type(Tier, "tier"), default=Tier.n1, nullable=False)
    team_id: Mapped[uuid.UUID | None] = mapped_column(
        GUID, ForeignKey("teams.id", ondelete="SET NULL"), index=True
    )
    languages: Mapped[list[str]] = mapped_column(JSONType, default=list, nullable=False)
    max_concurrent: Mapped[int] = mapped_column(Integer, default=3, nullable=False)
    status: Mapped[AgentStatus] = mapped_column(
        enum_type(AgentStatus, "agent_status"), default=AgentStatus.offline, nullable=False
    )
    status_since: Mapped[datetime] = mapped_column(default=utc_now, nullable=False)
    status_reason: Mapped[str | None] = mapped_column(String(120))
    # Routing: items held now (kept by the engine under a conditional UPDATE), and since when the agent
    # has had nothing to do, and when they last got something (the strategies' orders).
    active_items: Mapped[int] = mapped_column(Integer, default=0, server_default="0", nullable=False)
    idle_since: Mapped[datetime | None] = mapped_column()
    last_assigned_at: Mapped[datetime | None] = mapped_column()
    # After finishing an item the agent has until then to wrap up (notes, disposition) before new work.
    wrap_up_until: Mapped[datetime | None] = mapped_column()
    # The customer segments the agent serves (vip, business…); empty: every segment.
    segments: Mapped[list[str]] = mapped_column(JSONType, default=list, server_default="[]", nullable=False)
    work_mode: Mapped[WorkMode] = mapped_column(
        enum_type(WorkMode, "work_mode"), default=WorkMode.on_site, nullable=False
    )
    last_latitude: Mapped[float | None] = mapped_column(Float)
    last_longitude: Mapped[float | None] = mapped_column(Float)
    last_location_accuracy_m: Mapped[float | None] = mapped_column(Float)
    last_location_at: Mapped[datetime | None] = mapped_column()
    active: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)
    last_login_at: Mapped[datetime | None] = mapped_column()

    team: Mapped[Team | None] = relationship(lazy="raise")
    skills: Mapped[list[AgentSkill]] = relationship(
        back_populates="user", lazy="raise", cascade="all, delete-orphan", order_by="AgentSkill.skill"
    )


class AgentSkill(IdMixin, TenantMixin, Base):
    __tablename__ = "agent_skills"
    __table_args__ = (
        UniqueConstraint("user_id", "skill"),
        CheckConstraint("level >= 1 AND level <= 5", name="level_range"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(
        GUID, ForeignKey("users.id", ondelete="CASCADE"), index=True, nullable=False
    )
    skill: Mapped[str] = mapped_column(String(60), nullable=False)
    level: Mapped[int] = mapped_column(Integer, default=3, nullable=False)

    user: Mapped[User] = relationship(back_populates="skills", lazy="raise")


class PresenceChange(IdMixin, TenantMixin, Base):
    """One change of an agent's status, appended by allo.agents.presence.change_status: the history the
    time spent in each status is computed from (docs/kpis.md)."""

    __tablename__ = "presence_changes"
    __table_args__ = (Index("ix_presence_changes_user_changed", "tenant_id", "user_id", "changed_at"),)

    user_id: Mapped[uuid.UUID] = mapped_column(
        GUID, ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    )
    status: Mapped[AgentStatus] = mapped_column(enum_type(AgentStatus, "agent_status"), nullable=False)
    # The status it replaced: what the agent was in before the first change of a period.
    previous_status: Mapped[AgentStatus | None] = mapped_column(
        enum_type(AgentStatus, "previous_agent_status")
    )
    reason: Mapped[str | None] = mapped_column(String(120))
    changed_at: Mapped[datetime] = mapped_column(default=utc_now, nullable=False)
