"""The audit log: every change, with who made it, written in the change's own transaction."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from allo.auth.principal import AuthMethod, Principal
from allo.models import AuditEvent
from allo.models.enums import ActorKind

# Never written to the audit log, whatever a caller passes.
_SECRET_FIELDS = frozenset({"password", "password_hash", "token", "secret", "api_key", "puk", "key_hash"})


def _scrub(data: dict[str, Any]) -> dict[str, Any]:
    return {k: ("***" if k in _SECRET_FIELDS else v) for k, v in data.items()}


async def record(
    session: AsyncSession,
    tenant_id: uuid.UUID | None,
    actor_kind: ActorKind,
    actor_id: uuid.UUID | None,
    action: str,
    entity_type: str | None = None,
    entity_id: uuid.UUID | str | None = None,
    data: dict[str, Any] | None = None,
    *,
    ip: str | None = None,
) -> None:
    session.add(
        AuditEvent(
            tenant_id=tenant_id,
            actor_kind=actor_kind,
            actor_id=actor_id,
            action=action,
            entity_type=entity_type,
            entity_id=str(entity_id) if entity_id is not None else None,
            data=_scrub(data or {}),
            ip=ip,
        )
    )


async def record_by(
    session: AsyncSession,
    principal: Principal,
    action: str,
    entity_type: str,
    entity_id: uuid.UUID | str | None,
    data: dict[str, Any] | None = None,
) -> None:
    kind = {
        AuthMethod.session: ActorKind.user,
        AuthMethod.api_key: ActorKind.api_key,
        AuthMethod.system: ActorKind.system,
    }[principal.method]
    await record(session, principal.tenant_id, kind, principal.actor_id, action, entity_type, entity_id, data)
