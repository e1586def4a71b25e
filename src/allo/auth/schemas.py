from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field, SecretStr

from allo.kit.schemas import ReadModel, StrictInput
from allo.models.enums import Role


class LoginRequest(StrictInput):
    tenant: str = Field(
        default="", max_length=63, description="Organisation slug; the default tenant when empty"
    )
    email: str = Field(min_length=3, max_length=254)
    password: SecretStr = Field(max_length=1024)


class LoginResponse(ReadModel):
    user_id: uuid.UUID
    tenant_id: uuid.UUID
    role: Role
    full_name: str
    csrf_token: str = Field(description="Send it back as X-CSRF-Token on every unsafe request")
    expires_at: datetime


class WhoAmI(ReadModel):
    tenant_id: uuid.UUID
    role: Role
    method: str
    user_id: uuid.UUID | None
    api_key_id: uuid.UUID | None
    csrf_token: str | None


class ApiKeyCreate(StrictInput):
    name: str = Field(min_length=1, max_length=120)
    role: Role = Role.agent
    expires_at: datetime | None = None


class ApiKeyRead(ReadModel):
    id: uuid.UUID
    name: str
    prefix: str
    role: Role
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyRead):
    key: str = Field(description="Shown once: store it now")
