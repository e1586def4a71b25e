"""Secrets at rest: values Allo must read back (webhook signing secrets, channel credentials) are stored
encrypted with a key derived from the instance's secret key.

Fernet (AES-128-CBC with HMAC-SHA256, from `cryptography`) with its key derived from the secret key by
HKDF-SHA256 (no salt, info b"allo secrets at rest"): the secret key itself is never used as a cipher key,
and other uses of it derive other keys. Changing the secret key makes every stored value unreadable
(`SecretUnreadable`); the owner of each value must then set it again.
"""

from __future__ import annotations

import base64
import functools
from typing import Protocol, TypeAlias

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import SecretStr

HKDF_INFO = b"allo secrets at rest"


class SecretUnreadable(Exception):
    """A stored secret that this key cannot decrypt: the secret key changed, or the value is damaged."""


class HasSecretKey(Protocol):
    @property
    def secret_key(self) -> SecretStr: ...


# The application's Settings, or the secret key itself.
KeySource: TypeAlias = HasSecretKey | SecretStr | str


def _key_text(source: KeySource) -> str:
    if isinstance(source, str):
        return source
    secret = source if isinstance(source, SecretStr) else source.secret_key
    return secret.get_secret_value()


@functools.lru_cache(maxsize=8)
def _fernet(key_text: str) -> Fernet:
    if not key_text:
        raise ValueError("an empty secret key cannot protect secrets")
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=HKDF_INFO).derive(key_text.encode())
    return Fernet(base64.urlsafe_b64encode(derived))


def encrypt_secret(source: KeySource, plaintext: str) -> str:
    """The plaintext encrypted and authenticated, as URL-safe ASCII; a new random IV every call."""
    return _fernet(_key_text(source)).encrypt(plaintext.encode()).decode("ascii")


def decrypt_secret(source: KeySource, token: str) -> str:
    """The plaintext of `encrypt_secret`'s output, or SecretUnreadable."""
    fernet = _fernet(_key_text(source))
    try:
        return fernet.decrypt(token.encode()).decode()
    except (InvalidToken, ValueError) as exc:  # ValueError: not UTF-8 once decrypted
        raise SecretUnreadable(
            "the stored secret cannot be decrypted: the secret key changed or the value is damaged"
        ) from exc
