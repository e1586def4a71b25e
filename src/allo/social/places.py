"""The place a post names, from a gazetteer the project ships (data/social/places.tsv): outage complaints
from the same area and time make a major incident.

Rows are `name, area, country, case_sensitive`. Names match whole words, accents and case aside, except
rows marked case-sensitive ("Nice" the town, not "nice"); the longest name wins ("Saint-Louis" over
"Louis"). Operators' names are never places: "Orange" is a town and a competitor.
"""

from __future__ import annotations

import csv
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_NOT_PLACES = frozenset({"orange", "free", "sfr", "bouygues", "mtn", "moov", "celtiis", "expresso"})
# Paris, Lyon and Marseille postcodes name the town (75011 is Paris 11e); other postcodes are too fine
# for the gazetteer and are left to the words around them.
_CITY_POSTCODES = {"75": "Paris", "69": "Lyon", "13": "Marseille"}
_CITY_POSTCODE = re.compile(r"\b(75|69|13)0(\d{2})\b")
_CITY_POSTCODE_RANGE = {"75": range(1, 21), "69": range(1, 10), "13": range(1, 17)}


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


@dataclass(frozen=True)
class Place:
    area: str
    country: str
    case_sensitive: bool
    name: str


class Gazetteer:
    def __init__(self, rows: list[Place]) -> None:
        self._places: dict[tuple[str, ...], list[Place]] = {}
        self.longest = 1
        for place in rows:
            words = tuple(_WORD.findall(_fold(place.name)))
            if not words or " ".join(words) in _NOT_PLACES:
                continue
            self._places.setdefault(words, []).append(place)
            self.longest = max(self.longest, len(words))

    def __len__(self) -> int:
        return sum(len(v) for v in self._places.values())

    def find(self, text: str) -> str | None:
        """The area of the first place named in the text, or None."""
        matches = [(m.group(), _fold(m.group())) for m in _WORD.finditer(text)]
        for i in range(len(matches)):
            for size in range(min(self.longest, len(matches) - i), 0, -1):
                window = matches[i : i + size]
                found = self._places.get(tuple(folded for _, folded in window))
                if not found:
                    continue
                written = " ".join(original for original, _ in window)
                for place in found:
                    if not place.case_sensitive or written == " ".join(_WORD.findall(place.name)):
                        return place.area
        postcode = _CITY_POSTCODE.search(text)
        if postcode is not None:
            department, district = postcode.group(1), int(postcode.group(2))
            if district in _CITY_POSTCODE_RANGE[department]:
                return _CITY_POSTCODES[department]
        return None


def read_places(path: Path) -> list[Place]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t")
        return [
            Place(
                area=row["area"].strip(),
                country=row["country"].strip(),
                case_sensitive=row.get("case_sensitive", "0").strip() == "1",
                name=row["name"].strip(),
            )
            for row in reader
            if row.get("name") and row.get("area")
        ]


@lru_cache(maxsize=4)
def gazetteer(data_dir: Path) -> Gazetteer:
    path = data_dir / "social" / "places.tsv"
    return Gazetteer(read_places(path) if path.exists() else [])
