"""`allo mastodon poll --once` as a new user runs it: a freshly migrated database and the settings alone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from tests.api_helpers import free_port
from tests.mastodon_standin import (  # noqa: F401
    MastodonStandin,
    mastodon_standin_fixture,
    mastodon_standin_server_fixture,
)
from tests.social.helpers import MODEL_DIR

COMPLAINT = "Ça fait 3 mois que vous me facturez 40 € de hors forfait injustifiés, j'en ai marre #FreeMobile"
PRAISE = "Merci #Free, la fibre est enfin installée et elle marche super bien, technicien adorable !"


def allo(
    url: str, standin: MastodonStandin | None, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    mastodon = (
        {
            "ALLO_MASTODON_API_BASE_URL": standin.url,
            "ALLO_MASTODON_ACCESS_TOKEN": standin.token,
            "ALLO_MASTODON_HASHTAGS": "Free,FreeMobile",
        }
        if standin is not None
        else {}
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ALLO_MASTODON_")}
    return subprocess.run(
        [sys.executable, "-m", "allo", *args],
        env={
            **clean,
            "ALLO_DATABASE_URL": url,
            "ALLO_MODE": "dev",
            "ALLO_NLU_MODEL_PATH": str(MODEL_DIR / "model.npz"),
            "ALLO_SOCIAL_MODEL_PATH": str(MODEL_DIR / "social.npz"),
            "ALLO_PUBLIC_BASE_URL": "https://allo.example",
            "COLUMNS": "200",
            **mastodon,
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_poll_once_on_a_fresh_database_answers_complaints_and_exits(
    fresh_database_url: str, mastodon_standin: MastodonStandin
) -> None:
    assert allo(fresh_database_url, None, "db", "upgrade").returncode == 0
    mastodon_standin.add_status(COMPLAINT, account="lea@piaille.fr")
    mastodon_standin.add_status(PRAISE, account="marc@piaille.fr")

    first = allo(fresh_database_url, mastodon_standin, "mastodon", "poll", "--once")
    assert first.returncode == 0, first.stderr
    assert "2 new posts" in first.stderr and "1 complaints, 1 replies" in first.stderr
    assert "@lea@piaille.fr" in first.stdout and "praise" in first.stdout
    [reply] = mastodon_standin.posted
    assert (
        reply.text.startswith("@lea@piaille.fr Bonjour")
        and "https://allo.example/chat?tenant=" in reply.text
        and "&c=" in reply.text
    )

    again = allo(fresh_database_url, mastodon_standin, "mastodon", "poll", "--once", "--format", "json")
    assert again.returncode == 0 and "0 new posts" in again.stderr and again.stdout == ""
    mastodon_standin.add_status(
        "Plus de réseau depuis ce matin, ras le bol #FreeMobile", account="zoe@piaille.fr"
    )
    third = allo(fresh_database_url, mastodon_standin, "mastodon", "poll", "--once", "--format", "json")
    [line] = [json.loads(row) for row in third.stdout.splitlines()]
    assert line["author"] == "zoe@piaille.fr" and line["reply_state"] == "posted"
    assert len(mastodon_standin.posted) == 2

    status = allo(fresh_database_url, None, "mastodon", "status")
    assert status.returncode == 0 and "tag:freemobile" in status.stdout and "posted 2" in status.stdout


def test_clear_errors_when_not_configured_or_refused(
    fresh_database_url: str, mastodon_standin: MastodonStandin
) -> None:
    assert allo(fresh_database_url, None, "db", "upgrade").returncode == 0
    missing = allo(fresh_database_url, None, "mastodon", "poll", "--once")
    assert missing.returncode == 2 and "ALLO_MASTODON_API_BASE_URL" in missing.stderr
    refused = allo(
        fresh_database_url, mastodon_standin, "mastodon", "poll", "--once", ALLO_MASTODON_ACCESS_TOKEN="wrong"
    )
    assert refused.returncode == 1 and "access token is invalid" in refused.stderr
    assert "wrong" not in refused.stderr  # the token is never printed
    unknown = allo(
        fresh_database_url, mastodon_standin, "mastodon", "poll", "--once", ALLO_MASTODON_TENANT="nobody"
    )
    assert unknown.returncode == 1 and "nobody" in unknown.stderr
    bad_url = allo(
        fresh_database_url, None, "mastodon", "poll", "--once", ALLO_MASTODON_API_BASE_URL="mastodon.social"
    )
    assert bad_url.returncode == 2 and "http" in bad_url.stderr


def test_allo_serve_listens_and_its_worker_posts_the_replies(
    fresh_database_url: str, mastodon_standin: MastodonStandin
) -> None:
    assert allo(fresh_database_url, None, "db", "upgrade").returncode == 0
    mastodon_standin.add_status(COMPLAINT, account="lea@piaille.fr")
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ALLO_MASTODON_")},
        "ALLO_DATABASE_URL": fresh_database_url,
        "ALLO_MODE": "dev",
        "ALLO_NLU_MODEL_PATH": str(MODEL_DIR / "model.npz"),
        "ALLO_SOCIAL_MODEL_PATH": str(MODEL_DIR / "social.npz"),
        "ALLO_MASTODON_API_BASE_URL": mastodon_standin.url,
        "ALLO_MASTODON_ACCESS_TOKEN": mastodon_standin.token,
        "ALLO_MASTODON_HASHTAGS": "FreeMobile",
        "ALLO_JOB_POLL_SECONDS": "0.2",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "allo", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not mastodon_standin.posted:
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            assert time.monotonic() < deadline, "no reply posted by allo serve"
            time.sleep(0.2)
        mastodon_standin.wait_for_streams(2, 20.0)  # and it streams: #FreeMobile and the mentions
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        finally:
            if server.poll() is None:
                server.kill()
    [reply] = mastodon_standin.posted
    assert reply.text.startswith("@lea@piaille.fr")
