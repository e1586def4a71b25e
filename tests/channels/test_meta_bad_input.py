"""What WhatsApp and Messenger webhooks must survive: unknown and malformed events, oversized bodies,
unknown accounts, accounts of another tenant, the 24-hour window, a refused message."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import orjson
import pytest
from sqlalchemy import select, update

from allo.config import Settings
from allo.conversations.service import store_message
from allo.kit.db import Database
from allo.kit.time import utc_now
from allo.models import ChannelEvent, Conversation, Customer, Message
from allo.models.enums import AuthorKind, ChannelEventKind, ChannelEventState, MessageDelivery
from tests.channels import payloads
from tests.channels.helpers import (
    ACCOUNTS,
    Answer,
    GraphStandin,
    create_meta_account,
    hook_path,
    messages_of,
    post_signed,
    run_jobs,
    worker,
)
from tests.factories import Actor


async def _events(db: Database, account_id: str) -> list[ChannelEvent]:
    async with db.unit_of_work() as s:
        rows = await s.execute(select(ChannelEvent).where(ChannelEvent.account_id == uuid.UUID(account_id)))
        return list(rows.scalars())


async def test_unknown_events_are_stored_and_ignored(
    client: httpx.AsyncClient, db: Database, tenant_actors: dict[str, Actor]
) -> None:
    account = await create_meta_account(client, tenant_actors["admin"], "whatsapp", payloads.PHONE_NUMBER_ID)
    template_update = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": payloads.WABA_ID,
                "changes": [
                    {
                        "field": "message_template_status_update",
                        "value": {"event": "APPROVED", "message_template_name": "panne_reseau"},
                    }
                ],
            }
        ],
    }
    reaction = payloads.whatsapp(
        {
            "messaging_product": "whatsapp",
            "metadata": {"phone_number_id": payloads.PHONE_NUMBER_ID},
            "messages": [
                {
                    "from": "33612000010",
                    "id": "wamid.reaction",
                    "timestamp": "1763800000",
                    "type": "reaction",
                    "reaction": {"message_id": "wamid.x", "emoji": "👍"},
                }
            ],
        }
    )
    for body in (template_update, reaction, template_update):
        assert (await post_signed(client, hook_path(account), body)).status_code == 200
    events = await _events(db, account["id"])
    assert len(events) == 2  # the repeated template update is a replay
    assert {e.kind for e in events} == {ChannelEventKind.unknown}
    assert {e.state for e in events} == {ChannelEventState.ignored}
    assert any(e.payload["raw"].get("field") == "message_template_status_update" for e in events)


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b'{"object": "page", "entry": []}',
        b'{"object": "whatsapp_business_account"}',
        b"[1, 2, 3]",
        "\u00e9t\u00e9".encode("latin-1"),
    ],
)
async def test_malformed_payloads_are_refused_and_kept(
    client: httpx.AsyncClient, db: Database, tenant_actors: dict[str, Actor], body: bytes
) -> None:
    account = await create_meta_account(client, tenant_actors["admin"], "whatsapp", payloads.PHONE_NUMBER_ID)
    response = await post_signed(client, hook_path(account), body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_payload"
    events = await _events(db, account["id"])
    assert len(events) == 1
    assert events[0].state is ChannelEventState.failed
    assert events[0].payload["raw"]["raw"]  # the body as received, for a human to look at


async def test_oversized_unknown_and_disabled_accounts(
    client: httpx.AsyncClient, settings: Settings, tenant_actors: dict[str, Actor]
) -> None:
    admin = tenant_actors["admin"]
    account = await create_meta_account(client, admin, "whatsapp", payloads.PHONE_NUMBER_ID)
    huge = (
        b'{"object": "whatsapp_business_account", "entry": [], "pad": "'
        + b"x" * settings.max_request_bytes
        + b'"}'
    )
    assert (await post_signed(client, hook_path(account), huge)).status_code == 413
    unknown = "/api/v1/channels/hooks/00000000-0000-4000-8000-000000000000"
    assert (
        await post_signed(client, unknown, payloads.whatsapp_text("33612000011", "x", "w1"))
    ).status_code == 404
    assert (await client.post("/api/v1/channels/hooks/not-a-uuid", json={})).status_code == 422
    disabled = await client.patch(f"{ACCOUNTS}/{account['id']}", json={"active": False}, headers=admin.bearer)
    assert disabled.status_code == 200
    response = await post_signed(client, hook_path(account), payloads.whatsapp_text("33612000011", "x", "w2"))
    assert response.status_code == 404


async def test_accounts_are_admin_only_and_tenant_scoped(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], other_tenant_admin: Actor
) -> None:
    account = await create_meta_account(client, tenant_actors["admin"], "whatsapp", payloads.PHONE_NUMBER_ID)
    for role in ("agent", "supervisor"):
        assert (await client.get(ACCOUNTS, headers=tenant_actors[role].bearer)).status_code == 403
    other = other_tenant_admin.bearer
    assert (await client.get(f"{ACCOUNTS}/{account['id']}", headers=other)).status_code == 404
    assert (
        await client.patch(f"{ACCOUNTS}/{account['id']}", json={"name": "x"}, headers=other)
    ).status_code == 404
    assert (await client.delete(f"{ACCOUNTS}/{account['id']}", headers=other)).status_code == 404
    assert (await client.get(ACCOUNTS, headers=other)).json()["items"] == []


async def test_account_validation(client: httpx.AsyncClient, tenant_actors: dict[str, Actor]) -> None:
    admin = tenant_actors["admin"].bearer
    base = {"channel": "whatsapp", "provider": "whatsapp", "name": "n", "address": payloads.PHONE_NUMBER_ID}
    cases = [
        ({**base, "provider": "carrier-pigeon"}, 404, "unknown_provider"),
        ({**base, "channel": "sms"}, 422, "provider_channel_mismatch"),
        ({**base, "secrets": {"app_secret": "short"}}, 422, "invalid_account"),
        ({**base, "settings": {"api_base_url": "ftp://x"}, "secrets": {}}, 422, "invalid_account"),
        ({**base, "surprise": 1}, 422, None),
    ]
    for body, status, code in cases:
        response = await client.post(ACCOUNTS, json=body, headers=admin)
        assert response.status_code == status, (body, response.text)
        if code:
            assert response.json()["error"]["code"] == code


async def test_secrets_are_replaced_one_by_one_and_never_shown(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor]
) -> None:
    admin = tenant_actors["admin"].bearer
    account = await create_meta_account(client, tenant_actors["admin"], "whatsapp", payloads.PHONE_NUMBER_ID)
    response = await client.patch(
        f"{ACCOUNTS}/{account['id']}", json={"secrets": {"access_token": "EAAG-rotated-token"}}, headers=admin
    )
    assert response.status_code == 200
    assert response.json()["secrets_set"] == ["access_token", "app_secret", "verify_token"]
    assert "rotated" not in response.text
    removed = await client.patch(
        f"{ACCOUNTS}/{account['id']}", json={"secrets": {"access_token": ""}}, headers=admin
    )
    assert removed.status_code == 422  # the access token is required


async def _a_conversation_with_reply(
    client: httpx.AsyncClient,
    db: Database,
    settings: Settings,
    admin: Actor,
    http: httpx.AsyncClient,
    wa_id: str,
) -> Conversation:
    account = await create_meta_account(client, admin, "whatsapp", payloads.PHONE_NUMBER_ID)
    payload = payloads.whatsapp_text(wa_id, "Bonjour", f"wamid.{wa_id}")
    assert (await post_signed(client, hook_path(account), payload)).status_code == 200
    await run_jobs(db, worker(db, settings, http), rounds=3)
    async with db.unit_of_work() as s:
        customer = (
            await s.execute(
                select(Customer).where(Customer.tenant_id == admin.tenant_id, Customer.phone == f"+{wa_id}")
            )
        ).scalar_one()
        return (
            await s.execute(select(Conversation).where(Conversation.customer_id == customer.id))
        ).scalar_one()


async def test_outside_the_24_hour_window_only_a_template_goes_out(
    client: httpx.AsyncClient,
    db: Database,
    settings: Settings,
    tenant_actors: dict[str, Actor],
    graph: GraphStandin,
    graph_client: httpx.AsyncClient,
) -> None:
    admin = tenant_actors["admin"]
    conversation = await _a_conversation_with_reply(client, db, settings, admin, graph_client, "33612000020")
    async with db.unit_of_work() as s:
        await s.execute(
            update(Message)
            .where(Message.conversation_id == conversation.id)
            .values(created_at=utc_now() - timedelta(hours=25))
        )
    sent_before = len(graph.received)
    async with db.unit_of_work() as s:
        fresh = await s.get(Conversation, conversation.id)
        assert fresh is not None
        late = await store_message(s, fresh, author_kind=AuthorKind.bot, body="Votre ligne est rétablie.")
        template = await store_message(
            s,
            fresh,
            author_kind=AuthorKind.bot,
            body="Votre ligne est rétablie.",
            meta={"template": {"name": "ligne_retablie", "language": "fr", "parameters": ["Awa"]}},
        )
        late_id, template_id = late.id, template.id
    await run_jobs(db, worker(db, settings, graph_client))
    async with db.unit_of_work() as s:
        late_row, template_row = await s.get(Message, late_id), await s.get(Message, template_id)
        assert late_row is not None and template_row is not None
        assert late_row.delivery_status is MessageDelivery.failed
        assert (late_row.delivery_error or "").startswith("window_closed")
        assert template_row.delivery_status is MessageDelivery.sent
    assert len(graph.received) == sent_before + 1
    sent = graph.received[-1]
    assert sent["type"] == "template"
    assert sent["template"]["name"] == "ligne_retablie"
    assert sent["template"]["components"][0]["parameters"] == [{"type": "text", "text": "Awa"}]


async def test_a_refused_message_is_failed_not_retried(
    client: httpx.AsyncClient,
    db: Database,
    settings: Settings,
    tenant_actors: dict[str, Actor],
    graph: GraphStandin,
    graph_client: httpx.AsyncClient,
) -> None:
    admin = tenant_actors["admin"]
    graph.failures = [Answer(400, {"error": {"message": "(#100) Invalid parameter", "code": 100}})] * 5
    conversation = await _a_conversation_with_reply(client, db, settings, admin, graph_client, "33612000021")
    replies = [m for m in await messages_of(db, conversation.id) if m.author_kind is AuthorKind.bot]
    assert replies[0].delivery_status is MessageDelivery.failed
    assert "Invalid parameter" in (replies[0].delivery_error or "")
    assert len(graph.tokens) == len(replies)  # one call each, no retry


async def test_a_provider_down_for_good_ends_in_the_dead_letter_and_a_failed_message(
    client: httpx.AsyncClient,
    db: Database,
    settings: Settings,
    tenant_actors: dict[str, Actor],
    graph: GraphStandin,
    graph_client: httpx.AsyncClient,
) -> None:
    admin = tenant_actors["admin"]
    graph.failures = [Answer(503)] * 100
    conversation = await _a_conversation_with_reply(client, db, settings, admin, graph_client, "33612000022")
    await run_jobs(db, worker(db, settings, graph_client), rounds=10)
    replies = [m for m in await messages_of(db, conversation.id) if m.author_kind is AuthorKind.bot]
    assert replies and all(m.delivery_status is MessageDelivery.failed for m in replies)
    assert all((m.delivery_error or "").startswith("gave up") for m in replies)
    assert graph.received == []


async def test_interactive_replies_media_and_options(
    client: httpx.AsyncClient,
    db: Database,
    settings: Settings,
    tenant_actors: dict[str, Actor],
    graph: GraphStandin,
    graph_client: httpx.AsyncClient,
) -> None:
    admin = tenant_actors["admin"]
    account = await create_meta_account(client, admin, "whatsapp", payloads.PHONE_NUMBER_ID)
    for body in (
        payloads.whatsapp_image("33612000030", "wamid.image"),
        payloads.whatsapp_button_reply("33612000030", "wamid.button", "yes", "Oui"),
    ):
        assert (await post_signed(client, hook_path(account), body)).status_code == 200
    await run_jobs(db, worker(db, settings, graph_client), rounds=3)
    async with db.unit_of_work() as s:
        image = (
            await s.execute(select(Message).where(Message.channel_message_id == "wamid.image"))
        ).scalar_one()
        button = (
            await s.execute(select(Message).where(Message.channel_message_id == "wamid.button"))
        ).scalar_one()
    assert image.body == "ma facture"
    assert image.meta["media"] == [
        {"kind": "image", "reference": "1479537139650973", "mime_type": "image/jpeg", "caption": "ma facture"}
    ]
    assert button.meta["option"] == "yes" and button.body == "Oui"
    assert image.conversation_id == button.conversation_id
    # What the bot offered as options went out as buttons or a list, never as bare text.
    for sent in graph.received:
        if sent["type"] == "interactive":
            assert sent["interactive"]["type"] in ("button", "list")


def test_signature_header_shape() -> None:
    from allo.channels.base import hub_signature_valid

    body = orjson.dumps({"a": 1})
    from tests.channels.helpers import hub_signature

    assert hub_signature_valid("s3cret-key", body, hub_signature(body, "s3cret-key"))
    assert not hub_signature_valid(
        "s3cret-key", body, hub_signature(body, "s3cret-key").replace("sha256=", "sha1=")
    )
    assert not hub_signature_valid("s3cret-key", body + b" ", hub_signature(body, "s3cret-key"))
    assert not hub_signature_valid("s3cret-key", body, None)


async def test_a_sender_that_is_no_phone_number_fails_its_event_only(
    client: httpx.AsyncClient,
    db: Database,
    settings: Settings,
    tenant_actors: dict[str, Actor],
    graph_client: httpx.AsyncClient,
) -> None:
    account = await create_meta_account(client, tenant_actors["admin"], "whatsapp", payloads.PHONE_NUMBER_ID)
    bad = payloads.whatsapp_text("12", "Bonjour", "wamid.badnumber")
    good = payloads.whatsapp_text("33612000040", "Bonjour", "wamid.goodnumber")
    for body in (bad, good):
        assert (await post_signed(client, hook_path(account), body)).status_code == 200
    await run_jobs(db, worker(db, settings, graph_client), rounds=3)
    events = {e.external_id: e for e in await _events(db, account["id"])}
    assert events["wamid.badnumber"].state is ChannelEventState.failed
    assert (events["wamid.badnumber"].error or "").startswith("invalid_phone")
    assert events["wamid.goodnumber"].state is ChannelEventState.processed
