"""SMPP against a small SMSC speaking real SMPP 3.4 over TCP (tests/channels/smsc_peer.py): what is
submitted (coding, concatenation, receipts asked for), how the SMSC's answers are read, and the listener's
receiver bind bringing customers' messages and receipts into conversations."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from allo.app import create_app
from allo.channels import sms
from allo.channels.base import Account, Outgoing, ProviderRejected, ProviderUnavailable, SendResult
from allo.channels.smpp import adapter as smpp_adapter
from allo.channels.smpp.adapter import SmppAdapter, concatenation_reference
from allo.channels.smpp.inbound import Deliver, Reassembly, receipt_item
from allo.channels.smpp.listener import SmppListener
from allo.config import Settings
from allo.kit.db import Database, create_engine
from allo.kit.migrate import upgrade
from allo.models import ChannelEvent, Conversation, Customer, Message
from allo.models.enums import AuthorKind, ChannelEventKind, MessageDelivery
from tests.channels.helpers import ACCOUNTS, eventually, run_jobs, worker
from tests.channels.smsc_peer import INVALID_DESTINATION, OK, RX_T_APPN, THROTTLED, SmscPeer
from tests.factories import Actor, make_actor, make_assistant_tenant

SHORT_CODE = "36000"


@pytest.fixture
def peer() -> Iterator[SmscPeer]:
    smsc = SmscPeer()
    yield smsc
    smsc.stop()


@pytest.fixture(autouse=True)
def quick_throttle_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(smpp_adapter, "THROTTLE_PAUSE_SECONDS", 0.01)


def _account(peer: SmscPeer, **settings: object) -> Account:
    return Account(
        id=str(uuid.uuid4()),
        tenant_id=str(uuid.uuid4()),
        address=SHORT_CODE,
        settings={"host": "127.0.0.1", "port": peer.port, "system_id": peer.system_id, **settings},
        secrets={"password": peer.password},
    )


async def _send(peer: SmscPeer, text: str, **settings: object) -> tuple[Outgoing, SendResult]:
    message = Outgoing(str(uuid.uuid4()), "+33612345678", text)
    async with httpx.AsyncClient() as http:
        result = await SmppAdapter().send(_account(peer, **settings), message, http)
    return message, result


# ---- submit_sm -------------------------------------------------------------------------------------


async def test_a_short_french_text_is_one_gsm7_submit_asking_for_a_receipt(peer: SmscPeer) -> None:
    text = "Votre ligne est rétablie à 14h. Bonne journée !"
    _, result = await _send(peer, text)
    [submitted] = peer.submitted
    assert (submitted.data_coding, submitted.esm_class, submitted.registered_delivery) == (0, 0, 1)
    assert submitted.short_message == sms.encode_gsm7(text)  # one septet per octet
    assert (submitted.destination_addr, submitted.dest_addr_ton) == ("33612345678", 1)
    assert submitted.source_addr == SHORT_CODE
    assert (result.external_id, result.parts, result.meta) == (
        submitted.message_id,
        1,
        {"sms_coding": "gsm7"},
    )
    assert peer.binds == ["transmitter"]


async def test_a_text_with_a_cedilla_or_an_emoji_is_ucs2(peer: SmscPeer) -> None:
    text = "Ça marche, merci 🙏"
    _, result = await _send(peer, text, delivery_receipts=False)
    [submitted] = peer.submitted
    assert (submitted.data_coding, submitted.registered_delivery) == (8, 0)
    assert submitted.short_message == text.encode("utf-16-be")
    assert result.meta == {"sms_coding": "ucs2"}


@pytest.mark.parametrize(
    ("text", "coding", "parts", "room"),
    [
        (("Votre facture de mars est disponible dans votre espace client. " * 5).strip(), 0, 3, 153),
        (
            ("Ça sera réglé sous 48 h, veuillez nous excuser pour la gêne occasionnée 🙏 " * 3).strip(),
            8,
            4,
            134,
        ),
    ],
)
async def test_a_long_text_is_concatenated_parts_with_one_reference(
    peer: SmscPeer, text: str, coding: int, parts: int, room: int
) -> None:
    message, result = await _send(peer, text)
    assert len(peer.submitted) == parts == result.parts
    reference = concatenation_reference(message.message_id)
    for number, submitted in enumerate(peer.submitted, start=1):
        assert submitted.esm_class == 0x40 and submitted.data_coding == coding
        assert submitted.header == bytes((5, 0, 3, reference, parts, number))
        assert len(submitted.short_message) - len(submitted.header) <= room  # septets, or UCS-2 octets
    assert "".join(s.text for s in peer.submitted) == text
    assert result.external_id == peer.submitted[0].message_id


async def test_a_throttled_part_is_tried_again_in_the_same_bind_and_sent_once(peer: SmscPeer) -> None:
    text = ("Votre facture de mars est disponible dans votre espace client. " * 3).strip()
    peer.submit_answers = [OK, THROTTLED, THROTTLED]  # the second part is throttled twice
    _, result = await _send(peer, text)
    assert result.parts == len(peer.submitted) == 2
    assert [s.header[-1] for s in peer.submitted] == [1, 2]
    assert peer.submit_attempts == 4
    assert peer.binds == ["transmitter"]


async def test_an_smsc_that_stays_busy_is_a_temporary_failure(peer: SmscPeer) -> None:
    peer.submit_answers = [THROTTLED] * (smpp_adapter.THROTTLE_RETRIES + 1)
    with pytest.raises(ProviderUnavailable, match="busy"):
        await _send(peer, "Bonjour")
    assert peer.submitted == []


async def test_a_refused_number_is_a_final_failure(peer: SmscPeer) -> None:
    peer.submit_answers = [INVALID_DESTINATION]
    with pytest.raises(ProviderRejected) as refused:
        await _send(peer, "Bonjour")
    assert refused.value.code == "smpp_0x0b"


async def test_wrong_credentials_need_an_admin_and_an_absent_smsc_is_temporary(peer: SmscPeer) -> None:
    message = Outgoing(str(uuid.uuid4()), "+33612345678", "Bonjour")
    account = _account(peer)
    account.secrets = {"password": "wrong"}
    async with httpx.AsyncClient() as http:
        with pytest.raises(ProviderRejected) as refused:
            await SmppAdapter().send(account, message, http)
        assert refused.value.code == "smpp_bind_refused"
        peer.stop()
        with pytest.raises(ProviderUnavailable, match="could not be reached"):
            await SmppAdapter().send(_account(peer), message, http)


async def test_a_text_beyond_the_accounts_parts_is_refused_before_binding(peer: SmscPeer) -> None:
    with pytest.raises(ProviderRejected, match="needs 3 SMS; this account sends at most 2"):
        await _send(peer, "é" * 307, max_parts=2)
    assert peer.binds == []


# ---- reading deliver_sm ----------------------------------------------------------------------------


def _deliver(
    short_message: bytes,
    *,
    esm_class: int = 0,
    data_coding: int = 0,
    receipted_message_id: str | None = None,
    message_state: int | None = None,
) -> Deliver:
    return Deliver(
        source_addr="22507071234",
        source_addr_ton=1,
        destination_addr=SHORT_CODE,
        esm_class=esm_class,
        data_coding=data_coding,
        short_message=short_message,
        receipted_message_id=receipted_message_id,
        message_state=message_state,
    )


def test_receipts_are_read_from_their_text_or_their_parameters() -> None:
    text = (
        b"id:1A2B3C01 sub:001 dlvrd:000 submit date:2503011200 done date:2503011205 stat:UNDELIV err:011 "
        b"text:"
    )
    failed = receipt_item(_deliver(text, esm_class=0x04))
    assert (failed.kind, failed.message_ref, failed.status) == ("status", "1A2B3C01", MessageDelivery.failed)
    assert failed.error == "SMPP receipt UNDELIV (err 011)"
    assert failed.external_id == "smpp-dlr:1A2B3C01:UNDELIV"
    by_parameters = receipt_item(_deliver(b"", esm_class=0x04, receipted_message_id="77", message_state=2))
    assert (by_parameters.message_ref, by_parameters.status) == ("77", MessageDelivery.delivered)
    unknown = receipt_item(_deliver(b"id:5 stat:UNKNOWN", esm_class=0x04))
    assert unknown.kind == "unknown"


def test_a_long_customer_message_is_put_back_together_whatever_the_order_of_its_parts() -> None:
    reassembly = Reassembly()
    first, second = "Bonjour, mon forfait ", "ne marche plus à Abidjan"
    header = bytes((5, 0, 3, 42, 2))
    assert reassembly.items(_deliver(header + b"\x02" + sms.encode_gsm7(second), esm_class=0x40)) == []
    [item] = reassembly.items(_deliver(header + b"\x01" + sms.encode_gsm7(first), esm_class=0x40))
    assert (item.kind, item.sender, item.text) == ("message", "+22507071234", first + second)


def test_a_long_message_that_could_not_be_stored_completes_when_its_last_part_comes_again() -> None:
    reassembly = Reassembly()
    header = bytes((5, 0, 3, 9, 2))
    assert reassembly.items(_deliver(header + b"\x01" + sms.encode_gsm7("Mon numéro "), esm_class=0x40)) == []
    last = _deliver(header + b"\x02" + sms.encode_gsm7("est bloqué"), esm_class=0x40)
    assert [i.text for i in reassembly.items(last)] == ["Mon numéro est bloqué"]
    reassembly.undo()  # the unit of work failed: the SMSC is answered with a temporary error
    assert [i.text for i in reassembly.items(last)] == ["Mon numéro est bloqué"]


def test_a_part_that_never_comes_does_not_hold_the_others_forever() -> None:
    reassembly = Reassembly(wait_seconds=0)
    assert reassembly.items(_deliver(bytes((5, 0, 3, 7, 3, 1)) + b"Bonjour", esm_class=0x40)) == []
    [late, current] = reassembly.items(_deliver(b"Allo ?"))
    assert late.text == "Bonjour" and current.text == "Allo ?"


def test_binary_messages_are_kept_and_ignored() -> None:
    [item] = Reassembly().items(_deliver(b"\x06\x05\x04\x0b\x84", data_coding=0xF4))
    assert item.kind == "unknown"


# ---- the listener, with a database and the job worker ----------------------------------------------


@dataclass
class LiveSmpp:
    db: Database
    settings: Settings
    peer: SmscPeer
    tenant_id: uuid.UUID
    account_id: uuid.UUID
    http: httpx.AsyncClient

    def listener(self) -> SmppListener:
        return SmppListener(
            self.settings, self.db, poll_seconds=0.2, first_backoff_seconds=0.2, lease_renew_seconds=0.3
        )


@pytest.fixture
async def live(fresh_database_url: str, peer: SmscPeer) -> AsyncIterator[LiveSmpp]:
    await upgrade(fresh_database_url)
    db = Database(create_engine(fresh_database_url, pool_size=4))
    slug = f"smpp-{uuid.uuid4().hex[:8]}"
    async with db.unit_of_work() as session:
        tenant = await make_assistant_tenant(session, slug)
        admin: Actor = await make_actor(session, slug, "admin")
        tenant_id = tenant.id
    settings = Settings(
        database_url=fresh_database_url, run_worker=False, api_key_cache_seconds=0, _env_file=None
    )
    app = create_app(settings, db=db, run_background=False)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://allo") as http:
            response = await http.post(
                ACCOUNTS,
                json={
                    "channel": "sms",
                    "provider": "smpp",
                    "name": "Opérateur SMPP",
                    "address": SHORT_CODE,
                    "settings": {"host": "127.0.0.1", "port": peer.port, "system_id": peer.system_id},
                    "secrets": {"password": peer.password},
                },
                headers=admin.bearer,
            )
            assert response.status_code == 201, response.text
            yield LiveSmpp(db, settings, peer, tenant_id, uuid.UUID(response.json()["id"]), http)
    finally:
        await db.dispose()


@pytest.fixture
async def listening(live: LiveSmpp) -> AsyncIterator[SmppListener]:
    stop = asyncio.Event()
    listener = live.listener()
    task = asyncio.create_task(listener.run(stop))
    await asyncio.to_thread(live.peer.wait_for_receiver)
    yield listener
    stop.set()
    await asyncio.wait_for(task, timeout=20)


async def _count_events(live: LiveSmpp, kind: ChannelEventKind) -> int:
    async with live.db.unit_of_work(write=False) as s:
        stmt = (
            select(func.count())
            .select_from(ChannelEvent)
            .where(ChannelEvent.account_id == live.account_id, ChannelEvent.kind == kind)
        )
        return int(await s.scalar(stmt) or 0)


async def _messages_of(live: LiveSmpp, phone: str) -> list[Message]:
    async with live.db.unit_of_work(write=False) as s:
        stmt = (
            select(Message)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .join(Customer, Customer.id == Conversation.customer_id)
            .where(Customer.tenant_id == live.tenant_id, Customer.phone == phone)
            .order_by(Message.created_at)
        )
        return list((await s.execute(stmt)).scalars())


async def _customer_writes(live: LiveSmpp, phone: str, text: str) -> None:
    before = await _count_events(live, ChannelEventKind.message)
    # Each deliver_sm is answered only once its message is stored.
    assert await asyncio.to_thread(live.peer.customer_writes, phone, text) == [OK] * sms.layout(text).segments
    assert await _count_events(live, ChannelEventKind.message) == before + 1


async def _receipts_stored(live: LiveSmpp) -> None:
    """Every accepted submit's receipt has come back on the receiver bind and is stored."""

    async def all_stored() -> bool:
        return await _count_events(live, ChannelEventKind.status) == len(live.peer.submitted)

    await eventually(all_stored, "the receipts were not all stored")


async def test_a_customer_sms_reaches_a_conversation_and_the_answer_is_reported_delivered(
    live: LiveSmpp, listening: SmppListener
) -> None:
    phone = "+2250707123456"
    text = "Bonjour, je n'ai plus de réseau depuis ce matin"
    await _customer_writes(live, phone, text)
    async with httpx.AsyncClient() as http:
        work = worker(live.db, live.settings, http)
        await run_jobs(live.db, work, rounds=3)
        messages = await _messages_of(live, phone)
        assert (messages[0].author_kind, messages[0].body) == (AuthorKind.customer, text)
        replies = [m for m in messages if m.author_kind is AuthorKind.bot]
        # Handed to the SMSC; a receipt may already have moved one on (the peer sends them at once).
        assert replies and {m.delivery_status for m in replies} <= {
            MessageDelivery.sent,
            MessageDelivery.delivered,
        }
        assert {m.channel_message_id for m in replies} <= {s.message_id for s in live.peer.submitted}
        assert all(s.destination_addr == phone.removeprefix("+") for s in live.peer.submitted)
        await _receipts_stored(live)
        await run_jobs(live.db, work)
    replies = [m for m in await _messages_of(live, phone) if m.author_kind is AuthorKind.bot]
    assert all(m.delivery_status is MessageDelivery.delivered for m in replies)
    assert live.peer.binds.count("receiver") == 1


async def test_a_long_ucs2_customer_message_arrives_whole(live: LiveSmpp, listening: SmppListener) -> None:
    phone = "+2290197123456"
    text = (
        "Bonjour, ça fait trois jours que la fibre coupe chaque soir vers 20 h, et le décodeur redémarre "
        "tout seul. Que faire ?"
    )
    assert sms.layout(text).segments == 2
    await _customer_writes(live, phone, text)
    async with httpx.AsyncClient() as http:
        await run_jobs(live.db, worker(live.db, live.settings, http))
    assert (await _messages_of(live, phone))[0].body == text


async def test_one_process_holds_the_bind_and_another_takes_over_when_it_stops(live: LiveSmpp) -> None:
    first_stop, second_stop = asyncio.Event(), asyncio.Event()
    first, second = live.listener(), live.listener()
    first_task = asyncio.create_task(first.run(first_stop))
    await asyncio.to_thread(live.peer.wait_for_receiver)
    second_task = asyncio.create_task(second.run(second_stop))
    await asyncio.sleep(1.5)  # several lease rounds: the second keeps finding it held
    assert live.peer.binds == ["receiver"] and live.peer.receivers() == 1

    first_stop.set()
    await asyncio.wait_for(first_task, timeout=20)

    async def taken_over() -> bool:
        return live.peer.binds == ["receiver", "receiver"] and live.peer.receivers() == 1

    await eventually(taken_over, "the second listener did not bind")
    await _customer_writes(live, "+33612000031", "Bonjour")
    second_stop.set()
    await asyncio.wait_for(second_task, timeout=20)


async def test_a_dropped_bind_is_bound_again(live: LiveSmpp, listening: SmppListener) -> None:
    live.peer.drop_connections()

    async def bound_again() -> bool:
        return live.peer.binds.count("receiver") == 2 and live.peer.receivers() == 1

    await eventually(bound_again, "the listener did not bind again")
    await _customer_writes(live, "+33612000032", "Vous êtes là ?")


async def test_a_throttling_smsc_gets_the_answer_once_it_recovers(
    live: LiveSmpp, listening: SmppListener
) -> None:
    phone = "+33612000033"
    await _customer_writes(live, phone, "Bonjour")
    # The first attempt is throttled through all its tries in the bind: the job is tried again later.
    live.peer.submit_answers = [THROTTLED] * (smpp_adapter.THROTTLE_RETRIES + 1)
    async with httpx.AsyncClient() as http:
        await run_jobs(live.db, worker(live.db, live.settings, http), rounds=4)
    replies = [m for m in await _messages_of(live, phone) if m.author_kind is AuthorKind.bot]
    assert replies and {m.delivery_status for m in replies} <= {
        MessageDelivery.sent,
        MessageDelivery.delivered,
    }
    sent_parts = sum(int((m.meta or {}).get("parts", 1)) for m in replies)
    assert len(live.peer.submitted) == sent_parts  # each part accepted exactly once
    assert live.peer.submit_attempts == sent_parts + smpp_adapter.THROTTLE_RETRIES + 1


async def test_a_message_that_could_not_be_stored_is_refused_for_now_and_kept_when_sent_again(
    live: LiveSmpp, listening: SmppListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    from allo.channels import service

    real_accept = service.accept
    calls = 0

    async def accept_failing_once(*args: Any, **kwargs: Any) -> service.Received:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("the database went away")
        return await real_accept(*args, **kwargs)

    monkeypatch.setattr(service, "accept", accept_failing_once)
    phone = "+33612000034"
    refused = await asyncio.to_thread(live.peer.customer_writes, phone, "Bonjour")
    assert refused == [RX_T_APPN]  # the SMSC keeps the message and sends it again later
    assert await _count_events(live, ChannelEventKind.message) == 0
    await _customer_writes(live, phone, "Bonjour")


async def test_the_app_binds_active_smpp_accounts_and_lets_go_when_it_stops(live: LiveSmpp) -> None:
    from allo.app import background_services
    from allo.kit.bus import Bus

    async with background_services(live.settings, live.db, Bus(), run_worker=False):
        await asyncio.to_thread(live.peer.wait_for_receiver)
        await _customer_writes(live, "+33612000035", "Bonjour depuis allo serve")
    # Stopping unbinds: the SMSC sees no receiver any more.
    assert live.peer.receivers() == 0 and live.peer.binds == ["receiver"]
