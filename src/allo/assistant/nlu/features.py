"""Hashed n-gram features: word uni- and bigrams and character n-grams within words.

Hashing keeps the model small and free of a vocabulary file; crc32 is stable across processes (unlike
Python's hash()), so a model trained once predicts the same everywhere.
"""

from __future__ import annotations

import itertools
import zlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from allo.assistant.nlu.text import tokens

DIMENSIONS = 1 << 20
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class FeatureSpec:
    words: bool = True
    word_bigrams: bool = True
    chars: bool = True
    char_min: int = 2
    char_max: int = 5

    def name(self) -> str:
        parts = []
        if self.words:
            parts.append("words" + ("+bigrams" if self.word_bigrams else ""))
        if self.chars:
            parts.append(f"chars{self.char_min}-{self.char_max}")
        return " + ".join(parts)


def _index(feature: str) -> int:
    return zlib.crc32(feature.encode()) & (DIMENSIONS - 1)


def word_feature_id(word: str) -> int:
    return _index("w:" + word)


@lru_cache(maxsize=100_000)
def _word_features(word: str, spec: FeatureSpec) -> tuple[int, ...]:
    """The hashed ids a word contributes by itself (its unigram and its character n-grams)."""
    ids = []
    if spec.words:
        ids.append(word_feature_id(word))
    if spec.chars:
        padded = f" {word} "
        for n in range(spec.char_min, spec.char_max + 1):
            for i in range(len(padded) - n + 1):
                ids.append(_index("c:" + padded[i : i + n]))
    return tuple(ids)


def feature_arrays(words: list[str], spec: FeatureSpec) -> tuple[IntArray, FloatArray]:
    """Sparse feature vector as (hashed ids, values): log-scaled counts, L2-normalised, ids ascending."""
    found: list[int] = []
    for w in words:
        found.extend(_word_features(w, spec))
    if spec.words and spec.word_bigrams:
        found.extend(_index("b:" + a + " " + b) for a, b in itertools.pairwise(words))
    if not found:
        found.append(_index("empty"))
    ids, counts = np.unique(np.array(found, dtype=np.int64), return_counts=True)
    values = 1.0 + np.log(counts.astype(np.float64))
    values /= np.sqrt(values @ values)
    return ids, values


def featurize_tokens(words: list[str], spec: FeatureSpec) -> dict[int, float]:
    ids, values = feature_arrays(words, spec)
    return dict(zip(ids.tolist(), values.tolist(), strict=True))


def featurize(text: str, spec: FeatureSpec) -> dict[int, float]:
    return featurize_tokens(tokens(text), spec)
