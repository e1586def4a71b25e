"""The labelled corpus in data/nlu: training files and the held-out split."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from allo.assistant.nlu.text import normalize


@dataclass(frozen=True)
class Example:
    text: str
    language: str
    intent: str
    sub_intent: str
    sentiment: str
    flags: tuple[str, ...]
    register: str


def read_examples(paths: list[Path]) -> list[Example]:
    examples = []
    for path in sorted(paths):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                examples.append(
                    Example(
                        text=row["text"],
                        language=row["language"],
                        intent=row["intent"],
                        sub_intent=row["sub_intent"],
                        sentiment=row["sentiment"],
                        flags=tuple(sorted(row.get("flags", []))),
                        register=row.get("register", "casual"),
                    )
                )
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}:{number}: not a corpus example ({exc})") from exc
    return examples


@dataclass(frozen=True)
class Corpus:
    train: list[Example]
    heldout: list[Example]
    dropped_from_train: int


def load_corpus(directory: Path) -> Corpus:
    """Training and held-out examples. A training example whose text also stands in the held-out split
    (a bare "Bonjour", say) is left out of training, so that the held-out figures stay honest."""
    heldout = read_examples(list((directory / "heldout").glob("*.jsonl")))
    train_all = read_examples(list((directory / "train").glob("*.jsonl")))
    held_texts = {normalize(e.text) for e in heldout}
    train = [e for e in train_all if normalize(e.text) not in held_texts]
    return Corpus(train=train, heldout=heldout, dropped_from_train=len(train_all) - len(train))
