"""One customer, every channel: matching by phone and e-mail, merging duplicates, the timeline."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy import select

from allo.conversations.service import store_message
from allo.customers import service
from allo.kit.db import Database
from allo.models import AuditEvent, Conversation, Customer, CustomerIdentity
from allo.models.enums import AuthorKind, Channel
from tests.factories import Actor

CUSTOMERS = "/api/v1/customers"


async def _customer(client: httpx.AsyncClient, actor: Actor, **fields: object) -> dict[str, object]:
    response = await client.post(CUSTOMERS, json=fields, headers=actor.bearer)
    assert response.status_code == 201, response.text
    data: dict[str, object] = response.json()
    return data


async def _conversation(db: Database, customer_id: object, channel: Channel, text: str) -> Conversation:
    async with db.unit_of_work() as s:
        customer = await s.get(Customer, uuid.UUID(str(customer_id)))
        assert customer is not None
        conversation = Conversation(tenant_id=customer.tenant_id, customer_id=customer.id, channel=channel)
        s.add(conversation)
        await s.flush()
        await store_message(s, conversation, author_kind=AuthorKind.customer, body=text)
        return conversation


async def test_the_same_phone_on_sms_and_whatsapp_is_one_customer(
    db: Database, tenant_actors: dict[str, Actor]
) -> None:
    tenant_id = tenant_actors["admin"].tenant_id
    async with db.unit_of_work() as s:
        by_sms, sms_address = await service.customer_for_contact(s, tenant_id, Channel.sms, "06 12 34 56 78")
        by_whatsapp, wa_address = await service.customer_for_contact(
            s, tenant_id, Channel.whatsapp, "33612345678"
        )
        by_mail, mail_address = await service.customer_for_contact(
            s, tenant_id, Channel.email, "Awa.Diallo@Example.org", name="Awa Diallo"
        )
        again, _ = await service.customer_for_contact(s, tenant_id, Channel.email, "awa.diallo@example.org")
        identities = (
            (await s.execute(select(CustomerIdentity).where(CustomerIdentity.tenant_id == tenant_id)))
            .scalars()
            .all()
        )
    assert sms_address == wa_address == "+33612345678"
    assert by_sms.id == by_whatsapp.id
    assert mail_address == "awa.diallo@example.org" and again.id == by_mail.id
    assert by_mail.name == "Awa Diallo"
    assert {(i.channel, i.external_id) for i in identities} == {
        (Channel.sms, "+33612345678"),
        (Channel.whatsapp, "+33612345678"),
        (Channel.email, "awa.diallo@example.org"),
    }


async def test_merge_keeps_every_conversation_and_fills_blanks(
    client: httpx.AsyncClient, db: Database, tenant_actors: dict[str, Actor]
) -> None:
    supervisor = tenant_actors["supervisor"]
    phone_record = await _customer(client, supervisor, phone="+33612345679", name="A. Diallo")
    mail_record = await _customer(
        client,
        supervisor,
        email="awa@example.org",
        vip=True,
        segment="business",
        identities=[{"channel": "messenger", "external_id": "psid-1"}],
    )
    await _conversation(db, phone_record["id"], Channel.sms, "Pas de réseau")
    await _conversation(db, mail_record["id"], Channel.email, "Facture")
    response = await client.post(
        f"{CUSTOMERS}/{phone_record['id']}/merge",
        json={"duplicate_id": mail_record["id"]},
        headers=supervisor.bearer,
    )
    assert response.status_code == 200, response.text
    merged = response.json()
    assert merged["phone"] == "+33612345679" and merged["email"] == "awa@example.org"
    assert merged["vip"] is True and merged["segment"] == "business" and merged["name"] == "A. Diallo"
    assert [(i["channel"], i["external_id"]) for i in merged["identities"]] == [("messenger", "psid-1")]
    assert (
        await client.get(f"{CUSTOMERS}/{mail_record['id']}", headers=supervisor.bearer)
    ).status_code == 404
    timeline = (
        await client.get(f"{CUSTOMERS}/{phone_record['id']}/timeline", headers=supervisor.bearer)
    ).json()
    assert {item["channel"] for item in timeline["items"]} == {"sms", "email"}
    async with db.unit_of_work() as s:
        audit = (
            (await s.execute(select(AuditEvent).where(AuditEvent.action == "customer.merge"))).scalars().all()
        )
    assert any(a.data.get("merged") == mail_record["id"] for a in audit)


async def test_merge_refusals(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], other_tenant_admin: Actor
) -> None:
    supervisor, agent = tenant_actors["supervisor"], tenant_actors["agent"]
    one = await _customer(client, supervisor, name="One")
    two = await _customer(client, supervisor, name="Two")
    foreign = await _customer(client, other_tenant_admin, name="Elsewhere")
    url = f"{CUSTOMERS}/{one['id']}/merge"
    assert (await client.post(url, json={"duplicate_id": two["id"]}, headers=agent.bearer)).status_code == 403
    same = await client.post(url, json={"duplicate_id": one["id"]}, headers=supervisor.bearer)
    assert same.status_code == 422 and same.json()["error"]["code"] == "same_customer"
    assert (
        await client.post(url, json={"duplicate_id": foreign["id"]}, headers=supervisor.bearer)
    ).status_code == 404
    unknown = await client.post(url, json={"duplicate_id": str(uuid.uuid4())}, headers=supervisor.bearer)
    assert unknown.status_code == 404
    assert (await client.post(url, json={"duplicate_id": "x"}, headers=supervisor.bearer)).status_code == 422
    assert (await client.get(f"{CUSTOMERS}/{two['id']}", headers=supervisor.bearer)).status_code == 200


async def test_the_timeline_pages_through_every_channel_without_gaps(
    client: httpx.AsyncClient, db: Database, tenant_actors: dict[str, Actor], other_tenant_admin: Actor
) -> None:
    agent = tenant_actors["agent"]
    customer = await _customer(client, agent, phone="+33612345680")
    for n, channel in enumerate([Channel.webchat, Channel.sms, Channel.whatsapp, Channel.email] * 3):
        await _conversation(db, customer["id"], channel, f"message {n}")
    url = f"{CUSTOMERS}/{customer['id']}/timeline"
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 5, **({"cursor": cursor} if cursor else {})}
        page = (await client.get(url, params=params, headers=agent.bearer)).json()
        seen += [item["text"] for item in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [f"message {n}" for n in reversed(range(12))]
    only_sms = (await client.get(url, params={"channel": "sms"}, headers=agent.bearer)).json()
    assert [i["text"] for i in only_sms["items"]] == ["message 9", "message 5", "message 1"]
    assert (await client.get(url, headers=other_tenant_admin.bearer)).status_code == 404
    assert (await client.get(url, params={"cursor": "garbage"}, headers=agent.bearer)).status_code == 400
