"""Reading received mail: real-looking messages from Gmail, Outlook, webmails and old clients."""

from __future__ import annotations

import base64
from email import policy
from email.parser import BytesParser

import orjson
import pytest

from allo.channels.email.mime import html_to_text, inbound_item, new_text, read_mail
from tests.channels.email_support import fixture


def test_a_french_gmail_reply_keeps_only_the_new_text() -> None:
    mail = read_mail(fixture("gmail_reply_fr.eml"))
    assert mail.sender == "rene.dupont@gmail.example"
    assert mail.sender_name == "René Dupont"
    assert mail.subject == "Re: Facture trop élevée"
    assert mail.message_id == "<CAJx4Zk3+second_reply=x9@mail.gmail.example>"
    assert (
        mail.text
        == "Merci pour votre réponse.\nLe montant est toujours de 59,98 € au lieu de 29,99 €.\n\nRené"
    )
    # In-Reply-To first, then References from the newest, each once.
    assert mail.replies_to == [
        "<allo.6f1c2b5e-1111-4c3a-9d2e-5a7c1e0b9a01@operateur.example>",
        "<CAJx4Zk2fQ+first@mail.gmail.example>",
    ]
    assert mail.attachments == []
    assert mail.automatic is None
    assert mail.sent_at is not None and mail.sent_at.isoformat() == "2024-06-03T08:31:05+00:00"


def test_a_french_outlook_reply_drops_the_de_envoye_block() -> None:
    mail = read_mail(fixture("outlook_reply_fr.eml"))
    assert mail.subject == "RE : Résiliation de ma ligne fixe"
    assert mail.sender_name == "Martine Leroy"
    assert mail.text == (
        "Bonjour,\n\nJe confirme la résiliation au 30 juin. Merci de m'envoyer l'attestation par courrier."
        "\n\nCordialement,\nMartine Leroy"
    )
    assert "Pouvez-vous" not in mail.text and "____" not in mail.text
    assert mail.replies_to == ["<allo.0e9b1c77-2222-4d61-8f55-7d1a2b3c4d5e@operateur.example>"]


def test_an_html_only_message_is_read_as_text_without_its_history() -> None:
    mail = read_mail(fixture("html_only_outlook.eml"))
    assert mail.subject == "Re: Remboursement non reçu"
    assert mail.text == (
        "Bonjour,\n"
        "Je n’ai toujours pas reçu le remboursement de 29,99 €.\n"
        "Les deux prélèvements :\n"
        "- 12 mai\n"
        "- 12 juin\n"
        "Le détail est sur mon espace client (https://espace.operateur.example/factures/2024-06)."
    )
    for left_out in ("margin-top", "pixel", "De :", "émis le 3 juin"):
        assert left_out not in mail.text


def test_attachments_are_listed_with_name_type_and_size() -> None:
    mail = read_mail(fixture("attachments.eml"))
    assert mail.subject == "Contestation facture + capture d'écran"
    assert mail.text == "Bonjour,\n\nVous trouverez ma facture et une capture de l'écran d'erreur.\n\nSophie"
    listed = [(m.kind, m.mime_type, m.name, m.size) for m in mail.attachments]
    assert listed == [
        ("image", "image/png", "capture.png", 70),
        ("file", "application/pdf", "facture juin été.pdf", 52),
        ("file", "message/rfc822", "Votre facture de juin.eml", listed[2][3]),
    ]
    assert listed[2][3] is not None and listed[2][3] > 100
    # The reference is the part's number in the raw message the event keeps.
    assert [m.reference for m in mail.attachments] == ["part:2", "part:3", "part:4"]
    item = inbound_item(fixture("attachments.eml"))
    assert base64.b64decode(item.payload["rfc822_base64"]) == fixture("attachments.eml")
    assert item.stored()["read"]["media"][1] == {
        "kind": "file",
        "reference": "part:3",
        "mime_type": "application/pdf",
        "name": "facture juin été.pdf",
        "size": 52,
    }


def test_8_bit_latin_1_without_a_message_id_gets_a_stable_one() -> None:
    raw = fixture("latin1_8bit_no_message_id.eml")
    mail = read_mail(raw)
    assert mail.subject == "Problème de débit"
    assert mail.text == (
        "Bonjour,\n\nLe débit de ma box est très faible depuis hier soir – à peine 2\xa0Mbit/s.\n"
        "J’ai déjà redémarré la box.\n\nJean"
    )
    assert mail.message_id.startswith("<sha256.") and mail.message_id.endswith("@generated.allo.invalid>")
    # The same message relayed by another MX (new trace headers) is recognised as the same message.
    relayed = (
        b"Received: from mx2.operateur.example by mx.operateur.example; Fri, 7 Jun 2024 19:45:03\n" + raw
    )
    relayed = b"Return-Path: <jean.petit@wanadoo.example>\n" + relayed
    assert read_mail(relayed).message_id == mail.message_id
    assert read_mail(raw.replace(b"Jean\n", b"Jean P.\n")).message_id != mail.message_id


@pytest.mark.parametrize(
    ("headers", "body", "expected"),
    [
        # An unknown charset name: UTF-8 if the bytes are, else Windows-1252.
        (b"Content-Type: text/plain; charset=x-unknown-8bit\n", "Facture réglée".encode(), "Facture réglée"),
        # Declared UTF-8, but one byte is Latin-1: only that byte is lost.
        (
            b"Content-Type: text/plain; charset=utf-8\n",
            b"Factur\xe9 r\xc3\xa9gl\xc3\xa9e",
            "Factur\ufffd réglée",
        ),
        # "us-ascii" on 8-bit Windows text (a curly apostrophe and the euro sign).
        (b"Content-Type: text/plain; charset=us-ascii\n", b"J\x92ai pay\xe9 10 \x80", "J’ai payé 10 €"),
        # No Content-Type at all, UTF-8 bytes.
        (b"", "Numéro portabilité".encode(), "Numéro portabilité"),
        # Broken base64: what decodes is kept.
        (
            b"Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n",
            b"Qm9uam91cg=!!",
            "Bonjour",
        ),
    ],
)
def test_charset_errors_never_crash(headers: bytes, body: bytes, expected: str) -> None:
    raw = b"From: a@client.example\nTo: support@operateur.example\nSubject: x\nMessage-ID: <c@x>\n" + headers
    mail = read_mail(raw + b"\n" + body + b"\n")
    assert mail.text == expected


UNCLOSED_HTML = (
    b"From: x@y.example\nContent-Type: multipart/alternative; boundary=b\n\n"
    b"--b\nContent-Type: text/html\n\n<p>Bonjour <b>toi"
)


EIGHT_BIT_HEADERS = (
    b"From: Ren\xe9 M\xfcller <rene@client.example>\r\nTo: Se\xf1or <s@operateur.example>\r\n"
    b"Subject: Caf\xe9\r\nMessage-ID: <caf\xe9@client.example>\r\nIn-Reply-To: <r\xe9p@x>\r\n"
    b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
    b"--b\r\nContent-Type: text/plain\r\n\r\nCaf\xe9 \xff\r\n"
    b'--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename="fact\xe9.pdf"\r\n'
    b"\r\nxx\r\n--b--\r\n"
)


def test_raw_8_bit_headers_are_read_and_can_be_stored() -> None:
    item = inbound_item(EIGHT_BIT_HEADERS)
    assert (item.sender, item.sender_name, item.subject) == ("rene@client.example", "René Müller", "Café")
    assert item.external_id == "<café@client.example>" and item.replies_to == ["<rép@x>"]
    assert item.text == "Café ÿ"
    assert item.media[0].name == "facté.pdf"
    orjson.dumps(item.stored())  # JSON takes no lone surrogates: none may be left


def test_garbage_never_crashes() -> None:
    for raw in (
        b"",
        b"\x00\xff\xfe garbage",
        b"From: <<<@@>>>\nSubject: =?utf-8?q?broken\nContent-Type: multipart/mixed\n\nno boundary",
        UNCLOSED_HTML,
        b"From: =?x-nope?q?Name?= <x@y.example>\nSubject: =?utf-8?b?!!!?=\n\nhello",
    ):
        item = inbound_item(raw)
        assert item.external_id.startswith("<")
        orjson.dumps(item.stored())
    assert read_mail(UNCLOSED_HTML).text == "Bonjour toi"
    assert read_mail(b"From: =?x-nope?q?Name?= <x@y.example>\n\nhello").sender == "x@y.example"


def test_automatic_mail_is_kept_but_never_answered() -> None:
    out_of_office = (
        b"From: Rene Dupont <rene.dupont@client.example>\nTo: support@operateur.example\n"
        b"Subject: Absent du bureau\nAuto-Submitted: auto-replied\nMessage-ID: <ooo-1@client.example>\n\n"
        b"Je suis absent jusqu'au 10 juin.\n"
    )
    bounce = (
        b"From: Mail Delivery System <MAILER-DAEMON@mx.client.example>\nTo: support@operateur.example\n"
        b"Subject: Undelivered Mail Returned to Sender\nMessage-ID: <bounce-1@mx.client.example>\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="r"\n\n'
        b"--r\nContent-Type: text/plain\n\nI'm sorry to have to inform you...\n--r--\n"
    )
    for raw, reason, external_id in (
        (out_of_office, "Auto-Submitted: auto-replied", "<ooo-1@client.example>"),
        (bounce, "delivery or read report", "<bounce-1@mx.client.example>"),
    ):
        item = inbound_item(raw)
        assert item.kind == "unknown"
        assert reason in item.payload["ignored"]
        assert item.external_id == external_id
    person = inbound_item(out_of_office.replace(b"Auto-Submitted: auto-replied", b"Auto-Submitted: no"))
    assert person.kind == "message"


def test_html_conversion_keeps_line_breaks_and_links() -> None:
    html = (
        "<html><head><title>Newsletter</title><style>p {color: red}</style></head><body>"
        "<h1>Votre&nbsp;offre</h1><p>Ligne une<br>Ligne deux</p>"
        '<p><a href="https://operateur.example/offre">https://operateur.example/offre</a> '
        '<a href="mailto:aide@operateur.example">aide@operateur.example</a> '
        '<a href="https://operateur.example/x"><img src="logo.png"></a> '
        '<a href="javascript:void(0)">ici</a></p>'
        "<table><tr><td>Forfait</td><td>19,99 €</td></tr><tr><td>Options</td><td>5 €</td></tr></table>"
        "<pre>  indenté\n    code</pre></body></html>"
    )
    assert html_to_text(html) == (
        "Votre offre\n"
        "Ligne une\n"
        "Ligne deux\n"
        "https://operateur.example/offre aide@operateur.example https://operateur.example/x ici\n"
        "Forfait 19,99 €\n"
        "Options 5 €\n"
        "indenté\n"
        "code"
    )


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("Oui merci.\n\nOn Mon, Jun 3, 2024 at 10:14 AM Support <s@o.example> wrote:\n> Hello", "Oui merci."),
        ("D'accord.\n\nLe 03/06/2024 à 10:14, Support a écrit :\n> Bonjour", "D'accord."),
        ("OK\n\n-----Original Message-----\nFrom: Support\nSent: Monday", "OK"),
        ("OK\n\n----- Message d'origine -----\nDe : Support", "OK"),
        ("Réponse\n> citation\nsuite de ma réponse", "Réponse\nsuite de ma réponse"),
        ("Merci\n-- \nRené Dupont\n06 12 34 56 78", "Merci"),
        ("Merci beaucoup\n\nEnvoyé de mon iPhone", "Merci beaucoup"),
        # Sentences that only look like the markers stay.
        ("Le technicien m'a écrit :\n« rien à signaler »", "Le technicien m'a écrit :\n« rien à signaler »"),
        ("De : mon point de vue, c'est trop cher.", "De : mon point de vue, c'est trop cher."),
        # Nothing new: the whole text rather than nothing.
        ("> seulement une citation", "> seulement une citation"),
    ],
)
def test_new_text(reply: str, expected: str) -> None:
    assert new_text(reply) == expected


def test_a_forwarded_message_is_kept_whole() -> None:
    raw = (
        b"From: rene.dupont@client.example\nTo: support@operateur.example\nSubject: TR: Votre commande\n"
        b"Message-ID: <fwd@client.example>\nContent-Type: text/plain; charset=utf-8\n\n"
        b"Voici le mail recu.\n\n-----Original Message-----\nFrom: boutique@shop.example\n"
        b"Sent: Monday\nSubject: Votre commande\n\nCommande 1234 expediee.\n"
    )
    assert "Commande 1234 expediee." in read_mail(raw).text


def test_what_is_kept_of_a_big_message() -> None:
    big = BytesParser(policy=policy.default).parsebytes(fixture("attachments.eml"))
    big.add_attachment(b"\0" * (1024 * 1024 + 1), maintype="application", subtype="zip", filename="logs.zip")
    item = inbound_item(big.as_bytes())
    assert "rfc822_base64" not in item.payload  # over the size kept in the event
    assert item.payload["size"] > 1024 * 1024
    assert item.media[-1].name == "logs.zip" and item.media[-1].size == 1024 * 1024 + 1
