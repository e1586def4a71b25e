"""Delivering outgoing webhooks: one signed POST per attempt, retried with backoff, logged on the delivery.

The request
    POST <endpoint url> with the delivery's payload as a JSON body, and the headers
    Content-Type: application/json, User-Agent: Allo-Webhooks/1,
    Allo-Webhook-Id (the delivery id, the same on every attempt: receivers deduplicate on it),
    Allo-Webhook-Event, Allo-Webhook-Timestamp (Unix seconds, when the attempt was made) and
    Allo-Webhook-Signature.

The signature
    Allo-Webhook-Signature: v1=<hex HMAC-SHA256>, keyed with the endpoint's whole secret ("whsec_…", as
    UTF-8) over the bytes  f"{Allo-Webhook-Id}.{Allo-Webhook-Timestamp}." + raw body. A receiver
    recomputes it over the body exactly as received, compares in constant time, and refuses a timestamp
    more than 5 minutes away from its clock (a replayed request). The header may one day carry several
    space-separated signatures; any valid v1 one is enough. `verify_signature()` does all of this.

Attempts
    Each attempt is one job. Its result (status code, error, duration) is written on the delivery in the
    job's transaction, together with the job of the next attempt when one is due: after an exponential
    backoff with jitter (1 minute, then doubling, at most 6 hours), or after the receiver's Retry-After
    on a 429 or 503 (at most an hour). After ALLO_WEBHOOK_MAX_ATTEMPTS failures the delivery is dead; an
    admin can redeliver it.
    Why not the job system's own retry: a failing handler's transaction is rolled back, which would lose
    the attempt's record, and RetryLater does not count as an attempt. The job system's retries remain
    for the handler's own failures (the database, a bug).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, timedelta
from email.utils import parsedate_to_datetime

import httpx
import orjson

from allo.config import Settings
from allo.kit import jobs
from allo.kit.crypto import SecretUnreadable, decrypt_secret
from allo.kit.time import utc_now
from allo.models import WebhookDelivery
from allo.models.enums import DeliveryStatus
from allo.webhooks.repository import WebhookDeliveryRepository, WebhookEndpointRepository
from allo.webhooks.service import DELIVER_KIND, JOB_MAX_ATTEMPTS

logger = logging.getLogger(__name__)

USER_AGENT = "Allo-Webhooks/1"
SIGNATURE_TOLERANCE_SECONDS = 300
MAX_RETRY_AFTER_SECONDS = 3600.0
# The job system's backoff formula on a slower scale than internal jobs (2 s): a receiver down for a
# deploy must not lose events. Default 8 attempts: about 1 to 2 hours; 30 attempts: several days.
BACKOFF_BASE_SECONDS = 60.0
BACKOFF_MAX_SECONDS = 6 * 3600.0
MAX_ERROR_CHARS = 1000
RESPONSE_SNIPPET_BYTES = 512
_FINISHED = (DeliveryStatus.succeeded, DeliveryStatus.dead)


def signature(secret: str, delivery_id: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{delivery_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return f"v1={mac.hexdigest()}"


def signed_headers(secret: str, delivery_id: str, event: str, timestamp: str, body: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Allo-Webhook-Id": delivery_id,
        "Allo-Webhook-Event": event,
        "Allo-Webhook-Timestamp": timestamp,
        "Allo-Webhook-Signature": signature(secret, delivery_id, timestamp, body),
    }


def verify_signature(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    tolerance_seconds: int = SIGNATURE_TOLERANCE_SECONDS,
    *,
    now: float | None = None,
) -> bool:
    """Whether a request really comes from Allo with this secret, and recently: for receivers and tests.

    `headers` in any letter case; `body` exactly as received, before any JSON parsing.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    delivery_id = lowered.get("allo-webhook-id", "")
    timestamp = lowered.get("allo-webhook-timestamp", "")
    given = lowered.get("allo-webhook-signature", "")
    if not (delivery_id and timestamp.isascii() and timestamp.isdigit() and given):
        return False
    if abs((time.time() if now is None else now) - int(timestamp)) > tolerance_seconds:
        return False
    expected = signature(secret, delivery_id, timestamp, body).encode()
    return any(
        hmac.compare_digest(expected, candidate.encode()) for candidate in given.replace(",", " ").split()
    )


@dataclass(frozen=True)
class AttemptResult:
    status_code: int | None
    error: str | None  # None: delivered
    duration_ms: int
    retry_after: float | None = None


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date), at most an hour."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        seconds = float(value)
    else:
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        seconds = (moment - utc_now()).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


async def _snippet(response: httpx.Response) -> str:
    """The start of the receiver's answer, for the delivery log; never the whole of a large body."""
    received = bytearray()
    async for chunk in response.aiter_bytes():
        received += chunk
        if len(received) >= RESPONSE_SNIPPET_BYTES:
            break
    return " ".join(received[:RESPONSE_SNIPPET_BYTES].decode("utf-8", "replace").split())


async def post(url: str, delivery: WebhookDelivery, secret: str, *, timeout_seconds: float) -> AttemptResult:
    """One signed attempt; every failure (status, timeout, network) comes back as a result, never raised."""
    body = orjson.dumps(delivery.payload)
    headers = signed_headers(secret, str(delivery.id), delivery.event, str(int(time.time())), body)
    status_code: int | None = None
    retry_after: float | None = None
    snippet = ""
    error: str | None = None
    started = time.perf_counter()
    try:
        # httpx's timeout bounds each step; this one bounds the whole exchange.
        async with (
            asyncio.timeout(timeout_seconds),
            httpx.AsyncClient(timeout=timeout_seconds, follow_redirects=False) as client,
            client.stream("POST", url, content=body, headers=headers) as response,
        ):
            status_code = response.status_code
            if status_code in (429, 503):
                retry_after = _retry_after(response.headers.get("retry-after"))
            snippet = await _snippet(response)
    except (TimeoutError, httpx.TimeoutException):
        error = f"timed out after {timeout_seconds:g} s"
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    duration_ms = round((time.perf_counter() - started) * 1000)
    if status_code is None:
        return AttemptResult(None, error or "no response", duration_ms)
    if 200 <= status_code < 300:
        return AttemptResult(status_code, None, duration_ms)  # even if reading the answer then failed
    message = f"HTTP {status_code}" + (f": {snippet}" if snippet else "")
    return AttemptResult(status_code, message, duration_ms, retry_after)


def _give_up(delivery: WebhookDelivery, reason: str) -> None:
    delivery.status = DeliveryStatus.dead
    delivery.last_error = reason
    delivery.updated_at = utc_now()
    logger.warning("webhook delivery %s is dead: %s", delivery.id, reason)


@jobs.job_handler(DELIVER_KIND)
async def deliver(ctx: jobs.JobContext) -> None:
    settings = ctx.resources.get("settings")
    if not isinstance(settings, Settings):
        raise jobs.PermanentFailure("the worker was started without the application's settings")
    if ctx.tenant_id is None:
        raise jobs.PermanentFailure("a webhook delivery job needs its tenant")
    try:
        delivery_id = uuid.UUID(str(ctx.payload["delivery_id"]))
    except (KeyError, ValueError) as exc:
        raise jobs.PermanentFailure("the job has no valid delivery_id") from exc
    delivery = await WebhookDeliveryRepository(ctx.session, ctx.tenant_id).get(delivery_id)
    if delivery is None:
        raise jobs.PermanentFailure(
            f"webhook delivery {delivery_id} no longer exists: its endpoint was deleted; nothing sent"
        )
    if delivery.status in _FINISHED:
        return  # a stale job (its delivery was finished by another cycle): nothing to do
    endpoint = await WebhookEndpointRepository(ctx.session, ctx.tenant_id).get(delivery.endpoint_id)
    if endpoint is None or not endpoint.active:
        _give_up(delivery, "not sent: the endpoint is disabled")
        return
    try:
        secret = decrypt_secret(settings, endpoint.secret_encrypted)
    except SecretUnreadable:
        _give_up(
            delivery,
            "not sent: the endpoint's secret cannot be decrypted (was ALLO_SECRET_KEY changed?); "
            "rotate the secret, then redeliver",
        )
        return

    result = await post(endpoint.url, delivery, secret, timeout_seconds=settings.webhook_timeout_seconds)
    now = utc_now()
    delivery.attempts += 1
    delivery.last_attempt_at = now
    delivery.last_duration_ms = result.duration_ms
    delivery.last_status_code = result.status_code
    delivery.updated_at = now
    if result.error is None:
        delivery.status = DeliveryStatus.succeeded
        delivery.delivered_at = now
        delivery.last_error = None
        return
    # A receiver could echo what it got; the secret itself never went out, but never log it anyway.
    delivery.last_error = result.error.replace(secret, "***")[:MAX_ERROR_CHARS]
    if delivery.attempts >= settings.webhook_max_attempts:
        reason = f"gave up after {delivery.attempts} attempts; the last: {delivery.last_error}"
        _give_up(delivery, reason[:MAX_ERROR_CHARS])
        return
    delivery.status = DeliveryStatus.retrying
    delay = result.retry_after
    if delay is None:
        delay = jobs.backoff_seconds(delivery.attempts, base=BACKOFF_BASE_SECONDS, cap=BACKOFF_MAX_SECONDS)
    await jobs.enqueue(
        ctx.session,
        DELIVER_KIND,
        {"delivery_id": str(delivery.id)},
        tenant_id=ctx.tenant_id,
        run_at=now + timedelta(seconds=delay),
        max_attempts=JOB_MAX_ATTEMPTS,
    )
