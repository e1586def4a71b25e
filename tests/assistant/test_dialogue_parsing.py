"""The assistant's reading of short answers: yes or no, a name and a phone number."""

from __future__ import annotations

import pytest

from allo.assistant.dialogue import parse_identification, parse_rating, parse_yes_no


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Oui", True),
        ("oui c'est bon merci", True),
        ("d'accord", True),
        ("pas de souci, merci", True),
        ("oui merci, plus de problème", True),
        ("Non", False),
        ("non toujours pas", False),
        ("ça ne marche plus", False),
        ("Ça bug encore", False),
        ("it still crashes", False),
        ("bon, toujours rien", False),
        ("je n'ai pas reçu ma facture du mois dernier non plus", None),  # a message of its own
        ("marche", None),
        ("", None),
    ],
)
def test_yes_no(text: str, expected: bool | None) -> None:
    assert parse_yes_no(text, None) is expected


def test_an_option_wins_over_the_text() -> None:
    assert parse_yes_no("whatever", "no") is False


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Awa Diallo, 06 12 34 56 78", ("Awa Diallo", "+33612345678")),
        ("06.12.00.01.11", (None, "+33612000111")),
        ("Moussa Ndiaye +221 77 123 45 67", ("Moussa Ndiaye", "+221771234567")),
        ("je m'appelle jean dupont et mon numéro est le 0612345600", ("Jean Dupont", "+33612345600")),
    ],
)
def test_identification(text: str, expected: tuple[str | None, str | None]) -> None:
    assert parse_identification(text, "FR") == expected


@pytest.mark.parametrize(
    "text", ["J'ai essayé 3 fois depuis le 12/05/2024", "ma commande 12345 du 03/04 n'est pas arrivée"]
)
def test_dates_and_order_numbers_are_not_phone_numbers(text: str) -> None:
    assert parse_identification(text, "FR")[1] is None


@pytest.mark.parametrize(
    ("text", "rating"), [("4", 4), ("5/5", 5), ("⭐⭐⭐", 3), ("3 étoiles", 3), ("super", None)]
)
def test_rating(text: str, rating: int | None) -> None:
    assert parse_rating(text, None) == rating
