"""Delivering over real HTTP to a local receiver: signatures, retries with backoff, Retry-After, the dead
state, endpoints deleted or disabled meanwhile, redelivery and secret rotation."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from datetime import datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from allo.config import Settings
from allo.kit import jobs
from allo.kit.db import Database
from allo.kit.time import utc_now
from allo.models import WebhookDelivery
from allo.models.enums import DeliveryStatus, JobStatus
from allo.webhooks.service import DELIVER_KIND, emit
from allo.webhooks.tasks import verify_signature
from tests.api_helpers import assert_api_error, audit_events, free_port
from tests.factories import Actor
from tests.webhooks.receiver import (
    WEBHOOKS,
    Receiver,
    Reply,
    create_endpoint,
    deliveries,
    delivery_jobs,
    run_round,
    worker_for,
)


async def _endpoint_and_event(
    client: httpx.AsyncClient, db: Database, admin: Actor, receiver: Receiver, **fields: Any
) -> tuple[dict[str, Any], WebhookDelivery]:
    """An endpoint for the receiver (which learns its secret) and one ticket.created emitted to it."""
    endpoint = await create_endpoint(client, admin, receiver.url, **fields)
    receiver.secret = endpoint["secret"]
    async with db.unit_of_work() as s:
        assert await emit(s, admin.tenant_id, "ticket.created", {"ticket_id": "t-42"}) == 1
    [delivery] = await deliveries(db, endpoint["id"])
    return endpoint, delivery


async def _delivery(db: Database, delivery_id: uuid.UUID) -> WebhookDelivery:
    async with db.unit_of_work(write=False) as s:
        delivery = await s.get(WebhookDelivery, delivery_id)
        assert delivery is not None
        return delivery


async def test_a_delivery_is_posted_signed_and_logged(
    client: httpx.AsyncClient,
    db: Database,
    tenant_actors: dict[str, Actor],
    settings: Settings,
    receiver: Receiver,
) -> None:
    admin = tenant_actors["admin"]
    endpoint, delivery = await _endpoint_and_event(client, db, admin, receiver)
    worker = worker_for(db, settings)
    assert await worker.run_until_idle() == 1

    [request] = receiver.received
    assert request.verified
    assert request.json == delivery.payload
    assert request.json["data"] == {"ticket_id": "t-42"}
    headers = request.headers
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"] == "Allo-Webhooks/1"
    assert headers["allo-webhook-id"] == str(delivery.id)
    assert headers["allo-webhook-event"] == "ticket.created"
    # The documented scheme, computed by hand as a receiver in another language would.
    signed = f"{delivery.id}.{headers['allo-webhook-timestamp']}.".encode() + request.body
    expected = hmac.new(endpoint["secret"].encode(), signed, hashlib.sha256).hexdigest()
    assert headers["allo-webhook-signature"] == f"v1={expected}"

    done = await _delivery(db, delivery.id)
    assert (done.status, done.attempts, done.last_status_code, done.last_error) == (
        DeliveryStatus.succeeded,
        1,
        200,
        None,
    )
    assert done.delivered_at is not None and done.last_attempt_at == done.delivered_at
    assert done.last_duration_ms is not None and done.last_duration_ms >= 0
    assert [j.status for j in await delivery_jobs(db)] == [JobStatus.succeeded]

    response = await client.get(f"{WEBHOOKS}/deliveries/{delivery.id}", headers=admin.bearer)
    assert response.status_code == 200, response.text
    read = response.json()
    assert (read["status"], read["attempts"], read["last_status_code"]) == ("succeeded", 1, 200)
    assert read["payload"] == delivery.payload
    assert endpoint["secret"] not in response.text


async def test_two_failures_then_a_success_log_three_attempts_and_deliver_once(
    client: httpx.AsyncClient,
    db: Database,
    tenant_actors: dict[str, Actor],
    settings: Settings,
    receiver: Receiver,
) -> None:
    receiver.replies = [Reply(500), Reply(500), Reply(200)]
    _, delivery = await _endpoint_and_event(client, db, tenant_actors["admin"], receiver)
    worker = worker_for(db, settings)

    before = utc_now()
    assert await worker.run_until_idle() == 1
    first = await _delivery(db, delivery.id)
    assert (first.status, first.attempts, first.last_status_code) == (DeliveryStatus.retrying, 1, 500)
    assert first.last_error == 'HTTP 500: {"ok": true}'
    [waiting] = await delivery_jobs(db, JobStatus.queued)
    assert waiting.run_at > before  # after the backoff, not at once
    assert await worker.run_until_idle() == 0

    assert await run_round(db, worker) == 1
    second = await _delivery(db, delivery.id)
    assert (second.status, second.attempts) == (DeliveryStatus.retrying, 2)

    assert await run_round(db, worker) == 1
    third = await _delivery(db, delivery.id)
    assert (third.status, third.attempts, third.last_status_code, third.last_error) == (
        DeliveryStatus.succeeded,
        3,
        200,
        None,
    )
    assert third.delivered_at is not None

    assert await run_round(db, worker) == 0
    assert len(receiver.received) == 3
    assert {r.headers["allo-webhook-id"] for r in receiver.received} == {str(delivery.id)}
    assert all(r.verified for r in receiver.received)
    assert await delivery_jobs(db, JobStatus.queued) == []


async def test_a_receiver_that_does_not_answer_in_time_is_retried_with_the_error_logged(
    client: httpx.AsyncClient,
    db: Database,
    tenant_actors: dict[str, Actor],
    settings: Settings,
    receiver: Receiver,
) -> None:
    receiver.replies = [Reply(hang=True)]
    _, delivery = await _endpoint_and_event(client, db, tenant_actors["admin"], receiver)
    assert await worker_for(db, settings, webhook_timeout_seconds=0.2).run_until_idle() == 1
    receiver.release.set()
    logged = await _delivery(db, delivery.id)
    assert (logged.status, logged.attempts, logged.last_status_code) == (DeliveryStatus.retrying, 1, None)
    assert logged.last_error == "timed out after 0.2 s"
    assert len(await delivery_jobs(db, JobStatus.queued)) == 1


async def test_a_receiver_that_refuses_connections_is_retried(
    client: httpx.AsyncClient, db: Database, tenant_actors: dict[str, Actor], settings: Settings
) -> None:
    admin = tenant_actors["admin"]
    endpoint = await create_endpoint(client, admin, f"http://127.0.0.1:{free_port()}/hook")
    async with db.unit_of_work() as s:
        await emit(s, admin.tenant_id, "ticket.created", {"ticket_id": "t-1"})
    assert await worker_for(db, settings).run_until_idle() == 1
    [logged] = await deliveries(db, endpoint["id"])
    assert (logged.status, logged.attempts, logged.last_status_code) == (DeliveryStatus.retrying, 1, None)
    assert logged.last_error is not None and logged.last_error.startswith("ConnectError")
    assert endpoint["secret"] not in logged.last_error


async def test_a_delivery_is_dead_after_the_last_attempt(
    client: httpx.AsyncClient,
    db: Database,
    tenant_actors: dict[str, Actor],
    settings: Settings,
    receiver: Receiver,
) -> None:
    receiver.replies = [Reply(500), Reply(502), Reply(404)]
    _, delivery = await _endpoint_and_event(client, db, tenant_actors["admin"], receiver)
    worker = worker_for(db, settings, webhook_max_attempts=3)
    for _ in range(3):
        assert await run_round(db, worker) == 1
    dead = await _delivery(db, delivery.id)
    assert (dead.status, dead.attempts, dead.last_status_code) == (DeliveryStatus.dead, 3, 404)
    assert dead.last_error == 'gave up after 3 attempts; the last: HTTP 404: {"ok": true}'
    assert dead.delivered_at is None
    assert await run_round(db, worker) == 0
    assert len(receiver.received) == 3
    assert await delivery_jobs(db, JobStatus.queued) == []


async def test_a_deleted_endpoint_gets_nothing(
    client: httpx.AsyncClient,
    db: Database,
    tenant_actors: dict[str, Actor],
    settings: Settings,
    receiver: Receiver,
) -> None:
    admin = tenant_actors["admin"]
    endpoint, _ = await _endpoint_and_event(client, db, admin, receiver)
    response = await client.delete(f"{WEBHOOKS}/endpoints/{endpoint['id']}", headers=admin.bearer)
    assert response.status_code == 204, response.text
    assert await deliveries(db, endpoint["id"]) == []  # the log goes with its endpoint

    assert await worker_for(db, settings).run_until_idle() == 1
    assert receiver.received == []
    [job] = await delivery_jobs(db)
    assert job.status is JobStatus.dead  # no retry
    assert job.last_error is not None and "its endpoint was deleted" in job.last_error


async def test_a_disabled_endpoint_gets_nothing_and_its_delivery_is_dead(
    client: httpx.AsyncClient,
    db: Database,
    tenant_actors: dict[str, Actor],
    settings: Settings,
    receiver: Receiver,
) -> None:
    admin = tenant_actors["admin"]
    endpoint, delivery = await _endpoint_and_event(client, db, admin, receiver)
    response = await client.patch(
        f"{WEBHOOKS}/endpoints/{endpoint['id']}", json={"active": False}, headers=admin.bearer
    )
    assert response.status_code == 200, response.text

    assert await worker_for(db, settings).run_until_idle() == 1
    assert receiver.received == []
    dead = await _delivery(db, delivery.id)
    assert (dead.status, dead.attempts, dead.last_error) == (
        DeliveryStatus.dead,
        0,
        "not sent: the endpoint is disabled",
    )
    assert await delivery_jobs(db, JobStatus.queued) == []


async def test_a_secret_the_key_cannot_decrypt_kills_the_delivery_without_sending(
    client: httpx.AsyncClient,
    db: Database,
    tenant_actors: dict[str, Actor],
    settings: Settings,
    receiver: Receiver,
) -> None:
    _, delivery = await _endpoint_and_event(client, db, tenant_actors["admin"], receiver)
    worker = worker_for(db, settings, secret_key=SecretStr("another-instance-key-" + "x" * 32))
    assert await worker.run_until_idle() == 1
    assert receiver.received == []
    dead = await _delivery(db, delivery.id)
    assert dead.status is DeliveryStatus.dead
    assert dead.last_error is not None and "cannot be decrypted" in dead.last_error


def _http_date(seconds_from_now: float) -> str:
    return format_datetime(utc_now() + timedelta(seconds=seconds_from_now), usegmt=True)


@pytest.mark.parametrize(
    ("status", "retry_after", "delay"),
    [
        (429, "120", 120.0),
        (503, "120", 120.0),
        (429, "999999", 3600.0),  # capped at an hour
        (503, "date:600", None),
        (500, "3000", None),  # only 429 and 503 are believed: the usual backoff
        (429, "soon", None),
    ],
)
async def test_retry_after_is_honoured_on_429_and_503(
    client: httpx.AsyncClient,
    db: Database,
    tenant_actors: dict[str, Actor],
    settings: Settings,
    receiver: Receiver,
    status: int,
    retry_after: str,
    delay: float | None,
) -> None:
    until: datetime | None = None
    if retry_after.startswith("date:"):
        retry_after = _http_date(float(retry_after.removeprefix("date:")))
        until = parsedate_to_datetime(retry_after)
    receiver.replies = [Reply(status, headers={"Retry-After": retry_after})]
    _, delivery = await _endpoint_and_event(client, db, tenant_actors["admin"], receiver)
    before = utc_now()
    assert await worker_for(db, settings).run_until_idle() == 1
    after = utc_now()

    logged = await _delivery(db, delivery.id)
    assert (logged.status, logged.attempts, logged.last_status_code) == (DeliveryStatus.retrying, 1, status)
    [job] = await delivery_jobs(db, JobStatus.queued)
    if until is not None:
        assert until <= job.run_at <= until + timedelta(seconds=1)  # the date given, give or take the run
    elif delay is None:
        # The first backoff: between half the base (a minute) and the base.
        assert before + timedelta(seconds=30) <= job.run_at <= after + timedelta(seconds=60)
    else:
        assert before + timedelta(seconds=delay) <= job.run_at <= after + timedelta(seconds=delay)


async def test_an_admin_redelivers_a_dead_delivery_and_a_delivered_one(
    client: httpx.AsyncClient,
    db: Database,
    tenant_actors: dict[str, Actor],
    settings: Settings,
    receiver: Receiver,
) -> None:
    admin = tenant_actors["admin"]
    receiver.replies = [Reply(500)]
    _, delivery = await _endpoint_and_event(client, db, admin, receiver)
    worker = worker_for(db, settings, webhook_max_attempts=1)
    assert await worker.run_until_idle() == 1
    assert (await _delivery(db, delivery.id)).status is DeliveryStatus.dead

    url = f"{WEBHOOKS}/deliveries/{delivery.id}/redeliver"
    response = await client.post(url, headers=admin.bearer)
    assert response.status_code == 200, response.text
    assert (response.json()["status"], response.json()["attempts"]) == ("pending", 0)
    # Once: a delivery being attempted cannot be started again.
    assert_api_error(await client.post(url, headers=admin.bearer), 409, "delivery_in_progress")

    assert await worker.run_until_idle() == 1
    redelivered = await _delivery(db, delivery.id)
    assert (redelivered.status, redelivered.attempts) == (DeliveryStatus.succeeded, 1)

    response = await client.post(url, headers=admin.bearer)
    assert response.status_code == 200, response.text
    assert await worker.run_until_idle() == 1
    assert (await _delivery(db, delivery.id)).status is DeliveryStatus.succeeded
    assert [r.headers["allo-webhook-id"] for r in receiver.received] == [str(delivery.id)] * 3
    assert all(r.verified for r in receiver.received)

    audits = await audit_events(db, admin.tenant_id, "webhook.redeliver")
    assert [(a.entity_type, a.entity_id) for a in audits] == [("webhook_delivery", str(delivery.id))] * 2


async def test_after_a_rotation_deliveries_are_signed_with_the_new_secret_only(
    client: httpx.AsyncClient,
    db: Database,
    tenant_actors: dict[str, Actor],
    settings: Settings,
    receiver: Receiver,
) -> None:
    admin = tenant_actors["admin"]
    endpoint = await create_endpoint(client, admin, receiver.url)
    old = endpoint["secret"]
    response = await client.post(f"{WEBHOOKS}/endpoints/{endpoint['id']}/rotate-secret", headers=admin.bearer)
    assert response.status_code == 200, response.text
    rotated = response.json()
    new = rotated["secret"]
    assert new.startswith("whsec_") and new != old
    assert {k: v for k, v in rotated.items() if k not in ("secret", "updated_at")} == {
        k: v for k, v in endpoint.items() if k not in ("secret", "updated_at")
    }
    read = await client.get(f"{WEBHOOKS}/endpoints/{endpoint['id']}", headers=admin.bearer)
    assert "secret" not in read.json() and new not in read.text

    receiver.secret = new
    response = await client.post(f"{WEBHOOKS}/endpoints/{endpoint['id']}/test", headers=admin.bearer)
    assert response.status_code == 201, response.text
    assert await worker_for(db, settings).run_until_idle() == 1
    [request] = receiver.received
    assert request.verified
    assert not verify_signature(old, request.headers, request.body)

    [audit] = await audit_events(db, admin.tenant_id, "webhook.rotate_secret")
    assert (audit.entity_id, audit.data) == (endpoint["id"], {})


async def test_a_test_event_goes_to_that_endpoint_only(
    client: httpx.AsyncClient,
    db: Database,
    tenant_actors: dict[str, Actor],
    settings: Settings,
    receiver: Receiver,
) -> None:
    admin = tenant_actors["admin"]
    target = await create_endpoint(client, admin, receiver.url, events=["incident.opened"])
    other = await create_endpoint(client, admin, receiver.url)
    receiver.secret = target["secret"]

    response = await client.post(f"{WEBHOOKS}/endpoints/{target['id']}/test", headers=admin.bearer)
    assert response.status_code == 201, response.text
    sent = response.json()
    assert (sent["endpoint_id"], sent["event"], sent["status"]) == (target["id"], "webhook.test", "pending")
    assert sent["payload"]["data"] == {"endpoint_id": target["id"], "message": "A test event sent from Allo."}
    assert await deliveries(db, other["id"]) == []

    assert await worker_for(db, settings).run_until_idle() == 1
    [request] = receiver.received
    assert request.verified
    assert (request.headers["allo-webhook-event"], request.json["event"]) == ("webhook.test", "webhook.test")

    [audit] = await audit_events(db, admin.tenant_id, "webhook.test")
    assert audit.data == {"delivery_id": sent["id"]}

    response = await client.patch(
        f"{WEBHOOKS}/endpoints/{target['id']}", json={"active": False}, headers=admin.bearer
    )
    assert response.status_code == 200, response.text
    assert_api_error(
        await client.post(f"{WEBHOOKS}/endpoints/{target['id']}/test", headers=admin.bearer),
        409,
        "endpoint_inactive",
    )
    assert len(await deliveries(db, target["id"])) == 1


async def test_delivery_times_are_aware_utc(
    client: httpx.AsyncClient,
    db: Database,
    tenant_actors: dict[str, Actor],
    settings: Settings,
    receiver: Receiver,
) -> None:
    _, delivery = await _endpoint_and_event(client, db, tenant_actors["admin"], receiver)
    await worker_for(db, settings).run_until_idle()
    done = await _delivery(db, delivery.id)
    for moment in (done.created_at, done.last_attempt_at, done.delivered_at):
        assert isinstance(moment, datetime) and moment.utcoffset() == timedelta(0)


async def test_a_stale_job_for_a_finished_delivery_sends_nothing(
    client: httpx.AsyncClient,
    db: Database,
    tenant_actors: dict[str, Actor],
    settings: Settings,
    receiver: Receiver,
) -> None:
    admin = tenant_actors["admin"]
    _, delivery = await _endpoint_and_event(client, db, admin, receiver)
    worker = worker_for(db, settings)
    assert await worker.run_until_idle() == 1
    # A second job for the same delivery (an operator retrying an old job, say).
    async with db.unit_of_work() as s:
        await jobs.enqueue(s, DELIVER_KIND, {"delivery_id": str(delivery.id)}, tenant_id=admin.tenant_id)
    assert await worker.run_until_idle() == 1
    assert len(receiver.received) == 1
    done = await _delivery(db, delivery.id)
    assert (done.status, done.attempts) == (DeliveryStatus.succeeded, 1)
