"""The Mastodon server, through Mastodon.py: what the listener reads and the reply job posts.

Mastodon.py is synchronous (requests): callers run these methods in a thread. Errors come out as three
kinds the callers act on: `RateLimited` (wait until the server's reset time), `Unavailable` (the server
or the network failed: try again later) and `Rejected` (the server refused this request: trying again
will not help).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from mastodon import Mastodon, StreamListener
from mastodon.errors import (
    MastodonAPIError,
    MastodonError,
    MastodonNetworkError,
    MastodonNotFoundError,
    MastodonRatelimitError,
    MastodonServerError,
    MastodonUnauthorizedError,
)

from allo import __version__

PAGE_SIZE = 40  # the most a timeline page holds
MENTIONS = "mentions"
TAG_PREFIX = "tag:"
# Below this many requests left in the window, the listener waits for the reset rather than spend the
# rest: the reply job needs some too.
RESERVED_REQUESTS = 5
DEFAULT_RETRY_SECONDS = 30.0


class MastodonProblem(Exception):
    pass


class RateLimited(MastodonProblem):
    def __init__(self, retry_after: float) -> None:
        super().__init__(f"rate limited for {retry_after:.0f} s")
        self.retry_after = retry_after


class Unavailable(MastodonProblem):
    """The server answered 5xx, or could not be reached."""


class Rejected(MastodonProblem):
    """The server refused the request (401, 404, 422…)."""


def hashtag_source(tag: str) -> str:
    return TAG_PREFIX + tag.lower()


def sources_of(hashtags: list[str], *, mentions: bool) -> list[str]:
    return [hashtag_source(t) for t in hashtags] + ([MENTIONS] if mentions else [])


@dataclass(frozen=True)
class Item:
    """One status from a source, with the id the source's cursor moves to (a notification's own id for
    mentions)."""

    cursor_id: str
    status: Mapping[str, Any]


def _as_int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


class MastodonGateway:
    def __init__(self, base_url: str, access_token: str, *, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.host = urlparse(self.base_url).netloc
        self.api = Mastodon(
            api_base_url=self.base_url,
            access_token=access_token,
            ratelimit_method="throw",
            request_timeout=timeout,
            version_check_mode="none",
            user_agent=f"Allo/{__version__} (+social listening)",
        )
        self._lock = threading.Lock()
        self._max_characters: int | None = None

    def _call(self, func: Callable[..., Any], *args: Any, reserve: int = 0, **kwargs: Any) -> Any:
        """One request, after waiting for the reset when the window's budget is spent."""
        self._check_budget(reserve)
        try:
            return func(*args, **kwargs)
        except MastodonRatelimitError as exc:
            raise RateLimited(self._seconds_to_reset() or DEFAULT_RETRY_SECONDS) from exc
        except (MastodonNetworkError, MastodonServerError) as exc:
            raise Unavailable(str(exc)) from exc
        except (MastodonUnauthorizedError, MastodonNotFoundError, MastodonAPIError) as exc:
            raise Rejected(str(exc)) from exc
        except MastodonError as exc:
            raise Unavailable(str(exc)) from exc

    def _seconds_to_reset(self) -> float | None:
        """Until the server's rate-limit window resets, or None when it has (or nothing is known)."""
        reset = getattr(self.api, "ratelimit_reset", None)
        if reset is None:
            return None
        left = float(reset) - time.time()
        return left if left > 0 else None

    def _check_budget(self, reserve: int) -> None:
        remaining = getattr(self.api, "ratelimit_remaining", None)
        if remaining is not None and remaining <= reserve:
            wait = self._seconds_to_reset()
            if wait is not None:
                raise RateLimited(wait)

    def me(self) -> Mapping[str, Any]:
        account: Mapping[str, Any] = self._call(self.api.account_verify_credentials)
        return account

    def max_characters(self) -> int:
        if self._max_characters is None:
            try:
                instance = self._call(self.api.instance_v2)
                limit = instance["configuration"]["statuses"]["max_characters"]
                self._max_characters = int(limit) if limit else 500
            except (MastodonProblem, KeyError, TypeError, ValueError):
                return 500  # the common limit; asked again next time
        return self._max_characters

    def page(self, source: str, *, after: str | None, limit: int = PAGE_SIZE) -> list[Item]:
        """Statuses newer than `after`, oldest first: the page just after it (or the newest page when
        there is no cursor yet)."""
        kwargs: dict[str, Any] = {"limit": limit}
        if after is not None:
            kwargs["min_id"] = after
        if source == MENTIONS:
            notes = self._call(self.api.notifications, types=["mention"], reserve=RESERVED_REQUESTS, **kwargs)
            items = [Item(str(n["id"]), n["status"]) for n in notes if n.get("status") is not None]
        else:
            statuses = self._call(
                self.api.timeline_hashtag,
                source.removeprefix(TAG_PREFIX),
                reserve=RESERVED_REQUESTS,
                **kwargs,
            )
            items = [Item(str(s["id"]), s) for s in statuses]
        return sorted(items, key=lambda item: _as_int(item.cursor_id))

    def post(
        self, text: str, *, in_reply_to_id: str, visibility: str, language: str, idempotency_key: str
    ) -> Mapping[str, Any]:
        status: Mapping[str, Any] = self._call(
            self.api.status_post,
            text,
            in_reply_to_id=in_reply_to_id,
            visibility=visibility,
            language=language,
            idempotency_key=idempotency_key,
        )
        return status

    def stream(self, source: str, listener: StreamListener, *, timeout: float) -> None:
        """Blocks while the stream is open; returns or raises when it ends. Raises Unavailable at once
        when the server refuses to stream."""
        try:
            if source == MENTIONS:
                self.api.stream_user_notifications(listener, timeout=timeout)
            else:
                self.api.stream_hashtag(source.removeprefix(TAG_PREFIX), listener, timeout=timeout)
        except MastodonError as exc:
            raise Unavailable(str(exc)) from exc
