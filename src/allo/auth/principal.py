from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum

from allo.models.enums import Role


class AuthMethod(StrEnum):
    session = "session"
    api_key = "api_key"


@dataclass(frozen=True)
class Principal:
    """Who is calling: a console user (cookie session) or an integration (API key), in one tenant."""

    tenant_id: uuid.UUID
    role: Role
    method: AuthMethod
    user_id: uuid.UUID | None = None
    api_key_id: uuid.UUID | None = None
    session_id: uuid.UUID | None = None
    csrf_token: str | None = None

    @property
    def actor_id(self) -> uuid.UUID | None:
        return self.user_id or self.api_key_id

    def can(self, role: Role) -> bool:
        return self.role.at_least(role)
