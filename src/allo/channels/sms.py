"""SMS text as the network carries it (3GPP TS 23.038, the former GSM 03.38), for every SMS adapter.

A text goes as GSM-7 when each of its characters is in the GSM default alphabet or its extension table
(an extension character, such as € or [, takes two septets: the escape and the character), else as UCS-2,
counted in UTF-16 code units because handsets send and read UTF-16 (an emoji takes two). One SMS holds 160
septets or 70 units; a longer text is sent as concatenated parts that each give up room to the header
that numbers them: 153 septets or 67 units per part. French is the case to keep in mind: é, è, à, ù and É
fit GSM-7, but ç, ê, â, î, ô, œ do not, and one of them turns the whole message into UCS-2.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import StrEnum

from allo.channels.base import Account, Capabilities, ProviderRejected

# The default alphabet, in code order: a character's index is its septet. 0x1B is the escape to the
# extension table, never a character of the text.
GSM7_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
GSM7_ESCAPE = 0x1B
GSM7_EXTENSION = {
    "\f": 0x0A,
    "^": 0x14,
    "{": 0x28,
    "}": 0x29,
    "\\": 0x2F,
    "[": 0x3C,
    "~": 0x3D,
    "]": 0x3E,
    "|": 0x40,
    "€": 0x65,
}
_BASIC_SEPTET = {char: code for code, char in enumerate(GSM7_BASIC) if code != GSM7_ESCAPE}
_EXTENSION_CHAR = {code: char for char, code in GSM7_EXTENSION.items()}

GSM7_SINGLE = 160
GSM7_PART = 153
UCS2_SINGLE = 70
UCS2_PART = 67
# A concatenation header's 8-bit reference numbers at most 255 parts.
MAX_PARTS = 255
# What an account sends at most for one message unless its settings say otherwise.
DEFAULT_MAX_PARTS = 10
# Every SMS adapter's: the delivery path fits each text to its account's own max_parts (`fit`).
CAPABILITIES = Capabilities(max_text_chars=DEFAULT_MAX_PARTS * GSM7_PART)


class Coding(StrEnum):
    gsm7 = "gsm7"
    ucs2 = "ucs2"

    @property
    def single_limit(self) -> int:
        return GSM7_SINGLE if self is Coding.gsm7 else UCS2_SINGLE

    @property
    def part_limit(self) -> int:
        return GSM7_PART if self is Coding.gsm7 else UCS2_PART


@dataclass(frozen=True)
class Layout:
    """How a text travels: its coding, its length in that coding's units, and how many SMS it takes."""

    coding: Coding
    units: int
    segments: int


def gsm7_width(char: str) -> int | None:
    """Septets the character takes in GSM-7 (1, or 2 from the extension table); None when it has none."""
    if char in _BASIC_SEPTET:
        return 1
    if char in GSM7_EXTENSION:
        return 2
    return None


def ucs2_width(char: str) -> int:
    """UTF-16 code units: 2 for a character beyond the Basic Multilingual Plane (most emoji)."""
    return 2 if ord(char) > 0xFFFF else 1


def gsm7_septets(text: str) -> int | None:
    """The text's length in septets, or None when a character is not in GSM-7."""
    total = 0
    for char in text:
        width = gsm7_width(char)
        if width is None:
            return None
        total += width
    return total


def layout(text: str) -> Layout:
    septets = gsm7_septets(text)
    if septets is not None:
        coding, units = Coding.gsm7, septets
    else:
        coding, units = Coding.ucs2, sum(ucs2_width(char) for char in text)
    segments = 1 if units <= coding.single_limit else math.ceil(units / coding.part_limit)
    return Layout(coding=coding, units=units, segments=segments)


def layout_within(text: str, max_parts: int) -> Layout:
    """The text's layout, refused for good (`too_long`) when it needs more SMS than the account sends."""
    shape = layout(text)
    if shape.segments > max_parts:
        raise ProviderRejected(
            f"the text needs {shape.segments} SMS; this account sends at most {max_parts}", code="too_long"
        )
    return shape


def split(text: str) -> list[str]:
    """The text cut into the parts of a concatenated SMS, each within one part's room; the text alone
    when it fits one SMS. A cut never falls inside an extension character's escape or a surrogate pair."""
    shape = layout(text)
    if shape.segments == 1:
        return [text]
    width = gsm7_width if shape.coding is Coding.gsm7 else ucs2_width
    parts: list[str] = []
    current: list[str] = []
    used = 0
    for char in text:
        size = width(char) or 0  # every character has a width here: the coding was chosen for the text
        if used + size > shape.coding.part_limit:
            parts.append("".join(current))
            current, used = [], 0
        current.append(char)
        used += size
    parts.append("".join(current))
    return parts


def encode_gsm7(text: str) -> bytes:
    """Unpacked GSM-7, one septet per octet (as SMPP's data_coding 0 carries it); ValueError when a
    character is not in GSM-7."""
    out = bytearray()
    for char in text:
        code = _BASIC_SEPTET.get(char)
        if code is not None:
            out.append(code)
            continue
        extension = GSM7_EXTENSION.get(char)
        if extension is None:
            raise ValueError(f"{char!r} (U+{ord(char):04X}) is not in the GSM 7-bit alphabet")
        out += bytes((GSM7_ESCAPE, extension))
    return bytes(out)


def decode_gsm7(data: bytes) -> str:
    """Unpacked GSM-7 back to text. An escape before a septet the extension table does not know reads as
    the default alphabet's character, as 3GPP TS 23.038 asks of a receiver."""
    chars: list[str] = []
    escaped = False
    for octet in data:
        septet = octet & 0x7F
        if escaped:
            chars.append(_EXTENSION_CHAR.get(septet) or GSM7_BASIC[septet])
            escaped = False
        elif septet == GSM7_ESCAPE:
            escaped = True
        else:
            chars.append(GSM7_BASIC[septet])
    return "".join(chars)


def encode(text: str, coding: Coding) -> bytes:
    return encode_gsm7(text) if coding is Coding.gsm7 else text.encode("utf-16-be")


# Typography that would force a whole text into UCS-2 (70 characters an SMS instead of 160) for no
# meaning: French quotes, curly apostrophes, dashes, the ellipsis, narrow spaces.
_PLAIN_PUNCTUATION = str.maketrans(
    {
        "«": '"',
        "»": '"',
        "“": '"',
        "”": '"',
        "„": '"',
        "’": "'",
        "‘": "'",
        "…": "...",
        "–": "-",
        "—": "-",
        "\u00a0": " ",
        "\u202f": " ",
        "\u2009": " ",
    }
)
CUT_MARK = "..."
# French guillemets carry a space inside ("« oui »"); plain quotes do not ("\"oui\"").
_GUILLEMET_AND_SPACE = re.compile("«[ \u00a0\u202f]*|[ \u00a0\u202f]*»")


def plain_punctuation(text: str) -> str:
    return _GUILLEMET_AND_SPACE.sub('"', text).translate(_PLAIN_PUNCTUATION)


def fit(body: str, tail: str, max_parts: int) -> str:
    """The text to send within `max_parts` SMS: punctuation made plain, and when it is still too long the
    body cut at a word with "..." while the tail (links, numbered options) is kept whole, so the customer
    can still read the full answer at its link."""
    body, tail = plain_punctuation(body), plain_punctuation(tail)
    if layout(body + tail).segments <= max_parts:
        return body + tail
    best = ""
    low, high = 0, len(body)
    while low <= high:
        middle = (low + high) // 2
        cut = body[:middle]
        if middle < len(body) and " " in cut:
            cut = cut.rsplit(" ", 1)[0]
        candidate = cut.rstrip(" ,;:.-\n") + CUT_MARK + tail
        if layout(candidate).segments <= max_parts:
            best, low = candidate, middle + 1
        else:
            high = middle - 1
    # Not even the mark fits beside the tail: as much of the tail as the parts hold, cut where `split` cuts.
    return best or "".join(split(tail)[:max_parts])


class FitsInParts:
    """SMS adapters: a message shortened to the account's `max_parts` (`fit`)."""

    def shape_text(self, account: Account, body: str, tail: str) -> str:
        return fit(body, tail, int(account.settings.get("max_parts") or DEFAULT_MAX_PARTS))
