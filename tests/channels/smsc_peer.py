"""A small SMSC for the SMPP tests: real SMPP 3.4 PDUs over TCP on a free loopback port.

It binds transmitters, receivers and transceivers (with a password check), answers submit_sm with a
message id or with the statuses a test queues (throttling, a refused number), sends a delivery receipt to
a bound receiver for each accepted message that asked for one, and sends customers' messages (deliver_sm,
long ones as concatenated parts) when a test asks, waiting for Allo's deliver_sm_resp. PDUs are built and
read with smpplib's classes, the same code as the client's, but the server side is this file's own.
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import smpplib.client  # type: ignore[import-untyped]
import smpplib.consts  # type: ignore[import-untyped]
import smpplib.smpp  # type: ignore[import-untyped]

from allo.channels import sms

OK = int(smpplib.consts.SMPP_ESME_ROK)
THROTTLED = int(smpplib.consts.SMPP_ESME_RTHROTTLED)
INVALID_DESTINATION = int(smpplib.consts.SMPP_ESME_RINVDSTADR)
INVALID_PASSWORD = int(smpplib.consts.SMPP_ESME_RINVPASWD)
RX_T_APPN = int(smpplib.consts.SMPP_ESME_RX_T_APPN)


@dataclass(frozen=True)
class Submitted:
    """A submit_sm the SMSC accepted."""

    message_id: str
    source_addr: str
    source_addr_ton: int
    destination_addr: str
    dest_addr_ton: int
    esm_class: int
    data_coding: int
    registered_delivery: int
    short_message: bytes

    @property
    def header(self) -> bytes:
        return self.short_message[: self.short_message[0] + 1] if self.esm_class & 0x40 else b""

    @property
    def text(self) -> str:
        payload = self.short_message[len(self.header) :]
        return sms.decode_gsm7(payload) if self.data_coding == 0 else payload.decode("utf-16-be")


def _text(value: Any) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else str(value or "")


@dataclass
class _Session:
    connection: socket.socket
    mode: str | None = None  # transmitter, receiver, transceiver once bound
    write_lock: threading.Lock = field(default_factory=threading.Lock)
    closed: bool = False

    @property
    def receives(self) -> bool:
        return not self.closed and self.mode in ("receiver", "transceiver")

    def send(self, pdu: Any) -> None:
        with self.write_lock:
            self.connection.sendall(pdu.generate())


class SmscPeer:
    def __init__(self, system_id: str = "allo", password: str = "secret1") -> None:  # noqa: S107 - a test peer
        self.system_id, self.password = system_id, password
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._sequence = smpplib.client.SimpleSequenceGenerator()
        self._ids = itertools.count(0x1A2B3C00)
        self._lock = threading.Lock()
        self._answered = threading.Condition(self._lock)
        self.sessions: list[_Session] = []
        self.binds: list[str] = []  # every successful bind's mode, in order
        self.submitted: list[Submitted] = []
        self.submit_attempts = 0
        # Statuses answered to the next submit_sm, first to last, before accepting again.
        self.submit_answers: list[int] = []
        self._pending_receipts: list[Submitted] = []
        self._responses: dict[int, int] = {}  # deliver_sm sequence → Allo's status
        self._running = True
        threading.Thread(target=self._accept, name=f"smsc-{self.port}", daemon=True).start()

    # ---- what a test does -------------------------------------------------------------------------

    def receivers(self) -> int:
        with self._lock:
            return sum(1 for s in self.sessions if s.receives)

    def wait_for_receiver(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self.receivers() == 0:
            assert time.monotonic() < deadline, "nobody bound as a receiver"
            time.sleep(0.02)

    def customer_writes(
        self, sender: str, text: str, *, to: str = "36000", timeout: float = 10.0
    ) -> list[int]:
        """A customer's SMS, as one deliver_sm or as concatenated parts; Allo's answer to each part."""
        shape = sms.layout(text)
        coding = 0x00 if shape.coding is sms.Coding.gsm7 else 0x08
        parts = sms.split(text)
        reference = next(self._ids) & 0xFF
        statuses = []
        for number, part in enumerate(parts, start=1):
            payload = sms.encode(part, shape.coding)
            esm_class = 0
            if len(parts) > 1:
                payload = bytes((5, 0, 3, reference, len(parts), number)) + payload
                esm_class = 0x40
            pdu = self._pdu(
                "deliver_sm",
                source_addr_ton=1,
                source_addr_npi=1,
                source_addr=sender.removeprefix("+"),
                dest_addr_ton=0,
                dest_addr_npi=1,
                destination_addr=to,
                esm_class=esm_class,
                data_coding=coding,
                short_message=payload,
            )
            statuses.append(self._deliver_and_wait(pdu, timeout))
        return statuses

    def drop_connections(self) -> None:
        """The SMSC restarts: every session is cut without an unbind."""
        with self._lock:
            sessions, self.sessions = list(self.sessions), []
        for session in sessions:
            session.closed = True
            with contextlib.suppress(OSError):
                session.connection.shutdown(socket.SHUT_RDWR)
            session.connection.close()

    def stop(self) -> None:
        self._running = False
        # A thread blocked in accept() keeps a closed socket listening: shut it down first.
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self.drop_connections()

    # ---- the SMSC's side --------------------------------------------------------------------------

    def _pdu(self, command: str, **fields: Any) -> Any:
        return smpplib.smpp.make_pdu(command, client=self._sequence, **fields)

    def _answer(self, command: str, request: Any, status: int = OK, **fields: Any) -> Any:
        pdu = self._pdu(command, status=status, **fields)
        pdu.sequence = request.sequence
        return pdu

    def _deliver_and_wait(self, pdu: Any, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        with self._lock:
            session = next((s for s in self.sessions if s.receives), None)
        assert session is not None, "nobody is bound as a receiver"
        session.send(pdu)
        with self._answered:
            while pdu.sequence not in self._responses:
                remaining = deadline - time.monotonic()
                assert remaining > 0, "Allo did not answer the deliver_sm"
                self._answered.wait(remaining)
            return self._responses.pop(pdu.sequence)

    def _accept(self) -> None:
        while self._running:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            session = _Session(connection)
            with self._lock:
                self.sessions.append(session)
            threading.Thread(target=self._serve, args=(session,), daemon=True).start()

    def _read(self, connection: socket.socket) -> bytes | None:
        header = self._exactly(connection, 4)
        if header is None:
            return None
        (length,) = struct.unpack(">L", header)
        body = self._exactly(connection, length - 4)
        return None if body is None else header + body

    @staticmethod
    def _exactly(connection: socket.socket, size: int) -> bytes | None:
        chunks = b""
        while len(chunks) < size:
            try:
                chunk = connection.recv(size - len(chunks))
            except OSError:
                return None
            if not chunk:
                return None
            chunks += chunk
        return chunks

    def _serve(self, session: _Session) -> None:
        try:
            while not session.closed:
                data = self._read(session.connection)
                if data is None:
                    return
                request = smpplib.smpp.parse_pdu(data, client=self._sequence, allow_unknown_opt_params=True)
                try:
                    if not self._handle(session, request):
                        return
                except OSError:
                    return  # the client went away without waiting for our answer
        finally:
            session.closed = True
            session.connection.close()

    def _handle(self, session: _Session, request: Any) -> bool:
        command = request.command
        if command.startswith("bind_") and not command.endswith("_resp"):
            mode = command.removeprefix("bind_")
            accepted = _text(request.system_id) == self.system_id and _text(request.password) == self.password
            status = OK if accepted else INVALID_PASSWORD
            session.send(self._answer(f"{command}_resp", request, status, system_id="fake-smsc"))
            if accepted:
                session.mode = mode
                with self._lock:
                    self.binds.append(mode)
                    pending, self._pending_receipts = self._pending_receipts, []
                for submitted in pending:
                    self._send_receipt(submitted)
            return accepted
        if command == "submit_sm":
            self._submit(session, request)
        elif command == "deliver_sm_resp":
            with self._answered:
                self._responses[request.sequence] = int(request.status)
                self._answered.notify_all()
        elif command == "enquire_link":
            session.send(self._answer("enquire_link_resp", request))
        elif command == "unbind":
            session.closed = True  # no longer a receiver, from the moment it asked
            session.send(self._answer("unbind_resp", request))
            return False
        return True

    def _submit(self, session: _Session, request: Any) -> None:
        with self._lock:
            self.submit_attempts += 1
            status = self.submit_answers.pop(0) if self.submit_answers else OK
        if status != OK:
            session.send(self._answer("submit_sm_resp", request, status, message_id=""))
            return
        submitted = Submitted(
            message_id=f"{next(self._ids):08X}",
            source_addr=_text(request.source_addr),
            source_addr_ton=int(request.source_addr_ton or 0),
            destination_addr=_text(request.destination_addr),
            dest_addr_ton=int(request.dest_addr_ton or 0),
            esm_class=int(request.esm_class or 0),
            data_coding=int(request.data_coding or 0),
            registered_delivery=int(request.registered_delivery or 0),
            short_message=bytes(request.short_message or b""),
        )
        with self._lock:
            self.submitted.append(submitted)
        session.send(self._answer("submit_sm_resp", request, message_id=submitted.message_id))
        if submitted.registered_delivery:
            self._send_receipt(submitted)

    def _send_receipt(self, submitted: Submitted) -> None:
        """The receipt the handset's network would send (delivered), to whichever session receives (later
        if none)."""
        with self._lock:
            receiver = next((s for s in self.sessions if s.receives), None)
            if receiver is None:
                self._pending_receipts.append(submitted)
                return
        stamp = time.strftime("%y%m%d%H%M", time.gmtime())
        text = (
            f"id:{submitted.message_id} sub:001 dlvrd:001 submit date:{stamp} done date:{stamp} stat:DELIVRD "
            "err:000 text:"
        )
        pdu = self._pdu(
            "deliver_sm",
            source_addr_ton=1,
            source_addr_npi=1,
            source_addr=submitted.destination_addr,
            dest_addr_ton=0,
            dest_addr_npi=1,
            destination_addr=submitted.source_addr,
            esm_class=0x04,
            data_coding=0,
            short_message=text.encode("ascii"),
            receipted_message_id=submitted.message_id,
            message_state=2,  # DELIVERED
        )
        try:
            receiver.send(pdu)
        except OSError:
            with self._lock:  # the receiver went away: the next one to bind gets it
                self._pending_receipts.append(submitted)
