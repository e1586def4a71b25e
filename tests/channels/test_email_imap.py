"""IMAP polling against a stand-in IMAP4rev1 server: unseen mail stored, marked seen only once committed,
one poller per account across processes."""

from __future__ import annotations

import imaplib
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import select

from allo.channels import service as channels
from allo.channels.email.imap_poller import ImapPolling, MailboxError
from allo.config import Settings
from allo.kit.db import Database
from allo.models import Conversation, Customer
from allo.models.enums import AuthorKind, ChannelEventState
from tests.channels.email_support import (
    NO_HTTP,
    RelayStandin,
    create_email_account,
    customer_mail,
    events_with,
    fixture,
)
from tests.channels.helpers import messages_of, run_jobs, worker
from tests.channels.imap_standin import ImapStandin
from tests.factories import Actor

PASSWORD = "imap-password-for-tests"


@pytest.fixture
async def mailbox() -> AsyncIterator[ImapStandin]:
    server = ImapStandin(username="support-imap", password=PASSWORD)
    await server.start()
    yield server
    await server.close()


async def _polled_account(
    client: httpx.AsyncClient, admin: Actor, mailbox: ImapStandin, *, password: str = PASSWORD
) -> uuid.UUID:
    account = await create_email_account(
        client,
        admin,
        RelayStandin(),
        secrets={"imap_password": password},
        imap_host="127.0.0.1",
        imap_port=mailbox.port,
        imap_tls=False,
        imap_username="support-imap",
    )
    return uuid.UUID(account["id"])


async def test_unseen_mail_is_stored_then_marked_seen(
    client: httpx.AsyncClient,
    db: Database,
    settings: Settings,
    tenant_actors: dict[str, Actor],
    mailbox: ImapStandin,
) -> None:
    admin = tenant_actors["admin"]
    account_id = await _polled_account(client, admin, mailbox)
    old = mailbox.add(customer_mail(message_id="<read-long-ago@client.example>"), seen=True)
    new = mailbox.add(fixture("outlook_reply_fr.eml"))

    report = await ImapPolling(settings, db).poll_account(account_id)

    assert (report.unseen, report.stored, report.duplicates) == (1, 1, 0)
    assert mailbox.seen(new) and mailbox.seen(old)
    assert await events_with(db, "<read-long-ago@client.example>") == []
    # Read without touching \Seen, marked after the commit.
    fetch, store = (c for c in mailbox.commands if c.startswith(("UID FETCH", "UID STORE")))
    assert fetch == f"UID FETCH {new} (BODY.PEEK[])"
    assert store == f"UID STORE {new} +FLAGS (\\Seen)"
    assert "LOGIN support-imap ****" in mailbox.commands and mailbox.commands[-1] == "LOGOUT"

    [event] = await events_with(
        db, "<AM7PR03MB6513B2C5F0A0D4C1E4D2A7B1C3F82@AM7PR03MB6513.eurprd03.prod.outlook.example>"
    )
    assert event.payload["raw"]["envelope"] == {"via": "imap", "folder": "INBOX", "uid": str(new)}
    await run_jobs(db, worker(db, settings, NO_HTTP), rounds=2)
    async with db.unit_of_work(write=False) as s:
        customer = (
            await s.execute(
                select(Customer).where(
                    Customer.tenant_id == admin.tenant_id,
                    Customer.email == "martine.leroy@entreprise.example",
                )
            )
        ).scalar_one()
        conversation = (
            await s.execute(select(Conversation).where(Conversation.customer_id == customer.id))
        ).scalar_one()
    first = (await messages_of(db, conversation.id))[0]
    assert first.author_kind is AuthorKind.customer
    assert first.body.startswith("Bonjour,\n\nJe confirme la résiliation au 30 juin.")

    again = await ImapPolling(settings, db).poll_account(account_id)
    assert (again.unseen, again.stored) == (0, 0)


async def test_a_message_not_stored_stays_unseen_for_the_next_poll(
    client: httpx.AsyncClient,
    db: Database,
    settings: Settings,
    tenant_actors: dict[str, Actor],
    mailbox: ImapStandin,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    account_id = await _polled_account(client, tenant_actors["admin"], mailbox)
    first = mailbox.add(customer_mail(message_id="<one@client.example>"))
    second = mailbox.add(customer_mail(message_id="<two@client.example>", text="Deuxième message"))
    real_accept = channels.accept
    calls = 0

    async def accept_failing_second(*args: object, **kwargs: object) -> channels.Received:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("the database went away")
        return await real_accept(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(channels, "accept", accept_failing_second)
    with pytest.raises(RuntimeError):
        await ImapPolling(settings, db).poll_account(account_id)
    assert mailbox.seen(first) and not mailbox.seen(second)
    assert await events_with(db, "<two@client.example>") == []

    report = await ImapPolling(settings, db).poll_account(account_id)
    assert (report.unseen, report.stored) == (1, 1)
    assert mailbox.seen(second)

    # The same message already received over SMTP, then found in the mailbox: recorded once.
    third = mailbox.add(customer_mail(message_id="<one@client.example>"))
    report = await ImapPolling(settings, db).poll_account(account_id)
    assert (report.stored, report.duplicates) == (0, 1) and mailbox.seen(third)
    [event] = await events_with(db, "<one@client.example>")
    assert event.state is ChannelEventState.received


async def test_one_poller_per_account_across_processes(
    client: httpx.AsyncClient,
    db: Database,
    settings: Settings,
    tenant_actors: dict[str, Actor],
    mailbox: ImapStandin,
) -> None:
    account_id = await _polled_account(client, tenant_actors["admin"], mailbox)
    mailbox.add(customer_mail(message_id="<lease@client.example>"))
    here, there = ImapPolling(settings, db, holder="host-a:1"), ImapPolling(settings, db, holder="host-b:2")

    assert set(await here.poll_due()) == {account_id}
    assert await there.poll_due() == {}  # the lease is held by the first
    assert sum(c.startswith("LOGIN") for c in mailbox.commands) == 1

    await here.release()  # stopped: the other process takes over at once
    mailbox.add(customer_mail(message_id="<after-handover@client.example>"))
    reports = await there.poll_due()
    assert reports[account_id].stored == 1


async def test_a_refused_login_is_reported_without_the_password(
    client: httpx.AsyncClient,
    db: Database,
    settings: Settings,
    tenant_actors: dict[str, Actor],
    mailbox: ImapStandin,
    caplog: pytest.LogCaptureFixture,
) -> None:
    account_id = await _polled_account(client, tenant_actors["admin"], mailbox, password="not-the-password")
    with pytest.raises(MailboxError, match="login refused for support-imap"):
        await ImapPolling(settings, db).poll_account(account_id)
    # The polling loop logs it and tries again later, backing off.
    polling = ImapPolling(settings, db)
    assert await polling.poll_due() == {}
    assert "polling account" in caplog.text and "not-the-password" not in caplog.text
    assert await polling.poll_due() == {}  # not due again yet
    assert sum(c.startswith("LOGIN") for c in mailbox.commands) == 2


def test_the_standin_speaks_imap_as_imaplib_expects() -> None:
    # The stand-in's own check, through the stdlib client the poller uses, outside any event loop.
    import asyncio
    import threading

    loop = asyncio.new_event_loop()
    server = ImapStandin(username="u", password='p"w\\d')
    loop.run_until_complete(server.start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        uid = server.add(b"Subject: hi\r\n\r\nbody\r\n")
        client = imaplib.IMAP4("127.0.0.1", server.port, timeout=5)
        client.login("u", 'p"w\\d')
        assert client.select('"INBOX"')[0] == "OK"
        assert client.uid("SEARCH", "UNSEEN") == ("OK", [str(uid).encode()])
        status, data = client.uid("FETCH", str(uid), "(BODY[])")
        assert status == "OK" and data[0][1] == b"Subject: hi\r\n\r\nbody\r\n"
        assert server.seen(uid)  # a plain BODY[] marks it, as RFC 3501 says
        assert client.uid("SEARCH", "UNSEEN") == ("OK", [b""])
        client.logout()
    finally:
        asyncio.run_coroutine_threadsafe(server.close(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
