"""SMS through a real Kannel, end to end: bearerbox, smsbox and fakesmsc (Kannel's stand-in for the mobile
network) run on free ports with a kannel.conf written by `allo.channels.kannel.config`, against Allo under
uvicorn with its job worker, over an empty database.

fakesmsc is the phone side: a line written to it is a customer's SMS, and it prints every SMS Kannel
hands to the network, in the coding Kannel chose (plain text, UCS-2 bytes, or concatenated parts with
their header). Kannel's fake SMSC reports each sent message as accepted (8) then delivered (1) to the
dlr-url Allo gave, so the delivery status moves as it would with an operator.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from allo.assistant.nlu.training import train_and_save
from allo.channels import sms
from allo.channels.base import Account
from allo.channels.kannel.config import FakeSmsc, KannelConfig, render
from allo.config import DEFAULT_DATA_DIR, Settings
from allo.conversations.service import SEND_KIND
from allo.kit.db import Database, create_nullpool_engine
from allo.kit.migrate import upgrade
from allo.models import ChannelEvent, Conversation, Customer, Job, Message, OptOut
from allo.models.enums import AuthorKind, ChannelEventState, MessageDelivery
from tests.api_helpers import MODEL_PATH, ServerThread, free_port
from tests.channels.helpers import eventually
from tests.channels.kannel_support import (
    BEARERBOX,
    FAKESMSC,
    INBOUND_TOKEN,
    SENDSMS_PASSWORD,
    SHORT_CODE,
    SMSBOX,
    FakeSmscClient,
    KannelProcesses,
    SmsOut,
    create_kannel_account,
)
from tests.factories import Actor, login, make_actor, make_assistant_tenant

pytestmark = pytest.mark.skipif(
    not (BEARERBOX.exists() and SMSBOX.exists() and FAKESMSC.exists()),
    reason="Kannel is not installed (/usr/sbin/bearerbox, /usr/lib/kannel/test/fakesmsc): "
    "`make test` installs the Debian packages kannel and kannel-extras",
)

# The first assistant turn of a process loads the language model.
TURN_SECONDS = 40.0


@dataclass
class LiveSms:
    base_url: str
    db: Database  # the test's own connection to Allo's database
    tenant_id: uuid.UUID
    agent: Actor
    kannel: KannelProcesses
    network: FakeSmscClient
    log_dir: Path

    def reconnect_network(self) -> None:
        self.network = FakeSmscClient(self.kannel.fake_smsc_port, self.log_dir / "fakesmsc.log")


@pytest.fixture(scope="module")
def model_path() -> Path:
    if not MODEL_PATH.exists():
        train_and_save(DEFAULT_DATA_DIR, MODEL_PATH)
    return MODEL_PATH


@pytest.fixture
async def live(fresh_database_url: str, tmp_path: Path, model_path: Path) -> AsyncIterator[LiveSms]:
    await upgrade(fresh_database_url)
    db = Database(create_nullpool_engine(fresh_database_url))
    slug = f"sms-{uuid.uuid4().hex[:8]}"
    async with db.unit_of_work() as session:
        tenant = await make_assistant_tenant(session, slug)
        admin = await make_actor(session, slug, "admin")
        agent = await make_actor(session, slug, "agent")
        tenant_id = tenant.id
    app_port, admin_port, smsbox_port, sendsms_port, fake_port = (free_port() for _ in range(5))
    settings = Settings(
        database_url=fresh_database_url,
        public_base_url=f"http://127.0.0.1:{app_port}",
        run_worker=True,
        job_poll_seconds=0.2,
        job_backoff_base_seconds=0.5,
        job_backoff_max_seconds=3.0,
        clock_tick_seconds=600,
        nlu_model_path=model_path,
        data_dir=DEFAULT_DATA_DIR,
        api_key_cache_seconds=0,
        _env_file=None,
    )
    server = ServerThread(settings, app_port)
    await server.start()
    kannel: KannelProcesses | None = None
    network: FakeSmscClient | None = None
    live_sms: LiveSms | None = None
    try:
        async with httpx.AsyncClient(base_url=settings.public_base_url, timeout=10) as http:
            account = await create_kannel_account(
                http, admin, f"http://127.0.0.1:{sendsms_port}/cgi-bin/sendsms"
            )
        view = Account(
            id=account["id"],
            tenant_id=str(tenant_id),
            address=SHORT_CODE,
            settings=account["settings"],
            secrets={"password": SENDSMS_PASSWORD, "inbound_token": INBOUND_TOKEN},
        )
        config = KannelConfig.for_account(
            view,
            account["hook_url"],
            FakeSmsc(fake_port),
            admin_password=uuid.uuid4().hex,
            admin_port=admin_port,
            smsbox_port=smsbox_port,
            log_dir=tmp_path,
            log_level=0,
        )
        assert config.sendsms_port == sendsms_port
        config_path = tmp_path / "kannel.conf"
        config_path.write_text(render(config))
        kannel = KannelProcesses(config_path, sendsms_port, smsbox_port, fake_port, tmp_path)
        await asyncio.to_thread(kannel.start)
        network = FakeSmscClient(fake_port, tmp_path / "fakesmsc.log")
        live_sms = LiveSms(settings.public_base_url, db, tenant_id, agent, kannel, network, tmp_path)
        yield live_sms
    finally:
        if live_sms is not None:
            live_sms.network.stop()
        elif network is not None:
            network.stop()
        if kannel is not None:
            await asyncio.to_thread(kannel.stop)
        await server.stop()
        await db.dispose()


async def conversation_of(live: LiveSms, phone: str) -> Conversation | None:
    async with live.db.unit_of_work(write=False) as s:
        stmt = (
            select(Conversation)
            .join(Customer, Customer.id == Conversation.customer_id)
            .where(Customer.tenant_id == live.tenant_id, Customer.phone == phone)
        )
        return (await s.execute(stmt)).scalars().first()


async def messages_in(live: LiveSms, conversation_id: uuid.UUID) -> list[Message]:
    async with live.db.unit_of_work(write=False) as s:
        rows = await s.execute(
            select(Message).where(Message.conversation_id == conversation_id).order_by(Message.created_at)
        )
        return list(rows.scalars())


async def answered_and_delivered(live: LiveSms, phone: str) -> tuple[Conversation, list[Message]]:
    """The customer's conversation once the bot has answered and every answer is reported delivered."""

    async def probe() -> tuple[Conversation, list[Message]] | None:
        conversation = await conversation_of(live, phone)
        if conversation is None:
            return None
        replies = [m for m in await messages_in(live, conversation.id) if m.author_kind is AuthorKind.bot]
        if replies and all(m.delivery_status is MessageDelivery.delivered for m in replies):
            return conversation, replies
        return None

    return await eventually(probe, f"the bot's answers to {phone} were not all delivered", TURN_SECONDS)


async def post_as_agent(live: LiveSms, conversation_id: uuid.UUID, body: str) -> uuid.UUID:
    async with httpx.AsyncClient(base_url=live.base_url, timeout=10) as http:
        csrf = await login(http, live.agent)
        response = await http.post(
            f"/api/v1/conversations/{conversation_id}/messages",
            json={"body": body, "author_kind": "agent"},
            headers=csrf,
        )
    assert response.status_code == 201, response.text
    return uuid.UUID(response.json()["id"])


async def delivery_of(live: LiveSms, message_id: uuid.UUID) -> Message:
    async with live.db.unit_of_work(write=False) as s:
        message = await s.get(Message, message_id)
        assert message is not None
        return message


def sent_to(live: LiveSms, phone: str) -> list[SmsOut]:
    return [m for m in live.network.delivered() if m.receiver == phone]


async def network_carried(live: LiveSms, phone: str, count: int) -> list[SmsOut]:
    """The SMS to `phone` once fakesmsc has printed at least `count` (it reads from Kannel about once a
    second, so a delivery report can reach Allo before fakesmsc shows the message)."""

    async def enough() -> list[SmsOut] | None:
        carried = sent_to(live, phone)
        return carried if len(carried) >= count else None

    carried = await eventually(enough, f"fakesmsc did not show {count} SMS to {phone}")
    await asyncio.sleep(1.5)  # and nothing more comes
    assert len(sent_to(live, phone)) == len(carried)
    return carried


async def test_an_sms_from_a_french_mobile_is_answered_through_kannel_and_reported_delivered(
    live: LiveSms,
) -> None:
    # A short diagnosis, so every answer fits the account's 10 SMS (a knowledge article may not: see the
    # too_long refusal in test_kannel_hooks).
    text = "Bonjour, je n'ai plus de réseau depuis ce matin [ligne pro]"
    live.network.customer_writes("+33612345678", SHORT_CODE, text)

    conversation, replies = await answered_and_delivered(live, "+33612345678")
    messages = await messages_in(live, conversation.id)
    customer_message = messages[0]
    assert customer_message.author_kind is AuthorKind.customer
    assert customer_message.body == text
    assert uuid.UUID(customer_message.channel_message_id or "")  # Kannel's own id for the message (%I)
    assert conversation.contact_address == "+33612345678"

    # What the network carried: each answer, from our short code, its text intact in the coding chosen.
    delivered = await network_carried(live, "+33612345678", len(replies))
    assert len(delivered) == len(replies)
    for reply in replies:
        shown = next(m for m in delivered if m.text.startswith(reply.body))
        shape = sms.layout(shown.text)
        assert shown.sender == SHORT_CODE
        assert (shown.coding, shown.parts) == (shape.coding.value, shape.segments)
    # Each answer was reported accepted by the SMSC (8) and delivered to the phone (1).
    async with live.db.unit_of_work(write=False) as s:
        for reply in replies:
            for report_type in (8, 1):
                event = (
                    await s.execute(
                        select(ChannelEvent).where(
                            ChannelEvent.external_id == f"kannel-dlr:{reply.id}:{report_type}"
                        )
                    )
                ).scalar_one()
                assert event.state is ChannelEventState.processed


async def test_long_french_texts_go_as_concatenated_parts_in_the_right_coding(live: LiveSms) -> None:
    phone = "+33698765432"
    # The customer's own phone writes UCS-2: Kannel recodes it, and the text arrives as written.
    live.network.customer_writes_ucs2(phone, SHORT_CODE, "Bonjour 🙂")
    conversation, replies = await answered_and_delivered(live, phone)
    assert (await messages_in(live, conversation.id))[0].body == "Bonjour 🙂"
    before = len(await network_carried(live, phone, len(replies)))

    gsm_text = (
        "Bonjour Mme Koné, suite à votre appel du 12 mars, nous avons vérifié votre ligne : le débit de la "
        "fibre était réduit à cause d'un incident sur le réseau de votre quartier. Il est réparé depuis ce "
        "matin. Si le problème continue, redémarrez votre box. Bonne journée, le service client."
    )
    ucs2_text = (
        "Bonjour M. Ouédraogo, votre réclamation est reçue : nous remboursons 12 € sur la prochaine "
        "facture, ça sera visible dès le 5 du mois. Nous vous prions de nous excuser pour la gêne "
        "occasionnée 🙏 Bien à vous, le service client."
    )
    gsm_shape, ucs2_shape = sms.layout(gsm_text), sms.layout(ucs2_text)
    assert (gsm_shape.coding, gsm_shape.segments) == (sms.Coding.gsm7, 2)
    assert ucs2_shape.coding is sms.Coding.ucs2 and ucs2_shape.segments == 4
    gsm_id = await post_as_agent(live, conversation.id, gsm_text)
    ucs2_id = await post_as_agent(live, conversation.id, ucs2_text)

    async def both_delivered() -> bool:
        statuses = {(await delivery_of(live, m)).delivery_status for m in (gsm_id, ucs2_id)}
        return statuses == {MessageDelivery.delivered}

    await eventually(both_delivered, "the long messages were not reported delivered")
    carried = (await network_carried(live, phone, before + 2))[before:]
    # GSM-7: two parts of at most 153 septets; UCS-2 (ç, €, 🙏): four parts of at most 67 UTF-16 units.
    assert {(m.text, m.coding, m.parts) for m in carried} == {(gsm_text, "gsm7", 2), (ucs2_text, "ucs2", 4)}
    assert (await delivery_of(live, ucs2_id)).meta["parts"] == 4


async def test_stop_opts_the_number_out_confirms_once_and_later_messages_are_not_sent(live: LiveSms) -> None:
    phone = "+33611223344"
    live.network.customer_writes(phone, SHORT_CODE, "STOP")

    async def opted_out() -> OptOut | None:
        async with live.db.unit_of_work(write=False) as s:
            stmt = select(OptOut).where(OptOut.tenant_id == live.tenant_id, OptOut.address == phone)
            return (await s.execute(stmt)).scalar_one_or_none()

    assert (await eventually(opted_out, "no opt-out recorded")).source == "keyword"

    confirmations = await network_carried(live, phone, 1)
    assert len(confirmations) == 1 and "START" in confirmations[0].text

    conversation = await conversation_of(live, phone)
    assert conversation is not None
    offer_id = await post_as_agent(live, conversation.id, "Profitez de la fibre à 19,99 € par mois !")

    async def refused() -> Message | None:
        offer = await delivery_of(live, offer_id)
        return offer if offer.delivery_status is MessageDelivery.failed else None

    offer = await eventually(refused, "the message to an opted-out number was not refused")
    assert (offer.delivery_error or "").startswith("opted_out")
    await asyncio.sleep(1.5)  # anything handed to Kannel would reach fakesmsc well within this
    assert len(sent_to(live, phone)) == 1


async def test_kannel_down_the_send_is_retried_and_delivered_exactly_once_when_it_is_back(
    live: LiveSms,
) -> None:
    phone = "+33655443322"
    live.network.customer_writes(phone, SHORT_CODE, "Bonjour")
    conversation, replies = await answered_and_delivered(live, phone)
    await network_carried(live, phone, len(replies))

    live.network.stop()
    await asyncio.to_thread(live.kannel.stop)
    text = "Votre technicien passera demain entre 8h et 12h."
    message_id = await post_as_agent(live, conversation.id, text)

    async def failed_attempts() -> Job | None:
        async with live.db.unit_of_work(write=False) as s:
            jobs = (await s.execute(select(Job).where(Job.kind == SEND_KIND))).scalars().all()
        job = next((j for j in jobs if j.payload.get("message_id") == str(message_id)), None)
        return job if job is not None and job.attempts >= 2 else None

    job = await eventually(failed_attempts, "the send was not tried twice while Kannel was down")
    assert "Kannel could not be reached" in (job.last_error or "")
    assert (await delivery_of(live, message_id)).delivery_status is MessageDelivery.queued

    await asyncio.to_thread(live.kannel.start)
    live.reconnect_network()

    async def delivered() -> Message | None:
        message = await delivery_of(live, message_id)
        return message if message.delivery_status is MessageDelivery.delivered else None

    await eventually(delivered, "the message was not delivered once Kannel was back")
    assert [m.text for m in await network_carried(live, phone, 1)] == [text]
