"""The intent, sub-intent and language classifiers, trained together and stored in one file."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from allo.assistant.nlu import linear
from allo.assistant.nlu.corpus import Example
from allo.assistant.nlu.features import FeatureSpec, feature_arrays, featurize, word_feature_id
from allo.assistant.nlu.linear import FloatArray, LinearModel
from allo.assistant.nlu.text import tokens

FORMAT_VERSION = 2
LANGUAGE_SPEC = FeatureSpec(words=True, word_bigrams=False, chars=True, char_min=1, char_max=3)


FLAG_NAMES = ("legal", "urgent", "outage", "cancellation", "human_requested")
SENTIMENT_CENTRES = {"very_negative": -0.85, "negative": -0.45, "neutral": 0.0, "positive": 0.6}


@dataclass(frozen=True)
class Prediction:
    intent: str
    confidence: float
    sub_intent: str
    sub_confidence: float
    language: str
    language_confidence: float
    sentiment: float  # expected value over the sentiment buckets, in [-1, 1]
    flag_probabilities: dict[str, float]
    known_word_share: float = 1.0
    word_count: int = 0


@dataclass(frozen=True)
class Heads:
    weights: FloatArray  # (features, all heads' classes)
    bias: FloatArray
    bounds: list[tuple[int, int]]  # each head's columns, in the order topic, sentiment, flags


def _yes_probability(model: LinearModel, logits: FloatArray) -> float:
    """A two-class softmax is a logistic function of the logits' difference: cheaper in plain floats."""
    if len(model.classes) != 2:
        raise ValueError("a flag model has two classes, yes and no")
    yes = model.classes.index("yes")
    margin = (float(logits[yes]) - float(logits[1 - yes])) / model.temperature
    if margin >= 0:
        return 1.0 / (1.0 + math.exp(-margin))
    exp = math.exp(margin)
    return exp / (1.0 + exp)


def intent_of(topic: str) -> str:
    return topic.split("/", 1)[0]


@dataclass
class NluModel:
    """One classifier over "intent/sub-intent" topics; an intent's probability is the sum of its
    sub-intents' (better than a separate intent model in cross-validation, see docs/benchmarks.md)."""

    spec: FeatureSpec
    topic: LinearModel
    language: LinearModel
    sentiment: LinearModel
    flags: dict[str, LinearModel]
    l2: float

    def intent_probabilities(self, topic_probs: FloatArray) -> dict[str, float]:
        names, of_topic = self._intents()
        totals = np.bincount(of_topic, weights=topic_probs, minlength=len(names))
        return dict(zip(names, totals.tolist(), strict=True))

    def _intents(self) -> tuple[list[str], npt.NDArray[np.int64]]:
        """The intents in order of first appearance, and each topic's intent index."""
        cached = self.__dict__.get("_intent_index")
        if cached is None:
            names = list(dict.fromkeys(intent_of(t) for t in self.topic.classes))
            of_topic = np.array([names.index(intent_of(t)) for t in self.topic.classes], dtype=np.int64)
            cached = self.__dict__["_intent_index"] = (names, of_topic)
        return cached

    def known_word_share(self, words: list[str]) -> tuple[float, int]:
        """The share of the words that the training corpus contained, and how many words there are:
        a message in a language the model never saw scores low."""
        alphabetic = [w for w in words if w.isalpha() and len(w) > 1]
        if not alphabetic:
            return 1.0, 0
        ids = np.array([word_feature_id(w) for w in alphabetic], dtype=np.int64)
        positions = np.searchsorted(self.topic.feature_ids, ids)
        positions[positions >= len(self.topic.feature_ids)] = 0
        return float(np.mean(self.topic.feature_ids[positions] == ids)), len(alphabetic)

    def _heads(self) -> Heads:
        """The topic, sentiment and flag models side by side: one gather and one product serve them all."""
        heads = self.__dict__.get("_stacked")
        if heads is None:
            models = [self.topic, self.sentiment, *self.flags.values()]
            shared = self.topic.feature_ids
            if any(m.feature_ids is not shared and not np.array_equal(m.feature_ids, shared) for m in models):
                raise ValueError("the topic, sentiment and flag models must share their feature rows")
            bounds, start = [], 0
            for model in models:
                bounds.append((start, start + len(model.classes)))
                start += len(model.classes)
            heads = Heads(
                weights=np.hstack([m.weights for m in models]).astype(np.float64),
                bias=np.concatenate([m.bias for m in models]).astype(np.float64),
                bounds=bounds,
            )
            self.__dict__["_stacked"] = heads
        return heads

    def predict(self, text: str) -> Prediction:
        words = tokens(text)
        lookup = self.topic.lookup_arrays(*feature_arrays(words, self.spec))
        heads = self._heads()
        logits = lookup.values @ heads.weights[lookup.rows] + heads.bias
        topic_logits, sentiment_logits, *flag_logits = (logits[a:b] for a, b in heads.bounds)
        topic_probs = linear.softmax(topic_logits / self.topic.temperature)
        intents = self.intent_probabilities(topic_probs)
        intent = max(intents, key=intents.__getitem__)
        names, of_topic = self._intents()
        best_topic = int(np.argmax(np.where(of_topic == names.index(intent), topic_probs, -1.0)))
        sub_intent = self.topic.classes[best_topic].split("/", 1)[1]
        language, language_confidence, _ = self.language.predict_arrays(*feature_arrays(words, LANGUAGE_SPEC))
        sentiment_probs = linear.softmax(sentiment_logits / self.sentiment.temperature)
        expected = sum(
            float(p) * SENTIMENT_CENTRES[c]
            for c, p in zip(self.sentiment.classes, sentiment_probs, strict=True)
        )
        flag_probs = {
            name: _yes_probability(model, z)
            for (name, model), z in zip(self.flags.items(), flag_logits, strict=True)
        }
        return Prediction(
            intent,
            intents[intent],
            sub_intent,
            float(topic_probs[best_topic]) / max(intents[intent], 1e-12),
            language,
            language_confidence,
            expected,
            flag_probs,
            *self.known_word_share(words),
        )

    def save(self, path: Path) -> None:
        arrays: dict[str, np.ndarray] = {}
        meta: dict[str, object] = {
            "version": FORMAT_VERSION,
            "spec": asdict(self.spec),
            "l2": self.l2,
            "models": {},
        }
        models: dict[str, LinearModel] = {
            "topic": self.topic,
            "language": self.language,
            "sentiment": self.sentiment,
        }
        models.update({f"flag:{k}": v for k, v in self.flags.items()})
        for name, model in models.items():
            arrays[f"{name}/ids"] = model.feature_ids
            arrays[f"{name}/w"] = model.weights
            arrays[f"{name}/b"] = model.bias
            meta["models"][name] = {"classes": model.classes, "temperature": model.temperature}  # type: ignore[index]
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        np.savez_compressed(tmp, **arrays)  # type: ignore[arg-type]
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> NluModel:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(bytes(data["meta"]).decode())
            if meta.get("version") != FORMAT_VERSION:
                raise ValueError(f"{path} was written by another version of Allo; run `allo nlu train`")
            models = {
                name: LinearModel(
                    classes=info["classes"],
                    feature_ids=data[f"{name}/ids"],
                    weights=data[f"{name}/w"],
                    bias=data[f"{name}/b"],
                    temperature=info["temperature"],
                )
                for name, info in meta["models"].items()
            }
        shared = models["topic"].feature_ids
        for model in models.values():
            if model.feature_ids is not shared and np.array_equal(model.feature_ids, shared):
                model.feature_ids = shared  # lets predict() reuse one lookup
        return cls(
            spec=FeatureSpec(**meta["spec"]),
            topic=models["topic"],
            language=models["language"],
            sentiment=models["sentiment"],
            flags={k.removeprefix("flag:"): v for k, v in models.items() if k.startswith("flag:")},
            l2=meta["l2"],
        )


# Chosen by `allo nlu compare` (5-fold cross-validation on the training split; see docs/benchmarks.md).
DEFAULT_SPEC = FeatureSpec(words=True, word_bigrams=True, chars=True, char_min=2, char_max=5)
DEFAULT_L2 = 1e-6


def _folds(n: int, k: int) -> list[np.ndarray]:
    order = np.random.default_rng(20261122).permutation(n)
    return [order[i::k] for i in range(k)]


def out_of_fold_logits(
    rows: Sequence[dict[int, float]], labels: Sequence[str], classes: list[str], *, l2: float, folds: int
) -> FloatArray:
    """Each row's logits from a model fitted without the fold it belongs to."""
    logits = np.zeros((len(rows), len(classes)))
    for held in _folds(len(rows), folds):
        mask = np.ones(len(rows), dtype=bool)
        mask[held] = False
        keep = [int(i) for i in np.flatnonzero(mask)]
        fold_model = linear.fit([rows[i] for i in keep], [labels[i] for i in keep], l2=l2, classes=classes)
        for i in held:
            logits[i] = fold_model.logits(rows[int(i)])
    return logits


def intent_groups(classes: Sequence[str]) -> tuple[list[str], npt.NDArray[np.int64]]:
    """The intents of the topic classes, and for each class the index of its intent."""
    intents = sorted({intent_of(c) for c in classes})
    return intents, np.array([intents.index(intent_of(c)) for c in classes], dtype=np.int64)


def _topic_model(
    rows: Sequence[dict[int, float]], topics: Sequence[str], *, l2: float, folds: int
) -> LinearModel:
    """The topic model fitted on all rows; its temperature makes the summed intent probabilities
    calibrated on out-of-fold predictions."""
    classes = sorted(set(topics))
    model = linear.fit(rows, topics, l2=l2, classes=classes)
    if len(rows) < folds * 2:
        return model
    logits = out_of_fold_logits(rows, topics, classes, l2=l2, folds=folds)
    intents, groups = intent_groups(classes)
    gold = [intents.index(intent_of(t)) for t in topics]
    model.temperature = linear.fit_temperature(logits, gold, groups=groups)
    return model


def train(
    examples: Sequence[Example],
    spec: FeatureSpec = DEFAULT_SPEC,
    *,
    l2: float = DEFAULT_L2,
    folds: int = 5,
    progress: Callable[[str], None] | None = None,
) -> NluModel:
    say = progress or (lambda _msg: None)
    rows = [featurize(e.text, spec) for e in examples]
    say("intents and sub-intents")
    topic = _topic_model(rows, [f"{e.intent}/{e.sub_intent}" for e in examples], l2=l2, folds=folds)
    say("language")
    language = linear.fit(
        [featurize(e.text, LANGUAGE_SPEC) for e in examples], [e.language for e in examples], l2=l2
    )
    say("sentiment")
    sentiment = linear.fit(rows, [e.sentiment for e in examples], l2=l2)
    flags = {}
    for name in FLAG_NAMES:
        say(f"flag {name}")
        flags[name] = linear.fit(
            rows, ["yes" if name in e.flags else "no" for e in examples], l2=l2, classes=["no", "yes"]
        )
    return NluModel(spec=spec, topic=topic, language=language, sentiment=sentiment, flags=flags, l2=l2)
