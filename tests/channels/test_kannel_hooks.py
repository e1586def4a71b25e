"""The Kannel adapter through the hook endpoint and the send job, without the Kannel binaries: the requests
are the ones Kannel's get-url and dlr-url make, and sendsms is a stand-in answering as smsbox 1.4.5 does."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from sqlalchemy import select
from typer.testing import CliRunner, Result

from allo.app import create_app
from allo.channels import sms
from allo.channels.base import (
    Account,
    InboundRequest,
    Outgoing,
    ProviderRejected,
    ProviderUnavailable,
    SignatureInvalid,
)
from allo.channels.kannel.adapter import KANNEL_CODING, KannelAdapter, dlr_signature, mo_url
from allo.channels.kannel.config import FakeSmsc, KannelConfig, SmppSmsc, config_for_account, render
from allo.cli import app as allo_cli
from allo.config import Settings, get_settings
from allo.kit.db import Database, create_nullpool_engine
from allo.kit.errors import NotFound
from allo.kit.migrate import upgrade
from allo.models import ChannelEvent, Conversation, Customer, Message, OptOut
from allo.models.enums import AuthorKind, ChannelEventState, MessageDelivery
from tests.channels.helpers import ACCOUNTS, messages_of, run_jobs, worker
from tests.channels.kannel_support import (
    INBOUND_TOKEN,
    SENDSMS_PASSWORD,
    SENDSMS_USER,
    SHORT_CODE,
    create_kannel_account,
    filled_dlr_path,
    hook_path,
    kannel_auth,
    kannel_calls,
    mo_query,
)
from tests.factories import Actor, login, make_actor

SENDSMS_URL = "http://kannel.standin/cgi-bin/sendsms"


@dataclass
class SendsmsStandin:
    """smsbox's sendsms: records each POST; `answers` are given first, in order (status, body)."""

    answers: list[tuple[int, str]] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    attempts: int = 0

    def client(self) -> httpx.AsyncClient:
        app = FastAPI()

        @app.post("/cgi-bin/sendsms")
        async def sendsms(request: Request) -> Response:
            self.attempts += 1
            if self.answers:
                status, body = self.answers.pop(0)
                return Response(body, status, media_type="text/html")
            self.received.append(
                {
                    "headers": {k.lower(): v for k, v in request.headers.items()},
                    "text": (await request.body()).decode("utf-8"),
                }
            )
            return Response("0: Accepted for delivery", 202, media_type="text/html")

        return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://kannel.standin")


@pytest.fixture
def kannel() -> SendsmsStandin:
    return SendsmsStandin()


@pytest.fixture
async def kannel_client(kannel: SendsmsStandin) -> AsyncIterator[httpx.AsyncClient]:
    async with kannel.client() as http:
        yield http


async def _conversation_of(db: Database, tenant_id: uuid.UUID, phone: str) -> Conversation:
    async with db.unit_of_work() as s:
        customer = (
            await s.execute(select(Customer).where(Customer.tenant_id == tenant_id, Customer.phone == phone))
        ).scalar_one()
        return (
            await s.execute(select(Conversation).where(Conversation.customer_id == customer.id))
        ).scalar_one()


async def _events(db: Database, external_id: str) -> list[ChannelEvent]:
    async with db.unit_of_work() as s:
        rows = await s.execute(select(ChannelEvent).where(ChannelEvent.external_id == external_id))
        return list(rows.scalars())


async def test_a_customer_sms_is_answered_through_sendsms_and_its_reports_move_it_to_delivered(
    client: httpx.AsyncClient,
    db: Database,
    settings: Settings,
    tenant_actors: dict[str, Actor],
    kannel: SendsmsStandin,
    kannel_client: httpx.AsyncClient,
) -> None:
    admin = tenant_actors["admin"]
    account = await create_kannel_account(client, admin, SENDSMS_URL)
    assert account["secrets_set"] == ["inbound_token", "password"]
    assert INBOUND_TOKEN not in str(account) and SENDSMS_PASSWORD not in str(account)

    kannel_id = str(uuid.uuid4())
    text = "Bonjour, ma facture de 12€ est trop élevée  [ligne 2]"
    response = await kannel_calls(client, account, mo_query(kannel_id, "+33612345678", text))
    assert response.status_code == 200, response.text
    assert response.content == b""  # anything else Kannel would send back to the customer as an SMS

    await run_jobs(db, worker(db, settings, kannel_client), rounds=3)

    conversation = await _conversation_of(db, admin.tenant_id, "+33612345678")
    messages = await messages_of(db, conversation.id)
    assert messages[0].author_kind is AuthorKind.customer
    assert messages[0].body == text  # the double space and the brackets survive the %e hex transport
    assert messages[0].channel_message_id == kannel_id
    replies = [m for m in messages if m.author_kind is AuthorKind.bot]
    assert replies and all(m.delivery_status is MessageDelivery.sent for m in replies)
    assert len(kannel.received) == len(replies)

    # Messages written in one transaction share their time on PostgreSQL: match them by their text.
    sent = next(r for r in kannel.received if r["text"].startswith(replies[0].body))
    headers = sent["headers"]
    assert headers["content-type"] == "text/plain; charset=UTF-8"
    assert headers["x-kannel-username"] == SENDSMS_USER
    assert headers["x-kannel-password"] == SENDSMS_PASSWORD
    assert headers["x-kannel-to"] == "+33612345678"
    assert headers["x-kannel-from"] == SHORT_CODE
    assert headers["x-kannel-dlr-mask"] == "31"
    assert headers["x-kannel-coding"] == str(KANNEL_CODING[sms.layout(sent["text"]).coding])
    dlr_url = headers["x-kannel-dlr-url"]
    assert dlr_url.startswith(
        f"{settings.public_base_url}{hook_path(account)}?kind=dlr&message={replies[0].id}&"
    )
    assert "type=%d" in dlr_url and INBOUND_TOKEN not in dlr_url

    # Accepted by the SMSC (8), then delivered (1), then a late 8 again: the status only moves forward.
    for report_type in (8, 1, 8):
        assert (await client.get(filled_dlr_path(dlr_url, report_type, "ACK/"))).status_code == 200
        await run_jobs(db, worker(db, settings, kannel_client))
    async with db.unit_of_work() as s:
        first = await s.get(Message, replies[0].id)
        assert first is not None and first.delivery_status is MessageDelivery.delivered
    assert [e.state for e in await _events(db, f"kannel-dlr:{replies[0].id}:8")] == [
        ChannelEventState.processed
    ]


async def test_a_failed_report_keeps_the_smscs_reason(
    client: httpx.AsyncClient,
    db: Database,
    settings: Settings,
    tenant_actors: dict[str, Actor],
    kannel: SendsmsStandin,
    kannel_client: httpx.AsyncClient,
) -> None:
    admin = tenant_actors["admin"]
    account = await create_kannel_account(client, admin, SENDSMS_URL)
    await kannel_calls(client, account, mo_query(str(uuid.uuid4()), "+2290197123456", "Allô ?"))
    await run_jobs(db, worker(db, settings, kannel_client), rounds=3)
    dlr_url = kannel.received[0]["headers"]["x-kannel-dlr-url"]
    # Queued on the SMSC (4) keeps it sent; not delivered to the phone (2) fails it, with the reason.
    for report_type, reply in ((4, ""), (2, "NACK/0x0000000b/Invalid Destination Address")):
        assert (await client.get(filled_dlr_path(dlr_url, report_type, reply))).status_code == 200
        await run_jobs(db, worker(db, settings, kannel_client))
    reported = uuid.UUID(dlr_url.split("message=", 1)[1][:36])
    async with db.unit_of_work() as s:
        reply_message = await s.get(Message, reported)
    assert reply_message is not None and reply_message.author_kind is AuthorKind.bot
    assert reply_message.delivery_status is MessageDelivery.failed
    assert reply_message.delivery_error == "Kannel report 2: NACK/0x0000000b/Invalid Destination Address"


async def test_ucs2_text_and_emoji_arrive_intact(
    client: httpx.AsyncClient,
    db: Database,
    settings: Settings,
    tenant_actors: dict[str, Actor],
    kannel_client: httpx.AsyncClient,
) -> None:
    admin = tenant_actors["admin"]
    account = await create_kannel_account(client, admin, SENDSMS_URL)
    text = "Ça ne marche plus 😡 depuis hier, aidez-moi\nMerci"
    query = mo_query(str(uuid.uuid4()), "+2250707123456", text, charset="UTF-16BE", coding=2)
    assert (await kannel_calls(client, account, query)).status_code == 200
    await run_jobs(db, worker(db, settings, kannel_client), rounds=3)
    conversation = await _conversation_of(db, admin.tenant_id, "+2250707123456")
    assert (await messages_of(db, conversation.id))[0].body == text


async def test_a_replayed_message_creates_nothing_twice(
    client: httpx.AsyncClient,
    db: Database,
    settings: Settings,
    tenant_actors: dict[str, Actor],
    kannel_client: httpx.AsyncClient,
) -> None:
    admin = tenant_actors["admin"]
    account = await create_kannel_account(client, admin, SENDSMS_URL)
    kannel_id = str(uuid.uuid4())
    query = mo_query(kannel_id, "+33612000010", "Bonjour")
    for _ in range(3):  # smsbox's http-request-retry after a lost answer
        assert (await kannel_calls(client, account, query)).status_code == 200
    await run_jobs(db, worker(db, settings, kannel_client), rounds=3)
    conversation = await _conversation_of(db, admin.tenant_id, "+33612000010")
    customer_messages = [
        m for m in await messages_of(db, conversation.id) if m.author_kind is AuthorKind.customer
    ]
    assert len(customer_messages) == 1
    events = await _events(db, kannel_id)
    assert len(events) == 1 and events[0].state is ChannelEventState.processed
    assert INBOUND_TOKEN not in str(events[0].payload)  # the credential is not kept in the raw event


async def test_wrong_or_missing_credentials_are_refused_and_nothing_is_stored(
    client: httpx.AsyncClient, db: Database, tenant_actors: dict[str, Actor], caplog: pytest.LogCaptureFixture
) -> None:
    account = await create_kannel_account(client, tenant_actors["admin"], SENDSMS_URL)
    forged_id = str(uuid.uuid4())
    forged = mo_query(forged_id, "+33612000011", "Bonjour")
    wrong_token = await kannel_calls(client, account, forged, token="x" * 31)
    no_token = await client.get(hook_path(account), params=forged)
    token_in_the_query = await client.get(hook_path(account), params={**forged, "token": INBOUND_TOKEN})
    not_basic = await client.get(
        hook_path(account), params=forged, headers={"Authorization": f"Bearer {INBOUND_TOKEN}"}
    )
    message_id = str(uuid.uuid4())
    forged_report = {
        "kind": "dlr",
        "message": message_id,
        "sig": dlr_signature("not-the-inbound-token-at-all", message_id),
        "type": "1",
    }
    report_for_another_message = {**forged_report, "sig": dlr_signature(INBOUND_TOKEN, str(uuid.uuid4()))}
    reports = [
        await client.get(hook_path(account), params=params)
        for params in (forged_report, report_for_another_message, {})
    ]
    for response in (wrong_token, no_token, token_in_the_query, not_basic, *reports):
        assert response.status_code == 401, response.request.url
        assert response.json()["error"]["code"] == "bad_signature"
    assert "refused an inbound kannel request" in caplog.text
    assert INBOUND_TOKEN not in caplog.text
    assert await _events(db, forged_id) == []
    assert await _events(db, f"kannel-dlr:{message_id}:1") == []


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"text": "not-hex"}, "hexadecimal"),
        ({"text": "C3"}, "not valid UTF-8"),  # half of "é"
        ({"charset": "KLINGON"}, "unknown charset"),
        ({"id": ""}, "without its id"),
    ],
)
async def test_a_malformed_message_is_refused_with_a_400_and_recorded_as_failed(
    client: httpx.AsyncClient,
    db: Database,
    tenant_actors: dict[str, Actor],
    change: dict[str, str],
    problem: str,
) -> None:
    account = await create_kannel_account(client, tenant_actors["admin"], SENDSMS_URL)
    params = {**mo_query(str(uuid.uuid4()), "+33612000012", "Bonjour"), **change}
    response = await kannel_calls(client, account, params)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_payload"
    assert problem in response.json()["error"]["message"]
    async with db.unit_of_work() as s:
        kept = (
            await s.execute(select(ChannelEvent).where(ChannelEvent.account_id == uuid.UUID(account["id"])))
        ).scalar_one()
    assert kept.state is ChannelEventState.failed and kept.external_id.startswith("malformed:")


async def test_a_report_without_a_readable_type_is_malformed(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor]
) -> None:
    account = await create_kannel_account(client, tenant_actors["admin"], SENDSMS_URL)
    message_id = str(uuid.uuid4())
    params = {
        "kind": "dlr",
        "message": message_id,
        "sig": dlr_signature(INBOUND_TOKEN, message_id),
        "type": "%d",
    }
    assert (await client.get(hook_path(account), params=params)).status_code == 400


async def test_what_is_neither_a_message_nor_a_report_is_kept_and_ignored(
    client: httpx.AsyncClient, db: Database, tenant_actors: dict[str, Actor]
) -> None:
    account = await create_kannel_account(client, tenant_actors["admin"], SENDSMS_URL)
    binary_id = str(uuid.uuid4())
    binary = {
        **mo_query(binary_id, "+33612000013", ""),
        "text": "0605040B8423F0",
        "coding": "1",
        "charset": "8-BIT",
    }
    unknown_kind = {"kind": "ping", "id": "x"}
    message_id = str(uuid.uuid4())
    unknown_type = {
        "kind": "dlr",
        "message": message_id,
        "sig": dlr_signature(INBOUND_TOKEN, message_id),
        "type": "32",
    }
    for params in (binary, unknown_kind, unknown_type):
        assert (await kannel_calls(client, account, params)).status_code == 200
    async with db.unit_of_work() as s:
        events = (
            (await s.execute(select(ChannelEvent).where(ChannelEvent.account_id == uuid.UUID(account["id"]))))
            .scalars()
            .all()
        )
    assert len(events) == 3
    assert {e.state for e in events} == {ChannelEventState.ignored}
    assert all(e.external_id.startswith("unknown:") for e in events)


async def test_an_stop_sms_opts_the_number_out_and_confirms_once(
    client: httpx.AsyncClient,
    db: Database,
    settings: Settings,
    tenant_actors: dict[str, Actor],
    kannel: SendsmsStandin,
    kannel_client: httpx.AsyncClient,
) -> None:
    admin, agent = tenant_actors["admin"], tenant_actors["agent"]
    account = await create_kannel_account(client, admin, SENDSMS_URL)
    assert (
        await kannel_calls(client, account, mo_query(str(uuid.uuid4()), "0612000014", "Stop"))
    ).status_code == 200
    await run_jobs(db, worker(db, settings, kannel_client), rounds=3)
    async with db.unit_of_work() as s:
        opt_out = (await s.execute(select(OptOut).where(OptOut.tenant_id == admin.tenant_id))).scalar_one()
    assert opt_out.address == "+33612000014" and opt_out.source == "keyword"
    assert len(kannel.received) == 1 and "START" in kannel.received[0]["text"]

    conversation = await _conversation_of(db, admin.tenant_id, "+33612000014")
    posted = await client.post(
        f"/api/v1/conversations/{conversation.id}/messages",
        json={"body": "Une offre pour vous", "author_kind": "agent"},
        headers=await login(client, agent),
    )
    assert posted.status_code == 201, posted.text
    await run_jobs(db, worker(db, settings, kannel_client), rounds=2)
    assert len(kannel.received) == 1
    async with db.unit_of_work() as s:
        offer = await s.get(Message, uuid.UUID(posted.json()["id"]))
        assert offer is not None and offer.delivery_status is MessageDelivery.failed
        assert (offer.delivery_error or "").startswith("opted_out")


@pytest.mark.parametrize(
    ("answers", "rounds"),
    [
        ([(503, "Temporal failure, try again later.")], 2),
        ([(500, "Sending failed."), (503, "")], 3),
    ],
)
async def test_a_gateway_error_is_retried_until_kannel_takes_the_message_once(
    client: httpx.AsyncClient,
    db: Database,
    settings: Settings,
    tenant_actors: dict[str, Actor],
    kannel: SendsmsStandin,
    kannel_client: httpx.AsyncClient,
    answers: list[tuple[int, str]],
    rounds: int,
) -> None:
    admin = tenant_actors["admin"]
    account = await create_kannel_account(client, admin, SENDSMS_URL)
    kannel.answers = list(answers)
    await kannel_calls(client, account, mo_query(str(uuid.uuid4()), "+33612000015", "Bonjour"))
    await run_jobs(db, worker(db, settings, kannel_client), rounds=rounds + 2)
    conversation = await _conversation_of(db, admin.tenant_id, "+33612000015")
    replies = [m for m in await messages_of(db, conversation.id) if m.author_kind is AuthorKind.bot]
    assert replies and all(m.delivery_status is MessageDelivery.sent for m in replies)
    assert len(kannel.received) == len(replies)
    assert kannel.attempts == len(replies) + len(answers)


async def test_a_refused_send_fails_the_message_with_kannels_reason(
    client: httpx.AsyncClient,
    db: Database,
    settings: Settings,
    tenant_actors: dict[str, Actor],
    kannel: SendsmsStandin,
    kannel_client: httpx.AsyncClient,
) -> None:
    admin = tenant_actors["admin"]
    account = await create_kannel_account(client, admin, SENDSMS_URL)
    kannel.answers = [(403, "Authorization failed for sendsms")] * 5
    await kannel_calls(client, account, mo_query(str(uuid.uuid4()), "+33612000016", "Bonjour"))
    await run_jobs(db, worker(db, settings, kannel_client), rounds=3)
    conversation = await _conversation_of(db, admin.tenant_id, "+33612000016")
    reply = next(m for m in await messages_of(db, conversation.id) if m.author_kind is AuthorKind.bot)
    assert reply.delivery_status is MessageDelivery.failed
    assert "Authorization failed for sendsms" in (reply.delivery_error or "")
    assert kannel.received == []


def _account(**settings: Any) -> Account:
    return Account(
        id=str(uuid.uuid4()),
        tenant_id=str(uuid.uuid4()),
        address=SHORT_CODE,
        settings={"sendsms_url": "http://127.0.0.1:1/cgi-bin/sendsms", "username": SENDSMS_USER, **settings},
        secrets={"password": SENDSMS_PASSWORD, "inbound_token": INBOUND_TOKEN},
    )


async def test_a_gateway_that_cannot_be_reached_is_a_temporary_failure() -> None:
    async with httpx.AsyncClient(timeout=2) as http:
        with pytest.raises(ProviderUnavailable, match="could not be reached: ConnectError"):
            await KannelAdapter().send(
                _account(), Outgoing(str(uuid.uuid4()), "+33612000017", "Bonjour"), http
            )


async def test_the_coding_and_the_part_limit_follow_the_text(kannel: SendsmsStandin) -> None:
    adapter = KannelAdapter()
    account = _account(sendsms_url=SENDSMS_URL, max_parts=3, sender="ALLO")
    async with kannel.client() as http:
        plain = await adapter.send(account, Outgoing("m1", "+33612000018", "é" * 306), http)
        french = await adapter.send(account, Outgoing("m2", "+33612000018", "Ça coûte 12 €, merci 🙏"), http)
        with pytest.raises(ProviderRejected, match="needs 4 SMS; this account sends at most 3") as refused:
            await adapter.send(account, Outgoing("m3", "+33612000018", "ç" * 202), http)
    assert refused.value.code == "too_long"
    assert (plain.parts, plain.meta, french.parts, french.meta) == (
        2,
        {"sms_coding": "gsm7"},
        1,
        {"sms_coding": "ucs2"},
    )
    sent = [r["headers"] for r in kannel.received]
    assert [h["x-kannel-coding"] for h in sent] == ["0", "2"]
    assert all(h["x-kannel-from"] == "ALLO" for h in sent)
    assert all("x-kannel-dlr-url" not in h for h in sent)  # no status_url given: no reports asked for


async def test_account_secrets_are_checked_when_the_account_is_saved(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor]
) -> None:
    for token in ("short-token", "a-token-with-a-percent-%41-inside-it"):
        response = await client.post(
            ACCOUNTS,
            json={
                "channel": "sms",
                "provider": "kannel",
                "name": "Kannel",
                "address": SHORT_CODE,
                "settings": {"sendsms_url": SENDSMS_URL, "username": SENDSMS_USER},
                "secrets": {"password": SENDSMS_PASSWORD, "inbound_token": token},
            },
            headers=tenant_actors["admin"].bearer,
        )
        assert response.status_code == 422, response.text
        assert response.json()["error"]["details"]["secrets"][0]["field"] == "inbound_token"


def test_verify_refuses_everything_when_the_account_has_no_inbound_token() -> None:
    account = _account()
    account.secrets = {"password": SENDSMS_PASSWORD}
    headers = {k.lower(): v for k, v in kannel_auth("").items()}
    request = InboundRequest("GET", headers, mo_query("k1", "+33612000019", "Bonjour"), b"")
    with pytest.raises(SignatureInvalid):
        KannelAdapter().verify(account, request)


def test_the_generated_configuration_points_kannel_at_the_hook() -> None:
    hook = "https://allo.example/api/v1/channels/hooks/0b6f"
    config = KannelConfig.for_account(
        _account(sendsms_url="http://127.0.0.1:14013/cgi-bin/sendsms", max_parts=6),
        hook,
        SmppSmsc("smsc.operator.example", 2775, "allo", "smpp-secret", "VMA"),
        admin_password="admin-secret",
    )
    text = render(config)
    assert f'get-url = "{mo_url(hook, INBOUND_TOKEN)}"' in text
    assert "text=%e&charset=%C" in text
    assert "sendsms-port = 14013" in text
    assert "max-messages = 6\nconcatenation = true" in text  # the sendsms-user allows the account's parts
    assert "max-messages = 0" in text  # the sms-service never answers by SMS itself
    assert 'smsc = "smpp"' in text and 'smsc-password = "smpp-secret"' in text
    fake = render(KannelConfig.for_account(_account(), hook, FakeSmsc(14010), admin_password="a"))
    assert 'smsc = "fake"' in fake and "port = 14010" in fake
    with pytest.raises(ValueError, match="quotes"):
        render(KannelConfig(hook, INBOUND_TOKEN, "allo", 'pass"word', FakeSmsc(1), "a"))
    with pytest.raises(ValueError, match="inbound token"):
        mo_url(hook, "token%with%escapes-0123456789")


async def test_the_configuration_of_a_stored_account_carries_its_hook_and_credentials(
    fresh_database_url: str, tmp_path: Path
) -> None:
    await upgrade(fresh_database_url)
    setup = Database(create_nullpool_engine(fresh_database_url))
    async with setup.unit_of_work() as s:
        admin = await make_actor(s, "kannel-conf", "admin")
    settings = Settings(
        database_url=fresh_database_url,
        public_base_url="https://allo.example",
        run_worker=False,
        _env_file=None,
    )
    transport = httpx.ASGITransport(app=create_app(settings, db=setup, run_background=False))
    async with httpx.AsyncClient(transport=transport, base_url="http://allo") as http:
        account = await create_kannel_account(http, admin, "http://127.0.0.1:14013/cgi-bin/sendsms")
    await setup.dispose()

    text = await config_for_account(settings, uuid.UUID(account["id"]), FakeSmsc(14010), admin_password="adm")
    hook = f"https://allo.example/api/v1/channels/hooks/{account['id']}"
    assert f'get-url = "{mo_url(hook, INBOUND_TOKEN)}"' in text
    assert f'password = "{SENDSMS_PASSWORD}"' in text and "sendsms-port = 14013" in text
    with pytest.raises(NotFound):
        await config_for_account(settings, uuid.uuid4(), FakeSmsc(14010), admin_password="adm")

    # The same through `allo sms kannel-config`, printed as it is (no ":smile:" turned into an emoji by the
    # terminal library) or written for its owner only.
    env = {
        "ALLO_DATABASE_URL": fresh_database_url,
        "ALLO_MODE": "dev",
        "ALLO_PUBLIC_BASE_URL": "https://allo.example",
        "ALLO_KANNEL_SMPP_PASSWORD": ":smile:",
    }

    async def allo(*args: str) -> Result:
        get_settings.cache_clear()
        try:
            return await asyncio.to_thread(
                lambda: CliRunner().invoke(allo_cli, ["sms", "kannel-config", *args], env=env)
            )
        finally:
            get_settings.cache_clear()

    printed = await allo(account["id"], "--smpp-host", "smsc.operator.example", "--smpp-system-id", "allo")
    assert printed.exit_code == 0, printed.stderr
    assert f'get-url = "{mo_url(hook, INBOUND_TOKEN)}"' in printed.stdout
    assert 'smsc-password = ":smile:"' in printed.stdout
    written = tmp_path / "kannel.conf"
    assert (await allo(account["id"], "--fake-smsc-port", "14010", "--out", str(written))).exit_code == 0
    assert written.stat().st_mode & 0o777 == 0o600
    assert f'get-url = "{mo_url(hook, INBOUND_TOKEN)}"' in written.read_text()
    assert (await allo(account["id"])).exit_code == 2  # no SMSC to link Kannel to
    unknown = await allo(str(uuid.uuid4()), "--fake-smsc-port", "14010")
    assert unknown.exit_code == 1 and "unknown_channel_account" in unknown.stderr
