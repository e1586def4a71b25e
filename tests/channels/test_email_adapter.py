"""The e-mail adapter on its own: the reply it composes, and how it reads a relay's answers."""

from __future__ import annotations

import uuid

import httpx
import pytest

from allo.channels.base import Account, Outgoing, ProviderRejected, ProviderUnavailable
from allo.channels.email.adapter import EmailAdapter, compose, reply_subject
from tests.channels.email_support import (
    NO_HTTP,
    SUPPORT,
    RelayStandin,
    create_email_account,
    email_settings,
)
from tests.channels.helpers import ACCOUNTS
from tests.factories import Actor

CUSTOMER = "rene.dupont@client.example"


def _account(relay: RelayStandin, secrets: dict[str, str] | None = None, **settings: object) -> Account:
    return Account(
        id=str(uuid.uuid4()),
        tenant_id=str(uuid.uuid4()),
        address=SUPPORT,
        settings=email_settings(relay, **settings),
        secrets=secrets or {},
    )


def _reply(**fields: object) -> Outgoing:
    values: dict[str, object] = {
        "message_id": "0c8f7a52-4b1e-4d0e-9b6a-2f1d3c4b5a69",
        "to": CUSTOMER,
        "text": "Bonjour René,\nvotre facture comprend un rappel de mai : 29,99 €.",
        "subject": "Facture trop élevée",
        "replies_to": ["<allo.older@operateur.example>", "<CAJx4Zk2fQ+first@mail.gmail.example>"],
    }
    values.update(fields)
    return Outgoing(**values)  # type: ignore[arg-type]


def test_the_reply_is_threaded_plain_utf8_text() -> None:
    relay = RelayStandin()
    mail = compose(
        _account(relay),
        _reply(replies_to=["<newest@client.example>", "not-a-message-id", "<allo.1@operateur.example>"]),
    )
    assert mail["From"].addresses[0].display_name == "Service client Opérateur"
    assert mail["From"].addresses[0].addr_spec == SUPPORT
    assert str(mail["To"]) == CUSTOMER
    assert str(mail["Subject"]) == "Re: Facture trop élevée"
    assert str(mail["Message-ID"]) == "<allo.0c8f7a52-4b1e-4d0e-9b6a-2f1d3c4b5a69@operateur.example>"
    # replies_to comes newest first; what is no Message-ID is left out.
    assert str(mail["In-Reply-To"]) == "<newest@client.example>"
    assert str(mail["References"]) == "<allo.1@operateur.example> <newest@client.example>"
    assert mail.get_content_type() == "text/plain"
    assert mail.get_content_charset() == "utf-8"
    assert mail["Content-Transfer-Encoding"] == "quoted-printable"
    assert mail.get_content() == "Bonjour René,\nvotre facture comprend un rappel de mai : 29,99 €.\n"
    assert mail["Date"] is not None


def test_a_first_message_is_not_a_reply() -> None:
    mail = compose(_account(RelayStandin()), _reply(replies_to=[]))
    assert str(mail["Subject"]) == "Facture trop élevée"
    assert mail["In-Reply-To"] is None and mail["References"] is None


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Facture", "Re: Facture"),
        ("Re: Facture", "Re: Facture"),
        ("RE : Re: re:Facture", "Re: Facture"),
        ("Réf. : Facture", "Re: Facture"),
        ("AW: Re[2]: Facture", "Re: Facture"),
        ("TR: Facture", "Re: TR: Facture"),
        ("Re:\n  Facture\r\n de juin", "Re: Facture de juin"),
        (None, "Re: Your message"),
        ("Re: ", "Re: Your message"),
    ],
)
def test_re_is_never_stacked(subject: str | None, expected: str) -> None:
    assert reply_subject(subject, answering=True, language="en") == expected


async def test_send_hands_the_reply_to_the_relay(relay: RelayStandin) -> None:
    result = await EmailAdapter().send(_account(relay), _reply(), NO_HTTP)
    assert result.external_id == "<allo.0c8f7a52-4b1e-4d0e-9b6a-2f1d3c4b5a69@operateur.example>"
    [sent] = relay.received
    assert sent.mail_from == SUPPORT and sent.rcpt_tos == [CUSTOMER]
    assert str(sent.message["Message-ID"]) == result.external_id
    assert str(sent.message["In-Reply-To"]) == "<allo.older@operateur.example>"
    assert sent.message.get_content().startswith("Bonjour René,")
    assert sent.login is None


async def test_the_relay_login() -> None:
    relay = RelayStandin(credentials=("support-mailer", "s3cret-relay-password"))
    relay.start()
    try:
        account = _account(relay, {"smtp_password": "s3cret-relay-password"}, smtp_username="support-mailer")
        await EmailAdapter().send(account, _reply(), NO_HTTP)
        with pytest.raises(ProviderRejected) as refused:
            wrong = _account(relay, {"smtp_password": "guess"}, smtp_username="support-mailer")
            await EmailAdapter().send(wrong, _reply(), NO_HTTP)
        with pytest.raises(ProviderRejected) as incomplete:
            await EmailAdapter().send(_account(relay, smtp_username="support-mailer"), _reply(), NO_HTTP)
    finally:
        relay.stop()
    assert [r.login for r in relay.received] == ["support-mailer"]
    assert refused.value.code == "smtp_535"
    assert "guess" not in str(refused.value)
    assert incomplete.value.code == "account_incomplete"


@pytest.mark.parametrize(
    ("answer", "error", "code"),
    [
        ("451 4.7.1 Greylisted, please try again in 5 minutes", ProviderUnavailable, 451),
        ("452 4.3.1 Insufficient system storage", ProviderUnavailable, 452),
        ("550 5.1.1 <rene.dupont@client.example>: Recipient address rejected", ProviderRejected, "smtp_550"),
        ("554 5.7.1 Message rejected as spam", ProviderRejected, "smtp_554"),
    ],
)
async def test_4xx_is_later_and_5xx_is_never(answer: str, error: type[Exception], code: object) -> None:
    relay = RelayStandin(refusals=[answer])
    await _send_refused(relay, error, code)
    assert relay.received == []


async def _send_refused(relay: RelayStandin, error: type[Exception], code: object) -> Exception:
    """A reply sent through a relay that refuses it: the error raised, checked for its kind and code."""
    relay.start()
    try:
        with pytest.raises(error) as raised:
            await EmailAdapter().send(_account(relay), _reply(), NO_HTTP)
    finally:
        relay.stop()
    if isinstance(raised.value, ProviderUnavailable):
        assert raised.value.status_code == code
    else:
        assert isinstance(raised.value, ProviderRejected) and raised.value.code == code
    return raised.value


@pytest.mark.parametrize(
    ("answer", "error", "code"),
    [
        ("450 4.2.1 Mailbox busy, try again later", ProviderUnavailable, 450),
        ("550 5.1.1 <rene.dupont@client.example>: Recipient address rejected", ProviderRejected, "smtp_550"),
    ],
)
async def test_a_recipient_refused_at_rcpt_reads_like_a_refused_message(
    answer: str, error: type[Exception], code: object
) -> None:
    relay = RelayStandin(rcpt_refusals=[answer])
    refused = await _send_refused(relay, error, code)
    assert answer.partition(" ")[2] in str(refused), "the relay's own words"
    assert relay.received == []


async def test_a_relay_that_is_down_is_retried_later() -> None:
    relay = RelayStandin()  # never started: nothing listens on its port
    with pytest.raises(ProviderUnavailable, match="could not be reached"):
        await EmailAdapter().send(_account(relay), _reply(), NO_HTTP)


async def test_settings_the_relay_cannot_meet_are_not_retried(relay: RelayStandin) -> None:
    with pytest.raises(ProviderRejected) as raised:
        await EmailAdapter().send(_account(relay, security="starttls"), _reply(), NO_HTTP)
    assert raised.value.code == "smtp_unsupported"
    assert "STARTTLS" in str(raised.value)


async def test_what_is_not_an_address_is_refused_before_any_connection(relay: RelayStandin) -> None:
    for to in ("not an address", "a@b.example\r\nBcc: victim@else.example", "a@b.example, c@d.example"):
        with pytest.raises(ProviderRejected) as raised:
            await EmailAdapter().send(_account(relay), _reply(to=to), NO_HTTP)
        assert raised.value.code == "bad_address"
    assert relay.received == []


async def test_accounts_are_validated_and_take_no_webhooks(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], relay: RelayStandin
) -> None:
    admin = tenant_actors["admin"]
    for settings in (
        {"smtp_host": "smtp://relay.example", "smtp_port": 587},
        {"smtp_host": "relay.example", "security": "ssl"},
        {"smtp_host": "relay.example", "poll_seconds": 1},
        {"smtp_port": 587},
        {"smtp_host": "relay.example", "unknown_setting": True},
    ):
        response = await client.post(
            ACCOUNTS,
            json={
                "channel": "email",
                "provider": "email",
                "name": "x",
                "address": SUPPORT,
                "settings": settings,
            },
            headers=admin.bearer,
        )
        assert response.status_code == 422, settings
        assert response.json()["error"]["code"] == "invalid_account"
    account = await create_email_account(client, admin, relay, secrets={"smtp_password": "relay-password"})
    assert account["secrets_set"] == ["smtp_password"]
    assert "relay-password" not in str(account)
    hook = await client.post(f"/api/v1/channels/hooks/{account['id']}", content=b"From: x@y.example\n\nhi")
    assert hook.status_code == 401
    providers = await client.get("/api/v1/channels/providers", headers=admin.bearer)
    email = next(p for p in providers.json() if p["provider"] == "email")
    assert email["channel"] == "email"
    assert email["capabilities"]["max_buttons"] == 0
    assert email["secrets"] == ["imap_password", "smtp_password"]
