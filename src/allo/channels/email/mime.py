"""Reading an RFC 822 message as Allo needs it: who wrote, about what, in answer to which message, and the
new text only.

Mail from the wild is messy: 8-bit headers without RFC 2047, wrong or missing charsets, HTML-only bodies,
whole threads quoted under a two-line answer. Nothing here raises on a bad message; what cannot be read is
read as well as it can be (U+FFFD for bytes that are no character).
"""

from __future__ import annotations

import base64
import binascii
import codecs
import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime
from html.parser import HTMLParser
from typing import Any

from allo.channels.base import InboundItem, Media

# The raw message is kept in the stored event up to this size, so that an attachment listed by its part
# number can be read back; a bigger message keeps its headers and text only.
KEEP_RAW_BYTES = 1024 * 1024
# The text the assistant and the agents read; the rest of a longer message stays in the raw event.
MAX_TEXT_CHARS = 60_000
# In-Reply-To plus the newest References: enough to find the thread, bounded for the lookup.
MAX_THREAD_IDS = 50
MAX_MESSAGE_ID_CHARS = 250

_ID_TOKEN = re.compile(r"<([^<>\s]+)>")
_MESSAGE_ID = re.compile(r"<[^<>\s@]+@[^<>\s@]+>")
# Headers that relays add on the way: two deliveries of one message differ only in them.
_TRANSIT_HEADERS = re.compile(
    rb"^(received|return-path|delivered-to|x-original-to|authentication-results|received-spf|arc-[a-z-]+|"
    rb"x-spam[a-z-]*|x-virus[a-z-]*|x-ms-exchange-organization-[a-z-]+)\s*:",
    re.IGNORECASE,
)
_LATIN_1 = frozenset({"iso8859-1", "latin-1", "cp819", "iso8859-15"})
_RAW_NAME = re.compile(r'\b(?:file)?name="([^"]+)"', re.IGNORECASE)
_FORWARD_SUBJECT = re.compile(r"^\s*(fwd?|tr|fw)\s*:", re.IGNORECASE)


@dataclass
class ReadMail:
    """What a message says, before Allo decides anything about it."""

    message_id: str
    sender: str | None
    sender_name: str | None
    subject: str | None
    text: str
    replies_to: list[str]
    attachments: list[Media]
    sent_at: datetime | None
    # Why the message is no customer's writing (an out-of-office, a bounce), None when it is one.
    automatic: str | None
    headers: dict[str, str] = field(default_factory=dict)


def parse(raw: bytes) -> EmailMessage:
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    return message


def read_mail(raw: bytes) -> ReadMail:
    message = parse(raw)
    headers = {
        name: value
        for name in (
            "From",
            "To",
            "Cc",
            "Reply-To",
            "Subject",
            "Date",
            "Message-ID",
            "In-Reply-To",
            "References",
            "Auto-Submitted",
        )
        if (value := header_text(message, name))
    }
    sender, sender_name = _sender(message, headers.get("From", ""))
    subject = " ".join(headers.get("Subject", "").split()) or None
    bodies = _body_parts(message)
    body, html = _body_text(*bodies)
    forwarded = bool(subject and _FORWARD_SUBJECT.match(subject))
    if html:
        body = html_to_text(body, drop_history=not forwarded)
    text = body if forwarded else new_text(body)
    return ReadMail(
        message_id=_own_id(headers.get("Message-ID", ""), raw),
        sender=sender,
        sender_name=sender_name,
        subject=subject,
        text=text[:MAX_TEXT_CHARS],
        replies_to=thread_ids(headers.get("In-Reply-To", ""), headers.get("References", "")),
        attachments=_attachments(message, bodies),
        sent_at=_date(headers.get("Date")),
        automatic=_automatic(message, headers),
        headers=headers,
    )


def inbound_item(raw: bytes, *, envelope: dict[str, Any] | None = None) -> InboundItem:
    """The stored form of one received message: a customer's message, or an unknown item for automatic
    mail (kept, acted on by nobody, and still recognised when it comes again)."""
    mail = read_mail(raw)
    payload = {"headers": mail.headers, **_raw_payload(raw, envelope)}
    if mail.automatic or not mail.sender:
        payload["ignored"] = mail.automatic or "no sender address"
        return InboundItem(kind="unknown", external_id=mail.message_id, payload=payload)
    return InboundItem(
        kind="message",
        external_id=mail.message_id,
        payload=payload,
        sender=mail.sender,
        sender_name=mail.sender_name,
        subject=mail.subject,
        text=mail.text,
        media=mail.attachments,
        replies_to=mail.replies_to,
        sent_at=mail.sent_at,
    )


def unreadable_item(raw: bytes, problem: str, *, envelope: dict[str, Any] | None = None) -> InboundItem:
    """A message that could not be read at all, kept whole (up to the usual size) under its content's
    hash, so that its redelivery is recognised."""
    payload = {**_raw_payload(raw, envelope), "ignored": f"unreadable: {problem[:500]}"}
    return InboundItem(
        kind="unknown", external_id=f"<sha256.{stable_digest(raw)}@unreadable.allo.invalid>", payload=payload
    )


def _raw_payload(raw: bytes, envelope: dict[str, Any] | None) -> dict[str, Any]:
    """What every stored message keeps of its bytes: size, hash, how it came, and itself when small."""
    payload: dict[str, Any] = {"size": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}
    if envelope:
        payload["envelope"] = envelope
    if len(raw) <= KEEP_RAW_BYTES:
        payload["rfc822_base64"] = base64.b64encode(raw).decode("ascii")
    return payload


# ----- headers


def header_text(message: Message, name: str) -> str:
    """A header's value as text: raw 8-bit bytes read as UTF-8 (else Windows-1252), encoded words decoded,
    folding undone. Empty when the header is absent."""
    for key, value in message.raw_items():
        if key.lower() != name.lower():
            continue
        text = _bytes_as_text(str(value).encode("ascii", "surrogateescape"), None)
        return " ".join(decode_words(text).split())
    return ""


_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([qQbB])\?([^?\s]*)\?=")
_BETWEEN_WORDS = re.compile(r"(\?=)\s+(=\?)")


def decode_words(text: str) -> str:
    """RFC 2047 encoded words decoded one by one, so that one broken word or unknown charset spoils only
    itself (the stdlib's decode_header gives up on the whole header, and on any 8-bit text around)."""
    if "=?" not in text:
        return text

    def decoded(match: re.Match[str]) -> str:
        charset, encoding, data = match.group(1).split("*")[0], match.group(2).lower(), match.group(3)
        try:
            if encoding == "q":
                raw = binascii.a2b_qp(data.encode("ascii"), header=True)
            else:
                raw = base64.b64decode(data + "=" * (-len(data) % 4))
        except (ValueError, UnicodeEncodeError):
            return match.group(0)
        return _bytes_as_text(raw, charset)

    # Whitespace between two encoded words is folding, not text (RFC 2047 section 6.2).
    return _ENCODED_WORD.sub(decoded, _BETWEEN_WORDS.sub(r"\1\2", text))


def _sender(message: EmailMessage, from_text: str) -> tuple[str | None, str | None]:
    """The author's address and name; `from_text` is the From header as `header_text` reads it."""
    try:
        header = message["From"]
        addresses = list(header.addresses) if header is not None else []
    except Exception:  # the stdlib's header parser has raised on odd input before
        addresses = []
    for address in addresses:
        if "@" in address.addr_spec and address.domain and _readable(address.addr_spec):
            name = address.display_name
            if not _readable(name):  # 8-bit bytes the strict parser could not read: read them ourselves
                name = getaddresses([from_text])[0][0]
            return address.addr_spec.lower(), " ".join(name.split()) or None
    for name, addr in getaddresses([from_text]):
        if "@" in addr:
            return addr.strip().lower(), " ".join(name.split()) or None
    return None, None


def _readable(text: str) -> bool:
    """No replacement character and no raw byte smuggled in as a surrogate (which JSON cannot store)."""
    return "\ufffd" not in text and not _has_surrogates(text)


def _has_surrogates(text: str) -> bool:
    return any("\ud800" <= c <= "\udfff" for c in text)


def _without_surrogates(text: str) -> str:
    """Raw 8-bit bytes the stdlib kept as surrogates, read as text (UTF-8, else Windows-1252)."""
    if not _has_surrogates(text):
        return text
    try:
        return _bytes_as_text(text.encode("utf-8", "surrogateescape"), None)
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")


def normalized_id(token: str) -> str:
    """A Message-ID as Allo keeps it, angle brackets included; an absurdly long one by its hash, the same
    way wherever it appears, so threading still finds it."""
    value = f"<{token.strip().strip('<>')}>"
    if len(value) > MAX_MESSAGE_ID_CHARS:
        return f"<sha256.{hashlib.sha256(value.encode()).hexdigest()}@long-id.allo.invalid>"
    return value


def looks_like_message_id(value: str) -> bool:
    return bool(_MESSAGE_ID.fullmatch(value))


def _own_id(header: str, raw: bytes) -> str:
    found = _ID_TOKEN.findall(header)
    if found:
        return normalized_id(found[0])
    if header.strip() and " " not in header.strip():
        return normalized_id(header)  # an id without its angle brackets
    return f"<sha256.{stable_digest(raw)}@generated.allo.invalid>"


def stable_digest(raw: bytes) -> str:
    """The hash of a message without the headers relays add, so that one message delivered twice (by two
    MX hosts, or once by SMTP and once by IMAP) has one id."""
    blank = re.search(rb"\r?\n\r?\n", raw)
    head, body = (raw[: blank.start()], raw[blank.end() :]) if blank else (raw, b"")
    lines = re.split(rb"\r?\n", head)
    kept: list[bytes] = []
    dropping = False
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            if not dropping:
                kept.append(line)
            continue
        dropping = bool(_TRANSIT_HEADERS.match(line))
        if not dropping:
            kept.append(line)
    digest = hashlib.sha256(b"\n".join(kept))
    digest.update(b"\n\n" + body.replace(b"\r\n", b"\n"))
    return digest.hexdigest()[:40]


def thread_ids(in_reply_to: str, references: str) -> list[str]:
    """The ids a message answers: In-Reply-To first, then References from the newest."""
    ids = [normalized_id(t) for t in _ID_TOKEN.findall(in_reply_to)]
    ids += [normalized_id(t) for t in reversed(_ID_TOKEN.findall(references))]
    return list(dict.fromkeys(ids))[:MAX_THREAD_IDS]


def _date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:  # "-0000": the time is UTC, its zone unknown
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _automatic(message: Message, headers: dict[str, str]) -> str | None:
    """Mail no person wrote: answering it would start a loop of automatic replies (RFC 3834)."""
    auto = headers.get("Auto-Submitted", "").split(";")[0].strip().lower()
    if auto and auto != "no":
        return f"automatic mail (Auto-Submitted: {auto})"
    if message.get_content_type() == "multipart/report":
        return "a delivery or read report"
    precedence = header_text(message, "Precedence").lower()
    if precedence in ("bulk", "junk", "list", "auto_reply"):
        return f"bulk or automatic mail (Precedence: {precedence})"
    if header_text(message, "X-Autoreply") or header_text(message, "X-Autorespond"):
        return "an automatic reply"
    return None


# ----- bodies


def _bytes_as_text(data: bytes, declared: str | None) -> str:
    """Bytes as text under the declared charset, corrected for the usual lies: "us-ascii" or no charset
    on 8-bit text (UTF-8 if it decodes, else Windows-1252), ISO-8859-1 meaning Windows-1252 (as browsers
    read it), an unknown charset name."""
    name: str | None = None
    if declared:
        try:
            name = codecs.lookup(declared.strip().strip('"')).name
        except LookupError:
            name = None
    if name is not None and name != "ascii":
        if name in _LATIN_1:
            name = "cp1252"
        return data.decode(name, errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _part_text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    return _bytes_as_text(payload, part.get_content_charset())


def _body_text(plain: Message | None, html: Message | None) -> tuple[str, bool]:
    """The message's text, text/plain preferred; True when it is HTML still to be converted."""
    if plain is not None:
        text = _normalized_newlines(_part_text(plain))
        if text.strip() or html is None:
            return text, False
    if html is not None:
        return _part_text(html), True
    return "", False


def _body_parts(message: EmailMessage) -> tuple[Message | None, Message | None]:
    try:
        return message.get_body(preferencelist=("plain",)), message.get_body(preferencelist=("html",))
    except Exception:  # a malformed multipart structure: a text part is still read
        if message.get_content_type() == "text/plain":
            return message, None
        if message.get_content_type() == "text/html":
            return None, message
        return None, None


def _normalized_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _attachments(message: EmailMessage, bodies: tuple[Message | None, Message | None]) -> list[Media]:
    """Every part that is not the message's own text (`bodies`, from `_body_parts`): files, inline
    pictures, attached messages. The reference is the part's number in the stored raw message ("part:3")."""
    body_ids = {id(part) for part in bodies if part is not None}
    found: list[Media] = []
    for number, part in enumerate(_leaves(message)):
        if id(part) in body_ids:
            continue
        content_type = _without_surrogates(part.get_content_type())
        name = _filename(part)
        if content_type in ("text/plain", "text/html") and not name and not _is_attachment(part):
            continue  # another rendering of the text (a multipart/alternative sibling)
        size: int | None = None
        if content_type == "message/rfc822":
            inner = part.get_payload()
            attached = inner[0] if isinstance(inner, list) and inner else None
            if isinstance(attached, Message):
                size = len(attached.as_bytes())
                name = name or f"{header_text(attached, 'Subject') or 'message'}.eml"
        else:
            payload = part.get_payload(decode=True)
            size = len(payload) if isinstance(payload, bytes) else None
        main = part.get_content_maintype()
        found.append(
            Media(
                kind=main if main in ("image", "audio", "video") else "file",
                reference=f"part:{number}",
                mime_type=content_type,
                name=name,
                size=size,
            )
        )
    return found


def _leaves(message: Message) -> list[Message]:
    """The parts that hold content, in order; an attached message counts as one part."""
    if message.get_content_maintype() == "multipart":
        payload = message.get_payload()
        leaves: list[Message] = []
        for part in payload if isinstance(payload, list) else []:
            if isinstance(part, Message):
                leaves.extend(_leaves(part))
        return leaves
    return [message]


def _is_attachment(part: Message) -> bool:
    return part.get_content_disposition() == "attachment"


def _filename(part: Message) -> str | None:
    try:
        name = part.get_filename()
    except Exception:  # an RFC 2231 parameter the stdlib cannot take apart
        name = None
    if not name:
        return None
    if "\ufffd" in name:
        # Raw 8-bit bytes in the parameter, which the stdlib's parser gave up on: read from the raw header.
        for header in ("Content-Disposition", "Content-Type"):
            found = _RAW_NAME.search(header_text(part, header))
            if found:
                name = found.group(1)
                break
    return " ".join(decode_words(_without_surrogates(name)).split())[:255] or None


# ----- HTML


class _HtmlText(HTMLParser):
    """HTML as readable text: blocks on their own lines, list items marked, links followed by their URL,
    scripts and styles left out and, when asked, the quoted history of a reply dropped."""

    _BLOCKS = frozenset(
        [
            "p",
            "div",
            "tr",
            "table",
            "ul",
            "ol",
            "h1",
            "h2",
            "h3",
            "h4",
            "h5",
            "h6",
            "section",
            "article",
            "header",
            "footer",
            "address",
            "dl",
            "dt",
            "dd",
            "center",
            "form",
            "blockquote",
            "hr",
        ]
    )
    _HIDDEN = frozenset({"script", "style", "title", "noscript", "template", "xml"})

    def __init__(self, *, drop_history: bool) -> None:
        super().__init__(convert_charrefs=True)
        self.drop_history = drop_history
        self.out: list[str] = []
        self.hidden = 0
        self.pre = 0
        # Set where the quoted history begins: everything from there to the end is left out.
        self.history = False
        self.links: list[tuple[str | None, int]] = []

    @property
    def dropping(self) -> bool:
        return self.hidden > 0 or self.history

    @staticmethod
    def _history_starts(tag: str, attributes: dict[str, str]) -> bool:
        classes = attributes.get("class", "").split()
        if tag == "blockquote" and (attributes.get("type") == "cite" or "gmail_quote" in classes):
            return True
        if attributes.get("id") in (
            "divRplyFwdMsg",
            "appendonsend",
            "mail-editor-reference-message-container",
        ):
            return True
        return tag == "div" and ("yahoo_quoted" in classes or "OutlookMessageHeader" in classes)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        if tag in self._HIDDEN:
            self.hidden += 1
            return
        if self.drop_history and self._history_starts(tag, attributes):
            # Outlook puts the original message after its header block, not inside it: so the rest of
            # the document is history, not only this element.
            self.history = True
        if self.dropping:
            return
        if tag == "br":
            self.out.append("\n")
        elif tag == "li":
            self._line_break()
            self.out.append("- ")
        elif tag in ("td", "th"):
            self.out.append(" ")
        elif tag == "pre":
            self.pre += 1
            self._line_break()
        elif tag == "a":
            self.links.append((attributes.get("href"), len(self.out)))
        elif tag in self._BLOCKS:
            self._line_break()

    def handle_endtag(self, tag: str) -> None:
        if tag in self._HIDDEN:
            self.hidden = max(0, self.hidden - 1)
            return
        if self.dropping:
            return
        if tag == "a" and self.links:
            href, start = self.links.pop()
            label = " ".join("".join(self.out[start:]).split())
            url = (href or "").strip()
            if url.startswith(("http://", "https://", "mailto:", "tel:")):
                if not label:
                    self.out.append(url)
                elif label not in (url, url.removeprefix("mailto:"), url.removeprefix("tel:")):
                    self.out.append(f" ({url})")
        elif tag == "pre":
            self.pre = max(0, self.pre - 1)
            self._line_break()
        elif tag in self._BLOCKS:
            self._line_break()

    def _at_line_start(self) -> bool:
        return not self.out or self.out[-1].endswith("\n")

    def _line_break(self) -> None:
        """A block's edge starts a new line, once: blank lines come from <br>s, as the author typed them."""
        if not self._at_line_start():
            self.out.append("\n")

    def handle_data(self, data: str) -> None:
        if self.dropping:
            return
        if self.pre:
            self.out.append(data)
        elif data.strip() or not self._at_line_start():
            self.out.append(re.sub(r"\s+", " ", data))

    def text(self) -> str:
        lines = [line.strip() for line in "".join(self.out).replace("\xa0", " ").split("\n")]
        return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def html_to_text(html: str, *, drop_history: bool = False) -> str:
    parser = _HtmlText(drop_history=drop_history)
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # html.parser is lenient; this is for the input it still trips on
        return re.sub(r"<[^>]*>", " ", html).strip()
    return parser.text()


# ----- the new text of a reply

_ATTRIBUTION_START = re.compile(r"^\s*(on|le|am|el)\b", re.IGNORECASE)
_ATTRIBUTION = re.compile(
    r"^\s*(on\b.*\bwrote|le\b.*\ba\s+écrit|am\b.*\bschrieb|el\b.*\bescribió)\s*:\s*$", re.IGNORECASE
)
_ORIGINAL_MESSAGE = re.compile(
    r"^\s*-{2,}\s*(original message|message d'origine|message d’origine|ursprüngliche nachricht)\s*-{2,}\s*$",
    re.IGNORECASE,
)
_HEADER_FROM = re.compile(r"^\s*\*?\s*(from|de|von)\s*\*?\s*:", re.IGNORECASE)
_HEADER_SENT = re.compile(r"^\s*\*?\s*(sent|envoyé|date|gesendet)\s*\*?\s*:", re.IGNORECASE)
_SEPARATOR = re.compile(r"^\s*_{10,}\s*$")
_MOBILE_SIGNATURE = re.compile(
    r"^\s*((envoyé|sent)\s+(de|depuis|from)\s+(mon|ma|my)\s.{0,40}|provenance\s*:\s*courrier pour windows)$",
    re.IGNORECASE,
)


def new_text(text: str) -> str:
    """The part of a reply its author wrote now: the quoted history (an "On … wrote:" or "Le … a écrit :"
    line and what follows, Outlook's "De : … Envoyé : …" block, "-----Original Message-----", lines
    starting with ">") and the signature ("-- ") left out. The whole text when nothing new is left."""
    lines = _normalized_newlines(text).split("\n")
    end = len(lines)
    for index, line in enumerate(lines):
        if _starts_history(lines, index):
            end = index
            if index > 0 and _SEPARATOR.match(lines[index - 1]):
                end = index - 1
            break
        if line in ("-- ", "--"):
            end = index
            break
    kept = [line.rstrip() for line in lines[:end] if not line.lstrip().startswith(">")]
    while kept and not kept[-1].strip():
        kept.pop()
    if kept and _MOBILE_SIGNATURE.match(kept[-1]) and len(kept) > 1:
        kept.pop()
    result = "\n".join(kept).strip()
    result = re.sub(r"\n{3,}", "\n\n", result)
    return result or text.strip()


def _starts_history(lines: list[str], index: int) -> bool:
    line = lines[index]
    if _ORIGINAL_MESSAGE.match(line):
        return True
    if _ATTRIBUTION_START.match(line):
        # Gmail wraps a long attribution line: "Le lun. 3 juin 2024 à 10:12, Service client <" + the address.
        for span in (1, 2, 3):
            joined = " ".join(part.strip() for part in lines[index : index + span])
            # A date is part of every client's attribution line, and of few sentences a customer writes
            # ("Le technicien m'a écrit :").
            if _ATTRIBUTION.match(joined) and re.search(r"\d", joined):
                return True
    if _HEADER_FROM.match(line):
        following = lines[index + 1 : index + 5]
        return any(_HEADER_SENT.match(other) for other in following)
    return False
