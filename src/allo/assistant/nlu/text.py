"""Normalisation of customer text: accents folded, SMS spellings expanded, noise reduced.

The same function feeds training and prediction, so the model sees "reseau", "réseau" and "reso" as
one word.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

# SMS spellings and abbreviations, after accent folding and lower-casing.
SMS_SPELLINGS: dict[str, str] = {
    # French
    "slt": "salut", "bjr": "bonjour", "bsr": "bonsoir", "cc": "coucou", "stp": "s'il te plait",
    "svp": "s'il vous plait", "svpl": "s'il vous plait", "pk": "pourquoi", "pq": "pourquoi",
    "pkoi": "pourquoi", "jsuis": "je suis", "chui": "je suis", "jveux": "je veux", "jveu": "je veux",
    "jvx": "je veux", "jpeux": "je peux", "jpeu": "je peux", "jarrive": "j'arrive", "jai": "j'ai",
    "g": "j'ai", "cmt": "comment", "cmnt": "comment", "pb": "probleme", "pbm": "probleme",
    "pbs": "problemes", "tel": "telephone", "tél": "telephone", "portable": "telephone",
    "reso": "reseau", "rezo": "reseau", "resau": "reseau", "msg": "message", "qd": "quand",
    "kan": "quand", "tjrs": "toujours", "tjr": "toujours", "toujour": "toujours", "ds": "dans",
    "mm": "meme", "bcp": "beaucoup", "dsl": "desole", "fact": "facture", "factur": "facture",
    "abo": "abonnement", "fofait": "forfait", "forfai": "forfait", "rembours": "rembourser",
    "koi": "quoi", "ki": "qui", "ke": "que", "kel": "quel", "kelle": "quelle", "c": "c'est",
    "sa": "ca", "ya": "il y a", "yа": "il y a", "pa": "pas", "pô": "pas", "po": "pas", "mwa": "moi",
    "twa": "toi", "bocou": "beaucoup", "ajd": "aujourd'hui", "auj": "aujourd'hui", "rdv": "rendez-vous",
    "asap": "urgent", "nrv": "enerve", "vnr": "enerve", "tkt": "t'inquiete", "ptdr": "mdr",
    "conseilller": "conseiller", "conseillé": "conseiller", "humin": "humain",
    # English
    "u": "you", "ur": "your", "r": "are", "pls": "please", "plz": "please", "thx": "thanks",
    "ty": "thank you", "cant": "can not", "can't": "can not", "wont": "will not", "won't": "will not",
    "dont": "do not", "don't": "do not", "doesnt": "does not", "doesn't": "does not", "isnt": "is not",
    "isn't": "is not", "im": "i am", "i'm": "i am", "ive": "i have", "i've": "i have", "idk": "i do not know",
    "txt": "text", "b4": "before", "2day": "today", "ppl": "people",
}  # fmt: skip

_URL = re.compile(r"https?://\S+|www\.\S+")
_MENTION = re.compile(r"(?<!\w)@[\w.\-]+(?:@[\w.\-]+)?")
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+\.[\w.-]+\b")
_REPEAT = re.compile(r"(.)\1{2,}")
_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)?|[!?]")
_DIGITS = re.compile(r"\d")


# The combining marks of the Basic Multilingual Plane, dropped in one str.translate call.
_DROP_COMBINING: dict[int, int | None] = {cp: None for cp in range(0x10000) if unicodedata.combining(chr(cp))}
_DROP_COMBINING[ord("’")] = ord("'")


_ASTRAL = re.compile("[\U00010000-\U0010ffff]")


# One analysis reads the same message several times (flags, sentiment, the model): fold and normalise once.
@lru_cache(maxsize=64)
def fold(text: str) -> str:
    """Lower case without accents: 'Réseau' → 'reseau'."""
    folded = unicodedata.normalize("NFKD", text.casefold()).translate(_DROP_COMBINING)
    if not folded.isascii() and _ASTRAL.search(folded):  # rare: marks outside the BMP
        folded = "".join(ch for ch in folded if not unicodedata.combining(ch))
    return folded


@lru_cache(maxsize=64)
def normalize(text: str) -> str:
    """The text as the models read it."""
    text = _URL.sub(" url ", text)
    text = _EMAIL.sub(" email ", text)
    text = _MENTION.sub(" ", text)
    text = text.replace("#", " ")
    text = fold(text)
    text = _REPEAT.sub(r"\1\1", text)  # "nuuuuul" → "nuul", "!!!!" → "!!"
    words = []
    for token in _TOKEN.findall(text):
        words.append(SMS_SPELLINGS.get(token, token))
    return " ".join(words)


def tokens(text: str) -> list[str]:
    """Words of the normalised text, digits reduced to one shape (06 12 → 00 00)."""
    return [_DIGITS.sub("0", w) for w in normalize(text).split()]
