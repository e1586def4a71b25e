"""A local stand-in for a Mastodon server: its public REST API and its streaming API, on loopback.

It is a real HTTP server (uvicorn, in a thread of its own with its own event loop), so the tests can
drive the real Mastodon.py client against it, from plain sync code or through `asyncio.to_thread`:

    with run_standin() as standin:
        api = Mastodon(api_base_url=standin.url, access_token=standin.token,
                       ratelimit_method="throw", version_check_mode="none")
        standin.add_status("Encore une panne", account="camille@piaille.fr", hashtags=["Free"])
        page = api.timeline_hashtag("free")
        api.status_post("@camille@piaille.fr On regarde.", in_reply_to_id=page[0], idempotency_key="k1")
        assert standin.posted[0].idempotency_key == "k1"

What it speaks, in Mastodon 4.x's JSON shapes: `GET /api/v1/instance` and `/api/v2/instance`,
`GET /api/v1/accounts/verify_credentials` (the operator's account), `GET /api/v1/accounts/{id}` and
`/lookup`, `GET /api/v1/timelines/tag/{tag}` and `GET /api/v1/notifications` (with `max_id`, `since_id`,
`min_id`, `limit` and Mastodon's Link headers), `GET /api/v1/notifications/{id}`,
`POST /api/v1/statuses` (with the 500-character limit and the `Idempotency-Key` header),
`GET /api/v1/statuses/{id}`, and the SSE streams `/api/v1/streaming/health`, `hashtag?tag=`,
`hashtag/local?tag=`, `user` and `user/notification`, with a `:thump` line every `heartbeat_seconds`
(2 s; it may be changed before a stream opens). Every REST answer carries the `X-RateLimit-*` headers
of a budget per window, and the answer is 429 once the budget is spent.

The test scripts it with `add_account`, `add_status`, `add_mention`, `add_notification` and
`delete_status`, whose events go at once to the open streams; it breaks it with `fail_next`,
`rate_limit`, `drop_streams`, `refuse_streaming` and `set_token`; it reads back `requests`,
`requests_to(...)`, `posted`, `statuses`, `notifications` and `open_streams` (`wait_for_streams(n)`
blocks until n are open). `reset()` brings it back to its first state: the `operator` account
(`sav_operateur`, the token's) and the `customer` account (`camille@piaille.fr`, the default author),
with the same ids every time, and nothing else.

The `mastodon_standin` fixture gives one server shared by the whole run, reset for each test. To use
it in another test module, import both fixtures there:
`from tests.mastodon_standin import mastodon_standin_fixture, mastodon_standin_server_fixture  # noqa: F401`.

For manual trials, `python -m tests.mastodon_standin --port 8900 --seed FILE.jsonl` serves until
Ctrl-C; each seed line is a JSON object with the arguments of `add_status` (see `seed_status`).

Deliberate simplifications: characters are counted as code points (Mastodon counts grapheme
clusters); `@user` without a domain resolves to the local account of that name, or else to the only
known account of that name; as on Mastodon, a hashtag timeline or stream shows only public statuses
and no reblogs, and the user stream gets the notifications and the operator's own statuses (no one is
followed here); the faults of `fail_next` are answered before the rate limiter and without its
headers, as by a proxy in front of the server; the websocket streaming API is not spoken.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import enum
import html
import json
import logging
import re
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import pytest
import uvicorn

ASGIReceive = Callable[[], Awaitable[dict[str, Any]]]
ASGISend = Callable[[dict[str, Any]], Awaitable[None]]
Json = dict[str, Any]

DEFAULT_TOKEN = "standin-access-token"
OPERATOR_USERNAME = "sav_operateur"
CUSTOMER_ACCT = "camille@piaille.fr"
VERSION = "4.3.0"
MAX_CHARACTERS = 500
URL_LENGTH = 23  # every URL counts as this many characters, whatever its length
VISIBILITIES = ("public", "unlisted", "private", "direct")
INVALID_TOKEN = {"error": "The access token is invalid"}
NOT_FOUND = {"error": "Record not found"}
_EPOCH = datetime(2023, 1, 2, 9, 0, tzinfo=UTC)  # the initial accounts' creation: their ids never change

_URL = r"https?://[^\s<>\"']*[^\s<>\"'.,;:!?)\]]"
_TOKENS = re.compile(
    rf"(?P<url>{_URL})"
    r"|(?<![\w/#&])#(?P<tag>\w*[^\W\d_]\w*)"
    r"|(?<![\w/@])@(?P<user>\w+)(?:@(?P<domain>[\w-]+(?:\.[\w-]+)+))?"
)
_URLS = re.compile(_URL)
_REMOTE_MENTIONS = re.compile(r"(?<![\w/@])@(\w+)@[\w-]+(?:\.[\w-]+)+")


def iso(when: datetime) -> str:
    """`when` as Mastodon writes it: UTC, milliseconds, a Z."""
    when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def snowflake_time(snowflake: int | str) -> datetime:
    """The time a Mastodon snowflake id was made at."""
    return datetime.fromtimestamp((int(snowflake) >> 16) / 1000, UTC)


def count_characters(text: str) -> int:
    """The length Mastodon checks against its limit: a URL counts 23, a remote mention its @user only."""
    text = _URLS.sub("x" * URL_LENGTH, text)
    return len(_REMOTE_MENTIONS.sub(r"@\1", text))


def _dump(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _html_text(content: str) -> str:
    """The plain text of a status's HTML content."""
    text = re.sub(r"<br\s*/?>", "\n", content)
    text = re.sub(r"</p>\s*<p>", "\n\n", text)
    return html.unescape(re.sub(r"<[^>]+>", "", text))


def _escape(text: str) -> str:
    return html.escape(text).replace("&#x27;", "&#39;")


def _when(value: datetime | str | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _id_of(value: Json | str | int) -> str:
    return str(value["id"]) if isinstance(value, dict) else str(value)


def _truthy(value: Any) -> bool:
    return str(value).lower() in ("1", "true", "on", "yes")


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]  # every value of each query parameter, `types[]` included
    headers: dict[str, str]  # lower-case names
    body: Json  # the form or JSON body ({} when there is none)
    raw: bytes

    @property
    def params(self) -> dict[str, str]:
        """The query parameters, the last value of each."""
        return {name: values[-1] for name, values in self.query.items()}

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")

    @property
    def idempotency_key(self) -> str | None:
        return self.headers.get("idempotency-key")


@dataclass(frozen=True)
class PostedStatus:
    """A status created through `POST /api/v1/statuses`, with what the request asked for."""

    status: Json
    text: str  # the `status` parameter, as sent
    idempotency_key: str | None
    visibility: str
    in_reply_to_id: str | None
    language: str | None
    spoiler_text: str

    @property
    def id(self) -> str:
        return str(self.status["id"])


class _Signal(enum.Enum):
    END = "end"  # finish the response properly
    DROP = "drop"  # cut the connection mid-stream
    GONE = "gone"  # the client went away


class _StreamDropped(Exception):
    """Raised inside a stream to make uvicorn cut the connection without ending the response."""


class _QuietDrops(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], _StreamDropped))


@dataclass(eq=False)
class _Stream:
    channel: str  # "hashtag", "user" or "user:notification"
    tag: str | None  # lower-case, for the hashtag channel
    local_only: bool
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[bytes | _Signal] = field(default_factory=asyncio.Queue)

    def push(self, item: bytes | _Signal) -> None:
        with contextlib.suppress(RuntimeError):  # its loop is already closed
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)


def _event(name: str, payload: Json | str) -> bytes:
    data = payload if isinstance(payload, str) else _dump(payload).decode()
    return f"event: {name}\ndata: {data}\n\n".encode()


@dataclass
class _Reply:
    status: int
    body: bytes
    content_type: str = "application/json; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)


def _json_reply(status: int, value: Any, headers: list[tuple[str, str]] | None = None) -> _Reply:
    return _Reply(status, _dump(value), headers=headers or [])


class MastodonStandin:
    """The server's state and its ASGI application. Every method may be called from any thread."""

    def __init__(
        self,
        port: int,
        *,
        token: str = DEFAULT_TOKEN,
        operator_username: str = OPERATOR_USERNAME,
        operator_display_name: str = "SAV Opérateur",
        heartbeat_seconds: float = 2.0,
        rate_limit_budget: int = 300,
        rate_limit_window: float = 300.0,
        application_name: str = "Allo",
    ) -> None:
        self.port = port
        self.initial_token = token
        self.operator_username = operator_username
        self.operator_display_name = operator_display_name
        self.initial_heartbeat_seconds = heartbeat_seconds
        self.initial_rate_limit = (rate_limit_budget, rate_limit_window)
        self.application_name = application_name
        self._lock = threading.RLock()
        self._streams: list[_Stream] = []
        self._reset_state()

    # -- addresses ---------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The API base URL to give Mastodon.py."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def streaming_url(self) -> str:
        """The streaming API's address as the instance gives it (ws://, as Mastodon gives wss://)."""
        return f"ws://127.0.0.1:{self.port}"

    @property
    def domain(self) -> str:
        return f"127.0.0.1:{self.port}"

    # -- state -------------------------------------------------------------------------------------

    def _reset_state(self) -> None:
        with self._lock:
            self.token = self.initial_token
            self.heartbeat_seconds = self.initial_heartbeat_seconds  # may be changed at any time
            self.rate_limit_budget, self.rate_limit_window = self.initial_rate_limit
            self.max_characters = MAX_CHARACTERS
            self._accounts: dict[str, Json] = {}
            self._statuses: dict[str, Json] = {}
            self._notifications: dict[str, Json] = {}
            self._requests: list[RecordedRequest] = []
            self._posted: list[PostedStatus] = []
            self._idempotency: dict[str, str] = {}
            self._used_ids: set[int] = set()
            self._sequence = 0
            self._failures: list[int] = []
            self._refusal: int | None = None
            self._remaining = self.rate_limit_budget
            self._reset_at = time.time() + self.rate_limit_window
            self._operator_id = self.add_account(
                self.operator_username, display_name=self.operator_display_name, created_at=_EPOCH
            )["id"]
            user, _, domain = CUSTOMER_ACCT.partition("@")
            self._customer_id = self.add_account(
                user, domain, display_name="Camille", created_at=_EPOCH + timedelta(days=40)
            )["id"]

    @property
    def operator(self) -> Json:
        """The account of the token: the one `verify_credentials` gives, the author of what is posted."""
        return self.account(self._operator_id)

    @property
    def customer(self) -> Json:
        """The account `add_status` writes with when it is given none: `camille@piaille.fr`."""
        return self.account(self._customer_id)

    def reset(self) -> None:
        """Back to the first state: the two initial accounts, the initial token, no faults, no streams."""
        self._close_streams(_Signal.END)
        self._reset_state()

    def _next_id(self, when: datetime) -> str:
        base = int(when.timestamp() * 1000) << 16
        while True:
            candidate = base | (self._sequence & 0xFFFF)
            self._sequence += 1
            if candidate not in self._used_ids:
                self._used_ids.add(candidate)
                return str(candidate)

    # -- scripting: accounts -----------------------------------------------------------------------

    def add_account(
        self,
        username: str,
        domain: str | None = None,
        *,
        bot: bool = False,
        display_name: str | None = None,
        note: str = "",
        created_at: datetime | str | None = None,
        followers_count: int = 0,
        following_count: int = 0,
        locked: bool = False,
    ) -> Json:
        """A new account: local (acct `username`) when `domain` is None, else remote (`username@domain`)."""
        when = _when(created_at)
        with self._lock:
            account_id = self._next_id(when)
            if domain is None:
                acct, url, uri = username, f"{self.url}/@{username}", f"{self.url}/users/{username}"
            else:
                acct = f"{username}@{domain}"
                url, uri = f"https://{domain}/@{username}", f"https://{domain}/users/{username}"
            account: Json = {
                "id": account_id,
                "username": username,
                "acct": acct,
                "display_name": display_name if display_name is not None else username,
                "locked": locked,
                "bot": bot,
                "discoverable": True,
                "indexable": True,
                "group": False,
                "created_at": iso(when.replace(hour=0, minute=0, second=0, microsecond=0)),
                "note": f"<p>{_escape(note)}</p>" if note else "",
                "url": url,
                "uri": uri,
                "avatar": f"{self.url}/avatars/original/missing.png",
                "avatar_static": f"{self.url}/avatars/original/missing.png",
                "header": f"{self.url}/headers/original/missing.png",
                "header_static": f"{self.url}/headers/original/missing.png",
                "followers_count": followers_count,
                "following_count": following_count,
                "statuses_count": 0,
                "last_status_at": None,
                "hide_collections": None,
                "noindex": False,
                "emojis": [],
                "roles": [],
                "fields": [],
            }
            self._accounts[account_id] = account
            return copy.deepcopy(account)

    def account(self, acct_or_id: str) -> Json:
        """A known account, by acct (`user` or `user@domain`, any case) or by id."""
        with self._lock:
            found = self._find_account(acct_or_id)
            if found is None:
                raise KeyError(f"no account {acct_or_id!r}")
            return copy.deepcopy(found)

    def _find_account(self, acct_or_id: str) -> Json | None:
        if acct_or_id in self._accounts:
            return self._accounts[acct_or_id]
        wanted = acct_or_id.lstrip("@").lower()
        if wanted.endswith(f"@{self.domain}"):
            wanted = wanted.rsplit("@", 1)[0]
        return next((a for a in self._accounts.values() if a["acct"].lower() == wanted), None)

    def _resolve_mention(self, user: str, domain: str | None) -> Json | None:
        if domain is not None:
            return self._find_account(f"{user}@{domain}")
        local = self._find_account(user)
        if local is not None:
            return local
        named = [a for a in self._accounts.values() if a["username"].lower() == user.lower()]
        return named[0] if len(named) == 1 else None

    def _author(self, account: Json | str | None) -> Json:
        if account is None:
            return self._accounts[self._customer_id]
        if isinstance(account, dict):
            return self._accounts[str(account["id"])]
        found = self._find_account(account)
        if found is not None:
            return found
        user, _, domain = account.lstrip("@").partition("@")
        return self._accounts[self.add_account(user, domain or None)["id"]]

    # -- scripting: statuses and notifications -----------------------------------------------------

    def _render(self, text: str, hashtags: list[str]) -> tuple[str, list[str], list[Json]]:
        """HTML content, tag names and mentioned accounts of a status, from plain text or HTML."""
        if text.lstrip().startswith("<"):
            plain = _html_text(text)
            found = [m.group("tag") for m in _TOKENS.finditer(plain) if m.group("tag")]
            missing = [t for t in hashtags if t.lower() not in {f.lower() for f in found}]
            extra = "".join(f" {self._tag_html(t)}" for t in missing)
            content = re.sub(r"</p>\s*$", f"{extra}</p>", text) if extra and "</p>" in text else text + extra
            accounts = [
                a
                for m in _TOKENS.finditer(plain)
                if m.group("user") and (a := self._resolve_mention(m.group("user"), m.group("domain")))
            ]
            return content, [*found, *missing], accounts
        found = [m.group("tag") for m in _TOKENS.finditer(text) if m.group("tag")]
        missing = [t for t in hashtags if t.lower() not in {f.lower() for f in found}]
        if missing:
            text = text.rstrip() + " " + " ".join(f"#{t}" for t in missing)
        tags: list[str] = []
        mentioned: list[Json] = []
        paragraphs = []
        for paragraph in re.split(r"\n{2,}", text.strip()):
            lines = [self._render_line(line, tags, mentioned) for line in paragraph.split("\n")]
            paragraphs.append("<p>" + "<br />".join(lines) + "</p>")
        return "".join(paragraphs), tags, mentioned

    def _tag_html(self, tag: str) -> str:
        href = f"{self.url}/tags/{tag.lower()}"
        return f'<a href="{href}" class="mention hashtag" rel="tag">#<span>{tag}</span></a>'

    def _render_line(self, line: str, tags: list[str], mentioned: list[Json]) -> str:
        out: list[str] = []
        position = 0
        for match in _TOKENS.finditer(line):
            out.append(_escape(line[position : match.start()]))
            position = match.end()
            if match.group("url"):
                url = match.group("url")
                scheme, _, rest = url.partition("://")
                shown = (
                    f'<span class="ellipsis">{_escape(rest[:30])}</span>'
                    f'<span class="invisible">{_escape(rest[30:])}</span>'
                    if len(rest) > 30
                    else f'<span class="">{_escape(rest)}</span><span class="invisible"></span>'
                )
                out.append(
                    f'<a href="{_escape(url)}" target="_blank" rel="nofollow noopener" translate="no">'
                    f'<span class="invisible">{scheme}://</span>{shown}</a>'
                )
            elif match.group("tag"):
                tags.append(match.group("tag"))
                out.append(self._tag_html(match.group("tag")))
            else:
                account = self._resolve_mention(match.group("user"), match.group("domain"))
                if account is None:
                    out.append(_escape(match.group(0)))
                    continue
                mentioned.append(account)
                out.append(
                    f'<span class="h-card" translate="no"><a href="{account["url"]}" class="u-url mention">'
                    f"@<span>{account['username']}</span></a></span>"
                )
        out.append(_escape(line[position:]))
        return "".join(out)

    def _status_urls(self, account: Json, status_id: str) -> tuple[str, str]:
        if "@" in account["acct"]:
            domain = account["acct"].split("@", 1)[1]
            return (
                f"https://{domain}/users/{account['username']}/statuses/{status_id}",
                f"https://{domain}/@{account['username']}/{status_id}",
            )
        return (
            f"{self.url}/users/{account['username']}/statuses/{status_id}",
            f"{self.url}/@{account['username']}/{status_id}",
        )

    def _create_status(
        self,
        text: str,
        *,
        author: Json,
        hashtags: list[str],
        visibility: str,
        language: str | None,
        in_reply_to_id: str | None,
        reblog_of: str | None,
        spoiler_text: str,
        sensitive: bool,
        when: datetime,
        application: str | None,
    ) -> Json:
        """Builds, stores and broadcasts a status; the lock is held."""
        if visibility not in VISIBILITIES:
            raise ValueError(f"visibility must be one of {VISIBILITIES}, not {visibility!r}")
        status_id = self._next_id(when)
        uri, url = self._status_urls(author, status_id)
        parent = self._statuses.get(in_reply_to_id) if in_reply_to_id else None
        original = self._statuses.get(reblog_of) if reblog_of else None
        if reblog_of and original is None:
            raise KeyError(f"no status {reblog_of!r} to reblog")
        content, tags, mentioned = "", list[str](), list[Json]()
        if original is not None:
            uri = url = f"{uri}/activity"
        else:
            content, tags, mentioned = self._render(text, hashtags)
        author["statuses_count"] += 1
        author["last_status_at"] = when.date().isoformat()
        unique_tags = list({t.lower(): t for t in tags})
        unique_mentions = list({a["id"]: a for a in mentioned}.values())
        status: Json = {
            "id": status_id,
            "created_at": iso(when),
            "in_reply_to_id": parent["id"] if parent else None,
            "in_reply_to_account_id": parent["account"]["id"] if parent else None,
            "sensitive": sensitive or bool(spoiler_text),
            "spoiler_text": spoiler_text,
            "visibility": visibility,
            "language": None if original is not None else language,
            "uri": uri,
            "url": url,
            "replies_count": 0,
            "reblogs_count": 0,
            "favourites_count": 0,
            "quotes_count": 0,
            "edited_at": None,
            "favourited": False,
            "reblogged": False,
            "muted": False,
            "bookmarked": False,
            "pinned": False,
            "content": content,
            "filtered": [],
            "reblog": copy.deepcopy(original),
            "account": copy.deepcopy(author),
            "media_attachments": [],
            "mentions": [
                {"id": a["id"], "username": a["username"], "url": a["url"], "acct": a["acct"]}
                for a in unique_mentions
            ],
            "tags": [{"name": t.lower(), "url": f"{self.url}/tags/{t.lower()}"} for t in unique_tags],
            "emojis": [],
            "card": None,
            "poll": None,
        }
        if application is not None:
            status["application"] = {"name": application, "website": None}
        self._statuses[status_id] = status
        if parent is not None:
            parent["replies_count"] += 1
        if original is not None:
            original["reblogs_count"] += 1
        self._broadcast_status(status)
        operator_id = self._operator_id
        if author["id"] != operator_id:
            if any(a["id"] == operator_id for a in unique_mentions):
                self._notify("mention", author, status, when)
            if original is not None and original["account"]["id"] == operator_id:
                self._notify("reblog", author, original, when)
        return status

    def _broadcast_status(self, status: Json) -> None:
        tags = {t["name"] for t in status["tags"]}
        public = status["visibility"] == "public" and status["reblog"] is None
        local = "@" not in status["account"]["acct"]
        own = status["account"]["id"] == self._operator_id
        event = _event("update", status)
        for stream in self._streams:
            if stream.channel == "hashtag" and public and stream.tag in tags:
                if local or not stream.local_only:
                    stream.push(event)
            elif stream.channel == "user" and own:
                stream.push(event)

    def _notify(self, kind: str, account: Json, status: Json | None, when: datetime) -> Json:
        notification_id = self._next_id(when)
        notification: Json = {
            "id": notification_id,
            "type": kind,
            "created_at": iso(when),
            "group_key": f"ungrouped-{notification_id}",
            "account": copy.deepcopy(account),
        }
        if status is not None:
            notification["status"] = copy.deepcopy(status)
        self._notifications[notification_id] = notification
        event = _event("notification", notification)
        for stream in self._streams:
            if stream.channel in ("user", "user:notification"):
                stream.push(event)
        return notification

    def add_status(
        self,
        text: str,
        *,
        account: Json | str | None = None,
        hashtags: list[str] | tuple[str, ...] = (),
        visibility: str = "public",
        language: str | None = "fr",
        in_reply_to_id: Json | str | int | None = None,
        reblog_of: Json | str | int | None = None,
        mention_operator: bool = False,
        created_at: datetime | str | None = None,
        spoiler_text: str = "",
        sensitive: bool = False,
    ) -> Json:
        """A status by `account` (a dict, an acct, None for the customer), stored and pushed on the streams.

        `text` is plain text (hashtags, mentions of known accounts and URLs become Mastodon's markup) or
        HTML when it starts with "<". `hashtags` not already in the text are appended. With
        `mention_operator`, the text starts with @operator when it does not mention them already; every
        status mentioning the operator makes a `mention` notification. A reblog (`reblog_of`) has an empty
        content of its own and the original under `reblog`.
        """
        when = _when(created_at)
        with self._lock:
            author = self._author(account)
            parent_id = _id_of(in_reply_to_id) if in_reply_to_id is not None else None
            if parent_id is not None and parent_id not in self._statuses:
                raise KeyError(f"no status {parent_id!r} to reply to")
            if mention_operator and reblog_of is None:
                plain = _html_text(text) if text.lstrip().startswith("<") else text
                operator = self._operator_record()
                if not any(
                    m.group("user") and self._resolve_mention(m.group("user"), m.group("domain")) is operator
                    for m in _TOKENS.finditer(plain)
                ):
                    mention = f"@{operator['username']}"
                    if text.lstrip().startswith("<"):
                        text = re.sub(r"^\s*<p>", f"<p>{mention} ", text, count=1)
                    else:
                        text = f"{mention} {text}"
            status = self._create_status(
                text,
                author=author,
                hashtags=list(hashtags),
                visibility=visibility,
                language=language,
                in_reply_to_id=parent_id,
                reblog_of=_id_of(reblog_of) if reblog_of is not None else None,
                spoiler_text=spoiler_text,
                sensitive=sensitive,
                when=when,
                application=None if "@" in author["acct"] else "Web",
            )
            return copy.deepcopy(status)

    def _operator_record(self) -> Json:
        return self._accounts[self._operator_id]

    def add_mention(
        self,
        text: str,
        *,
        account: Json | str | None = None,
        visibility: str = "public",
        hashtags: list[str] | tuple[str, ...] = (),
        in_reply_to_id: Json | str | int | None = None,
        created_at: datetime | str | None = None,
        language: str | None = "fr",
    ) -> Json:
        """A status mentioning the operator (so a `mention` notification too); the status is returned."""
        return self.add_status(
            text,
            account=account,
            visibility=visibility,
            hashtags=hashtags,
            in_reply_to_id=in_reply_to_id,
            created_at=created_at,
            language=language,
            mention_operator=True,
        )

    def add_notification(
        self,
        kind: str,
        *,
        account: Json | str | None = None,
        status: Json | str | int | None = None,
        created_at: datetime | str | None = None,
    ) -> Json:
        """A notification for the operator (`favourite`, `reblog`, `follow`…), pushed on the user streams."""
        with self._lock:
            author = self._author(account)
            target = None
            if status is not None:
                target = self._statuses.get(_id_of(status))
                if target is None:
                    raise KeyError(f"no status {_id_of(status)!r}")
                if kind == "favourite":
                    target["favourites_count"] += 1
            return copy.deepcopy(self._notify(kind, author, target, _when(created_at)))

    def delete_status(self, status: Json | str | int) -> None:
        """Forget a status and push `delete` to the streams that would have shown it."""
        with self._lock:
            gone = self._statuses.pop(_id_of(status))
            tags = {t["name"] for t in gone["tags"]}
            own = gone["account"]["id"] == self._operator_id
            event = _event("delete", gone["id"])
            for stream in self._streams:
                if (stream.channel == "hashtag" and stream.tag in tags) or (stream.channel == "user" and own):
                    stream.push(event)

    def status(self, status_id: Json | str | int) -> Json:
        with self._lock:
            return copy.deepcopy(self._statuses[_id_of(status_id)])

    @property
    def statuses(self) -> list[Json]:
        """Every status, oldest first."""
        with self._lock:
            return copy.deepcopy(sorted(self._statuses.values(), key=lambda s: int(s["id"])))

    @property
    def notifications(self) -> list[Json]:
        """Every notification, oldest first."""
        with self._lock:
            return copy.deepcopy(sorted(self._notifications.values(), key=lambda n: int(n["id"])))

    # -- fault injection ---------------------------------------------------------------------------

    def fail_next(self, n: int = 1, status: int = 500) -> None:
        """The next `n` REST requests answer `status` with a JSON error body."""
        with self._lock:
            self._failures.extend([status] * n)

    def rate_limit(self, remaining: int = 0, reset_in: float = 2.0) -> None:
        """Set the budget: `remaining` requests until `reset_in` seconds from now, then a full window."""
        with self._lock:
            self._remaining = remaining
            self._reset_at = time.time() + reset_in

    def drop_streams(self) -> int:
        """Cut every open streaming connection mid-stream; how many there were."""
        return self._close_streams(_Signal.DROP)

    def refuse_streaming(self, status: int = 503) -> None:
        """The streaming endpoints answer `status` instead of streaming (the open streams go on)."""
        with self._lock:
            self._refusal = status

    def allow_streaming(self) -> None:
        with self._lock:
            self._refusal = None

    def set_token(self, token: str) -> None:
        """From now on only `token` is accepted."""
        with self._lock:
            self.token = token

    def _close_streams(self, signal: _Signal) -> int:
        with self._lock:
            streams, self._streams = self._streams, []
        for stream in streams:
            stream.push(signal)
        return len(streams)

    # -- inspection --------------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received, streaming ones included, oldest first."""
        with self._lock:
            return list(self._requests)

    def requests_to(self, path: str, method: str | None = None) -> list[RecordedRequest]:
        """The requests to `path` (a trailing slash or not, as Mastodon.py adds one to some paths)."""
        path = path.rstrip("/")
        return [
            r for r in self.requests if r.path.rstrip("/") == path and (method is None or r.method == method)
        ]

    @property
    def posted(self) -> list[PostedStatus]:
        """The statuses created through the API, oldest first (a replayed idempotency key adds none)."""
        with self._lock:
            return list(self._posted)

    @property
    def open_streams(self) -> int:
        with self._lock:
            return len(self._streams)

    def wait_for_streams(self, count: int, timeout: float = 3.0) -> None:
        """Block until exactly `count` streams are open (from async code: `asyncio.to_thread`)."""
        deadline = time.monotonic() + timeout
        while self.open_streams != count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.open_streams} streams open, not {count}")
            time.sleep(0.005)

    # -- the ASGI application ----------------------------------------------------------------------

    async def __call__(self, scope: Json, receive: ASGIReceive, send: ASGISend) -> None:
        if scope["type"] == "websocket":  # Mastodon.py's websocket mode is not spoken here
            await receive()
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            return
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        query = parse_qs(scope["query_string"].decode("latin-1"), keep_blank_values=True)
        request = RecordedRequest(
            method=scope["method"],
            path=scope["path"],
            query=query,
            headers=headers,
            body=self._parse_body(raw, headers.get("content-type", "")),
            raw=raw,
        )
        with self._lock:
            self._requests.append(request)
        if request.path.startswith("/api/v1/streaming"):
            await self._streaming(request, receive, send)
            return
        with self._lock:
            reply = self._rest(request)
        await send(
            {
                "type": "http.response.start",
                "status": reply.status,
                "headers": [
                    (b"content-type", reply.content_type.encode()),
                    *((k.encode(), v.encode()) for k, v in reply.headers),
                ],
            }
        )
        await send({"type": "http.response.body", "body": reply.body})

    @staticmethod
    def _parse_body(raw: bytes, content_type: str) -> Json:
        if not raw:
            return {}
        if content_type.startswith("application/json"):
            with contextlib.suppress(ValueError):
                parsed = json.loads(raw)
                return parsed if isinstance(parsed, dict) else {}
            return {}
        form = parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
        return {k: v if k.endswith("[]") else v[-1] for k, v in form.items()}

    def _authorized(self, request: RecordedRequest, required: bool) -> bool:
        given = request.authorization
        if given is None:
            token = request.params.get("access_token")
            return (token == self.token) if token is not None else not required
        scheme, _, token = given.partition(" ")
        return scheme.lower() == "bearer" and token == self.token

    def _rest(self, request: RecordedRequest) -> _Reply:
        """The answer to a REST request; the lock is held."""
        if self._failures:
            status = self._failures.pop(0)
            return _json_reply(status, {"error": HTTPStatus(status).phrase})
        now = time.time()
        if now >= self._reset_at:
            self._remaining = self.rate_limit_budget
            self._reset_at = now + self.rate_limit_window
        limited = self._remaining <= 0
        if not limited:
            self._remaining -= 1
        reset = datetime.fromtimestamp(self._reset_at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        rate_headers = [
            ("x-ratelimit-limit", str(self.rate_limit_budget)),
            ("x-ratelimit-remaining", str(max(self._remaining, 0))),
            ("x-ratelimit-reset", reset),
        ]
        reply = _json_reply(429, {"error": "Too many requests"}) if limited else self._route(request)
        reply.headers.extend(rate_headers)
        return reply

    def _route(self, request: RecordedRequest) -> _Reply:
        path, method = request.path.rstrip("/"), request.method
        needs_auth = path in ("/api/v1/accounts/verify_credentials", "/api/v1/notifications") or (
            method == "POST"
        )
        if not self._authorized(request, needs_auth):
            return _json_reply(401, INVALID_TOKEN)
        if method == "GET" and path == "/api/v1/instance":
            return _json_reply(200, self._instance_v1())
        if method == "GET" and path == "/api/v2/instance":
            return _json_reply(200, self._instance_v2())
        if method == "GET" and path == "/api/v1/accounts/verify_credentials":
            account = copy.deepcopy(self._operator_record())
            account["source"] = {
                "privacy": "public",
                "sensitive": False,
                "language": "fr",
                "note": "",
                "fields": [],
                "follow_requests_count": 0,
            }
            return _json_reply(200, account)
        if method == "GET" and path == "/api/v1/accounts/lookup":
            found = self._find_account(request.params.get("acct", ""))
            return _json_reply(200, found) if found else _json_reply(404, NOT_FOUND)
        if method == "GET" and (match := re.fullmatch(r"/api/v1/accounts/(\d+)", path)):
            found = self._accounts.get(match.group(1))
            return _json_reply(200, found) if found else _json_reply(404, NOT_FOUND)
        if method == "GET" and (match := re.fullmatch(r"/api/v1/timelines/tag/([^/]+)", path)):
            return self._tag_timeline(request, match.group(1))
        if method == "GET" and path == "/api/v1/notifications":
            return self._notification_list(request)
        if method == "GET" and (match := re.fullmatch(r"/api/v1/notifications/(\d+)", path)):
            found = self._notifications.get(match.group(1))
            return _json_reply(200, found) if found else _json_reply(404, NOT_FOUND)
        if method == "POST" and path == "/api/v1/statuses":
            return self._post_status(request)
        if method == "GET" and (match := re.fullmatch(r"/api/v1/statuses/(\d+)", path)):
            found = self._statuses.get(match.group(1))
            return _json_reply(200, found) if found else _json_reply(404, NOT_FOUND)
        return _json_reply(404, {"error": "Not Found"})

    def _instance_v1(self) -> Json:
        return {
            "uri": self.domain,
            "title": "Mastodon stand-in",
            "short_description": "A stand-in for a Mastodon server, for tests.",
            "description": "A stand-in for a Mastodon server, for tests.",
            "email": "admin@example.org",
            "version": VERSION,
            "urls": {"streaming_api": self.streaming_url},
            "stats": {
                "user_count": sum("@" not in a["acct"] for a in self._accounts.values()),
                "status_count": len(self._statuses),
                "domain_count": len(
                    {a["acct"].split("@")[1] for a in self._accounts.values() if "@" in a["acct"]}
                ),
            },
            "thumbnail": f"{self.url}/packs/media/images/preview.png",
            "languages": ["fr", "en"],
            "registrations": False,
            "approval_required": False,
            "invites_enabled": False,
            "configuration": self._configuration(),
            "contact_account": self._operator_record(),
            "rules": [],
        }

    def _configuration(self) -> Json:
        return {
            "accounts": {"max_featured_tags": 10, "max_pinned_statuses": 5},
            "statuses": {
                "max_characters": self.max_characters,
                "max_media_attachments": 4,
                "characters_reserved_per_url": URL_LENGTH,
            },
            "media_attachments": {
                "supported_mime_types": ["image/jpeg", "image/png", "image/gif", "image/webp"],
                "image_size_limit": 16777216,
                "image_matrix_limit": 33177600,
                "video_size_limit": 103809024,
                "video_frame_rate_limit": 120,
                "video_matrix_limit": 8294400,
            },
            "polls": {
                "max_options": 4,
                "max_characters_per_option": 50,
                "min_expiration": 300,
                "max_expiration": 2629746,
            },
        }

    def _instance_v2(self) -> Json:
        public = {"local": "public", "remote": "public"}
        configuration = self._configuration()
        configuration.update(
            {
                "urls": {
                    "streaming": self.streaming_url,
                    "status": None,
                    "about": f"{self.url}/about",
                    "privacy_policy": None,
                    "terms_of_service": None,
                },
                "vapid": {"public_key": ""},
                "translation": {"enabled": False},
                "timelines_access": {
                    "live_feeds": dict(public),
                    "hashtag_feeds": dict(public),
                    "trending_link_feeds": dict(public),
                },
            }
        )
        return {
            "domain": self.domain,
            "title": "Mastodon stand-in",
            "version": VERSION,
            "source_url": "https://github.com/mastodon/mastodon",
            "description": "A stand-in for a Mastodon server, for tests.",
            "usage": {"users": {"active_month": len(self._accounts)}},
            "thumbnail": {"url": f"{self.url}/packs/media/images/preview.png"},
            "icon": [],
            "languages": ["fr", "en"],
            "configuration": configuration,
            "registrations": {"enabled": False, "approval_required": False, "message": None, "url": None},
            "api_versions": {"mastodon": 2},
            "contact": {"email": "admin@example.org", "account": self._operator_record()},
            "rules": [],
        }

    def _page(
        self, request: RecordedRequest, items: list[Json], default_limit: int, max_limit: int, kept: list[str]
    ) -> _Reply:
        """One page of `items` (any order) under Mastodon's id rules, newest first, with its Link header."""
        params = request.params
        try:
            limit = int(params.get("limit", default_limit))
            bounds = {
                name: int(params[name]) for name in ("max_id", "since_id", "min_id") if params.get(name)
            }
        except ValueError:
            return _json_reply(400, {"error": "Invalid parameters"})
        limit = min(max(limit, 1), max_limit)
        chosen = sorted(items, key=lambda item: int(item["id"]))
        if "max_id" in bounds:
            chosen = [i for i in chosen if int(i["id"]) < bounds["max_id"]]
        for name in ("since_id", "min_id"):
            if name in bounds:
                chosen = [i for i in chosen if int(i["id"]) > bounds[name]]
        page = chosen[:limit][::-1] if "min_id" in bounds else chosen[::-1][:limit]
        headers: list[tuple[str, str]] = []
        if page:
            base = {name: request.query[name] for name in kept if name in request.query}
            path = request.path.rstrip("/")

            def link(extra: dict[str, str]) -> str:
                query = urlencode(sorted({**base, **extra}.items()), doseq=True)
                return f"{self.url}{path}?{query}"

            next_url = link({"max_id": page[-1]["id"]})
            prev_url = link({"min_id": page[0]["id"]})
            headers.append(("link", f'<{next_url}>; rel="next", <{prev_url}>; rel="prev"'))
        return _json_reply(200, page, headers)

    def _tag_timeline(self, request: RecordedRequest, hashtag: str) -> _Reply:
        tag = hashtag.lower()
        local_only = _truthy(request.params.get("local", ""))
        remote_only = _truthy(request.params.get("remote", ""))
        if _truthy(request.params.get("only_media", "")):  # no status here has media
            return self._page(request, [], 20, 40, [])
        items = [
            s
            for s in self._statuses.values()
            if s["visibility"] == "public"
            and s["reblog"] is None
            and any(t["name"] == tag for t in s["tags"])
            and not (local_only and "@" in s["account"]["acct"])
            and not (remote_only and "@" not in s["account"]["acct"])
        ]
        return self._page(request, items, 20, 40, ["limit", "local", "remote", "only_media"])

    def _notification_list(self, request: RecordedRequest) -> _Reply:
        types = set(request.query.get("types[]", []) + request.query.get("types", []))
        excluded = set(request.query.get("exclude_types[]", []) + request.query.get("exclude_types", []))
        items = [
            n
            for n in self._notifications.values()
            if (not types or n["type"] in types) and n["type"] not in excluded
        ]
        return self._page(request, items, 40, 80, ["limit", "types[]", "exclude_types[]"])

    def _post_status(self, request: RecordedRequest) -> _Reply:
        body = request.body
        key = request.idempotency_key
        if key is not None and key in self._idempotency:
            return _json_reply(200, self._statuses[self._idempotency[key]])
        text = str(body.get("status") or "")
        spoiler_text = str(body.get("spoiler_text") or "")
        if not text.strip():
            return _json_reply(422, {"error": "Validation failed: Text can't be blank"})
        if count_characters(text) + len(spoiler_text) > self.max_characters:
            return _json_reply(
                422, {"error": f"Validation failed: Text character limit of {self.max_characters} exceeded"}
            )
        visibility = str(body.get("visibility") or "public")
        if visibility not in VISIBILITIES:
            return _json_reply(422, {"error": "Validation failed: Visibility is not included in the list"})
        parent_id = str(body["in_reply_to_id"]) if body.get("in_reply_to_id") else None
        if parent_id is not None and parent_id not in self._statuses:
            return _json_reply(
                404, {"error": "The post you are trying to reply to does not appear to exist."}
            )
        language = str(body["language"]) if body.get("language") else None
        status = self._create_status(
            text,
            author=self._operator_record(),
            hashtags=[],
            visibility=visibility,
            language=language,
            in_reply_to_id=parent_id,
            reblog_of=None,
            spoiler_text=spoiler_text,
            sensitive=_truthy(body.get("sensitive", "")),
            when=datetime.now(UTC),
            application=self.application_name,
        )
        if key is not None:
            self._idempotency[key] = status["id"]
        self._posted.append(
            PostedStatus(
                status=copy.deepcopy(status),
                text=text,
                idempotency_key=key,
                visibility=visibility,
                in_reply_to_id=parent_id,
                language=language,
                spoiler_text=spoiler_text,
            )
        )
        return _json_reply(200, status)

    # -- streaming ---------------------------------------------------------------------------------

    async def _streaming(self, request: RecordedRequest, receive: ASGIReceive, send: ASGISend) -> None:
        path = request.path.rstrip("/")
        channels = {
            "/api/v1/streaming/hashtag": "hashtag",
            "/api/v1/streaming/hashtag/local": "hashtag",
            "/api/v1/streaming/user": "user",
            "/api/v1/streaming/user/notification": "user:notification",
        }
        with self._lock:
            refusal = self._refusal
            authorized = self._authorized(request, path.startswith("/api/v1/streaming/user"))
        if refusal is not None:
            reply = _json_reply(refusal, {"error": HTTPStatus(refusal).phrase})
        elif path == "/api/v1/streaming/health":
            reply = _Reply(200, b"OK", "text/plain; charset=utf-8")
        elif path not in channels:
            reply = _json_reply(404, {"error": "Unknown stream type"})
        elif not authorized:
            reply = _json_reply(401, {"error": "Invalid access token"})
        elif channels[path] == "hashtag" and not request.params.get("tag"):
            reply = _json_reply(400, {"error": "Missing tag name parameter"})
        else:
            stream = _Stream(
                channel=channels[path],
                tag=request.params["tag"].lower() if channels[path] == "hashtag" else None,
                local_only=path.endswith("/local"),
                loop=asyncio.get_running_loop(),
            )
            await self._stream(stream, receive, send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": reply.status,
                "headers": [(b"content-type", reply.content_type.encode())],
            }
        )
        await send({"type": "http.response.body", "body": reply.body})

    async def _stream(self, stream: _Stream, receive: ASGIReceive, send: ASGISend) -> None:
        with self._lock:
            self._streams.append(stream)
        watcher = asyncio.create_task(self._watch_disconnect(stream, receive))
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"text/event-stream"),
                        (b"cache-control", b"private, no-store"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": b":)\n", "more_body": True})
            while True:
                try:
                    item = await asyncio.wait_for(stream.queue.get(), self.heartbeat_seconds)
                except TimeoutError:
                    item = b":thump\n"
                if item is _Signal.END:
                    await send({"type": "http.response.body", "body": b""})
                    return
                if item is _Signal.DROP:
                    raise _StreamDropped
                if item is _Signal.GONE:
                    return
                assert isinstance(item, bytes)
                await send({"type": "http.response.body", "body": item, "more_body": True})
        finally:
            watcher.cancel()
            with self._lock, contextlib.suppress(ValueError):
                self._streams.remove(stream)

    @staticmethod
    async def _watch_disconnect(stream: _Stream, receive: ASGIReceive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        stream.queue.put_nowait(_Signal.GONE)


@contextlib.contextmanager
def run_standin(
    *,
    port: int = 0,
    token: str = DEFAULT_TOKEN,
    operator_username: str = OPERATOR_USERNAME,
    heartbeat_seconds: float = 2.0,
    rate_limit_budget: int = 300,
    rate_limit_window: float = 300.0,
) -> Iterator[MastodonStandin]:
    """A stand-in listening on loopback for the duration of the block, on `port` or else a free one.

    The socket is bound here, before the server starts, so no other process can take the port between
    choosing it and listening on it (as can happen with `tests.api_helpers.free_port()`).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    standin = MastodonStandin(
        sock.getsockname()[1],
        token=token,
        operator_username=operator_username,
        heartbeat_seconds=heartbeat_seconds,
        rate_limit_budget=rate_limit_budget,
        rate_limit_window=rate_limit_window,
    )
    config = uvicorn.Config(
        standin,
        host="127.0.0.1",
        port=standin.port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=2,
    )
    quiet = _QuietDrops()
    logging.getLogger("uvicorn.error").addFilter(quiet)
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"mastodon-standin-{standin.port}", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 10
    try:
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the Mastodon stand-in could not start on port {standin.port}")
            time.sleep(0.005)
        yield standin
    finally:
        standin._close_streams(_Signal.END)
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        logging.getLogger("uvicorn.error").removeFilter(quiet)


@pytest.fixture(name="mastodon_standin_server", scope="session")
def mastodon_standin_server_fixture() -> Iterator[MastodonStandin]:
    """One stand-in for the whole run, heartbeats every 2 s."""
    with run_standin() as standin:
        yield standin


@pytest.fixture(name="mastodon_standin")
def mastodon_standin_fixture(mastodon_standin_server: MastodonStandin) -> MastodonStandin:
    """The run's stand-in, reset: the operator and the customer accounts, nothing else."""
    mastodon_standin_server.reset()
    return mastodon_standin_server


def seed_status(standin: MastodonStandin, line: Json, earlier: list[Json]) -> Json:
    """Adds one seed line's status: the keyword arguments of `add_status`, with `text` (or `content`).

    `account` is an acct (`user` or `user@domain`, created when unknown); `in_reply_to` and `reblog_of`
    may be the 0-based number of an earlier seed line instead of a status id.
    """
    arguments = dict(line)
    text = str(arguments.pop("text", arguments.pop("content", "")))
    for name in ("in_reply_to", "reblog_of"):
        target = arguments.pop(name, None)
        if isinstance(target, int) and 0 <= target < len(earlier):
            target = earlier[target]["id"]
        if target is not None:
            arguments["in_reply_to_id" if name == "in_reply_to" else name] = target
    status = standin.add_status(text, **arguments)
    earlier.append(status)
    return status


def load_seed(standin: MastodonStandin, path: Path) -> list[Json]:
    """Adds the statuses of a JSON Lines seed file (see `seed_status`), in order; they are returned."""
    seeded: list[Json] = []
    for text in path.read_text(encoding="utf-8").splitlines():
        if text.strip():
            seed_status(standin, json.loads(text), seeded)
    return seeded


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve a Mastodon stand-in until Ctrl-C.")
    parser.add_argument("--port", type=int, default=8900, help="0 for any free port")
    parser.add_argument("--seed", type=Path, help="a JSON Lines file, one status per line")
    parser.add_argument("--token", default=DEFAULT_TOKEN)
    parser.add_argument("--operator", default=OPERATOR_USERNAME)
    parser.add_argument("--heartbeat", type=float, default=15.0, help="seconds between :thump lines")
    parser.add_argument("--rate-limit-budget", type=int, default=300, help="requests per 5-minute window")
    args = parser.parse_args(argv)
    with run_standin(
        port=args.port,
        token=args.token,
        operator_username=args.operator,
        heartbeat_seconds=args.heartbeat,
        rate_limit_budget=args.rate_limit_budget,
    ) as standin:
        seeded = load_seed(standin, args.seed) if args.seed else []
        print(f"Mastodon stand-in: {standin.url}")
        print(f"access token: {standin.token}")
        print(f"operator: @{standin.operator['acct']}; {len(seeded)} seed statuses", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)


if __name__ == "__main__":
    main()
