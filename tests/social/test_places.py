from __future__ import annotations

from pathlib import Path

import pytest

from allo.config import DEFAULT_DATA_DIR
from allo.social.places import Gazetteer, Place, gazetteer, read_places


@pytest.fixture
def places() -> Gazetteer:
    return Gazetteer(
        [
            Place("Lyon", "FR", False, "Lyon"),
            Place("Saint-Louis", "SN", False, "Saint-Louis"),
            Place("Abomey-Calavi", "BJ", False, "Abomey-Calavi"),
            Place("Abomey-Calavi", "BJ", False, "Godomey"),
            Place("Nice", "FR", True, "Nice"),
            Place("Orange", "FR", True, "Orange"),
            Place("Cotonou", "BJ", False, "Cotonou"),
        ]
    )


def test_names_match_whole_words_accents_and_case_aside(places: Gazetteer) -> None:
    assert places.find("plus de réseau à LYON depuis ce matin") == "Lyon"
    assert places.find("panne a saint louis") == "Saint-Louis"
    assert places.find("Le réseau est gâté à Godomey") == "Abomey-Calavi"
    assert places.find("abomey-calavi, toujours rien") == "Abomey-Calavi"
    assert places.find("Lyonnais en colère") is None  # a whole word, not a prefix


def test_case_sensitive_names_and_operators(places: Gazetteer) -> None:
    assert places.find("Coupure totale à Nice") == "Nice"
    assert places.find("nice try #Free") is None
    assert places.find("Je pars chez Orange") is None  # an operator, not the town


def test_city_postcodes(places: Gazetteer) -> None:
    assert places.find("fibre coupée au 75011") == "Paris"
    assert places.find("69003 sans internet") == "Lyon"
    assert places.find("code 75099") is None
    assert places.find("rien à Cotonou, 13005 pourtant") == "Cotonou"  # a named place first


def test_the_shipped_gazetteer(tmp_path: Path) -> None:
    shipped = gazetteer(DEFAULT_DATA_DIR)
    assert len(shipped) > 300
    assert shipped.find("Plus de réseau à Cotonou depuis hier") == "Cotonou"
    assert shipped.find("panne fibre marseille") == "Marseille"
    rows = tmp_path / "places.tsv"
    rows.write_text(
        "name\tarea\tcountry\tcase_sensitive\nLomé\tLomé\tTG\t0\n\tmissing\tTG\t0\n", encoding="utf-8"
    )
    assert [p.area for p in read_places(rows)] == ["Lomé"]
