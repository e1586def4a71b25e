from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import EmailStr, Field, SecretStr, StringConstraints, field_validator

from allo.customers.schemas import LanguageCode, Segment
from allo.kit.schemas import ReadModel, StrictInput
from allo.kit.security import MIN_PASSWORD_LENGTH
from allo.models.enums import AgentStatus, Role, Tier, WorkMode

Code = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_-]{1,40}$")]


class SkillIn(StrictInput):
    skill: Code
    level: int = Field(default=3, ge=1, le=5)


class SkillRead(ReadModel):
    skill: str
    level: int


class TeamCreate(StrictInput):
    code: Code
    name: str = Field(min_length=1, max_length=120)


class TeamRead(ReadModel):
    id: uuid.UUID
    code: str
    name: str


def _check_password(value: SecretStr | None) -> SecretStr | None:
    if value is not None and len(value.get_secret_value()) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    return value


class AgentCreate(StrictInput):
    email: EmailStr
    full_name: str = Field(min_length=1, max_length=200)
    password: SecretStr
    role: Role = Role.agent
    tier: Tier = Tier.n1
    team: Code | None = Field(default=None, description="Team code")
    languages: list[LanguageCode] = Field(default_factory=lambda: ["fr"], min_length=1, max_length=10)
    max_concurrent: int = Field(default=3, ge=1, le=50)
    work_mode: WorkMode = WorkMode.on_site
    skills: list[SkillIn] = Field(default_factory=list, max_length=50)
    segments: list[Segment] = Field(
        default_factory=list, max_length=20, description="Customer segments served; empty: all"
    )

    _password = field_validator("password")(_check_password)


class AgentUpdate(StrictInput):
    full_name: str | None = Field(default=None, min_length=1, max_length=200)
    password: SecretStr | None = None
    role: Role | None = None
    tier: Tier | None = None
    team: Code | None = None
    languages: list[LanguageCode] | None = Field(default=None, min_length=1, max_length=10)
    max_concurrent: int | None = Field(default=None, ge=1, le=50)
    work_mode: WorkMode | None = None
    skills: list[SkillIn] | None = Field(default=None, max_length=50, description="Replaces all skills")
    segments: list[Segment] | None = Field(default=None, max_length=20)
    active: bool | None = None

    _password = field_validator("password")(_check_password)


class StatusUpdate(StrictInput):
    status: AgentStatus
    reason: str | None = Field(default=None, max_length=120)


class LocationUpdate(StrictInput):
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    accuracy_m: float | None = Field(default=None, ge=0, le=100_000)


class AgentRead(ReadModel):
    id: uuid.UUID
    email: str
    full_name: str
    role: Role
    tier: Tier
    team: TeamRead | None
    languages: list[str]
    max_concurrent: int
    status: AgentStatus
    status_since: datetime
    status_reason: str | None
    work_mode: WorkMode
    last_latitude: float | None
    last_longitude: float | None
    last_location_accuracy_m: float | None
    last_location_at: datetime | None
    skills: list[SkillRead]
    segments: list[str]
    active: bool
    last_login_at: datetime | None
    created_at: datetime
