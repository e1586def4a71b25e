"""E-mail end to end: a customer's mail server delivers to Allo's SMTP server, the assistant's answer
leaves through a stand-in relay with threading headers, and the customer's reply finds its conversation."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiosmtplib
import httpx
import pytest
from sqlalchemy import func, select

from allo.app import background_services
from allo.channels import service as channels
from allo.channels.email import inbound as email_inbound
from allo.channels.email.smtp_inbound import SmtpInbound
from allo.config import Settings
from allo.kit.bus import Bus
from allo.kit.db import Database, create_nullpool_engine
from allo.kit.migrate import upgrade
from allo.models import ChannelAccount, ChannelEvent, Conversation, Customer, Message, Tenant
from allo.models.enums import AuthorKind, Channel, ChannelEventState, MessageDelivery
from tests.channels.email_support import (
    NO_HTTP,
    SUPPORT,
    RelayStandin,
    create_email_account,
    customer_mail,
    deliver_to,
    events_with,
    free_port,
)
from tests.channels.helpers import ACCOUNTS, messages_of, run_jobs, worker
from tests.factories import Actor, create_customer

RENE = "rene.dupont@client.example"
MAX_BYTES = 256 * 1024


@pytest.fixture
async def inbound(db: Database) -> AsyncIterator[SmtpInbound]:
    server = SmtpInbound(db, host="127.0.0.1", port=0, max_bytes=MAX_BYTES, server_name="mx.operateur.test")
    await server.start()
    yield server
    await server.close()


async def _conversations_of(db: Database, tenant_id: uuid.UUID, email: str) -> list[Conversation]:
    async with db.unit_of_work(write=False) as s:
        customers = (
            (
                await s.execute(
                    select(Customer).where(Customer.tenant_id == tenant_id, Customer.email == email)
                )
            )
            .scalars()
            .all()
        )
        assert len(customers) == 1, "one customer per address"
        rows = await s.execute(select(Conversation).where(Conversation.customer_id == customers[0].id))
        return list(rows.scalars())


def _bot_replies(messages: list[Message]) -> list[Message]:
    return [m for m in messages if m.author_kind is AuthorKind.bot]


async def test_a_mail_is_answered_and_the_reply_to_the_answer_stays_in_the_thread(
    client: httpx.AsyncClient,
    db: Database,
    settings: Settings,
    tenant_actors: dict[str, Actor],
    relay: RelayStandin,
    inbound: SmtpInbound,
) -> None:
    admin = tenant_actors["admin"]
    account = await create_email_account(client, admin, relay)
    known = await create_customer(client, admin, name="René Dupont", email="Rene.Dupont@Client.example")

    first = customer_mail(message_id="<first-1@client.example>")
    await deliver_to(inbound.bound_port, first, sender=RENE, recipients=[SUPPORT])
    # The 250 came after the commit: the event is stored before any job has run.
    [event] = await events_with(db, "<first-1@client.example>")
    assert event.state is ChannelEventState.received and str(event.account_id) == account["id"]
    assert event.payload["raw"]["envelope"]["rcpt_to"] == [SUPPORT]

    await run_jobs(db, worker(db, settings, NO_HTTP), rounds=3)

    [conversation] = await _conversations_of(db, admin.tenant_id, RENE)
    assert str(conversation.customer_id) == known["id"], "the existing customer is matched by e-mail"
    assert conversation.channel is Channel.email
    assert str(conversation.channel_account_id) == account["id"]
    assert conversation.subject == "Facture trop élevée"
    assert conversation.contact_address == RENE
    messages = await messages_of(db, conversation.id)
    assert messages[0].author_kind is AuthorKind.customer
    assert messages[0].channel_message_id == "<first-1@client.example>"
    assert messages[0].body.startswith("Bonjour,\nma facture de juin est trop élevée")
    replies = _bot_replies(messages)
    assert replies, "the assistant answered"
    assert all(r.delivery_status is MessageDelivery.sent for r in replies)
    assert len(relay.received) == len(replies)

    sent = relay.received[0]
    answer = sent.message
    assert sent.mail_from == SUPPORT and sent.rcpt_tos == [RENE]
    assert answer["From"].addresses[0].display_name == "Service client Opérateur"
    assert str(answer["Subject"]) == "Re: Facture trop élevée"
    assert str(answer["In-Reply-To"]) == "<first-1@client.example>"
    assert str(answer["References"]) == "<first-1@client.example>"
    # The reply this mail carries (the send jobs may run in either order).
    [answered] = [r for r in replies if r.channel_message_id == str(answer["Message-ID"])]
    assert str(answer["Message-ID"]) == f"<allo.{answered.id}@operateur.example>"
    assert answer.get_content().strip() == answered.body.strip()
    bot_id = str(answer["Message-ID"])

    # René answers the bot's mail from his client: a new subject line, the history quoted below.
    reply = customer_mail(
        message_id="<second-2@client.example>",
        subject="RE: Re: Facture trop élevée (suite)",
        text=(
            "Merci, mais le rappel de mai était déjà payé.\n\n"
            "Le lun. 3 juin 2024 à 10:14, Service client <\nsupport@operateur.example> a écrit :\n"
            "> Bonjour,\n> votre facture comprend un rappel.\n"
        ),
        in_reply_to=bot_id,
        references=f"<first-1@client.example> {bot_id}",
    )
    await deliver_to(inbound.bound_port, reply, sender=RENE, recipients=[SUPPORT])
    await run_jobs(db, worker(db, settings, NO_HTTP), rounds=3)

    assert [c.id for c in await _conversations_of(db, admin.tenant_id, RENE)] == [conversation.id]
    messages = await messages_of(db, conversation.id)
    from_rene = [m for m in messages if m.author_kind is AuthorKind.customer]
    assert [m.channel_message_id for m in from_rene] == [
        "<first-1@client.example>",
        "<second-2@client.example>",
    ]
    assert from_rene[1].body == "Merci, mais le rappel de mai était déjà payé."
    # Whatever was answered next threads on: the newest message first, the whole thread in References.
    later = relay.received[len(replies) :]
    assert later, "the assistant answered the reply too"
    for mail in (r.message for r in later):
        assert str(mail["Subject"]) == "Re: Facture trop élevée"
        assert "<first-1@client.example>" in str(mail["References"])
        assert "<second-2@client.example>" in str(mail["References"])


async def test_a_mail_delivered_twice_creates_nothing_twice(
    client: httpx.AsyncClient,
    db: Database,
    settings: Settings,
    tenant_actors: dict[str, Actor],
    relay: RelayStandin,
    inbound: SmtpInbound,
) -> None:
    admin = tenant_actors["admin"]
    await create_email_account(client, admin, relay)
    mail = customer_mail(message_id="<twice@client.example>")
    await deliver_to(inbound.bound_port, mail, sender=RENE, recipients=[SUPPORT])
    await run_jobs(db, worker(db, settings, NO_HTTP), rounds=3)
    sent_after_first = len(relay.received)
    # The sending server did not hear our 250 and delivers again; later a second MX relays it too.
    await deliver_to(inbound.bound_port, mail, sender=RENE, recipients=[SUPPORT])
    relayed = (
        b"Received: from mx2.client.example by mx.operateur.example; Mon, 3 Jun 2024 10:13:00\r\n" + mail
    )
    await deliver_to(inbound.bound_port, relayed, sender=RENE, recipients=[SUPPORT])
    await run_jobs(db, worker(db, settings, NO_HTTP), rounds=3)

    [event] = await events_with(db, "<twice@client.example>")
    assert event.state is ChannelEventState.processed
    [conversation] = await _conversations_of(db, admin.tenant_id, RENE)
    from_rene = [m for m in await messages_of(db, conversation.id) if m.author_kind is AuthorKind.customer]
    assert len(from_rene) == 1
    assert sent_after_first > 0 and len(relay.received) == sent_after_first


async def test_only_the_accounts_addresses_are_accepted(
    client: httpx.AsyncClient,
    db: Database,
    tenant_actors: dict[str, Actor],
    relay: RelayStandin,
    inbound: SmtpInbound,
) -> None:
    admin = tenant_actors["admin"]
    account = await create_email_account(client, admin, relay)
    mail = customer_mail(message_id="<unknown-rcpt@client.example>", to="nobody@operateur.example")
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as refused:
        await deliver_to(inbound.bound_port, mail, sender=RENE, recipients=["nobody@operateur.example"])
    assert [r.code for r in refused.value.recipients] == [550]
    assert await events_with(db, "<unknown-rcpt@client.example>") == []

    # One good recipient among bad ones: the message is taken for it, the others are refused. The address
    # is matched whatever its case.
    both = customer_mail(message_id="<two-rcpt@client.example>")
    errors, _ = await aiosmtplib.send(
        both,
        sender=RENE,
        recipients=["Support@Operateur.Example", "abuse@operateur.example"],
        hostname="127.0.0.1",
        port=inbound.bound_port,
        start_tls=False,
    )
    assert errors["abuse@operateur.example"].code == 550
    assert len(await events_with(db, "<two-rcpt@client.example>")) == 1

    # A switched-off account takes no more mail.
    switched_off = await client.patch(
        f"{ACCOUNTS}/{account['id']}", json={"active": False}, headers=admin.bearer
    )
    assert switched_off.status_code == 200
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused):
        await deliver_to(inbound.bound_port, mail, sender=RENE, recipients=[SUPPORT])


async def test_an_oversized_mail_is_refused(
    client: httpx.AsyncClient,
    db: Database,
    tenant_actors: dict[str, Actor],
    relay: RelayStandin,
    inbound: SmtpInbound,
) -> None:
    await create_email_account(client, tenant_actors["admin"], relay)
    big = customer_mail(message_id="<too-big@client.example>", text="ligne de journal\n" * (MAX_BYTES // 16))
    assert len(big) > MAX_BYTES
    # A server that reads EHLO's SIZE announces the size in MAIL FROM and is refused at once…
    with pytest.raises(aiosmtplib.SMTPSenderRefused) as at_mail:
        await deliver_to(inbound.bound_port, big, sender=RENE, recipients=[SUPPORT])
    assert at_mail.value.code == 552
    # …one that does not is refused after DATA.
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=inbound.bound_port, start_tls=False)
    async with smtp:
        await smtp.mail(RENE)
        await smtp.rcpt(SUPPORT)
        with pytest.raises(aiosmtplib.SMTPDataError) as at_data:
            await smtp.data(big)
    assert at_data.value.code == 552
    assert await events_with(db, "<too-big@client.example>") == []


async def test_a_storage_failure_answers_451_and_the_retry_is_stored(
    client: httpx.AsyncClient,
    db: Database,
    tenant_actors: dict[str, Actor],
    relay: RelayStandin,
    inbound: SmtpInbound,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await create_email_account(client, tenant_actors["admin"], relay)
    real_accept = channels.accept
    failures = [RuntimeError("the database went away")]

    async def accept_failing_once(*args: object, **kwargs: object) -> channels.Received:
        if failures:
            raise failures.pop()
        return await real_accept(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(channels, "accept", accept_failing_once)
    mail = customer_mail(message_id="<retried@client.example>")
    with pytest.raises(aiosmtplib.SMTPDataError) as refused:
        await deliver_to(inbound.bound_port, mail, sender=RENE, recipients=[SUPPORT])
    assert refused.value.code == 451
    assert await events_with(db, "<retried@client.example>") == []
    await deliver_to(inbound.bound_port, mail, sender=RENE, recipients=[SUPPORT])  # the sender's retry
    assert len(await events_with(db, "<retried@client.example>")) == 1


async def test_a_message_the_reader_trips_on_is_kept_not_refused(
    client: httpx.AsyncClient,
    db: Database,
    tenant_actors: dict[str, Actor],
    relay: RelayStandin,
    inbound: SmtpInbound,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await create_email_account(client, tenant_actors["admin"], relay)

    def reader_bug(raw: bytes, **_: object) -> None:
        raise IndexError("a parser bug")

    monkeypatch.setattr(email_inbound, "inbound_item", reader_bug)
    mail = customer_mail(message_id="<odd@client.example>")
    await deliver_to(inbound.bound_port, mail, sender=RENE, recipients=[SUPPORT])  # a 250, not a 451
    async with db.unit_of_work(write=False) as s:
        [event] = (
            await s.execute(
                select(ChannelEvent).where(ChannelEvent.external_id.like("%@unreadable.allo.invalid>"))
            )
        ).scalars()
    assert event.state is ChannelEventState.ignored
    assert event.payload["raw"]["ignored"] == "unreadable: IndexError: a parser bug"
    assert base64.b64decode(event.payload["raw"]["rfc822_base64"]) == mail


async def test_automatic_mail_and_our_own_mail_are_never_answered(
    client: httpx.AsyncClient,
    db: Database,
    settings: Settings,
    tenant_actors: dict[str, Actor],
    relay: RelayStandin,
    inbound: SmtpInbound,
) -> None:
    admin = tenant_actors["admin"]
    await create_email_account(client, admin, relay)
    out_of_office = customer_mail(
        message_id="<ooo@client.example>", subject="Absent", text="Absent jusqu'au 10."
    )
    out_of_office = out_of_office.replace(b"Subject:", b"Auto-Submitted: auto-replied\r\nSubject:", 1)
    looped = customer_mail(message_id="<loop@operateur.example>", sender=f"Service client <{SUPPORT}>")
    for raw in (out_of_office, looped):
        await deliver_to(inbound.bound_port, raw, sender=RENE, recipients=[SUPPORT])
    await run_jobs(db, worker(db, settings, NO_HTTP), rounds=3)
    for external_id in ("<ooo@client.example>", "<loop@operateur.example>"):
        [event] = await events_with(db, external_id)
        assert event.state is ChannelEventState.ignored and event.message_id is None
    assert relay.received == []


async def test_a_relay_that_is_down_then_recovers_delivers_each_reply_once(
    client: httpx.AsyncClient,
    db: Database,
    settings: Settings,
    tenant_actors: dict[str, Actor],
    inbound: SmtpInbound,
) -> None:
    admin = tenant_actors["admin"]
    relay = RelayStandin()  # its port is chosen, nothing listens there yet
    await create_email_account(client, admin, relay)
    await deliver_to(
        inbound.bound_port,
        customer_mail(message_id="<while-down@client.example>"),
        sender=RENE,
        recipients=[SUPPORT],
    )
    work = worker(db, settings, NO_HTTP)
    await run_jobs(db, work, rounds=4)
    [conversation] = await _conversations_of(db, admin.tenant_id, RENE)
    replies = _bot_replies(await messages_of(db, conversation.id))
    assert replies and all(r.delivery_status is MessageDelivery.queued for r in replies)

    relay.start()
    try:
        await run_jobs(db, work, rounds=3)
        await run_jobs(db, work, rounds=2)  # nothing left to send: nothing sent again
    finally:
        relay.stop()
    replies = _bot_replies(await messages_of(db, conversation.id))
    assert all(r.delivery_status is MessageDelivery.sent for r in replies)
    sent_ids = [str(r.message["Message-ID"]) for r in relay.received]
    assert sorted(sent_ids) == sorted(str(r.channel_message_id) for r in replies)
    assert len(set(sent_ids)) == len(sent_ids) == len(replies)


async def test_allo_serve_starts_the_smtp_server_when_its_port_is_set(
    client: httpx.AsyncClient,
    db: Database,
    settings: Settings,
    tenant_actors: dict[str, Actor],
    relay: RelayStandin,
) -> None:
    await create_email_account(client, tenant_actors["admin"], relay)
    port = free_port()
    configured = settings.model_copy(update={"smtp_inbound_port": port, "email_imap_polling": False})
    async with background_services(configured, db, Bus(), run_worker=False):
        await deliver_to(
            port, customer_mail(message_id="<via-serve@client.example>"), sender=RENE, recipients=[SUPPORT]
        )
    assert len(await events_with(db, "<via-serve@client.example>")) == 1
    with pytest.raises(aiosmtplib.SMTPConnectError):
        await deliver_to(
            port, customer_mail(message_id="<after@client.example>"), sender=RENE, recipients=[SUPPORT]
        )


async def test_the_smtp_server_runs_alone_from_the_command_line(
    fresh_database_url: str, tmp_path: Path
) -> None:
    await upgrade(fresh_database_url)
    db = Database(create_nullpool_engine(fresh_database_url))
    try:
        async with db.unit_of_work() as s:
            tenant = Tenant(slug="cli-mail", name="CLI mail")
            s.add(tenant)
            await s.flush()
            s.add(
                ChannelAccount(
                    tenant_id=tenant.id,
                    channel=Channel.email,
                    provider="email",
                    name="Support",
                    address=SUPPORT,
                    settings={"smtp_host": "127.0.0.1"},
                )
            )
        port = free_port()
        log = tmp_path / "smtp-serve.log"
        with log.open("w") as output:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                *("-m", "allo", "email", "smtp-serve", "--port", str(port)),
                env={**os.environ, "ALLO_DATABASE_URL": fresh_database_url, "ALLO_MODE": "dev"},
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        try:
            deadline = time.monotonic() + 60
            while "Receiving e-mail" not in log.read_text():
                if time.monotonic() > deadline or process.returncode is not None:
                    pytest.fail("allo email smtp-serve did not start:\n" + log.read_text())
                await asyncio.sleep(0.2)
            mail = customer_mail(message_id="<cli@client.example>")
            await deliver_to(port, mail, sender=RENE, recipients=[SUPPORT])
            with pytest.raises(aiosmtplib.SMTPRecipientsRefused):
                await deliver_to(port, mail, sender=RENE, recipients=["nobody@operateur.example"])
        finally:
            process.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(process.wait(), timeout=20)
            except TimeoutError:
                process.kill()
                await process.wait()
        assert process.returncode == 0, log.read_text()
        async with db.unit_of_work(write=False) as s:
            count = await s.execute(
                select(func.count())
                .select_from(ChannelEvent)
                .where(ChannelEvent.external_id == "<cli@client.example>")
            )
            assert count.scalar_one() == 1
    finally:
        await db.dispose()


def _self_signed(directory: Path) -> tuple[Path, Path]:
    """A throwaway certificate for mx.operateur.test, as an operator would install a real one."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mx.operateur.test")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("mx.operateur.test")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "mx.pem", directory / "mx.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


async def test_starttls_is_offered_with_a_certificate(
    client: httpx.AsyncClient,
    db: Database,
    settings: Settings,
    tenant_actors: dict[str, Actor],
    relay: RelayStandin,
    tmp_path: Path,
) -> None:
    await create_email_account(client, tenant_actors["admin"], relay)
    cert, key = _self_signed(tmp_path)
    configured = settings.model_copy(
        update={"smtp_inbound_port": free_port(), "smtp_inbound_tls_cert": cert, "smtp_inbound_tls_key": key}
    )
    server = SmtpInbound.from_settings(configured, db)
    await server.start()
    try:
        smtp = aiosmtplib.SMTP(
            hostname="127.0.0.1", port=server.bound_port, start_tls=True, validate_certs=False
        )
        async with smtp:
            assert smtp.get_transport_info("sslcontext") is not None, "the session is encrypted"
            await smtp.sendmail(RENE, [SUPPORT], customer_mail(message_id="<over-tls@client.example>"))
        # A sending server that does not ask for TLS still delivers.
        plain = customer_mail(message_id="<in-clear@client.example>")
        await deliver_to(server.bound_port, plain, sender=RENE, recipients=[SUPPORT])
    finally:
        await server.close()
    assert len(await events_with(db, "<over-tls@client.example>")) == 1
    assert len(await events_with(db, "<in-clear@client.example>")) == 1
