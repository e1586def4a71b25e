"""What kind of post this is (complaint, praise, news, question, other): a linear model over the
assistant's hashed n-gram features, trained from the labelled posts the project ships (data/social).

The assistant's analysis says what a post is about and how it feels; this model says whether it is a
customer's bad experience at all. News about an outage, sarcastic thanks and a neutral question read
alike to a sentiment score, and not to a model trained on them.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from allo.assistant.nlu.evaluation import accuracy, macro_f1
from allo.assistant.nlu.features import FeatureSpec, featurize
from allo.assistant.nlu.linear import LinearModel, fit

KINDS = ("complaint", "praise", "news", "question", "other")
FORMAT_VERSION = 1
SPEC = FeatureSpec(words=True, word_bigrams=True, chars=True, char_min=2, char_max=5)
L2 = 1e-5
# A post is a complaint from this probability on, even when another kind is likelier: an unanswered
# complaint costs more than an unneeded reply. Chosen by 5-fold cross-validation on the training split
# (docs/benchmarks.md), never on the held-out one.
COMPLAINT_FROM = 0.35


@dataclass(frozen=True)
class LabelledPost:
    text: str
    language: str
    kind: str
    urgency: str | None
    area: str | None


def read_posts(path: Path) -> list[LabelledPost]:
    posts = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            if row.get("kind") not in KINDS:
                raise ValueError(f"{path}:{number}: unknown kind {row.get('kind')!r}")
            posts.append(
                LabelledPost(
                    row["text"], row.get("language", "fr"), row["kind"], row.get("urgency"), row.get("area")
                )
            )
    return posts


def corpus(data_dir: Path, split: str) -> list[LabelledPost]:
    folder = data_dir / "social" / split
    return [post for path in sorted(folder.glob("*.jsonl")) for post in read_posts(path)]


@dataclass
class PostClassifier:
    model: LinearModel
    spec: FeatureSpec = SPEC

    def classify(self, text: str) -> tuple[str, float]:
        kind, probability, probabilities = self.model.predict(featurize(text, self.spec))
        complaint = float(probabilities[self.model.classes.index("complaint")])
        if complaint >= COMPLAINT_FROM:
            return "complaint", round(complaint, 3)
        return kind, round(probability, 3)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {"version": FORMAT_VERSION, "classes": self.model.classes, "spec": self.spec.__dict__}
        tmp = path.with_suffix(".tmp.npz")
        np.savez_compressed(
            tmp,
            ids=self.model.feature_ids,
            w=self.model.weights,
            b=self.model.bias,
            meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
        )
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> PostClassifier:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(bytes(data["meta"]).decode())
            if meta.get("version") != FORMAT_VERSION:
                raise ValueError(f"{path} was written by another version of Allo; run `allo nlu train`")
            model = LinearModel(
                classes=list(meta["classes"]), feature_ids=data["ids"], weights=data["w"], bias=data["b"]
            )
        return cls(model, FeatureSpec(**meta["spec"]))


def train(posts: Sequence[LabelledPost], *, l2: float = L2) -> PostClassifier:
    rows = [featurize(p.text, SPEC) for p in posts]
    return PostClassifier(fit(rows, [p.kind for p in posts], l2=l2, classes=list(KINDS)), SPEC)


@dataclass(frozen=True)
class TrainingReport:
    examples: int
    seconds: float


def train_and_save(data_dir: Path, path: Path) -> TrainingReport:
    posts = corpus(data_dir, "train")
    started = time.perf_counter()
    train(posts).save(path)
    return TrainingReport(len(posts), time.perf_counter() - started)


def evaluate(classifier: PostClassifier, posts: Sequence[LabelledPost]) -> dict[str, Any]:
    """Held-out figures: accuracy, macro-F1, and the complaint class's precision and recall (a missed
    complaint goes unanswered; a false one answers someone who did not complain)."""
    predicted = [classifier.classify(p.text)[0] for p in posts]
    gold = [p.kind for p in posts]
    true_positive = sum(1 for p, g in zip(predicted, gold, strict=True) if p == g == "complaint")
    said = predicted.count("complaint")
    real = gold.count("complaint")
    confusion = {g: {p: 0 for p in KINDS} for g in KINDS}
    for p, g in zip(predicted, gold, strict=True):
        confusion[g][p] += 1
    return {
        "examples": len(posts),
        "accuracy": round(accuracy(predicted, gold), 3),
        "macro_f1": round(macro_f1(predicted, gold), 3),
        "complaint_precision": round(true_positive / said, 3) if said else 0.0,
        "complaint_recall": round(true_positive / real, 3) if real else 0.0,
        "confusion": confusion,
    }


_lock = threading.Lock()
_loaded: dict[Path, tuple[float, PostClassifier]] = {}


def classifier_at(path: Path) -> PostClassifier:
    """The classifier in this file, loaded once per process and again when the file changes."""
    mtime = path.stat().st_mtime
    with _lock:
        cached = _loaded.get(path)
        if cached is None or cached[0] != mtime:
            cached = (mtime, PostClassifier.load(path))
            _loaded[path] = cached
        return cached[1]
