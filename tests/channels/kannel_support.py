"""Shared by the Kannel tests: a Kannel channel account, and the requests Kannel makes to the hook."""

from __future__ import annotations

import base64
import re
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_from_bytes, unquote_to_bytes, urlsplit

import httpx

from tests.channels.helpers import ACCOUNTS
from tests.factories import Actor

INBOUND_TOKEN = "kannel-inbound-token-0123456789"
SENDSMS_USER = "allo"
SENDSMS_PASSWORD = "sendsms-password"
SHORT_CODE = "36000"


async def create_kannel_account(
    client: httpx.AsyncClient, admin: Actor, sendsms_url: str, **settings: Any
) -> dict[str, Any]:
    response = await client.post(
        ACCOUNTS,
        json={
            "channel": "sms",
            "provider": "kannel",
            "name": f"Kannel {SHORT_CODE}",
            "address": SHORT_CODE,
            "settings": {"sendsms_url": sendsms_url, "username": SENDSMS_USER, **settings},
            "secrets": {"password": SENDSMS_PASSWORD, "inbound_token": INBOUND_TOKEN},
        },
        headers=admin.bearer,
    )
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    return data


def hook_path(account: dict[str, Any]) -> str:
    return f"/api/v1/channels/hooks/{account['id']}"


def kannel_auth(token: str = INBOUND_TOKEN) -> dict[str, str]:
    """The header Kannel sends for a get-url whose user info is kannel:<token>."""
    return {"Authorization": "Basic " + base64.b64encode(f"kannel:{token}".encode()).decode()}


async def kannel_calls(
    client: httpx.AsyncClient, account: dict[str, Any], params: dict[str, str], *, token: str = INBOUND_TOKEN
) -> httpx.Response:
    """The GET Kannel's sms-service makes for a customer's message."""
    return await client.get(hook_path(account), params=params, headers=kannel_auth(token))


def mo_query(
    kannel_id: str,
    sender: str,
    text: str,
    *,
    charset: str = "UTF-8",
    coding: int = 0,
    at: int = 1_790_000_000,
) -> dict[str, str]:
    """The query Kannel's get-url sends for a customer's message (%e: the text's bytes in hexadecimal)."""
    return {
        "kind": "mo",
        "id": kannel_id,
        "from": sender,
        "to": SHORT_CODE,
        "text": text.encode(charset).hex().upper(),
        "charset": charset,
        "coding": str(coding),
        "at": str(at),
        "smsc": "fake",
        "udh": "",
    }


def filled_dlr_path(dlr_url: str, report_type: int, reply: str = "", at: int = 1_790_000_100) -> str:
    """The path and query Kannel calls for a delivery report, its escape codes filled in as Kannel does."""
    filled = (
        dlr_url.replace("%d", str(report_type)).replace("%A", quote(reply, safe="")).replace("%T", str(at))
    )
    parts = urlsplit(filled)
    return f"{parts.path}?{parts.query}"


# ---- A real Kannel: bearerbox, smsbox and fakesmsc as child processes -------------------------------

BEARERBOX = Path("/usr/sbin/bearerbox")
SMSBOX = Path("/usr/sbin/smsbox")
FAKESMSC = Path("/usr/lib/kannel/test/fakesmsc")
# fakesmsc reads stdin into a 256-byte buffer: a longer line would reach Kannel as several messages.
FAKESMSC_LINE_MAX = 255
_RECEIVED = re.compile(r"Got message \d+: <(.*)>$")
_FIRST_LINE = re.compile(r"^(\S+) (\S+) (text|data|ucs-2|udh) (.*)$", re.DOTALL)


def wait_for_port(
    port: int, *, timeout: float = 20.0, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Until something accepts connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"{process.args!r} exited with {process.returncode} (see its log)")
        with socket.socket() as probe:
            probe.settimeout(0.2)
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on port {port} after {timeout:g} s")


def stop_process(process: subprocess.Popen[bytes] | None) -> None:
    """End one child we started: SIGTERM (Kannel shuts down cleanly), SIGKILL if it lingers."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


@dataclass
class SmsOut:
    """An SMS as the network would deliver it to a phone, concatenated parts put back together."""

    sender: str
    receiver: str
    text: str
    coding: str = "gsm7"  # ucs2 when Kannel sent UTF-16
    parts: int = 1


@dataclass
class _Printed:
    """One line fakesmsc printed: a whole SMS, or one part of a concatenated one with its header."""

    sender: str
    receiver: str
    text: str = ""
    coding: str = "gsm7"
    udh: bytes = b""
    data: bytes = b""


def _read_line(line: str) -> _Printed | None:
    found = _FIRST_LINE.match(line)
    if found is None:
        return None
    sender, receiver, kind, rest = found.groups()
    if kind == "text":
        return _Printed(sender, receiver, rest)
    if kind == "ucs-2":
        return _Printed(sender, receiver, _url_decoded(rest).decode("utf-16-be"), coding="ucs2")
    if kind == "data":
        return _Printed(sender, receiver, data=_url_decoded(rest), coding="8bit")
    udh, _, data = rest.partition(" data ")
    return _Printed(sender, receiver, udh=_url_decoded(udh), data=_url_decoded(data))


def _url_decoded(value: str) -> bytes:
    """Kannel's URL encoding writes the byte 0x20 as "+" (and a "+" as %2B), even inside UTF-16."""
    return unquote_to_bytes(value.replace("+", " "))


def _joined(parts: list[_Printed]) -> SmsOut:
    """A concatenated SMS from its parts (header 05 00 03 reference total number). fakesmsc does not say
    the coding of parts: Kannel holds GSM-7 text as UTF-8, which never has a zero byte, and UCS-2 as
    UTF-16 big-endian, which has one in every Latin character."""
    ordered = sorted(parts, key=lambda p: p.udh[5])
    assert [p.udh[5] for p in ordered] == list(range(1, len(ordered) + 1))
    data = b"".join(p.data for p in ordered)
    if b"\x00" in data:
        assert all(len(p.data) % 2 == 0 for p in ordered), "a UCS-2 part cut inside a character"
        text, coding = data.decode("utf-16-be"), "ucs2"
    else:
        text, coding = data.decode("utf-8"), "gsm7"
    return SmsOut(ordered[0].sender, ordered[0].receiver, text, coding, parts=len(ordered))


class FakeSmscClient:
    """fakesmsc in interactive mode: each line written to it is a customer's SMS, and it prints every SMS
    Kannel sends to the network. Lines are fed one at a time, each once fakesmsc has sent the previous."""

    def __init__(self, port: int, log_path: Path) -> None:
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._log = log_path.open("a", encoding="utf-8")
        self.process = subprocess.Popen(
            [str(FAKESMSC), "-H", "127.0.0.1", "-r", str(port), "-i", "0.01"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self._reader = threading.Thread(target=self._read, name=f"fakesmsc-{port}", daemon=True)
        self._reader.start()
        self.sent = 0

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            self._log.write(line + "\n")
            self._log.flush()
            with self._lock:
                self._lines.append(line)

    def output(self) -> list[str]:
        with self._lock:
            return list(self._lines)

    def _send_line(self, line: str) -> None:
        encoded = (line + "\n").encode("utf-8")
        assert len(encoded) <= FAKESMSC_LINE_MAX, "fakesmsc would cut this line into several messages"
        assert self.process.stdin is not None
        self.process.stdin.write(encoded)
        self.process.stdin.flush()
        self.sent += 1
        marker = f"fakesmsc: sent message {self.sent}"
        deadline = time.monotonic() + 10
        while not any(marker in seen for seen in self.output()):
            assert time.monotonic() < deadline, f"fakesmsc did not send: {line!r}"
            assert self.process.poll() is None, "fakesmsc stopped"
            time.sleep(0.02)

    def customer_writes(self, sender: str, receiver: str, text: str) -> None:
        """An SMS from a phone, in GSM-7 (Kannel holds it as UTF-8)."""
        assert "\n" not in text
        self._send_line(f"{sender} {receiver} text {text}")

    def customer_writes_ucs2(self, sender: str, receiver: str, text: str) -> None:
        self._send_line(f"{sender} {receiver} ucs2 {quote_from_bytes(text.encode('utf-16-be'), safe='')}")

    def delivered(self) -> list[SmsOut]:
        """Every SMS Kannel handed to the network so far, a concatenated one once all its parts came.
        fakesmsc prints a text with line breaks as several lines: a line that does not start a message
        continues the one before."""
        printed: list[_Printed] = []
        for line in self.output():
            found = _RECEIVED.search(line)
            if found is None:
                continue
            piece = _read_line(found.group(1))
            if piece is not None:
                printed.append(piece)
            elif printed and not printed[-1].udh and printed[-1].coding == "gsm7":
                printed[-1].text += "\n" + found.group(1)
        messages: list[SmsOut] = []
        concatenated: dict[tuple[str, int], list[_Printed]] = {}
        for piece in printed:
            if not piece.udh:
                messages.append(SmsOut(piece.sender, piece.receiver, piece.text, piece.coding))
                continue
            assert piece.udh[:3] == b"\x05\x00\x03", piece.udh  # 8-bit reference concatenation
            group = concatenated.setdefault((piece.receiver, piece.udh[3]), [])
            group.append(piece)
            if len(group) == piece.udh[4]:
                messages.append(_joined(group))
        return messages

    def stop(self) -> None:
        stop_process(self.process)
        self._reader.join(timeout=5)
        self._log.close()


@dataclass
class KannelProcesses:
    """bearerbox and smsbox on one generated kannel.conf; started and stopped as a pair, as in production
    (smsbox stops when its bearerbox does)."""

    config_path: Path
    sendsms_port: int
    smsbox_port: int
    fake_smsc_port: int
    log_dir: Path
    bearerbox: subprocess.Popen[bytes] | None = None
    smsbox: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with (self.log_dir / "bearerbox.out").open("ab") as out:
            self.bearerbox = subprocess.Popen(
                [str(BEARERBOX), str(self.config_path)], stdout=out, stderr=subprocess.STDOUT
            )
        wait_for_port(self.smsbox_port, process=self.bearerbox)
        wait_for_port(self.fake_smsc_port, process=self.bearerbox)
        with (self.log_dir / "smsbox.out").open("ab") as out:
            self.smsbox = subprocess.Popen(
                [str(SMSBOX), str(self.config_path)], stdout=out, stderr=subprocess.STDOUT
            )
        wait_for_port(self.sendsms_port, process=self.smsbox)

    def stop(self) -> None:
        stop_process(self.smsbox)
        stop_process(self.bearerbox)
        self.smsbox = self.bearerbox = None
