from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum

from allo.models.enums import Role


class AuthMethod(StrEnum):
    session = "session"
    api_key = "api_key"
    system = "system"  # Allo itself: the assistant, the worker


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

    @classmethod
    def system(cls, tenant_id: uuid.UUID) -> Principal:
        """Allo acting on its own (the assistant opening a ticket): audited as the system, not a user."""
        return cls(tenant_id=tenant_id, role=Role.admin, method=AuthMethod.system)

    @property
    def actor_id(self) -> uuid.UUID | None:
        return self.user_id or self.api_key_id

    def can(self, role: Role) -> bool:
        return self.role.at_least(role)
