"""Flags that the escalation procedure acts on, found by explicit patterns on the folded text.

Patterns, not a model: each flag must be explainable to a supervisor ("it said 'avocat'") and a
missed legal threat costs more than a false alarm.
"""

from __future__ import annotations

import re
from enum import StrEnum

from allo.assistant.nlu.text import fold


class Flag(StrEnum):
    legal = "legal"
    urgent = "urgent"
    outage = "outage"
    cancellation = "cancellation"
    human_requested = "human_requested"


_PATTERNS: dict[Flag, list[str]] = {
    Flag.legal: [
        r"\bavocats?\b", r"\bjustice\b", r"\btribunal\b", r"\bproces\b", r"\bplaintes?\b", r"porter plainte",
        r"\bmediat(eur|rice|ion)\b", r"\barcep\b", r"ufc", r"que choisir", r"\bdgccrf\b", r"60 millions",
        r"\billegale?s?\b", r"\bjuridique\b", r"mise en demeure", r"\bhuissier\b", r"\bpoursuivre\b",
        r"\blawyers?\b", r"\battorney\b", r"\bsue\b", r"\bsuing\b", r"\bcourt\b", r"\blegal action\b",
        r"\bombudsman\b", r"\bregulator\b", r"\billegal\b", r"small claims", r"consumer (rights|protection)",
        r"\bgendarmerie\b", r"\bcommissariat\b", r"depot de plainte", r"\bpolice report\b",
    ],
    Flag.urgent: [
        r"\burgent\w*", r"\burgence\b", r"\bhopital\b", r"\bhospital\w*", r"\bsante\b", r"\bmedic\w*",
        r"\bhandicap\w*", r"\bdisab\w*", r"\bwheelchair\b", r"ligne pro\w*", r"usage pro\w*",
        r"\bvole\b", r"\bvol de\b", r"\bvolee?s?\b", r"on m'a vole", r"\bstolen\b", r"\bstole\b",
        r"\bfraud\w*", r"\bpirat\w*", r"\bhack\w*", r"sim swap", r"\busurpation\b",
        r"\bpersonne agee\b", r"\belderly\b", r"\bma mere\b.*\b(seule|agee)\b", r"\bdialyse\b",
        r"\bemergency\b", r"\basap\b", r"\bimmediately\b", r"tout de suite",
    ],
    Flag.outage: [
        r"panne generale", r"tout le quartier", r"toute la ville", r"tout le village", r"toute la rue",
        r"personne n'a (de |plus de )?(reseau|connexion|internet)", r"\bmes voisins\b", r"\bles voisins\b",
        r"tout le monde (est|a|n'a)", r"\bcoupure generale\b", r"\bantenne\b", r"\bpanne (reseau|massive)\b",
        r"whole (area|neighbou?rhood|town|city|street)", r"\bneighbou?rs\b", r"everyone (around|here|in)",
        r"nobody (here |around )?has (signal|network|service)", r"\boutage\b", r"\bnetwork (is )?down\b",
        r"meme chez",
    ],
    Flag.cancellation: [
        r"\bresili\w*", r"\bresiliation\b", r"\brio\b", r"\b3179\b", r"\bportabilite\b",
        r"\bporter mon numero\b",
        r"changer d'operateur", r"\bje (pars|passe|vais partir|vais passer|quitte)\b", r"\bquitter\b",
        r"chez (orange|sfr|bouygues|free|mtn|moov|sosh|red|b&you)", r"\bconcurren\w*",
        r"\bcancel\w*", r"\bterminate\b", r"\bporting\b", r"\bpac code\b", r"\bswitch(ing)? (to|provider)",
        r"\bleave you\b", r"\bleaving\b", r"\bclose my (line|account)\b",
    ],
    Flag.human_requested: [
        r"\bconseill(er|ere)\b", r"\bun humain\b", r"\bune personne\b", r"\bquelqu'un de reel\b",
        r"\bvrai(e)? (personne|conseiller|humain)\b", r"pas (un|a|a un|parler a un) robot", r"\bun agent\b",
        r"\bresponsable\b", r"\bsuperviseur\b", r"\bpasse[rz]?[- ]moi\b", r"\bjoindre quelqu'un\b",
        r"\b(real|actual|live) (person|human|agent)\b", r"\bhuman\b", r"\bspeak to (someone|somebody|an?)\b",
        r"\btalk to (someone|somebody|an?)\b", r"\bmanager\b", r"\bsupervisor\b", r"\boperator\b",
        r"not a (bot|robot)", r"\bagent\b",
    ],
}  # fmt: skip

_COMPILED = {flag: re.compile("|".join(f"(?:{p})" for p in patterns)) for flag, patterns in _PATTERNS.items()}
_METACHARACTERS = set("\\^$.|?*+()[]{}")


def literal_prefix(pattern: str) -> str:
    """The text every match of `pattern` starts with ("" when it has none): r"\bavocats?\b" → "avocat"."""
    body = pattern.removeprefix("\\b")
    prefix = ""
    for i, ch in enumerate(body):
        if ch in _METACHARACTERS:
            # A quantifier makes the character before it optional.
            return prefix[:-1] if ch in "?*{" and i > 0 else prefix
        prefix += ch
    return prefix


def _triggers(patterns: list[str]) -> tuple[str, ...] | None:
    prefixes = [literal_prefix(p) for p in patterns]
    return None if not all(prefixes) else tuple(dict.fromkeys(prefixes))


# Most messages contain none of a flag's words: a substring test rules the flag out before the regex runs.
_TRIGGERS = {flag: _triggers(patterns) for flag, patterns in _PATTERNS.items()}


def _may_match(flag: Flag, folded: str) -> bool:
    triggers = _TRIGGERS[flag]
    return triggers is None or any(t in folded for t in triggers)


def detect(text: str) -> list[Flag]:
    folded = fold(text)
    return [
        flag for flag, pattern in _COMPILED.items() if _may_match(flag, folded) and pattern.search(folded)
    ]


def evidence(text: str, flag: Flag) -> str | None:
    """The words that raised the flag, for the escalation's reasons."""
    match = _COMPILED[flag].search(fold(text))
    return match.group(0) if match else None
