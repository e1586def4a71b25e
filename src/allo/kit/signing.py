"""Signed, expiring tokens for links and sessions handed to customers (chat sessions, personal links,
contact links): HMAC-SHA256 over a compact JSON payload, bound to a purpose so that a token made for one
use is refused for another.

Format: base64url(payload JSON) "." base64url(signature); the payload carries `p` (purpose) and `e`
(expiry, Unix seconds). Nothing secret goes in a payload: it is signed, not encrypted.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from typing import Any

import orjson

MAX_TOKEN_LENGTH = 2048


class InvalidToken(Exception):
    """Forged, damaged, or made for another purpose."""


class ExpiredToken(InvalidToken):
    """Genuine, but past its expiry."""


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(secret: str, purpose: str, body: str) -> bytes:
    # The purpose is in the MAC as well as in the payload: a key shared by several uses stays safe.
    return hmac.new(secret.encode(), f"{purpose}\n{body}".encode(), hashlib.sha256).digest()


def sign(
    secret: str, purpose: str, data: dict[str, Any], *, ttl_seconds: int, now: float | None = None
) -> str:
    issued = time.time() if now is None else now
    payload = {**data, "p": purpose, "e": int(issued + ttl_seconds)}
    body = _b64encode(orjson.dumps(payload))
    return f"{body}.{_b64encode(_signature(secret, purpose, body))}"


def unsign(secret: str, purpose: str, token: str, *, now: float | None = None) -> dict[str, Any]:
    """The token's data, or InvalidToken / ExpiredToken; the signature is checked before anything else."""
    if not token or len(token) > MAX_TOKEN_LENGTH or token.count(".") != 1:
        raise InvalidToken("malformed token")
    body, signature = token.split(".")
    try:
        given = _b64decode(signature)
    except (binascii.Error, ValueError) as exc:
        raise InvalidToken("malformed signature") from exc
    if not hmac.compare_digest(given, _signature(secret, purpose, body)):
        raise InvalidToken("bad signature")
    try:
        payload = orjson.loads(_b64decode(body))
    except (binascii.Error, ValueError, orjson.JSONDecodeError) as exc:
        raise InvalidToken("malformed payload") from exc
    if not isinstance(payload, dict) or payload.get("p") != purpose or not isinstance(payload.get("e"), int):
        raise InvalidToken("wrong purpose")
    if payload["e"] < (time.time() if now is None else now):
        raise ExpiredToken("expired")
    return {k: v for k, v in payload.items() if k not in ("p", "e")}
