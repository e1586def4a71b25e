"""The signature receivers check: HMAC-SHA256 over "{id}.{timestamp}." + body, and a recent timestamp."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from allo.webhooks.tasks import signed_headers, verify_signature

SECRET = "whsec_test-secret"
BODY = b'{"id":"d-1","event":"ticket.created","data":{"ticket_id":"t-1"}}'
NOW = 1_750_000_000


def _headers(secret: str = SECRET, body: bytes = BODY, timestamp: int = NOW) -> dict[str, str]:
    return signed_headers(secret, "d-1", "ticket.created", str(timestamp), body)


def test_the_headers_follow_the_documented_scheme() -> None:
    headers = _headers()
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"] == "Allo-Webhooks/1"
    assert (headers["Allo-Webhook-Id"], headers["Allo-Webhook-Event"]) == ("d-1", "ticket.created")
    assert headers["Allo-Webhook-Timestamp"] == str(NOW)
    expected = hmac.new(SECRET.encode(), f"d-1.{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert headers["Allo-Webhook-Signature"] == f"v1={expected}"


def test_a_genuine_request_verifies_whatever_the_header_case() -> None:
    headers = _headers()
    assert verify_signature(SECRET, headers, BODY, now=NOW)
    assert verify_signature(SECRET, {k.lower(): v for k, v in headers.items()}, BODY, now=NOW + 299)
    assert verify_signature(SECRET, {k.upper(): v for k, v in headers.items()}, BODY, now=NOW - 299)


def test_several_signatures_are_accepted_when_one_is_valid() -> None:
    headers = _headers()
    headers["Allo-Webhook-Signature"] = f"v1={'0' * 64} {headers['Allo-Webhook-Signature']}"
    assert verify_signature(SECRET, headers, BODY, now=NOW)


def test_a_tampered_body_fails() -> None:
    assert not verify_signature(SECRET, _headers(), BODY.replace(b"t-1", b"t-2"), now=NOW)
    assert not verify_signature(SECRET, _headers(), BODY + b" ", now=NOW)


def test_a_wrong_secret_fails() -> None:
    assert not verify_signature("whsec_other", _headers(), BODY, now=NOW)
    assert not verify_signature(SECRET, _headers(secret="whsec_other"), BODY, now=NOW)


@pytest.mark.parametrize("offset", [301, -301, 10_000])
def test_a_stale_or_future_timestamp_fails(offset: int) -> None:
    assert not verify_signature(SECRET, _headers(), BODY, now=NOW + offset)
    assert verify_signature(SECRET, _headers(), BODY, tolerance_seconds=abs(offset), now=NOW + offset)


def test_a_replayed_signature_with_a_new_timestamp_fails() -> None:
    headers = _headers()
    headers["Allo-Webhook-Timestamp"] = str(NOW + 100)
    assert not verify_signature(SECRET, headers, BODY, now=NOW + 100)


def test_another_delivery_id_fails() -> None:
    headers = _headers()
    headers["Allo-Webhook-Id"] = "d-2"
    assert not verify_signature(SECRET, headers, BODY, now=NOW)


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("Allo-Webhook-Signature", None),
        ("Allo-Webhook-Timestamp", None),
        ("Allo-Webhook-Id", None),
        ("Allo-Webhook-Signature", ""),
        ("Allo-Webhook-Signature", "v0=abc"),
        ("Allo-Webhook-Signature", "v1=é"),
        ("Allo-Webhook-Timestamp", "soon"),
        ("Allo-Webhook-Timestamp", "-5"),
        ("Allo-Webhook-Timestamp", "１２"),
    ],
)
def test_missing_or_malformed_headers_fail(header: str, value: str | None) -> None:
    headers = _headers()
    if value is None:
        del headers[header]
    else:
        headers[header] = value
    assert not verify_signature(SECRET, headers, BODY, now=NOW)
