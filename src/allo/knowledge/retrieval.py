"""Knowledge-base search tuned for customers' French and English: BM25 over folded, lightly stemmed
words with the trade's synonyms and SMS spellings, boosted by the sub-intents an article answers.

Ranking happens here, in Python, over the tenant's published articles, so SQLite and PostgreSQL give
the same order.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from allo.assistant.nlu.text import normalize

_STOPWORDS_TEXT = """
a au aux avec ce ces cet cette dans de des du elle en est et etre il ils j je l la le les leur lui ma mais me
mes mon ne nos notre nous on ou par pas pour qu que qui sa se ses son sur ta te tes toi ton tu un une vos
votre vous y c d m n s t ai as avez avons ont suis sont comment quoi quel quelle quels bonjour bonsoir merci
svp plait s'il stp salut allo plus tres veux voudrais peux faire fait avoir ca cela depuis toujours encore
the an and or of to in on for is are was be been i me my you your we our it its this that with at by from
as do does did have has had can could would should please hello hi thanks how what which want get still
"""
STOPWORDS = frozenset(_STOPWORDS_TEXT.split())

# Each group's words count as one: a customer's word finds the article's synonym.
SYNONYMS: tuple[tuple[str, ...], ...] = (
    ("facture", "factures", "facturation", "bill", "invoice", "invoices", "billing"),
    ("forfait", "offre", "abonnement", "plan", "subscription", "bundle"),
    ("sim", "puce", "carte sim", "simcard"),
    ("reseau", "network", "signal", "couverture", "coverage", "capte", "barre", "barres"),
    ("resilier", "resiliation", "cancel", "cancellation", "terminate", "arreter"),
    ("rio", "portabilite", "porting", "port", "3179"),
    ("colis", "parcel", "package", "livraison", "delivery", "commande", "order"),
    ("messagerie", "repondeur", "voicemail", "666"),
    ("prelevement", "prelevements", "debit", "direct debit", "paiement", "payment"),
    ("rembourser", "remboursement", "refund"),
    ("internet", "data", "donnees", "4g", "5g", "connexion"),
    ("etranger", "roaming", "itinerance", "abroad"),
    ("vole", "vol", "stolen", "theft", "perdu", "perte", "lost"),
    ("esim", "e-sim"),
)

_CANONICAL = {word: group[0] for group in SYNONYMS for word in group if " " not in word}


def stem(word: str) -> str:
    """A light French and English stemmer: plural and common endings, enough to match word families."""
    if len(word) <= 3 or word.isdigit():
        return word
    for suffix in (
        "issements",
        "issement",
        "ations",
        "ation",
        "ements",
        "ement",
        "ables",
        "able",
        "ings",
        "ing",
    ):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    for suffix in ("ees", "ee", "es", "er", "ez", "ed", "s", "x", "e"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def terms(text: str) -> list[str]:
    result = []
    for word in normalize(text).split():
        if word in STOPWORDS or not any(ch.isalnum() for ch in word):
            continue
        word = word.split("'")[-1]  # l'appli → appli
        if word in STOPWORDS:
            continue
        result.append(stem(_CANONICAL.get(word, word)))
    return result


class Searchable(Protocol):
    @property
    def title(self) -> str: ...
    @property
    def body(self) -> str: ...
    @property
    def tags(self) -> list[str]: ...
    @property
    def sub_intents(self) -> list[str]: ...
    @property
    def language(self) -> str: ...


D = TypeVar("D", bound=Searchable)


@dataclass(frozen=True)
class Hit(Generic[D]):
    document: D
    score: float


@dataclass
class Index(Generic[D]):
    """BM25 with the title and tags counted three times: they are what customers type."""

    documents: Sequence[D]
    k1: float = 1.4
    b: float = 0.6
    sub_intent_boost: float = 4.0
    _bags: list[Counter[str]] = field(init=False, default_factory=list)
    _lengths: list[int] = field(init=False, default_factory=list)
    _df: Counter[str] = field(init=False, default_factory=Counter)

    def __post_init__(self) -> None:
        for doc in self.documents:
            bag: Counter[str] = Counter(terms(doc.body))
            for _ in range(3):
                bag.update(terms(doc.title))
                bag.update(terms(" ".join(doc.tags)))
            self._bags.append(bag)
            self._lengths.append(sum(bag.values()))
            self._df.update(bag.keys())

    def search(
        self, query: str, *, language: str | None = None, sub_intent: str | None = None, limit: int = 5
    ) -> list[Hit[D]]:
        wanted = terms(query)
        if not wanted and sub_intent is None:
            return []
        n = len(self.documents)
        average = sum(self._lengths) / max(n, 1)
        hits = []
        for doc, bag, length in zip(self.documents, self._bags, self._lengths, strict=True):
            if language is not None and doc.language != language:
                continue
            score = 0.0
            for term in wanted:
                tf = bag.get(term, 0)
                if not tf:
                    continue
                idf = math.log(1 + (n - self._df[term] + 0.5) / (self._df[term] + 0.5))
                score += idf * tf * (self.k1 + 1) / (tf + self.k1 * (1 - self.b + self.b * length / average))
            if sub_intent is not None and sub_intent in doc.sub_intents:
                score += self.sub_intent_boost
            if score > 0:
                hits.append(Hit(doc, score))
        hits.sort(key=lambda h: (-h.score, h.document.title))
        return hits[:limit]


def build_index(documents: Iterable[D]) -> Index[D]:
    return Index(list(documents))
