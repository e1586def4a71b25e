"""Multinomial logistic regression over hashed sparse features, with temperature calibration.

Training uses SciPy's L-BFGS; prediction needs only NumPy, so loading a model is reading a few arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Lookup:
    feature_ids: npt.NDArray[np.int64]
    rows: npt.NDArray[np.int64]
    values: FloatArray


@dataclass
class LinearModel:
    classes: list[str]
    feature_ids: npt.NDArray[np.int64]  # sorted hashed ids seen in training
    weights: npt.NDArray[np.float32]  # (len(feature_ids), len(classes))
    bias: npt.NDArray[np.float32]
    temperature: float = 1.0

    def lookup(self, features: dict[int, float]) -> Lookup:
        """Where the features sit in this model's rows; shared by models trained on the same rows."""
        ids = np.fromiter(features.keys(), dtype=np.int64, count=len(features))
        values = np.fromiter(features.values(), dtype=np.float64, count=len(features))
        return self.lookup_arrays(ids, values)

    def lookup_arrays(self, ids: npt.NDArray[np.int64], values: FloatArray) -> Lookup:
        positions = np.searchsorted(self.feature_ids, ids)
        positions[positions >= len(self.feature_ids)] = 0
        known = self.feature_ids[positions] == ids
        return Lookup(self.feature_ids, positions[known], values[known])

    def logits(self, features: dict[int, float], lookup: Lookup | None = None) -> FloatArray:
        if lookup is None or lookup.feature_ids is not self.feature_ids:
            lookup = self.lookup(features)
        result: FloatArray = lookup.values @ self.weights[lookup.rows].astype(np.float64) + self.bias
        return result

    def probabilities(self, features: dict[int, float], lookup: Lookup | None = None) -> FloatArray:
        return softmax(self.logits(features, lookup) / self.temperature)

    def predict(
        self, features: dict[int, float], lookup: Lookup | None = None
    ) -> tuple[str, float, FloatArray]:
        return self._best(self.probabilities(features, lookup))

    def predict_arrays(self, ids: npt.NDArray[np.int64], values: FloatArray) -> tuple[str, float, FloatArray]:
        lookup = self.lookup_arrays(ids, values)
        return self._best(softmax(self.logits({}, lookup) / self.temperature))

    def _best(self, probs: FloatArray) -> tuple[str, float, FloatArray]:
        best = int(np.argmax(probs))
        return self.classes[best], float(probs[best]), probs


def softmax(z: FloatArray) -> FloatArray:
    shifted = z - np.max(z, axis=-1, keepdims=True)
    exp = np.exp(shifted)
    result: FloatArray = exp / np.sum(exp, axis=-1, keepdims=True)
    return result


def _design(rows: Sequence[dict[int, float]]) -> tuple[object, npt.NDArray[np.int64]]:
    from scipy import sparse

    ids = np.array(sorted({k for row in rows for k in row}), dtype=np.int64)
    column = {int(k): i for i, k in enumerate(ids)}
    data, indices, indptr = [], [], [0]
    for row in rows:
        for k, v in row.items():
            indices.append(column[k])
            data.append(v)
        indptr.append(len(indices))
    matrix = sparse.csr_matrix((data, indices, indptr), shape=(len(rows), len(ids)), dtype=np.float64)
    return matrix, ids


def fit(
    rows: Sequence[dict[int, float]],
    labels: Sequence[str],
    *,
    l2: float = 1e-3,
    max_iter: int = 300,
    classes: list[str] | None = None,
) -> LinearModel:
    """Fit by minimising the mean cross-entropy plus an L2 penalty (deterministic for a given input)."""
    from scipy.optimize import minimize

    classes = classes or sorted(set(labels))
    index = {c: i for i, c in enumerate(classes)}
    x, ids = _design(rows)
    n, d, k = len(rows), len(ids), len(classes)
    y = np.zeros((n, k))
    y[np.arange(n), [index[label] for label in labels]] = 1.0

    def loss_and_grad(theta: FloatArray) -> tuple[float, FloatArray]:
        w = theta[: d * k].reshape(d, k)
        b = theta[d * k :]
        z = x @ w + b  # type: ignore[operator]
        z -= z.max(axis=1, keepdims=True)
        log_norm = np.log(np.exp(z).sum(axis=1, keepdims=True))
        log_p = z - log_norm
        loss = -float(np.sum(y * log_p)) / n + 0.5 * l2 * float(np.sum(w * w))
        diff = (np.exp(log_p) - y) / n
        grad_w = x.T @ diff + l2 * w  # type: ignore[attr-defined]
        grad_b = diff.sum(axis=0)
        return loss, np.concatenate([np.asarray(grad_w).ravel(), grad_b])

    theta0 = np.zeros(d * k + k)
    result = minimize(loss_and_grad, theta0, jac=True, method="L-BFGS-B", options={"maxiter": max_iter})
    w = result.x[: d * k].reshape(d, k).astype(np.float32)
    b = result.x[d * k :].astype(np.float32)
    return LinearModel(classes=classes, feature_ids=ids, weights=w, bias=b)


def fit_temperature(
    logits: FloatArray, labels: Sequence[int], *, groups: npt.NDArray[np.int64] | None = None
) -> float:
    """The temperature that minimises the negative log-likelihood of out-of-fold predictions.

    With `groups`, class probabilities are summed per group first (sub-intents into their intent), and
    the likelihood is that of the group.
    """
    target = np.asarray(labels)
    best_t, best_nll = 1.0, float("inf")
    for t in np.exp(np.linspace(np.log(0.05), np.log(5.0), 200)):
        probs = softmax(logits / t)
        if groups is not None:
            probs = sum_by_group(probs, groups)
        nll = -float(np.mean(np.log(probs[np.arange(len(target)), target] + 1e-12)))
        if nll < best_nll:
            best_t, best_nll = float(t), nll
    return best_t


def sum_by_group(probs: FloatArray, groups: npt.NDArray[np.int64]) -> FloatArray:
    """Column sums per group: sub-intent probabilities into intent probabilities."""
    summed = np.zeros((len(probs), int(groups.max()) + 1))
    np.add.at(summed.T, groups, probs.T)
    return summed
