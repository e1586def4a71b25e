from __future__ import annotations

import pytest

from allo.assistant import flags as flag_rules
from allo.assistant.flags import Flag, detect, evidence
from allo.assistant.nlu.corpus import read_examples
from allo.assistant.nlu.text import fold
from allo.assistant.sentiment import bucket, load_lexicon, score
from allo.config import DEFAULT_DATA_DIR

LEXICON = load_lexicon(DEFAULT_DATA_DIR / "lexicon")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("je n'ai plus de réseau depuis ce matin", "neutral"),
        ("pas content du tout", "negative"),
        ("pas mal le nouveau forfait", "positive"),
        ("super, encore une panne 🙄", "very_negative"),
        ("Votre service est une arnaque", "very_negative"),
        ("merci beaucoup c'est réglé", "positive"),
        ("thanks for nothing, great service again", "negative"),
    ],
)
def test_lexicon_buckets(text: str, expected: str) -> None:
    value = score(text, LEXICON)
    assert -1.0 <= value <= 1.0
    if expected == "negative":
        assert bucket(value) in ("negative", "very_negative")
    else:
        assert bucket(value) == expected


def test_shouting_and_exclamations_make_anger_stronger() -> None:
    calm = score("c'est inacceptable", LEXICON)
    loud = score("C'EST INACCEPTABLE !!!", LEXICON)
    assert loud < calm < 0


@pytest.mark.parametrize(
    ("text", "flag"),
    [
        ("Je vais saisir le médiateur des communications électroniques", Flag.legal),
        ("j'ai écrit à l'UFC-Que Choisir", Flag.legal),
        ("mon avocat va vous contacter", Flag.legal),
        ("ma mère est à l'hôpital et je n'ai plus de ligne", Flag.urgent),
        ("on m'a volé mon téléphone", Flag.urgent),
        ("panne générale dans tout le quartier", Flag.outage),
        ("je pars chez Orange", Flag.cancellation),
        ("donnez moi mon RIO", Flag.cancellation),
        ("je veux parler à un conseiller", Flag.human_requested),
        ("I want to talk to a real person", Flag.human_requested),
    ],
)
def test_flags(text: str, flag: Flag) -> None:
    assert flag in detect(text)
    assert evidence(text, flag)


def test_no_flag_on_an_ordinary_question() -> None:
    assert detect("quel est le prix du forfait 100 Go ?") == []


def test_literal_prefixes_of_flag_patterns() -> None:
    assert flag_rules.literal_prefix(r"\bavocats?\b") == "avocat"
    assert flag_rules.literal_prefix(r"\bmediat(eur|rice|ion)\b") == "mediat"
    assert flag_rules.literal_prefix(r"porter plainte") == "porter plainte"
    assert flag_rules.literal_prefix(r"(je|j')\s+pars") == ""
    assert flag_rules.literal_prefix(r"a{2}b") == ""


def test_the_substring_prefilter_never_changes_what_the_patterns_find() -> None:
    texts = [e.text for e in read_examples(sorted((DEFAULT_DATA_DIR / "nlu").rglob("*.jsonl")))]
    assert len(texts) > 3000
    for text in texts:
        folded = fold(text)
        expected = [flag for flag, pattern in flag_rules._COMPILED.items() if pattern.search(folded)]
        assert flag_rules.detect(text) == expected, text
