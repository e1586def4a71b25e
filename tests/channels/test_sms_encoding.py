"""GSM 03.38 in practice: which French and West-African texts fit GSM-7, what they cost, how they are cut."""

from __future__ import annotations

import pytest

from allo.channels import sms
from allo.channels.sms import Coding


@pytest.mark.parametrize(
    ("text", "coding", "units"),
    [
        # é, è, à, ù and the capital Ç are in the default alphabet.
        ("Bonjour Ndèye, votre ligne est rétablie à 14h.", Coding.gsm7, 46),
        ("Ça y est : la fibre arrive à Cotonou", Coding.gsm7, 36),
        # Each extension character costs two septets: the escape and itself.
        ("Total : 12€ [promo] {x} ~ | ^ \\", Coding.gsm7, 31 + 9),
        # A single ç, ê, œ or ï turns the whole message into UCS-2.
        ("Merci, ça marche", Coding.ucs2, 16),
        ("Votre forfait coûte 12 €", Coding.ucs2, 24),
        ("Mon cœur", Coding.ucs2, 8),
        ("Bonjour Aïssatou, recharge de 5000 FCFA confirmée", Coding.ucs2, 49),
        # An emoji is two UTF-16 code units.
        ("Merci 😀", Coding.ucs2, 8),
        ("🇸🇳", Coding.ucs2, 4),
        ("", Coding.gsm7, 0),
    ],
)
def test_coding_and_length(text: str, coding: Coding, units: int) -> None:
    shape = sms.layout(text)
    assert (shape.coding, shape.units) == (coding, units)


@pytest.mark.parametrize(
    ("text", "segments"),
    [
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("é" * 306, 2),
        ("é" * 307, 3),
        ("a" * 159 + "€", 2),  # 161 septets
        ("a" * 158 + "€", 1),  # exactly 160
        ("ç" * 70, 1),
        ("ç" * 71, 2),
        ("ç" * 134, 2),
        ("ç" * 135, 3),
        ("😀" * 35, 1),  # 70 units
        ("😀" * 36, 2),  # 72 units
    ],
)
def test_segments(text: str, segments: int) -> None:
    assert sms.layout(text).segments == segments


def _width(part: str, coding: Coding) -> int:
    if coding is Coding.gsm7:
        return sum(sms.gsm7_width(c) or 0 for c in part)
    return sum(sms.ucs2_width(c) for c in part)


LONG_FRENCH = (
    "Bonjour Mme Koné, suite à votre appel du 12 mars, nous avons vérifié votre ligne : le débit de la "
    "fibre était réduit à cause d'un incident sur le réseau de votre quartier. Il est réparé depuis "
    "ce matin. Si le problème continue, redémarrez votre box puis écrivez-nous. Bonne journée, le "
    "service client."
)


@pytest.mark.parametrize(
    "text",
    [
        LONG_FRENCH,
        LONG_FRENCH.replace("réparé", "réparé ; ça fonctionne"),  # now UCS-2
        "a" * 152 + "€" + "b" * 10,
        "ç" * 66 + "😀" + "ç" * 5,
        "[~]" * 80,
    ],
)
def test_split_parts_fit_and_rebuild_the_text(text: str) -> None:
    shape = sms.layout(text)
    parts = sms.split(text)
    assert "".join(parts) == text
    assert len(parts) == shape.segments
    assert all(0 < _width(part, shape.coding) <= shape.coding.part_limit for part in parts)


def test_a_cut_never_separates_an_escape_or_a_surrogate_pair() -> None:
    # 152 septets, then € (2) would make 154: the euro opens the second part whole.
    assert sms.split("a" * 152 + "€" + "b" * 10) == ["a" * 152, "€" + "b" * 10]
    # 66 units, then the emoji's two would make 68: it opens the second part whole.
    assert sms.split("ç" * 66 + "😀" + "ç" * 5) == ["ç" * 66, "😀" + "ç" * 5]


def test_one_accented_capital_triples_the_cost_of_a_long_french_text() -> None:
    assert sms.layout(LONG_FRENCH) == sms.Layout(Coding.gsm7, 301, 2)
    # À is not in GSM-7 (only the lower-case à is): the same answer becomes five UCS-2 parts.
    signed_off = LONG_FRENCH.replace("Bonne journée", "À bientôt")
    assert sms.layout(signed_off) == sms.Layout(Coding.ucs2, 297, 5)


def test_a_text_that_fits_one_sms_is_not_split() -> None:
    assert sms.split("Votre code : 4821") == ["Votre code : 4821"]


def test_gsm7_encoding_uses_the_escape_for_the_extension_table() -> None:
    encoded = sms.encode_gsm7("12€ [ok] é@")
    assert encoded == bytes(
        [0x31, 0x32, 0x1B, 0x65, 0x20, 0x1B, 0x3C, 0x6F, 0x6B, 0x1B, 0x3E, 0x20, 0x05, 0x00]
    )
    assert sms.decode_gsm7(encoded) == "12€ [ok] é@"


def test_every_gsm7_character_round_trips() -> None:
    text = "".join(c for c in sms.GSM7_BASIC if c != "\x1b") + "".join(sms.GSM7_EXTENSION)
    assert sms.decode_gsm7(sms.encode_gsm7(text)) == text


def test_gsm7_refuses_what_it_cannot_carry() -> None:
    with pytest.raises(ValueError, match="U\\+00E7"):
        sms.encode_gsm7("ça")


def test_an_unknown_extension_reads_as_the_default_character() -> None:
    assert sms.decode_gsm7(bytes([0x1B, 0x41, 0x42])) == "AB"


def test_ucs2_is_utf16_big_endian() -> None:
    assert sms.encode("ç😀", Coding.ucs2) == "ç😀".encode("utf-16-be") == b"\x00\xe7\xd8\x3d\xde\x00"


def test_a_long_answer_is_fitted_into_the_account_s_parts_keeping_its_link() -> None:
    body = (
        "Votre facture « Forfait 100 Go » comprend l’abonnement du mois, les options et les appels hors "
        "forfait. " * 12
    )
    tail = "\nVotre facture expliquée : https://aide.example/facture"
    fitted = sms.fit(body, tail, 3)
    assert sms.layout(fitted).segments <= 3
    assert sms.layout(fitted).coding is sms.Coding.gsm7  # « » and ’ made plain, so 153 a part, not 67
    assert fitted.endswith(tail)
    assert "..." in fitted and "«" not in fitted
    # A short text only loses its typography.
    assert sms.fit("C’est réglé « vraiment ».", "", 1) == 'C\'est réglé "vraiment".'
    # A body too long for one part with a tail that alone fills it keeps the tail.
    assert sms.fit("x " * 300, "y" * 150, 1).endswith("y" * 150)
    # A tail that alone overflows the parts is cut to them, counting the extension characters' escapes.
    assert sms.fit("x " * 300, "€" * 90, 1) == "€" * 76
