"""Secrets at rest: Fernet under a key derived from the secret key by HKDF-SHA256."""

from __future__ import annotations

import base64

import pytest
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import SecretStr

from allo.config import Settings
from allo.kit.crypto import SecretUnreadable, decrypt_secret, encrypt_secret

KEY = "a-long-random-secret-key-for-the-tests-0123456789"


def test_a_secret_comes_back_from_settings_a_secret_str_or_the_key_itself() -> None:
    settings = Settings(secret_key=SecretStr(KEY), _env_file=None)
    for source in (settings, SecretStr(KEY), KEY):
        token = encrypt_secret(source, "whsec_abc é")
        assert "whsec_abc" not in token
        assert token.isascii()
        for reader in (settings, SecretStr(KEY), KEY):
            assert decrypt_secret(reader, token) == "whsec_abc é"


def test_each_encryption_differs() -> None:
    assert encrypt_secret(KEY, "same") != encrypt_secret(KEY, "same")


def test_the_key_is_derived_with_hkdf_sha256() -> None:
    """Pinned: changing the derivation would make every stored secret unreadable."""
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"allo secrets at rest").derive(
        KEY.encode()
    )
    fernet = Fernet(base64.urlsafe_b64encode(derived))
    assert fernet.decrypt(encrypt_secret(KEY, "pinned").encode()) == b"pinned"
    assert decrypt_secret(KEY, fernet.encrypt(b"the other way").decode()) == "the other way"
    # The secret key itself is not the cipher key.
    raw = Fernet(base64.urlsafe_b64encode(KEY.encode()[:32]))
    with pytest.raises(SecretUnreadable):
        decrypt_secret(KEY, raw.encrypt(b"x").decode())


def test_another_key_cannot_decrypt() -> None:
    token = encrypt_secret(KEY, "whsec_abc")
    with pytest.raises(SecretUnreadable, match="secret key changed"):
        decrypt_secret(KEY + "-rotated", token)


@pytest.mark.parametrize("damage", ["truncated", "flipped", "garbage", "empty", "not ascii"])
def test_a_damaged_value_is_refused(damage: str) -> None:
    token = encrypt_secret(KEY, "whsec_abc")
    damaged = {
        "truncated": token[:-4],
        "flipped": token[:20] + ("A" if token[20] != "A" else "B") + token[21:],
        "garbage": "not a token at all",
        "empty": "",
        "not ascii": token[:10] + "é" + token[11:],
    }[damage]
    with pytest.raises(SecretUnreadable):
        decrypt_secret(KEY, damaged)


def test_an_empty_key_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="empty secret key"):
        encrypt_secret("", "x")
