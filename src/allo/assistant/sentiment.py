"""Sentiment in [-1, 1] from the lexicons in data/lexicon (see its README for the rules).

"Very negative" (< -0.7) is kept for real anger: a report of a problem scores neutral or mildly
negative; insults, scam accusations, shouting and "!!!" push it down.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from allo.assistant.nlu.text import fold

_WORD = re.compile(r"[\w'-]+|[,.;:!?]")
_CLAUSE = frozenset({",", ".", ";", ":", "!", "?", "mais", "but"})
_SKIN_TONES = re.compile("[\U0001f3fb-\U0001f3ff\ufe0f]")
NEGATION_WINDOW = 3
MODIFIER_WINDOW = 2
SCALE = 15.0  # s / sqrt(s² + 15): a lone -4 word gives -0.72


@dataclass
class Lexicon:
    terms: dict[tuple[str, ...], float] = field(default_factory=dict)
    negators: set[tuple[str, ...]] = field(default_factory=set)
    multipliers: dict[tuple[str, ...], float] = field(default_factory=dict)
    postposed: dict[tuple[str, ...], float] = field(default_factory=dict)
    irony_always: set[tuple[str, ...]] = field(default_factory=set)
    irony_contextual: set[tuple[str, ...]] = field(default_factory=set)
    emoji: dict[str, float] = field(default_factory=dict)
    longest: int = 1
    # The longest entry (terms, negators, modifiers) that starts with each word: most words start none.
    starts: dict[str, int] = field(default_factory=dict)
    emoji_chars: frozenset[str] = frozenset()


def _key(term: str) -> tuple[str, ...]:
    return tuple(_WORD.findall(fold(term).replace(",", " ")))


def _rows(path: Path) -> list[tuple[str, list[str]]]:
    """(section comment, columns) of each entry."""
    section, rows = "", []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# ---"):
            section = line
        elif line.strip() and not line.startswith("#"):
            rows.append((section, line.split("\t")))
    return rows


@cache
def load_lexicon(directory: Path) -> Lexicon:
    lex = Lexicon()
    for language in ("fr", "en"):
        for _section, cols in _rows(directory / f"sentiment_{language}.tsv"):
            key, value = _key(cols[0]), float(cols[1])
            # Folding merges words that differ by an accent ("arnaque" -4, "arnaqué" -3): keep the stronger.
            if abs(value) >= abs(lex.terms.get(key, 0.0)):
                lex.terms[key] = value
        for section, cols in _rows(directory / f"modifiers_{language}.tsv"):
            term, kind, value = _key(cols[0]), cols[1].strip(), float(cols[2])
            if kind == "negator":
                lex.negators.add(term)
            elif kind in ("intensifier", "diminisher"):
                target = lex.postposed if ("APRÈS" in section or "PRECEDING" in section) else lex.multipliers
                target[term] = value
            elif kind == "irony_marker":
                contextual = "contextuel" in section or "contextual" in section
                (lex.irony_contextual if contextual else lex.irony_always).add(term)
    for _section, cols in _rows(directory / "emoji.tsv"):
        lex.emoji[_SKIN_TONES.sub("", cols[0])] = float(cols[1])
    keys = [
        *lex.terms,
        *lex.negators,
        *lex.multipliers,
        *lex.postposed,
        *lex.irony_always,
        *lex.irony_contextual,
    ]
    lex.longest = max((len(k) for k in keys), default=1)
    for key in (*lex.terms, *lex.negators, *lex.multipliers, *lex.postposed):
        if key:
            lex.starts[key[0]] = max(lex.starts.get(key[0], 0), len(key))
    lex.emoji_chars = frozenset(ch for emoji in lex.emoji for ch in emoji[:1])
    return lex


def _ngrams(tokens: list[str], longest: int) -> set[tuple[str, ...]]:
    return {tuple(tokens[i : i + n]) for n in range(1, longest + 1) for i in range(len(tokens) - n + 1)}


def score(text: str, lexicon: Lexicon) -> float:
    """The message's sentiment in [-1, 1]."""
    original = _SKIN_TONES.sub("", unicodedata.normalize("NFC", text))
    tokens = _WORD.findall(fold(original).replace("#", " ").replace("@", " "))
    raw_words = _WORD.findall(original)
    words_only = [t for t in tokens if t not in _CLAUSE or t in ("mais", "but")]

    total = 0.0
    terms: list[float] = []
    negate_left = 0  # tokens still covered by a negator
    multiplier, multiplier_left = 1.0, 0
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token in _CLAUSE:
            negate_left, multiplier_left = 0, 0
            i += 1
            continue
        match = None
        for n in range(min(lexicon.starts.get(token, 0), len(tokens) - i), 0, -1):
            candidate = tuple(tokens[i : i + n])
            if (
                candidate in lexicon.terms
                or candidate in lexicon.negators
                or candidate in lexicon.multipliers
            ):
                match = candidate
                break
            if candidate in lexicon.postposed and terms:
                terms[-1] = max(-4.0, min(4.0, terms[-1] * lexicon.postposed[candidate]))
                match = candidate
                break
        if match is None:
            i += 1
            negate_left = max(0, negate_left - 1)
            multiplier_left = max(0, multiplier_left - 1)
            continue
        width = len(match)
        followed_by_term = any(
            tuple(tokens[j : j + k]) in lexicon.terms
            for j in range(i + width, min(i + width + MODIFIER_WINDOW, len(tokens)))
            for k in range(1, 3)
        )
        if match in lexicon.negators:
            negate_left = NEGATION_WINDOW
        elif match in lexicon.multipliers and (followed_by_term or match not in lexicon.terms):
            multiplier, multiplier_left = lexicon.multipliers[match], MODIFIER_WINDOW
        elif match in lexicon.terms:
            value = lexicon.terms[match]
            if value != 0:
                if multiplier_left:
                    value = max(-4.0, min(4.0, value * multiplier))
                    multiplier_left = 0
                if negate_left:
                    value = -0.75 * value if value > 0 else -0.5 * value
                    negate_left = 0
                raw = raw_words[i] if i < len(raw_words) else ""
                if len(raw) >= 3 and raw.isupper():
                    value *= 1.3
                terms.append(value)
        i += width

    grams = _ngrams(words_only, lexicon.longest)
    irony = not grams.isdisjoint(lexicon.irony_always)
    if not irony and not grams.isdisjoint(lexicon.irony_contextual):
        irony = any(t < 0 for t in terms) or any(lexicon.emoji.get(ch, 0) < 0 for ch in original)
    if irony:
        terms = [-abs(t) for t in terms]
        total -= 2.0
    total += sum(terms)
    if not lexicon.emoji_chars.isdisjoint(original):
        for emoji, value in lexicon.emoji.items():
            if emoji in original:
                total += value * original.count(emoji)
    letters = [c for c in original if c.isalpha()]
    if total < 0 and len(letters) >= 8 and sum(c.isupper() for c in letters) / len(letters) > 0.7:
        total *= 1.4  # shouting
    bangs = min(original.count("!"), 10)
    if total != 0 and bangs:
        total += math.copysign(min(0.3 * bangs, 3.0), total)
    return total / math.sqrt(total * total + SCALE)


def bucket(value: float) -> str:
    if value < -0.7:
        return "very_negative"
    if value < -0.15:
        return "negative"
    if value > 0.25:
        return "positive"
    return "neutral"
