"""Measures of a classifier: accuracy, macro-F1, calibration error, cross-validation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from allo.assistant.nlu import linear
from allo.assistant.nlu.corpus import Example
from allo.assistant.nlu.features import FeatureSpec, featurize
from allo.assistant.nlu.model import intent_groups, out_of_fold_logits


def macro_f1(predicted: Sequence[str], gold: Sequence[str]) -> float:
    scores = []
    for label in sorted(set(gold)):
        tp = sum(p == label and g == label for p, g in zip(predicted, gold, strict=True))
        fp = sum(p == label and g != label for p, g in zip(predicted, gold, strict=True))
        fn = sum(p != label and g == label for p, g in zip(predicted, gold, strict=True))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return float(np.mean(scores)) if scores else 0.0


def accuracy(predicted: Sequence[str], gold: Sequence[str]) -> float:
    return float(np.mean([p == g for p, g in zip(predicted, gold, strict=True)])) if gold else 0.0


def expected_calibration_error(
    confidences: Sequence[float], correct: Sequence[bool], bins: int = 10
) -> float:
    """Mean gap between confidence and accuracy over equal-width confidence bins, weighted by size."""
    conf = np.asarray(confidences)
    hit = np.asarray(correct, dtype=float)
    total = 0.0
    for low in np.linspace(0, 1, bins, endpoint=False):
        mask = (conf > low) & (conf <= low + 1 / bins)
        if mask.any():
            total += mask.sum() * abs(hit[mask].mean() - conf[mask].mean())
    return total / max(len(conf), 1)


@dataclass(frozen=True)
class CrossValidation:
    spec: FeatureSpec
    l2: float
    macro_f1: float
    accuracy: float


def cross_validate(
    examples: Sequence[Example], spec: FeatureSpec, l2: float, folds: int = 5
) -> CrossValidation:
    """Intent macro-F1 over k folds of the training data only: how models are chosen. The intent is
    read from the topic model, as NluModel.predict does."""
    rows = [featurize(e.text, spec) for e in examples]
    topics = [f"{e.intent}/{e.sub_intent}" for e in examples]
    classes = sorted(set(topics))
    intents, groups = intent_groups(classes)
    probs = linear.softmax(out_of_fold_logits(rows, topics, classes, l2=l2, folds=folds))
    predicted = [intents[i] for i in np.argmax(linear.sum_by_group(probs, groups), axis=1)]
    gold = [e.intent for e in examples]
    return CrossValidation(spec, l2, macro_f1(predicted, gold), accuracy(predicted, gold))
