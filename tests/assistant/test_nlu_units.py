"""The pieces of the NLU: normalisation, features, the linear model and its file."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from allo.assistant.nlu import linear
from allo.assistant.nlu.corpus import Example, load_corpus
from allo.assistant.nlu.features import FeatureSpec, featurize
from allo.assistant.nlu.model import NluModel, train
from allo.assistant.nlu.text import normalize, tokens
from allo.config import DEFAULT_DATA_DIR


def test_normalisation_folds_accents_sms_spellings_and_noise() -> None:
    assert normalize("Réseau COUPÉ !!!!") == "reseau coupe ! !"
    assert normalize("jveu mon rio stp") == "je veux mon rio s'il te plait"
    assert normalize("@free toujours pas de 4G #FreeMobile https://x.example/a") == (
        "toujours pas de 4g freemobile url"
    )
    assert normalize("nuuuuuul") == "nuul"
    assert tokens("appelez le 06 12 34 56 78") == ["appelez", "le", "00", "00", "00", "00", "00"]


def test_features_are_stable_and_normalised() -> None:
    spec = FeatureSpec()
    first, second = featurize("Pas de réseau", spec), featurize("pas de reseau", spec)
    assert first == second  # same words after folding, same hashed ids in every process
    assert math.isclose(math.sqrt(sum(v * v for v in first.values())), 1.0)
    assert featurize("", spec)  # an empty text still has one feature


def _examples(texts: dict[str, list[str]]) -> list[Example]:
    return [
        Example(text, "fr", intent, f"{intent}_x", "neutral", (), "casual")
        for intent, items in texts.items()
        for text in items
    ]


def test_the_linear_model_learns_and_survives_a_round_trip(tmp_path: Path) -> None:
    examples = _examples(
        {
            "billing": [
                "ma facture est fausse",
                "facture trop chère",
                "prélevé deux fois",
                "remboursez ma facture",
            ],
            "technical": ["pas de réseau", "plus de 4g", "réseau coupé", "mon code puk"],
        }
    )
    model = train(examples, FeatureSpec(), folds=2)
    assert model.predict("ma facture").intent == "billing"
    assert model.predict("réseau en panne").intent == "technical"
    path = tmp_path / "model.npz"
    model.save(path)
    again = NluModel.load(path)
    for text in ("facture", "pas de réseau", "bonjour"):
        assert again.predict(text) == model.predict(text)


def test_temperature_fitting_prefers_the_calibrated_scale() -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 500)
    logits = rng.normal(size=(500, 3))
    logits[np.arange(500), labels] += 1.0
    # The same logits made overconfident tenfold are brought back down.
    assert linear.fit_temperature(logits * 10, list(labels)) >= 4


def test_the_corpus_is_large_and_the_heldout_split_never_trains() -> None:
    corpus = load_corpus(DEFAULT_DATA_DIR / "nlu")
    assert len(corpus.train) + len(corpus.heldout) >= 3000
    assert len(corpus.heldout) >= 500
    held = {normalize(e.text) for e in corpus.heldout}
    assert not any(normalize(e.text) in held for e in corpus.train)
    intents = {e.intent for e in corpus.heldout}
    assert intents == {"billing", "technical", "plan", "cancellation", "delivery", "other"}
