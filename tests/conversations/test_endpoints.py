"""Conversations and their messages: authorship, ordering, idempotency, size limits and live events."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from allo.config import Settings
from allo.conversations.repository import MessageRepository
from allo.kit.bus import Bus
from allo.kit.db import Database
from allo.models import Conversation, Message
from tests.api_helpers import assert_api_error, count_rows
from tests.event_capture import capture_events
from tests.factories import Actor, create_conversation, create_customer, login

CONVERSATIONS = "/api/v1/conversations"


def messages_url(conversation: dict[str, Any]) -> str:
    return f"{CONVERSATIONS}/{conversation['id']}/messages"


async def open_one(client: httpx.AsyncClient, actor: Actor, channel: str = "webchat") -> dict[str, Any]:
    customer = await create_customer(client, actor)
    return await create_conversation(client, actor, customer["id"], channel)


async def post(
    client: httpx.AsyncClient, conversation: dict[str, Any], headers: dict[str, str], **body: Any
) -> httpx.Response:
    return await client.post(messages_url(conversation), json=body, headers=headers)


async def post_ok(
    client: httpx.AsyncClient, conversation: dict[str, Any], headers: dict[str, str], **body: Any
) -> dict[str, Any]:
    response = await post(client, conversation, headers, **body)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    return data


async def stored_messages(db: Database, conversation: dict[str, Any]) -> list[Message]:
    async with db.session(write=False) as s:
        stmt = select(Message).where(Message.conversation_id == uuid.UUID(conversation["id"]))
        return list((await s.execute(stmt)).scalars())


async def message_count(db: Database, tenant_id: uuid.UUID) -> int:
    return await count_rows(db, Message, Message.tenant_id == tenant_id)


# --- opening and reading ------------------------------------------------------------------------


async def test_open_a_conversation(client: httpx.AsyncClient, tenant_actors: dict[str, Actor]) -> None:
    agent = tenant_actors["agent"]
    customer = await create_customer(client, agent, preferred_language="en")
    response = await client.post(
        CONVERSATIONS,
        json={"customer_id": customer["id"], "channel": "sms", "subject": "Roaming"},
        headers=agent.bearer,
    )
    assert response.status_code == 201, response.text
    data = response.json()
    assert data["customer_id"] == customer["id"]
    assert data["channel"] == "sms"
    assert data["status"] == "bot"
    assert data["language"] == "en", "the customer's language by default"
    assert data["subject"] == "Roaming"
    assert data["first_agent_response_at"] is None
    assert data["last_message_at"] is None

    read = await client.get(f"{CONVERSATIONS}/{data['id']}", headers=agent.bearer)
    assert read.status_code == 200, read.text
    assert read.json()["messages"] == []


async def test_open_a_conversation_for_an_unknown_customer(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], other_tenant_admin: Actor
) -> None:
    theirs = await create_customer(client, other_tenant_admin)
    for customer_id in (str(uuid.uuid4()), theirs["id"]):
        response = await client.post(
            CONVERSATIONS,
            json={"customer_id": customer_id, "channel": "webchat"},
            headers=tenant_actors["agent"].bearer,
        )
        assert_api_error(response, 404, "not_found")


async def test_a_customer_message_is_inbound(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor]
) -> None:
    agent = tenant_actors["agent"]
    conversation = await open_one(client, agent, "whatsapp")
    message = await post_ok(client, conversation, agent.bearer, body="Bonjour, ma box ne marche plus")
    assert message["conversation_id"] == conversation["id"]
    assert message["direction"] == "inbound"
    assert message["author_kind"] == "customer"
    assert message["author_user_id"] is None
    assert message["channel"] == "whatsapp"
    assert message["body"] == "Bonjour, ma box ne marche plus"

    read = (await client.get(f"{CONVERSATIONS}/{conversation['id']}", headers=agent.bearer)).json()
    assert read["last_message_at"] == message["created_at"]
    assert read["first_agent_response_at"] is None


async def test_an_agent_message_is_outbound_and_signed_by_the_logged_in_user(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor]
) -> None:
    agent = tenant_actors["agent"]
    conversation = await open_one(client, agent)
    csrf = await login(client, agent)
    message = await post_ok(client, conversation, csrf, body="Je regarde ça.", author_kind="agent")
    assert message["direction"] == "outbound"
    assert message["author_kind"] == "agent"
    assert message["author_user_id"] == str(agent.user_id)


async def test_agent_messages_need_a_user_not_an_api_key(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], db: Database
) -> None:
    agent = tenant_actors["agent"]
    conversation = await open_one(client, agent)
    response = await post(client, conversation, agent.bearer, body="Hello", author_kind="agent")
    assert_api_error(response, 403, "user_required")
    assert await stored_messages(db, conversation) == []


@pytest.mark.parametrize("credentials", ["api key", "session"])
async def test_nobody_writes_bot_messages_through_the_api(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], db: Database, credentials: str
) -> None:
    admin = tenant_actors["admin"]
    conversation = await open_one(client, admin)
    headers = admin.bearer if credentials == "api key" else await login(client, admin)
    response = await post(client, conversation, headers, body="I am a bot", author_kind="bot")
    assert_api_error(response, 403, "author_not_allowed")
    assert await stored_messages(db, conversation) == []


async def test_messages_are_read_oldest_first(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor]
) -> None:
    agent = tenant_actors["agent"]
    conversation = await open_one(client, agent)
    other = await open_one(client, agent)
    await post_ok(client, other, agent.bearer, body="elsewhere")
    csrf = await login(client, agent)
    bodies = ["first", "second", "third", "fourth"]
    for index, body in enumerate(bodies):
        await post_ok(client, conversation, csrf, body=body, author_kind="agent" if index % 2 else "customer")

    detail = await client.get(f"{CONVERSATIONS}/{conversation['id']}", headers=agent.bearer)
    assert [m["body"] for m in detail.json()["messages"]] == bodies
    listed = await client.get(messages_url(conversation), headers=agent.bearer)
    assert listed.status_code == 200, listed.text
    assert [m["body"] for m in listed.json()] == bodies
    assert [m["author_kind"] for m in listed.json()] == ["customer", "agent", "customer", "agent"]


async def test_first_agent_response_is_the_first_agent_message_only(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor]
) -> None:
    agent = tenant_actors["agent"]
    conversation = await open_one(client, agent)
    await post_ok(client, conversation, agent.bearer, body="Hello?")
    read = (await client.get(f"{CONVERSATIONS}/{conversation['id']}", headers=agent.bearer)).json()
    assert read["first_agent_response_at"] is None

    csrf = await login(client, agent)
    first = await post_ok(client, conversation, csrf, body="Hi, how can I help?", author_kind="agent")
    second = await post_ok(client, conversation, csrf, body="Still there?", author_kind="agent")
    assert datetime.fromisoformat(second["created_at"]) > datetime.fromisoformat(first["created_at"])
    read = (await client.get(f"{CONVERSATIONS}/{conversation['id']}", headers=agent.bearer)).json()
    assert read["first_agent_response_at"] == first["created_at"]
    assert read["last_message_at"] == second["created_at"]


# --- listing ------------------------------------------------------------------------------------


async def test_list_filters(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], other_tenant_admin: Actor
) -> None:
    agent = tenant_actors["agent"]
    alice = await create_customer(client, agent, name="Alice")
    bob = await create_customer(client, agent, name="Bob")
    alice_sms = await create_conversation(client, agent, alice["id"], "sms")
    alice_chat = await create_conversation(client, agent, alice["id"], "webchat")
    bob_sms = await create_conversation(client, agent, bob["id"], "sms")
    await open_one(client, other_tenant_admin, "sms")

    async def ids(**params: str) -> set[str]:
        response = await client.get(CONVERSATIONS, params=params, headers=agent.bearer)
        assert response.status_code == 200, response.text
        return {c["id"] for c in response.json()["items"]}

    assert await ids() == {alice_sms["id"], alice_chat["id"], bob_sms["id"]}
    assert await ids(channel="sms") == {alice_sms["id"], bob_sms["id"]}
    assert await ids(customer_id=alice["id"]) == {alice_sms["id"], alice_chat["id"]}
    assert await ids(customer_id=alice["id"], channel="sms") == {alice_sms["id"]}
    assert await ids(status="bot") == {alice_sms["id"], alice_chat["id"], bob_sms["id"]}
    assert await ids(status="assigned") == set()
    assert await ids(assigned_agent_id=str(agent.user_id)) == set()
    assert_api_error(await client.get(CONVERSATIONS, params={"channel": "pigeon"}, headers=agent.bearer), 422)


async def test_list_pages_through_everything_newest_first(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor]
) -> None:
    agent = tenant_actors["agent"]
    customer = await create_customer(client, agent)
    opened = [(await create_conversation(client, agent, customer["id"]))["id"] for _ in range(5)]

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, str | int] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        response = await client.get(CONVERSATIONS, params=params, headers=agent.bearer)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= 2
        seen.extend(c["id"] for c in page["items"])
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == list(reversed(opened))
    assert_api_error(await client.get(CONVERSATIONS, params={"cursor": "???"}, headers=agent.bearer), 400)
    assert_api_error(await client.get(CONVERSATIONS, params={"limit": 0}, headers=agent.bearer), 422)


# --- channel message ids ------------------------------------------------------------------------


async def test_a_channel_message_id_is_accepted_once(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], db: Database
) -> None:
    agent = tenant_actors["agent"]
    conversation = await open_one(client, agent, "sms")
    first = await post_ok(client, conversation, agent.bearer, body="STOP", channel_message_id="SM123")
    assert first["channel_message_id"] == "SM123"

    replay = await post(client, conversation, agent.bearer, body="STOP", channel_message_id="SM123")
    error = assert_api_error(replay, 409, "duplicate_message")
    assert error["details"]["message_id"] == first["id"]
    assert error["details"]["channel_message_id"] == "SM123"
    stored = await stored_messages(db, conversation)
    assert [m.id for m in stored] == [uuid.UUID(first["id"])]


async def test_a_channel_message_id_is_unique_across_the_channels_conversations(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], db: Database
) -> None:
    agent = tenant_actors["agent"]
    one = await open_one(client, agent, "sms")
    another = await open_one(client, agent, "sms")
    first = await post_ok(client, one, agent.bearer, body="hi", channel_message_id="SM1")
    error = assert_api_error(
        await post(client, another, agent.bearer, body="hi", channel_message_id="SM1"),
        409,
        "duplicate_message",
    )
    assert error["details"]["message_id"] == first["id"]
    assert await stored_messages(db, another) == []


async def test_the_same_channel_message_id_on_another_channel_is_another_message(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor]
) -> None:
    agent = tenant_actors["agent"]
    await post_ok(
        client, await open_one(client, agent, "sms"), agent.bearer, body="hi", channel_message_id="M1"
    )
    await post_ok(
        client, await open_one(client, agent, "whatsapp"), agent.bearer, body="hi", channel_message_id="M1"
    )


async def test_the_same_channel_message_id_in_another_tenant_is_accepted(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], other_tenant_admin: Actor
) -> None:
    agent = tenant_actors["agent"]
    ours = await post_ok(
        client, await open_one(client, agent, "sms"), agent.bearer, body="a", channel_message_id="X"
    )
    theirs = await post_ok(
        client,
        await open_one(client, other_tenant_admin, "sms"),
        other_tenant_admin.bearer,
        body="b",
        channel_message_id="X",
    )
    assert ours["id"] != theirs["id"]


async def test_a_duplicate_that_slips_past_the_check_is_still_refused_with_the_existing_id(
    client: httpx.AsyncClient,
    tenant_actors: dict[str, Actor],
    db: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two deliveries racing: the second one's lookup ran before the first one's insert."""
    agent = tenant_actors["agent"]
    conversation = await open_one(client, agent, "sms")
    first = await post_ok(client, conversation, agent.bearer, body="hi", channel_message_id="RACE")

    original = MessageRepository.find_by_channel_id
    calls: list[str] = []

    async def lookup_before_the_other_insert(
        self: MessageRepository, channel: Any, channel_message_id: str
    ) -> Message | None:
        calls.append(channel_message_id)
        if len(calls) == 1:
            return None
        return await original(self, channel, channel_message_id)

    monkeypatch.setattr(MessageRepository, "find_by_channel_id", lookup_before_the_other_insert)
    response = await post(client, conversation, agent.bearer, body="hi", channel_message_id="RACE")
    error = assert_api_error(response, 409, "duplicate_message")
    assert error["details"] is not None
    assert error["details"]["message_id"] == first["id"]
    assert [m.id for m in await stored_messages(db, conversation)] == [uuid.UUID(first["id"])]


# --- bodies -------------------------------------------------------------------------------------


async def test_a_body_of_exactly_the_byte_limit_is_accepted(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], settings: Settings
) -> None:
    agent = tenant_actors["agent"]
    conversation = await open_one(client, agent)
    limit = settings.max_message_bytes
    assert limit == 64 * 1024
    body = "é" * (limit // 2)
    assert len(body.encode()) == limit
    message = await post_ok(client, conversation, agent.bearer, body=body)
    assert message["body"] == body


@pytest.mark.parametrize(
    "make_body",
    [
        pytest.param(lambda limit: "a" * (limit + 1), id="ascii"),
        pytest.param(lambda limit: "é" * (limit // 2) + "a", id="two-byte characters"),
        # Fewer characters than the limit, but more bytes.
        pytest.param(lambda limit: "a" * (limit - 1) + "é", id="characters under, bytes over"),
        pytest.param(lambda limit: "🙂" * (limit // 4) + "a", id="four-byte characters"),
    ],
)
async def test_a_body_one_byte_over_the_limit_is_refused(
    client: httpx.AsyncClient,
    tenant_actors: dict[str, Actor],
    settings: Settings,
    db: Database,
    make_body: Any,
) -> None:
    agent = tenant_actors["agent"]
    conversation = await open_one(client, agent)
    limit = settings.max_message_bytes
    body: str = make_body(limit)
    assert len(body.encode()) == limit + 1
    error = assert_api_error(
        await post(client, conversation, agent.bearer, body=body), 413, "message_too_large"
    )
    assert error["details"] == {"size": limit + 1, "limit": limit}
    assert await stored_messages(db, conversation) == []


@pytest.mark.parametrize("body", ["", " ", "\n\t  \r\n", "\u00a0\u2003"])
async def test_an_empty_or_blank_body_is_refused(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], db: Database, body: str
) -> None:
    agent = tenant_actors["agent"]
    conversation = await open_one(client, agent)
    assert_api_error(await post(client, conversation, agent.bearer, body=body), 422)
    assert await stored_messages(db, conversation) == []


async def test_a_body_with_a_nul_character_is_refused(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], db: Database
) -> None:
    agent = tenant_actors["agent"]
    conversation = await open_one(client, agent)
    assert_api_error(await post(client, conversation, agent.bearer, body="a\x00b"), 422, "invalid_text")
    assert await stored_messages(db, conversation) == []


async def test_a_lone_surrogate_is_refused(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], db: Database
) -> None:
    agent = tenant_actors["agent"]
    conversation = await open_one(client, agent)
    raw = b'{"body": "broken \\ud800 surrogate"}'
    response = await client.post(
        messages_url(conversation), content=raw, headers={**agent.bearer, "Content-Type": "application/json"}
    )
    assert_api_error(response, 422)
    assert await stored_messages(db, conversation) == []


async def test_a_request_over_the_global_limit_is_refused_by_its_content_length(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], settings: Settings, db: Database
) -> None:
    agent = tenant_actors["agent"]
    conversation = await open_one(client, agent)
    raw = b'{"body": "' + b"a" * settings.max_request_bytes + b'"}'
    response = await client.post(
        messages_url(conversation), content=raw, headers={**agent.bearer, "Content-Type": "application/json"}
    )
    error = assert_api_error(response, 413, "payload_too_large")
    assert error["details"] == {"limit": settings.max_request_bytes}
    assert await message_count(db, agent.tenant_id) == 0


async def test_a_streamed_request_over_the_global_limit_is_refused(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], settings: Settings, db: Database
) -> None:
    agent = tenant_actors["agent"]
    conversation = await open_one(client, agent)
    chunk = b"a" * (64 * 1024)
    chunks = settings.max_request_bytes // len(chunk) + 1
    sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b'{"body": "'
        for _ in range(chunks):
            sent += 1
            yield chunk
        yield b'"}'

    request = client.build_request(
        "POST",
        messages_url(conversation),
        content=body(),
        headers={**agent.bearer, "Content-Type": "application/json"},
    )
    assert "content-length" not in request.headers
    response = await client.send(request)
    assert_api_error(response, 413, "payload_too_large")
    assert await message_count(db, agent.tenant_id) == 0


async def test_a_request_just_under_the_global_limit_reaches_the_message_limit(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], settings: Settings
) -> None:
    """Between the two limits, the message's own limit answers, with its own code."""
    agent = tenant_actors["agent"]
    conversation = await open_one(client, agent)
    raw = b'{"body": "' + b"a" * (settings.max_request_bytes - 20) + b'"}'
    assert len(raw) <= settings.max_request_bytes
    response = await client.post(
        messages_url(conversation), content=raw, headers={**agent.bearer, "Content-Type": "application/json"}
    )
    assert_api_error(response, 413, "message_too_large")


async def test_invalid_utf8_in_a_json_body_is_a_400(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], db: Database
) -> None:
    agent = tenant_actors["agent"]
    conversation = await open_one(client, agent)
    raw = b'{"body": "caf\xe9 \xff\xfe"}'
    response = await client.post(
        messages_url(conversation), content=raw, headers={**agent.bearer, "Content-Type": "application/json"}
    )
    assert_api_error(response, 400)
    assert await stored_messages(db, conversation) == []


@pytest.mark.parametrize("raw", [b'{"body": "hi"', b"{body: 'hi'}", b"not json", b'{"body": "hi"} trailing'])
async def test_malformed_json_is_a_400(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], db: Database, raw: bytes
) -> None:
    agent = tenant_actors["agent"]
    conversation = await open_one(client, agent)
    response = await client.post(
        messages_url(conversation), content=raw, headers={**agent.bearer, "Content-Type": "application/json"}
    )
    assert_api_error(response, 400, "malformed_json")
    assert await stored_messages(db, conversation) == []


async def test_unknown_fields_are_refused(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], db: Database
) -> None:
    agent = tenant_actors["agent"]
    conversation = await open_one(client, agent)
    error = assert_api_error(
        await post(client, conversation, agent.bearer, body="hi", direction="outbound"),
        422,
        "validation_error",
    )
    assert ["body", "direction"] in [d["loc"] for d in error["details"]]
    assert await stored_messages(db, conversation) == []


async def test_a_message_to_an_unknown_conversation(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor]
) -> None:
    agent = tenant_actors["agent"]
    response = await client.post(
        f"{CONVERSATIONS}/{uuid.uuid4()}/messages", json={"body": "hi"}, headers=agent.bearer
    )
    assert_api_error(response, 404, "not_found")


# --- live events --------------------------------------------------------------------------------


async def test_opening_and_posting_publish_events(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], bus: Bus, connection: AsyncConnection
) -> None:
    agent = tenant_actors["agent"]
    customer = await create_customer(client, agent)
    async with capture_events(bus, connection, agent.tenant_id) as captured:
        conversation = await create_conversation(client, agent, customer["id"])
        message = await post_ok(client, conversation, agent.bearer, body="hello")
        assert captured.types == ["conversation.created", "message.created"]
        created, posted = captured.events
    assert created.data == {"conversation_id": conversation["id"]}
    assert posted.data == {
        "conversation_id": conversation["id"],
        "message_id": message["id"],
        "author_kind": "customer",
    }


async def test_events_go_only_to_their_tenant(
    client: httpx.AsyncClient,
    tenant_actors: dict[str, Actor],
    other_tenant_admin: Actor,
    bus: Bus,
    connection: AsyncConnection,
) -> None:
    agent = tenant_actors["agent"]
    conversation = await open_one(client, agent)
    async with capture_events(bus, connection, other_tenant_admin.tenant_id) as captured:
        await post_ok(client, conversation, agent.bearer, body="hello")
        assert captured.events == []


async def test_a_failed_request_publishes_nothing(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], bus: Bus, connection: AsyncConnection
) -> None:
    agent = tenant_actors["agent"]
    conversation = await open_one(client, agent, "sms")
    await post_ok(client, conversation, agent.bearer, body="hi", channel_message_id="SM9")
    async with capture_events(bus, connection, agent.tenant_id) as captured:
        assert_api_error(
            await post(client, conversation, agent.bearer, body="hi", channel_message_id="SM9"), 409
        )
        assert_api_error(await post(client, conversation, agent.bearer, body="a" * 70_000), 413)
        assert_api_error(await post(client, conversation, agent.bearer, body="x", author_kind="agent"), 403)
        assert captured.events == []


async def test_an_event_queued_by_a_request_that_then_fails_is_dropped(
    client: httpx.AsyncClient,
    tenant_actors: dict[str, Actor],
    bus: Bus,
    connection: AsyncConnection,
    db: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """conversation.created is queued before the audit record: if that fails, the event must go too."""
    from allo.conversations import service
    from allo.kit.errors import Conflict

    agent = tenant_actors["agent"]
    customer = await create_customer(client, agent)

    async def failing_record(*_args: Any, **_kwargs: Any) -> None:
        raise Conflict("The audit log refused the write.", code="audit_failed")

    monkeypatch.setattr(service, "record_by", failing_record)
    async with capture_events(bus, connection, agent.tenant_id) as captured:
        response = await client.post(
            CONVERSATIONS, json={"customer_id": customer["id"], "channel": "webchat"}, headers=agent.bearer
        )
        assert_api_error(response, 409, "audit_failed")
        assert captured.events == []
    async with db.session(write=False) as s:
        count = await s.scalar(
            select(func.count()).select_from(Conversation).where(Conversation.tenant_id == agent.tenant_id)
        )
    assert count == 0


async def test_events_are_published_after_the_commit(
    client: httpx.AsyncClient,
    tenant_actors: dict[str, Actor],
    bus: Bus,
    connection: AsyncConnection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At publication the request's transaction (a SAVEPOINT of the test's one) is already released."""
    if connection.dialect.name == "postgresql":
        pytest.skip("on PostgreSQL the database delivers NOTIFY at commit; nothing to observe in-process")
    agent = tenant_actors["agent"]
    conversation = await open_one(client, agent)
    sync_connection = connection.sync_connection
    assert sync_connection is not None
    in_transaction_at_publication: list[bool] = []
    publish = bus.publish_local

    def spying_publish(ev: Any) -> None:
        in_transaction_at_publication.append(sync_connection.in_nested_transaction())
        publish(ev)

    monkeypatch.setattr(bus, "publish_local", spying_publish)
    await post_ok(client, conversation, agent.bearer, body="hello")
    assert in_transaction_at_publication == [False]


async def test_posted_messages_are_timestamped_in_utc(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor]
) -> None:
    agent = tenant_actors["agent"]
    message = await post_ok(client, await open_one(client, agent), agent.bearer, body="hi")
    created = datetime.fromisoformat(message["created_at"])
    assert created.utcoffset() is not None
    assert created.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
