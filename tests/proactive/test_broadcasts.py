"""Proactive messages: each customer on their preferred channel, opt-outs and quiet hours respected, a
delivery report at the end."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import select

from allo.channels import service as channels
from allo.config import Settings
from allo.kit.db import Database
from allo.models import Broadcast, Job
from allo.models.enums import BroadcastState, Channel, JobStatus
from allo.proactive.service import DISPATCH_KIND, quiet_until
from allo.tenants.schemas import TenantPolicy
from tests.channels import payloads
from tests.channels.helpers import GraphStandin, create_meta_account, run_jobs, worker
from tests.factories import Actor

BROADCASTS = "/api/v1/broadcasts"
CUSTOMERS = "/api/v1/customers"


async def _customer(client: httpx.AsyncClient, actor: Actor, **fields: Any) -> str:
    response = await client.post(CUSTOMERS, json=fields, headers=actor.bearer)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def test_a_send_to_a_segment_reaches_each_customer_once_and_reports(
    client: httpx.AsyncClient,
    db: Database,
    settings: Settings,
    tenant_actors: dict[str, Actor],
    graph: GraphStandin,
    graph_client: httpx.AsyncClient,
) -> None:
    admin, supervisor = tenant_actors["admin"], tenant_actors["supervisor"]
    await create_meta_account(client, admin, "whatsapp", payloads.PHONE_NUMBER_ID)
    on_whatsapp = await _customer(
        client, supervisor, phone="+33612300001", name="Awa", segment="fibre", preferred_language="fr"
    )
    english = await _customer(
        client, supervisor, phone="+33612300002", name="John", segment="fibre", preferred_language="en"
    )
    opted_out = await _customer(client, supervisor, phone="+33612300003", segment="fibre")
    no_phone = await _customer(client, supervisor, email="nobody@example.org", segment="fibre")
    await _customer(client, supervisor, phone="+33612300005", segment="mobile")  # not in the segment
    for customer_id in (on_whatsapp, english, opted_out):
        await client.patch(
            f"{CUSTOMERS}/{customer_id}", json={"preferred_channel": "whatsapp"}, headers=supervisor.bearer
        )
    async with db.unit_of_work() as s:
        await channels.opt_out(s, admin.tenant_id, Channel.whatsapp, "+33612300003", source="api")

    response = await client.post(
        BROADCASTS,
        json={
            "name": "Travaux fibre",
            "texts": {"fr": "Bonjour {name}, travaux ce soir.", "en": "Hello {name}, works tonight."},
            "template": {"name": "travaux_fibre", "language": "fr", "parameters": ["ce soir"]},
            "audience": {"segment": "fibre"},
            "respect_quiet_hours": False,
        },
        headers=supervisor.bearer,
    )
    assert response.status_code == 201, response.text
    broadcast = response.json()
    assert broadcast["total"] == 4 and broadcast["report"]["pending"] == 4

    await run_jobs(db, worker(db, settings, graph_client), rounds=3)

    report = (await client.get(f"{BROADCASTS}/{broadcast['id']}", headers=supervisor.bearer)).json()
    assert report["state"] == "done"
    assert report["report"]["sent"] == 2
    assert report["report"]["skipped"] == {"opted_out": 1, "no_account": 1}  # e-mail: no account here
    assert sorted(r["to"] for r in graph.received) == ["33612300001", "33612300002"]
    # The template goes out on WhatsApp: a proactive message is outside any 24-hour window.
    assert all(r["type"] == "template" and r["template"]["name"] == "travaux_fibre" for r in graph.received)

    recipients = (
        await client.get(f"{BROADCASTS}/{broadcast['id']}/recipients", headers=supervisor.bearer)
    ).json()
    assert {r["delivery_status"] for r in recipients["items"] if r["state"] == "queued"} == {"sent"}
    by_customer = {r["customer_id"]: r for r in recipients["items"]}
    # E-mail is the only way to reach this one, and the tenant has no e-mail account.
    assert (by_customer[no_phone]["channel"], by_customer[no_phone]["reason"]) == ("email", "no_account")
    assert by_customer[opted_out]["reason"] == "opted_out"
    csv = await client.get(f"{BROADCASTS}/{broadcast['id']}/recipients.csv", headers=supervisor.bearer)
    assert csv.status_code == 200 and csv.text.count("\n") == 5 and "opted_out" in csv.text

    timeline = (await client.get(f"{CUSTOMERS}/{english}/timeline", headers=supervisor.bearer)).json()
    assert [i["text"] for i in timeline["items"]] == ["Hello John, works tonight."]


async def test_quiet_hours_hold_the_send_until_morning(
    client: httpx.AsyncClient,
    db: Database,
    tenant_actors: dict[str, Actor],
    settings: Settings,
    graph_client: httpx.AsyncClient,
) -> None:
    supervisor = tenant_actors["supervisor"]
    await create_meta_account(client, tenant_actors["admin"], "whatsapp", payloads.PHONE_NUMBER_ID)
    await _customer(client, supervisor, phone="+33612300010", segment="night")
    policy = {"proactive": {"quiet_hours_start": "00:00", "quiet_hours_end": "23:59"}}
    response = await client.patch(
        "/api/v1/tenant", json={"policy": policy}, headers=tenant_actors["admin"].bearer
    )
    assert response.status_code == 200, response.text
    created = await client.post(
        BROADCASTS,
        json={
            "name": "Nuit",
            "channel": "whatsapp",
            "texts": {"fr": "Bonsoir"},
            "audience": {"segment": "night"},
        },
        headers=supervisor.bearer,
    )
    assert created.status_code == 201
    await worker(db, settings, graph_client).run_until_idle()
    async with db.unit_of_work() as s:
        broadcast = await s.get(Broadcast, uuid.UUID(created.json()["id"]))
        assert broadcast is not None and broadcast.state is BroadcastState.paused
        waiting = (
            (await s.execute(select(Job).where(Job.kind == DISPATCH_KIND, Job.status == JobStatus.queued)))
            .scalars()
            .all()
        )
    assert len(waiting) == 1 and waiting[0].run_at > datetime.now(UTC)


def test_quiet_hours_across_midnight() -> None:
    policy = TenantPolicy.model_validate({"business_hours": {"timezone": "Africa/Porto-Novo"}})
    # 22:30 in Porto-Novo (UTC+1) is quiet until 08:00 the next morning; 12:00 is not quiet.
    late = quiet_until(policy, datetime(2026, 11, 23, 21, 30, tzinfo=UTC))
    assert late is not None and late.isoformat() == "2026-11-24T08:00:00+01:00"
    early = quiet_until(policy, datetime(2026, 11, 23, 5, 0, tzinfo=UTC))
    assert early is not None and early.isoformat() == "2026-11-23T08:00:00+01:00"
    assert quiet_until(policy, datetime(2026, 11, 23, 11, 0, tzinfo=UTC)) is None


async def test_bad_sends_are_refused(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], other_tenant_admin: Actor
) -> None:
    supervisor = tenant_actors["supervisor"]
    mine = await _customer(client, supervisor, phone="+33612300020")
    foreign = await _customer(client, other_tenant_admin, phone="+33612300021")
    base = {"name": "x", "texts": {"fr": "Bonjour"}, "audience": {"customer_ids": [mine]}}
    cases: list[tuple[dict[str, Any], int, str | None]] = [
        ({**base, "texts": {"en": "Hello"}}, 422, "default_text_missing"),
        ({**base, "channel": "webchat"}, 422, "channel_not_proactive"),
        ({**base, "audience": {"customer_ids": [foreign]}}, 404, "unknown_customers"),
        ({**base, "audience": {"segment": "nobody-here"}}, 422, "empty_audience"),
        ({**base, "audience": {}}, 422, None),
        ({**base, "texts": {"fr": "  "}}, 422, None),
    ]
    for body, status, code in cases:
        response = await client.post(BROADCASTS, json=body, headers=supervisor.bearer)
        assert response.status_code == status, (body, response.text)
        if code:
            assert response.json()["error"]["code"] == code
    assert (
        await client.post(BROADCASTS, json=base, headers=tenant_actors["agent"].bearer)
    ).status_code == 403
    created = (await client.post(BROADCASTS, json=base, headers=supervisor.bearer)).json()
    assert (
        await client.get(f"{BROADCASTS}/{created['id']}", headers=other_tenant_admin.bearer)
    ).status_code == 404
    cancelled = await client.post(f"{BROADCASTS}/{created['id']}/cancel", headers=supervisor.bearer)
    assert cancelled.json()["state"] == "cancelled"
