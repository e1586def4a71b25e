"""Console logins (argon2 passwords, server-side sessions) and per-tenant API keys."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncSession

from allo.audit.service import record, record_by
from allo.auth import repository
from allo.auth.principal import AuthMethod, Principal
from allo.kit.cache import TtlCache
from allo.kit.db import Database
from allo.kit.errors import Forbidden, Unauthorized
from allo.kit.security import (
    constant_time_equals,
    hash_password,
    new_token,
    password_needs_rehash,
    sha256_hex,
    verify_password,
)
from allo.kit.time import utc_now
from allo.models import ApiKey, AuthSession, User
from allo.models.enums import ActorKind, Role

logger = logging.getLogger(__name__)

API_KEY_PREFIX = "allo"
# last_used_at is a courtesy for admins, not an audit trail: write it at most this often per key.
LAST_USED_RESOLUTION = timedelta(minutes=5)


@dataclass(frozen=True)
class LoginResult:
    user: User
    token: str
    csrf_token: str
    expires_at: datetime


async def login(
    session: AsyncSession,
    *,
    tenant_slug: str,
    email: str,
    password: str,
    ttl: timedelta,
    user_agent: str | None = None,
    ip: str | None = None,
) -> LoginResult:
    found = await repository.find_login_candidate(session, tenant_slug, email)
    user = found[1] if found else None
    # Always verify a hash, so the response time does not tell which e-mails exist.
    ok = verify_password(user.password_hash if user else None, password)
    if found is None or user is None or not ok or not user.active or not found[0].active:
        raise Unauthorized("Wrong organisation, e-mail or password.", code="invalid_credentials")
    if user.password_hash and password_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    now = utc_now()
    token, csrf = new_token(), new_token(24)
    auth_session = AuthSession(
        tenant_id=user.tenant_id,
        user_id=user.id,
        token_hash=sha256_hex(token),
        csrf_token=csrf,
        expires_at=now + ttl,
        last_seen_at=now,
        user_agent=(user_agent or "")[:300] or None,
    )
    session.add(auth_session)
    user.last_login_at = now
    await session.flush()
    await record(session, user.tenant_id, ActorKind.user, user.id, "auth.login", "user", user.id, ip=ip)
    return LoginResult(user=user, token=token, csrf_token=csrf, expires_at=auth_session.expires_at)


async def logout(session: AsyncSession, principal: Principal) -> None:
    if principal.session_id is not None:
        await session.execute(delete(AuthSession).where(AuthSession.id == principal.session_id))
        await record(
            session,
            principal.tenant_id,
            ActorKind.user,
            principal.user_id,
            "auth.logout",
            "user",
            principal.user_id,
        )


async def principal_from_session_token(session: AsyncSession, token: str) -> Principal:
    found = await repository.find_session_by_token_hash(session, sha256_hex(token))
    if found is None:
        raise Unauthorized("Your session is not valid; please log in again.", code="invalid_session")
    auth_session, user = found
    if auth_session.expires_at <= utc_now():
        raise Unauthorized("Your session has expired; please log in again.", code="session_expired")
    if not user.active:
        raise Unauthorized("This account is disabled.", code="account_disabled")
    return Principal(
        tenant_id=user.tenant_id,
        role=user.role,
        method=AuthMethod.session,
        user_id=user.id,
        session_id=auth_session.id,
        csrf_token=auth_session.csrf_token,
    )


def check_csrf(principal: Principal, presented: str | None) -> None:
    if principal.method is not AuthMethod.session:
        return
    if not presented or not principal.csrf_token or not constant_time_equals(presented, principal.csrf_token):
        raise Forbidden("Missing or wrong CSRF token (X-CSRF-Token header).", code="csrf_failed")


def split_api_key(raw: str) -> tuple[str, str] | None:
    parts = raw.split("_")
    if len(parts) != 3 or parts[0] != API_KEY_PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


@dataclass(frozen=True)
class _CachedKey:
    principal: Principal
    key_hash: str
    expires_at: datetime | None
    last_used_at: datetime | None


# Resolved keys, kept briefly so that an integration's every request does not cost a lookup. Revocation
# in this process takes effect at once (`forget`); other processes see it within ALLO_API_KEY_CACHE_SECONDS
# (0 disables the cache).
ApiKeyCache = TtlCache[str, _CachedKey]


async def principal_from_api_key(
    session: AsyncSession, raw_key: str, cache: ApiKeyCache, usage: ApiKeyUsage
) -> tuple[Principal, bool]:
    """The key's principal, and whether a use was recorded (its last_used_at was stale): to be written."""
    parts = split_api_key(raw_key)
    if parts is None:
        raise Unauthorized("Malformed API key.", code="invalid_api_key")
    prefix, secret = parts
    cached = cache.get(prefix)
    if cached is None:
        key = await repository.find_api_key_by_prefix(session, prefix)
        if key is None or key.revoked_at is not None:
            raise Unauthorized("Unknown or revoked API key.", code="invalid_api_key")
        principal = Principal(
            tenant_id=key.tenant_id, role=key.role, method=AuthMethod.api_key, api_key_id=key.id
        )
        cached = _CachedKey(principal, key.key_hash, key.expires_at, key.last_used_at)
        cache.put(prefix, cached)
    if not constant_time_equals(sha256_hex(secret), cached.key_hash):
        raise Unauthorized("Unknown or revoked API key.", code="invalid_api_key")
    now = utc_now()
    if cached.expires_at is not None and cached.expires_at <= now:
        raise Unauthorized("This API key has expired.", code="api_key_expired")
    if cached.last_used_at is None or now - cached.last_used_at > LAST_USED_RESOLUTION:
        cache.replace(prefix, _CachedKey(cached.principal, cached.key_hash, cached.expires_at, now))
        assert cached.principal.api_key_id is not None
        usage.record(cached.principal.api_key_id, now)
        return cached.principal, True
    return cached.principal, False


class ApiKeyUsage:
    """When each API key was last used, written once the request that used it has answered and given back
    its connection (a response's background task).

    Written inside the request, a read-only request needed a second pooled connection while holding its
    own: when a burst of requests all found their key stale at once (a new key, the key cache expiring),
    every holder waited on the pool and it ran dry. A failed write keeps its times for the next one.
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self._pending: dict[uuid.UUID, datetime] = {}
        self._writing = False

    def record(self, api_key_id: uuid.UUID, used_at: datetime) -> None:
        self._pending[api_key_id] = max(used_at, self._pending.get(api_key_id, used_at))

    async def write(self) -> None:
        """Write the times recorded so far; a write already under way takes the new ones too."""
        if self._writing:
            return
        self._writing = True
        try:
            while self._pending:
                batch, self._pending = self._pending, {}
                try:
                    async with self.db.unit_of_work(write=True) as session:
                        for api_key_id, used_at in batch.items():
                            await touch_api_key(session, api_key_id, used_at)
                except Exception:
                    logger.warning(
                        "writing %d API keys' last use failed; kept for the next write", len(batch)
                    )
                    for api_key_id, used_at in batch.items():
                        self.record(api_key_id, used_at)
                    return
        finally:
            self._writing = False


async def touch_api_key(session: AsyncSession, api_key_id: uuid.UUID, used_at: datetime) -> None:
    await session.execute(
        update(ApiKey)
        .where(ApiKey.id == api_key_id)
        .values(last_used_at=used_at)
        .execution_options(synchronize_session=False)
    )


@dataclass(frozen=True)
class NewApiKey:
    key: ApiKey
    plaintext: str


async def create_api_key(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    *,
    name: str,
    role: Role,
    created_by_id: uuid.UUID | None = None,
    expires_at: datetime | None = None,
    actor_kind: ActorKind = ActorKind.system,
) -> NewApiKey:
    prefix = new_token(6).replace("_", "x").replace("-", "y")[:8]
    secret = new_token(32).replace("_", "x")
    key = ApiKey(
        tenant_id=tenant_id,
        name=name,
        prefix=prefix,
        key_hash=sha256_hex(secret),
        role=role,
        created_by_id=created_by_id,
        expires_at=expires_at,
    )
    session.add(key)
    await session.flush()
    await record(
        session,
        tenant_id,
        actor_kind,
        created_by_id,
        "api_key.create",
        "api_key",
        key.id,
        {"name": name, "role": role.value},
    )
    return NewApiKey(key=key, plaintext=f"{API_KEY_PREFIX}_{prefix}_{secret}")


async def revoke_api_key(session: AsyncSession, key: ApiKey, principal: Principal) -> None:
    key.revoked_at = utc_now()
    await record_by(session, principal, "api_key.revoke", "api_key", key.id)
