"""Train, evaluate and compare: what `allo nlu …` and benchmarks/nlu.py run."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from allo.assistant.analysis import Analyzer
from allo.assistant.nlu.corpus import Example, load_corpus
from allo.assistant.nlu.evaluation import (
    CrossValidation,
    accuracy,
    cross_validate,
    expected_calibration_error,
    macro_f1,
)
from allo.assistant.nlu.features import FeatureSpec
from allo.assistant.nlu.model import DEFAULT_L2, DEFAULT_SPEC, FLAG_NAMES, NluModel, train
from allo.assistant.sentiment import bucket, load_lexicon

CANDIDATE_SPECS = (
    FeatureSpec(words=True, word_bigrams=True, chars=False),
    FeatureSpec(words=False, word_bigrams=False, chars=True),
    FeatureSpec(words=True, word_bigrams=True, chars=True),
)
CANDIDATE_L2 = (1e-4, 1e-5, 1e-6)


@dataclass(frozen=True)
class TrainingReport:
    examples: int
    dropped_overlapping_heldout: int
    seconds: float


def train_and_save(
    data_dir: Path, path: Path, progress: Callable[[str], None] | None = None
) -> TrainingReport:
    corpus = load_corpus(data_dir / "nlu")
    started = time.perf_counter()
    model = train(corpus.train, DEFAULT_SPEC, l2=DEFAULT_L2, progress=progress)
    model.save(path)
    return TrainingReport(len(corpus.train), corpus.dropped_from_train, time.perf_counter() - started)


def compare(data_dir: Path, progress: Callable[[str], None] | None = None) -> list[CrossValidation]:
    """Every candidate feature set and regularisation, by cross-validation on the training split."""
    corpus = load_corpus(data_dir / "nlu")
    results = []
    for spec in CANDIDATE_SPECS:
        for l2 in CANDIDATE_L2:
            if progress:
                progress(f"{spec.name()}, l2={l2:g}")
            results.append(cross_validate(corpus.train, spec, l2))
    return results


def evaluate(analyzer: Analyzer, examples: list[Example]) -> dict[str, Any]:
    """The held-out figures: intent, sub-intent, calibration, escalation signals, sentiment, speed."""
    started = time.perf_counter()
    latencies = []
    results = []
    for example in examples:
        t0 = time.perf_counter()
        results.append(analyzer.analyze(example.text))
        latencies.append((time.perf_counter() - t0) * 1000)
    elapsed = time.perf_counter() - started
    gold_intents = [e.intent for e in examples]
    predicted = [r.intent for r in results]
    flags: dict[str, dict[str, float]] = {}
    for name in FLAG_NAMES:
        tp = sum(name in r.flags and name in e.flags for r, e in zip(results, examples, strict=True))
        fp = sum(name in r.flags and name not in e.flags for r, e in zip(results, examples, strict=True))
        fn = sum(name not in r.flags and name in e.flags for r, e in zip(results, examples, strict=True))
        flags[name] = {"precision": tp / max(tp + fp, 1), "recall": tp / max(tp + fn, 1), "support": tp + fn}
    # What the procedure escalates on from the labels alone: legal, human, cancellation, very negative.
    should = [
        bool({"legal", "human_requested", "cancellation"} & set(e.flags)) or e.sentiment == "very_negative"
        for e in examples
    ]
    did = [r.escalate for r in results]
    tp = sum(s and d for s, d in zip(should, did, strict=True))
    sentiment: dict[str, float] = {}
    for name in ("very_negative", "negative", "neutral", "positive"):
        members = [r for r, e in zip(results, examples, strict=True) if e.sentiment == name]
        sentiment[name] = sum(bucket(r.sentiment) == name for r in members) / max(len(members), 1)
    ordered = sorted(latencies)
    return {
        "examples": len(examples),
        "intent_accuracy": accuracy(predicted, gold_intents),
        "intent_macro_f1": macro_f1(predicted, gold_intents),
        "sub_intent_accuracy": accuracy([r.sub_intent for r in results], [e.sub_intent for e in examples]),
        "language_accuracy": accuracy([r.language for r in results], [e.language for e in examples]),
        "calibration_error": expected_calibration_error(
            [r.confidence for r in results], [p == g for p, g in zip(predicted, gold_intents, strict=True)]
        ),
        "escalation_recall": tp / max(sum(should), 1),
        "escalation_precision": tp / max(sum(did), 1),
        "flags": flags,
        "sentiment_accuracy_by_bucket": sentiment,
        "latency_p50_ms": ordered[len(ordered) // 2],
        "latency_p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
        "messages_per_second": len(examples) / elapsed,
    }


def heldout(data_dir: Path) -> list[Example]:
    return load_corpus(data_dir / "nlu").heldout


def load_analyzer(model_path: Path, data_dir: Path) -> Analyzer:
    return Analyzer(NluModel.load(model_path), load_lexicon(data_dir / "lexicon"))
