"""A small IMAP4rev1 server for the tests (RFC 3501): one account, one folder, the commands a poller uses.

CAPABILITY, LOGIN, SELECT, UID SEARCH UNSEEN, UID FETCH (BODY.PEEK[] / BODY[] / RFC822), UID STORE
+FLAGS (\\Seen), NOOP, LOGOUT. As on a real server, fetching BODY[] or RFC822 sets \\Seen and BODY.PEEK[]
does not: a poller that marks mail seen before storing it shows in `seen`.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass, field


@dataclass
class Stored:
    uid: int
    raw: bytes
    seen: bool = False


_ARGUMENT = re.compile(r'"((?:[^"\\]|\\.)*)"|(\S+)')


def _arguments(text: str) -> list[str]:
    return [
        re.sub(r"\\(.)", r"\1", quoted) if quoted or atom == "" else atom
        for quoted, atom in _ARGUMENT.findall(text)
    ]


@dataclass
class ImapStandin:
    username: str
    password: str
    folder: str = "INBOX"
    mails: list[Stored] = field(default_factory=list)
    # Every command received, passwords masked: what the poller did.
    commands: list[str] = field(default_factory=list)
    _server: asyncio.Server | None = None
    _next_uid: int = 1

    def add(self, raw: bytes, *, seen: bool = False) -> int:
        uid = self._next_uid
        self._next_uid += 1
        self.mails.append(Stored(uid, raw, seen))
        return uid

    def seen(self, uid: int) -> bool:
        return next(m.seen for m in self.mails if m.uid == uid)

    @property
    def port(self) -> int:
        assert self._server is not None and self._server.sockets
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._session, "127.0.0.1", 0)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"* OK [CAPABILITY IMAP4rev1] IMAP stand-in ready\r\n")
        state = {"authenticated": False, "selected": False}
        try:
            while line := await reader.readline():
                text = line.decode("utf-8", "replace").rstrip("\r\n")
                tag, _, rest = text.partition(" ")
                command, _, arguments = rest.partition(" ")
                command = command.upper()
                logged = f"{command} {arguments.split()[0]} ****" if command == "LOGIN" else rest
                self.commands.append(logged)
                writer.write(self._answer(tag, command, arguments, state))
                await writer.drain()
                if command == "LOGOUT":
                    break
        except ConnectionError:
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    def _answer(self, tag: str, command: str, arguments: str, state: dict[str, bool]) -> bytes:
        if command == "CAPABILITY":
            return f"* CAPABILITY IMAP4rev1\r\n{tag} OK CAPABILITY completed\r\n".encode()
        if command == "NOOP":
            return f"{tag} OK NOOP completed\r\n".encode()
        if command == "LOGOUT":
            return f"* BYE logging out\r\n{tag} OK LOGOUT completed\r\n".encode()
        if command == "LOGIN":
            user, password = [*_arguments(arguments), "", ""][:2]
            if (user, password) != (self.username, self.password):
                return f"{tag} NO [AUTHENTICATIONFAILED] Invalid credentials\r\n".encode()
            state["authenticated"] = True
            return f"{tag} OK LOGIN completed\r\n".encode()
        if not state["authenticated"]:
            return f"{tag} BAD not authenticated\r\n".encode()
        if command == "SELECT":
            if _arguments(arguments)[:1] != [self.folder]:
                return f"{tag} NO [NONEXISTENT] no such mailbox\r\n".encode()
            state["selected"] = True
            return (
                f"* FLAGS (\\Seen)\r\n* {len(self.mails)} EXISTS\r\n* 0 RECENT\r\n"
                f"* OK [UIDVALIDITY 1] UIDs valid\r\n* OK [UIDNEXT {self._next_uid}] next\r\n"
                f"{tag} OK [READ-WRITE] SELECT completed\r\n"
            ).encode()
        if command == "UID" and state["selected"]:
            return self._uid(tag, arguments)
        return f"{tag} BAD command unknown or not allowed now\r\n".encode()

    def _uid(self, tag: str, arguments: str) -> bytes:
        subcommand, _, rest = arguments.partition(" ")
        subcommand = subcommand.upper()
        if subcommand == "SEARCH" and rest.upper() == "UNSEEN":
            found_uids = "".join(f" {m.uid}" for m in self.mails if not m.seen)
            return f"* SEARCH{found_uids}\r\n{tag} OK SEARCH completed\r\n".encode()
        uid_text, _, items = rest.partition(" ")
        found = [(n, m) for n, m in enumerate(self.mails, start=1) if str(m.uid) == uid_text]
        if subcommand == "FETCH":
            items = items.upper()
            answer = b""
            for number, mail in found:
                name = "RFC822" if "RFC822" in items else "BODY[]"
                answer += f"* {number} FETCH (UID {mail.uid} {name} {{{len(mail.raw)}}}\r\n".encode()
                answer += mail.raw + b")\r\n"
                if "PEEK" not in items:
                    mail.seen = True
            return answer + f"{tag} OK FETCH completed\r\n".encode()
        if subcommand == "STORE" and items.upper().replace(" ", "") == "+FLAGS(\\SEEN)":
            answer = b""
            for number, mail in found:
                mail.seen = True
                answer += f"* {number} FETCH (UID {mail.uid} FLAGS (\\Seen))\r\n".encode()
            return answer + f"{tag} OK STORE completed\r\n".encode()
        return f"{tag} BAD UID {subcommand} not supported here\r\n".encode()
