"""The Mastodon stand-in, driven by the real Mastodon.py client: it must behave as a Mastodon 4.x server."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from mastodon import (
    Mastodon,
    MastodonAPIError,
    MastodonBadGatewayError,
    MastodonInternalServerError,
    MastodonNetworkError,
    MastodonNotFoundError,
    MastodonRatelimitError,
    MastodonServerError,
    MastodonServiceUnavailableError,
    MastodonUnauthorizedError,
    StreamListener,
)
from mastodon.return_types import Notification, Status

from tests.mastodon_standin import (
    DEFAULT_TOKEN,
    MastodonStandin,
    count_characters,
    load_seed,
    mastodon_standin_fixture,  # noqa: F401 - the `mastodon_standin` fixture
    mastodon_standin_server_fixture,  # noqa: F401
    run_standin,
    snowflake_time,
)

START = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)


def client(standin: MastodonStandin, token: str | None = None) -> Mastodon:
    return Mastodon(
        api_base_url=standin.url,
        access_token=token or standin.token,
        ratelimit_method="throw",
        version_check_mode="none",
        request_timeout=5,
    )


@pytest.fixture
def api(mastodon_standin: MastodonStandin) -> Mastodon:
    return client(mastodon_standin)


def ids(page: list[Any] | None) -> list[int]:
    return [int(item["id"]) for item in page or []]


def raw_get(standin: MastodonStandin, path: str) -> tuple[int, dict[str, str], bytes]:
    """A plain GET with the stand-in's token, for what Mastodon.py does not show (the Link header)."""
    url = standin.url + path
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {standin.token}"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - http on loopback
            return response.status, dict(response.headers.items()), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers.items()), error.read()


class Collector(StreamListener):
    """Keeps every event; `wait` blocks until a condition on them holds."""

    def __init__(self) -> None:
        self.updates: list[Status] = []
        self.notifications: list[Notification] = []
        self.deletes: list[int] = []
        self.aborts: list[Exception] = []
        self.heartbeats = 0
        self._changed = threading.Condition()

    def _note(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def on_update(self, status: Status) -> None:
        self.updates.append(status)
        self._note()

    def on_notification(self, notification: Notification) -> None:
        self.notifications.append(notification)
        self._note()

    def on_delete(self, status_id: Any) -> None:
        self.deletes.append(int(status_id))
        self._note()

    def on_abort(self, err: Exception) -> None:
        self.aborts.append(err)
        self._note()

    def handle_heartbeat(self) -> None:
        self.heartbeats += 1
        self._note()

    def wait(self, condition: Callable[[], bool], timeout: float = 3.0) -> None:
        with self._changed:
            assert self._changed.wait_for(condition, timeout), "the stream did not deliver in time"


class Blocking:
    """A blocking Mastodon.py stream call, run in a thread; what it ended with."""

    def __init__(self, call: Callable[[], object]) -> None:
        self.error: BaseException | None = None
        self.returned = False
        self._thread = threading.Thread(target=self._run, args=(call,), daemon=True)
        self._thread.start()

    def _run(self, call: Callable[[], object]) -> None:
        try:
            call()
            self.returned = True
        except BaseException as error:
            self.error = error

    def join(self, timeout: float = 3.0) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the stream call did not end"


@pytest.fixture
def fast_heartbeats(mastodon_standin: MastodonStandin) -> MastodonStandin:
    mastodon_standin.heartbeat_seconds = 0.05
    return mastodon_standin


def seed_timeline(standin: MastodonStandin, count: int) -> list[dict[str, Any]]:
    """`count` public #free statuses a minute apart, oldest first, among statuses that must not show."""
    statuses = []
    for n in range(count):
        when = START + timedelta(minutes=n)
        statuses.append(standin.add_status(f"Panne {n}", hashtags=["Free"], created_at=when))
        standin.add_status(f"Autre {n}", hashtags=["orange"], created_at=when + timedelta(seconds=1))
    standin.add_status("Non listé", hashtags=["free"], visibility="unlisted", created_at=START)
    standin.add_status("", reblog_of=statuses[0], account="relais@piaille.fr", created_at=START)
    return statuses


# -- instance, credentials -------------------------------------------------------------------------


def test_instance_answers_as_mastodon_4(mastodon_standin: MastodonStandin, api: Mastodon) -> None:
    v1 = api.instance_v1()
    assert v1.version == "4.3.0"
    assert v1.urls.streaming_api == mastodon_standin.streaming_url
    assert v1.configuration.statuses.max_characters == 500
    v2 = api.instance_v2()
    assert v2.configuration.urls.streaming == mastodon_standin.streaming_url
    assert v2.configuration.statuses.max_characters == 500
    assert api.timeline_is_available("hashtag", fail_hard=True)
    assert api.timeline_is_available("public", local=True, remote=True, with_auth=True, fail_hard=True)
    assert api.stream_healthy()


def test_verify_credentials_gives_the_operator(mastodon_standin: MastodonStandin, api: Mastodon) -> None:
    me = api.account_verify_credentials()
    assert me.username == me.acct == "sav_operateur"
    assert me.id == mastodon_standin.operator["id"]  # ids are str subclasses: equal to "123", not to 123
    assert me.bot is False
    assert me.url == f"{mastodon_standin.url}/@sav_operateur"
    assert isinstance(me.created_at, datetime)


def test_a_wrong_token_is_refused(mastodon_standin: MastodonStandin) -> None:
    with pytest.raises(MastodonUnauthorizedError) as caught:
        client(mastodon_standin, token="not-the-token").account_verify_credentials()
    assert "The access token is invalid" in str(caught.value)
    mastodon_standin.set_token("rotated")
    with pytest.raises(MastodonUnauthorizedError):
        client(mastodon_standin, token=DEFAULT_TOKEN).account_verify_credentials()
    assert client(mastodon_standin, token="rotated").account_verify_credentials().acct == "sav_operateur"


def test_accounts_have_the_common_fields(mastodon_standin: MastodonStandin, api: Mastodon) -> None:
    bot = mastodon_standin.add_account("robot", "bots.example", bot=True, display_name="Robot")
    assert bot["acct"] == "robot@bots.example"
    found = api.account_lookup("robot@bots.example")
    assert found.bot is True
    assert found.display_name == "Robot"
    assert found.url == "https://bots.example/@robot"
    for name in ("followers_count", "following_count", "statuses_count", "note", "avatar", "locked"):
        assert name in found
    assert api.account(bot["id"]).acct == "robot@bots.example"


# -- statuses and the hashtag timeline -------------------------------------------------------------


def test_status_content_carries_mastodon_markup(mastodon_standin: MastodonStandin, api: Mastodon) -> None:
    mastodon_standin.add_account("sav", "x.example")
    status = mastodon_standin.add_status(
        "Encore une panne @sav@x.example https://status.example/incident/42", hashtags=["Free"]
    )
    assert status["content"] == (
        '<p>Encore une panne <span class="h-card" translate="no"><a href="https://x.example/@sav" '
        'class="u-url mention">@<span>sav</span></a></span> <a href="https://status.example/incident/42" '
        'target="_blank" rel="nofollow noopener" translate="no"><span class="invisible">https://</span>'
        '<span class="">status.example/incident/42</span><span class="invisible"></span></a> '
        f'<a href="{mastodon_standin.url}/tags/free" class="mention hashtag" rel="tag">'
        "#<span>Free</span></a></p>"
    )
    fetched = api.status(status["id"])
    assert [m.acct for m in fetched.mentions] == ["sav@x.example"]
    assert [t.name for t in fetched.tags] == ["free"]
    assert fetched.account.acct == "camille@piaille.fr"
    assert fetched.visibility == "public"
    assert fetched.language == "fr"
    assert fetched.reblog is None
    assert fetched.media_attachments == []
    created = snowflake_time(status["id"])
    assert abs((created - fetched.created_at).total_seconds()) < 0.01
    assert status["created_at"].endswith("Z")


def test_html_is_kept_and_reblogs_are_empty(mastodon_standin: MastodonStandin, api: Mastodon) -> None:
    original = mastodon_standin.add_status("<p>Coupure fibre</p>", hashtags=["orange"])
    assert original["content"].startswith("<p>Coupure fibre <a href=")
    assert original["tags"] == [{"name": "orange", "url": f"{mastodon_standin.url}/tags/orange"}]
    reblog = mastodon_standin.add_status("", reblog_of=original, account="relais@piaille.fr")
    fetched = api.status(reblog["id"])
    assert fetched.content == ""
    assert fetched.reblog.id == original["id"]
    assert api.status(original["id"]).reblogs_count == 1


def test_unknown_status_is_not_found(api: Mastodon) -> None:
    with pytest.raises(MastodonNotFoundError) as caught:
        api.status(123456789)
    assert "Record not found" in str(caught.value)


def test_hashtag_timeline_pages_as_mastodon(mastodon_standin: MastodonStandin, api: Mastodon) -> None:
    statuses = seed_timeline(mastodon_standin, 7)
    all_ids = ids(statuses)[::-1]  # newest first
    first = api.timeline_hashtag("FREE", limit=3)  # the tag is matched whatever its case
    assert ids(first) == all_ids[:3]
    second = api.fetch_next(first)
    assert ids(second) == all_ids[3:6]
    third = api.fetch_next(second)
    assert ids(third) == all_ids[6:]
    assert api.fetch_next(third) == []
    assert ids(api.fetch_previous(third)) == all_ids[3:6]
    assert ids(api.fetch_previous(first)) == []

    assert ids(api.timeline_hashtag("free", max_id=all_ids[2])) == all_ids[3:]
    # since_id: the newest of those after it; min_id: the oldest right after it, still newest first
    assert ids(api.timeline_hashtag("free", since_id=all_ids[6], limit=2)) == all_ids[:2]
    assert ids(api.timeline_hashtag("free", min_id=all_ids[6], limit=2)) == all_ids[4:6]
    assert ids(api.timeline_hashtag("free", min_id=START - timedelta(hours=1), limit=1)) == all_ids[6:]
    assert len(api.timeline_hashtag("free", limit=100)) == 7  # 7 public #free statuses; max 40
    assert api.timeline_hashtag("nothing") == []


def test_timeline_link_header_is_mastodons(mastodon_standin: MastodonStandin) -> None:
    statuses = seed_timeline(mastodon_standin, 3)
    code, headers, body = raw_get(mastodon_standin, "/api/v1/timelines/tag/free?limit=2")
    assert code == 200
    assert [s["id"] for s in json.loads(body)] == [statuses[2]["id"], statuses[1]["id"]]
    base = f"{mastodon_standin.url}/api/v1/timelines/tag/free"
    assert headers["link"] == (
        f'<{base}?limit=2&max_id={statuses[1]["id"]}>; rel="next", '
        f'<{base}?limit=2&min_id={statuses[2]["id"]}>; rel="prev"'
    )
    assert "x-ratelimit-remaining" in headers
    code, headers, body = raw_get(mastodon_standin, f"/api/v1/timelines/tag/free?min_id={statuses[2]['id']}")
    assert (code, json.loads(body)) == (200, [])
    assert "link" not in headers


# -- notifications ---------------------------------------------------------------------------------


def test_notifications_filter_by_type_and_page(mastodon_standin: MastodonStandin, api: Mastodon) -> None:
    mine = api.status_post("Bonjour, le SAV est ouvert.")
    mentions = [
        mastodon_standin.add_mention(f"Aidez-moi {n}", created_at=START + timedelta(minutes=n))
        for n in range(3)
    ]
    mastodon_standin.add_notification("favourite", status=mine)
    mastodon_standin.add_notification("follow", account="nouveau@piaille.fr")
    direct = mastodon_standin.add_status("@sav_operateur mon code PUK ?", visibility="direct")

    everything = api.notifications()
    assert [n.type for n in everything] == ["mention", "follow", "favourite", "mention", "mention", "mention"]
    assert everything[0].status.id == direct["id"]
    assert everything[1].get("status") is None
    assert everything[2].status.id == mine.id

    only_mentions = api.notifications(types=["mention"], limit=2)
    assert [n.status.id for n in only_mentions] == [direct["id"], mentions[2]["id"]]
    assert [n.type for n in api.fetch_next(only_mentions) or []] == ["mention", "mention"]
    assert [n.type for n in api.notifications(exclude_types=["mention", "favourite"])] == ["follow"]
    newer = api.notifications(since_id=everything[1].id)
    assert [n.id for n in newer] == [everything[0].id]
    assert api.notifications(mentions_only=True)[0].account.acct == "camille@piaille.fr"


def test_notifications_need_the_token(mastodon_standin: MastodonStandin) -> None:
    with pytest.raises(MastodonUnauthorizedError):
        Mastodon(api_base_url=mastodon_standin.url, version_check_mode="none").notifications()


# -- posting ---------------------------------------------------------------------------------------


def test_posting_a_reply(mastodon_standin: MastodonStandin, api: Mastodon) -> None:
    question = mastodon_standin.add_status("Plus de réseau ?", hashtags=["free"])
    reply = api.status_post(
        "@camille@piaille.fr Nous regardons. #free",
        in_reply_to_id=question["id"],
        visibility="public",
        language="fr",
        idempotency_key="reply-1",
    )
    assert reply.in_reply_to_id == question["id"]
    assert reply.in_reply_to_account_id == mastodon_standin.customer["id"]
    assert reply.account.acct == "sav_operateur"
    assert [m.acct for m in reply.mentions] == ["camille@piaille.fr"]
    assert reply.application.name == "Allo"
    [posted] = mastodon_standin.posted
    assert (posted.id, posted.idempotency_key, posted.visibility) == (str(reply.id), "reply-1", "public")
    assert posted.text == "@camille@piaille.fr Nous regardons. #free"
    assert posted.in_reply_to_id == question["id"]
    assert api.status(question["id"]).replies_count == 1
    # our own reply shows in the timeline we watch, as on a real server
    assert ids(api.timeline_hashtag("free")) == [int(reply.id), int(question["id"])]
    [request] = mastodon_standin.requests_to("/api/v1/statuses", "POST")
    assert request.body["status"] == posted.text
    assert request.body["in_reply_to_id"] == question["id"]
    assert request.idempotency_key == "reply-1"


def test_an_idempotency_key_posts_once(mastodon_standin: MastodonStandin, api: Mastodon) -> None:
    first = api.status_post("Bonjour", idempotency_key="same")
    again = api.status_post("Bonjour", idempotency_key="same")
    other = api.status_post("Bonjour", idempotency_key="other")
    assert first.id == again.id != other.id
    assert [p.idempotency_key for p in mastodon_standin.posted] == ["same", "other"]
    assert len(mastodon_standin.requests_to("/api/v1/statuses", "POST")) == 3


def test_the_500_character_limit(mastodon_standin: MastodonStandin, api: Mastodon) -> None:
    assert api.status_post("a" * 500).content == f"<p>{'a' * 500}</p>"
    long_url = "https://www.example.org/" + "x" * 600
    assert count_characters(f"{'b' * 470} {long_url}") == 494
    api.status_post(f"{'b' * 470} {long_url}")  # a URL counts 23
    with pytest.raises(MastodonAPIError) as caught:
        api.status_post("a" * 501)
    assert caught.value.args[1] == 422
    assert caught.value.args[3] == "Validation failed: Text character limit of 500 exceeded"
    assert len(mastodon_standin.posted) == 2


def test_replying_to_an_unknown_status_is_not_found(mastodon_standin: MastodonStandin, api: Mastodon) -> None:
    with pytest.raises(MastodonNotFoundError):
        api.status_post("Réponse", in_reply_to_id=42)
    assert mastodon_standin.posted == []


# -- streaming -------------------------------------------------------------------------------------


def test_hashtag_stream_delivers_updates_between_heartbeats(fast_heartbeats: MastodonStandin) -> None:
    standin = fast_heartbeats
    listener = Collector()
    stream = Blocking(lambda: client(standin).stream_hashtag("Free", listener, timeout=5))
    standin.wait_for_streams(1)
    listener.wait(lambda: listener.heartbeats >= 3)  # ":)" then ":thump" lines: comments, not events
    standin.add_status("Ailleurs", hashtags=["orange"])
    standin.add_status("Non listé", hashtags=["free"], visibility="unlisted")
    pushed = standin.add_status("Toujours en panne", hashtags=["free"])
    listener.wait(lambda: len(listener.updates) == 1)
    assert listener.updates[0].id == pushed["id"]
    assert listener.updates[0].content == pushed["content"]
    assert listener.updates[0].account.acct == "camille@piaille.fr"
    standin.delete_status(pushed)
    listener.wait(lambda: listener.deletes == [int(pushed["id"])])
    assert standin.drop_streams() == 1
    stream.join()
    assert isinstance(stream.error, MastodonNetworkError)
    assert str(stream.error) == "Server ceased communication."
    assert listener.aborts == [stream.error]


def test_user_stream_delivers_notifications(mastodon_standin: MastodonStandin) -> None:
    api = client(mastodon_standin)
    listener = Collector()
    stream = Blocking(lambda: api.stream_user(listener, timeout=5))
    notifications = Collector()
    only = Blocking(lambda: api.stream_user_notifications(notifications, timeout=5))
    mastodon_standin.wait_for_streams(2)
    mention = mastodon_standin.add_mention("Mon modem clignote")
    listener.wait(lambda: len(listener.notifications) == 1)
    notifications.wait(lambda: len(notifications.notifications) == 1)
    assert listener.notifications[0].type == "mention"
    assert listener.notifications[0]["status"]["id"] == mention["id"]
    assert notifications.notifications[0].account.acct == "camille@piaille.fr"
    posted = api.status_post("Une réponse du SAV")  # our own statuses are in the home feed
    listener.wait(lambda: [u.id for u in listener.updates] == [posted.id])
    mastodon_standin.drop_streams()
    stream.join()
    only.join()
    assert isinstance(stream.error, MastodonNetworkError)
    assert isinstance(only.error, MastodonNetworkError)


def test_a_clean_end_of_stream_returns_quietly(mastodon_standin: MastodonStandin) -> None:
    """Mastodon.py's blocking stream calls just return when the server ends the response properly."""
    stream = Blocking(lambda: client(mastodon_standin).stream_hashtag("free", Collector(), timeout=5))
    mastodon_standin.wait_for_streams(1)
    mastodon_standin.reset()
    stream.join()
    assert (stream.returned, stream.error) == (True, None)


def test_an_async_handle_reconnects_after_a_drop(fast_heartbeats: MastodonStandin) -> None:
    standin = fast_heartbeats
    listener = Collector()
    handle = client(standin).stream_hashtag(
        "free", listener, run_async=True, reconnect_async=True, reconnect_async_wait_sec=0.5, timeout=5
    )
    try:
        standin.wait_for_streams(1)
        standin.drop_streams()
        listener.wait(lambda: len(listener.aborts) == 1)
        assert isinstance(listener.aborts[0], MastodonNetworkError)
        standin.wait_for_streams(1)  # it came back at once
        status = standin.add_status("Après la coupure", hashtags=["free"])
        listener.wait(lambda: [u.id for u in listener.updates] == [status["id"]])
        assert len(standin.requests_to("/api/v1/streaming/hashtag")) == 2
    finally:
        handle.close()
        handle.join(3)
    assert not handle.is_alive()
    standin.wait_for_streams(0)


def test_refused_streaming_raises_a_network_error(mastodon_standin: MastodonStandin) -> None:
    api = client(mastodon_standin)
    mastodon_standin.refuse_streaming(503)
    with pytest.raises(MastodonNetworkError, match="Could not connect to streaming server"):
        api.stream_hashtag("free", Collector(), timeout=5)
    with pytest.raises(MastodonServiceUnavailableError):
        api.stream_healthy()
    assert api.timeline_hashtag("free") == []  # the REST API still answers: the polling fallback
    mastodon_standin.allow_streaming()
    assert api.stream_healthy()
    assert mastodon_standin.open_streams == 0


def test_streams_check_the_token(mastodon_standin: MastodonStandin) -> None:
    with pytest.raises(MastodonNetworkError):
        client(mastodon_standin, token="wrong").stream_user(Collector(), timeout=5)
    code, _, body = raw_get(mastodon_standin, "/api/v1/streaming/hashtag")
    assert (code, json.loads(body)) == (400, {"error": "Missing tag name parameter"})


# -- rate limits and faults ------------------------------------------------------------------------


def test_every_answer_carries_the_rate_limit(mastodon_standin: MastodonStandin, api: Mastodon) -> None:
    api.account_verify_credentials()
    assert api.ratelimit_limit == 300
    assert api.ratelimit_remaining == 299
    api.timeline_hashtag("free")  # the first timeline call of a client fetches /api/v2/instance first
    assert api.ratelimit_remaining == 297
    assert [r.path for r in mastodon_standin.requests][-2:] == [
        "/api/v2/instance/",
        "/api/v1/timelines/tag/free",
    ]
    _, headers, _ = raw_get(mastodon_standin, "/api/v1/instance")
    reset = datetime.fromisoformat(headers["x-ratelimit-reset"].replace("Z", "+00:00"))
    assert 290 < (reset - datetime.now(UTC)).total_seconds() <= 300


def test_a_spent_budget_raises_until_the_reset(mastodon_standin: MastodonStandin, api: Mastodon) -> None:
    mastodon_standin.rate_limit(remaining=0, reset_in=0.6)
    with pytest.raises(MastodonRatelimitError):
        api.account_verify_credentials()
    assert api.ratelimit_remaining == 0
    assert api.ratelimit_reset is not None
    assert time.time() < api.ratelimit_reset < time.time() + 3  # the server's reset, corrected by its Date
    code, headers, body = raw_get(mastodon_standin, "/api/v1/timelines/tag/free")
    assert (code, json.loads(body), headers["x-ratelimit-remaining"]) == (
        429,
        {"error": "Too many requests"},
        "0",
    )
    time.sleep(0.7)
    assert api.account_verify_credentials().acct == "sav_operateur"
    assert api.ratelimit_remaining == 299


def test_injected_server_errors(mastodon_standin: MastodonStandin, api: Mastodon) -> None:
    mastodon_standin.fail_next(1, 503)
    with pytest.raises(MastodonServiceUnavailableError) as caught:
        api.account_verify_credentials()
    assert isinstance(caught.value, MastodonServerError)
    assert caught.value.args[1:] == (503, "Service Unavailable", "Service Unavailable")
    assert api.account_verify_credentials().acct == "sav_operateur"
    mastodon_standin.fail_next(2, 500)
    mastodon_standin.fail_next(1, 502)
    for error in (MastodonInternalServerError, MastodonInternalServerError, MastodonBadGatewayError):
        with pytest.raises(error):
            api.status_post("Bonjour")
    assert mastodon_standin.posted == []
    assert api.status_post("Bonjour").content == "<p>Bonjour</p>"


def test_a_first_timeline_call_swallows_a_failed_instance_fetch(
    mastodon_standin: MastodonStandin, api: Mastodon
) -> None:
    """Mastodon.py gets /api/v2/instance before a timeline, ignores its failure, and caches only a success."""
    mastodon_standin.add_status("Panne", hashtags=["free"])
    for _ in range(2):
        mastodon_standin.fail_next(1, 503)  # spent on the instance fetch, each time
        assert len(api.timeline_hashtag("free")) == 1
    assert len(api.timeline_hashtag("free")) == 1  # the instance is fetched, and cached, at last
    mastodon_standin.fail_next(1, 503)
    with pytest.raises(MastodonServiceUnavailableError):
        api.timeline_hashtag("free")
    instance, timeline = "/api/v2/instance/", "/api/v1/timelines/tag/free"
    assert [r.path for r in mastodon_standin.requests] == [instance, timeline] * 3 + [timeline]


# -- the test API itself ---------------------------------------------------------------------------


async def test_usable_from_the_event_loop_through_threads(mastodon_standin: MastodonStandin) -> None:
    api = client(mastodon_standin)
    mastodon_standin.add_status("Panne", hashtags=["free"])
    page, me = await asyncio.gather(
        asyncio.to_thread(api.timeline_hashtag, "free"), asyncio.to_thread(api.account_verify_credentials)
    )
    assert len(page) == 1
    assert me.acct == "sav_operateur"


def test_reset_goes_back_to_the_first_state(mastodon_standin: MastodonStandin, api: Mastodon) -> None:
    operator = mastodon_standin.operator
    mastodon_standin.add_mention("Bonjour")
    mastodon_standin.add_account("autre")
    api.status_post("Bonjour", idempotency_key="k")
    mastodon_standin.fail_next(3)
    mastodon_standin.refuse_streaming()
    mastodon_standin.set_token("other")
    mastodon_standin.reset()
    assert mastodon_standin.operator == operator  # the same ids every time
    assert (mastodon_standin.statuses, mastodon_standin.notifications) == ([], [])
    assert (mastodon_standin.requests, mastodon_standin.posted) == ([], [])
    assert client(mastodon_standin).account_verify_credentials().id == operator["id"]
    assert client(mastodon_standin).status_post("Bonjour", idempotency_key="k").content == "<p>Bonjour</p>"
    assert len(mastodon_standin.posted) == 1


SEED = [
    {
        "text": "Panne fibre",
        "account": "lea@piaille.fr",
        "hashtags": ["free"],
        "created_at": "2025-03-14T09:00:00Z",
    },
    {"text": "Toujours rien", "account": "lea@piaille.fr", "in_reply_to": 0, "mention_operator": True},
    {"text": "", "account": "relais@piaille.fr", "reblog_of": 0},
]


def test_seed_lines(mastodon_standin: MastodonStandin, tmp_path: Path) -> None:
    path = tmp_path / "seed.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in SEED) + "\n\n", encoding="utf-8")
    seeded = load_seed(mastodon_standin, path)
    assert seeded[0]["created_at"] == "2025-03-14T09:00:00.000Z"
    assert seeded[1]["in_reply_to_id"] == seeded[0]["id"]
    assert seeded[1]["content"].startswith('<p><span class="h-card" translate="no">')
    assert seeded[2]["reblog"]["id"] == seeded[0]["id"]
    assert [n["type"] for n in mastodon_standin.notifications] == ["mention"]


def test_the_command_line_serves_a_seed(tmp_path: Path) -> None:
    path = tmp_path / "seed.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in SEED), encoding="utf-8")
    command = [sys.executable, "-m", "tests.mastodon_standin", "--port", "0", "--seed", str(path)]
    root = Path(__file__).resolve().parent.parent
    with subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            url = process.stdout.readline().split(": ", 1)[1].strip()
            token = process.stdout.readline().split(": ", 1)[1].strip()
            assert "3 seed statuses" in process.stdout.readline()
            api = Mastodon(api_base_url=url, access_token=token, version_check_mode="none", request_timeout=5)
            assert api.timeline_hashtag("free")[0].content.startswith("<p>Panne fibre")
        finally:
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=5) == 0


def test_a_server_of_its_own() -> None:
    started = time.monotonic()
    with run_standin(operator_username="support", token="t0k3n", rate_limit_budget=5) as standin:
        assert time.monotonic() - started < 0.3  # typically 5 ms; stopping takes 0.2 s
        api = client(standin)
        assert api.account_verify_credentials().acct == "support"
        assert api.ratelimit_limit == 5
