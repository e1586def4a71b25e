"""A small in-process cache with a time limit, for what a hot path would otherwise read every time."""

from __future__ import annotations

import time
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    """Values kept for `ttl_seconds` (0 keeps nothing). A change made in this process is applied at once
    by forgetting the key; other processes' changes show within `ttl_seconds`."""

    def __init__(self, ttl_seconds: float) -> None:
        self.ttl = ttl_seconds
        self._items: dict[K, tuple[float, V]] = {}

    def get(self, key: K) -> V | None:
        item = self._items.get(key)
        if item is None or time.monotonic() - item[0] > self.ttl:
            return None
        return item[1]

    def put(self, key: K, value: V) -> None:
        if self.ttl > 0:
            self._items[key] = (time.monotonic(), value)

    def replace(self, key: K, value: V) -> None:
        """A new value for a kept key, which keeps its age (it expires when the old one would have)."""
        item = self._items.get(key)
        if item is not None:
            self._items[key] = (item[0], value)

    def forget(self, key: K) -> None:
        self._items.pop(key, None)
