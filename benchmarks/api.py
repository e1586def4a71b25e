"""Load benchmark of the Allo HTTP API, on SQLite and on PostgreSQL.

For each database configuration it prepares a fresh database (`allo db upgrade`, `allo seed demo`),
creates an API key, starts `allo serve` on a free loopback port, and drives two scenarios with N
concurrent keep-alive clients for a fixed duration after a short warm-up:

* create_conversation_and_message: POST /api/v1/conversations then POST …/{id}/messages;
* list_tickets: GET /api/v1/tickets?limit=20.

The load generator is a minimal HTTP/1.1 client on asyncio streams (one persistent connection per
simulated client), cheap enough to share a small machine with the server. Progress and a results
table go to stdout; the very last line is one JSON object with every figure.

Run from the repository root: `.venv/bin/python benchmarks/api.py [--clients 50] [--seconds 10]`.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import json
import math
import os
import platform
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
PG_PORT = 5432
PG_USER = "postgres"

READY_TIMEOUT = 30.0  # seconds for GET /readyz to answer 200
REQUEST_TIMEOUT = 40.0  # per request; above SQLite's 30 s busy timeout so that its errors are seen
STOP_TIMEOUT = 20.0  # SIGTERM, then SIGKILL after this
CLI_TIMEOUT = 300.0  # each `allo` command (migrations, seeding)
MAX_BODY = 16 * 1024 * 1024
MAX_ERROR_SAMPLES = 5
LOG_TAIL_LINES = 40

TICKETS_PATH = "/api/v1/tickets?limit=20"
SCENARIOS = ("list_tickets", "create_conversation_and_message")
FRENCH_MESSAGES = (
    "Bonjour, je n'ai plus de réseau depuis ce matin.",
    "Ma facture de ce mois est beaucoup trop élevée, pouvez-vous vérifier ?",
    "Je voudrais changer de forfait pour avoir plus de data.",
    "Mon colis avec la carte SIM n'est toujours pas arrivé.",
    "Impossible d'envoyer des SMS depuis hier soir, merci de m'aider.",
    "Je souhaite résilier mon abonnement à la fin du mois.",
    "Bonsoir, la 4G ne fonctionne pas chez moi à Lyon.",
    "Comment activer l'itinérance pour un voyage au Sénégal ?",
)


class BenchError(RuntimeError):
    """A step of the benchmark failed; the message says which and why."""


class ProtocolError(Exception):
    """The server's answer is not the HTTP/1.1 this client understands."""


def say(text: str = "") -> None:
    print(text, flush=True)


# --------------------------------------------------------------------------------------------------
# Minimal HTTP/1.1 keep-alive client
# --------------------------------------------------------------------------------------------------


class Connection:
    """One persistent HTTP/1.1 connection; requests on it are sequential."""

    def __init__(self, port: int, api_key: str | None) -> None:
        self.port = port
        headers = f"Host: {HOST}:{port}\r\nAccept: application/json\r\nUser-Agent: allo-bench\r\n"
        if api_key is not None:
            headers += f"Authorization: Bearer {api_key}\r\n"
        self._fixed_headers = headers.encode("ascii")
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(HOST, self.port)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None

    async def request(
        self, method: str, target: str, body: bytes | None = None, headers: bytes = b""
    ) -> tuple[int, bytes]:
        """Send one request and read the whole response: (status, body). `headers`: extra header lines,
        each ending in CRLF."""
        await self.open()
        reader, writer = self._reader, self._writer
        if reader is None or writer is None:  # pragma: no cover - open() sets both
            raise ProtocolError("not connected")
        head = f"{method} {target} HTTP/1.1\r\n".encode("ascii") + self._fixed_headers + headers
        if body is not None:
            head += b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
        writer.write(head + b"\r\n" + (body or b""))
        await writer.drain()
        status, length, chunked, close = _parse_head(await reader.readuntil(b"\r\n\r\n"))
        if length is not None:
            if length > MAX_BODY:
                raise ProtocolError(f"response body of {length} bytes")
            data = await reader.readexactly(length) if length else b""
        elif chunked:
            data = await _read_chunked(reader)
        elif status in (204, 304) or method == "HEAD":
            data = b""
        else:  # no framing: the body runs to the end of the connection
            data = await reader.read(MAX_BODY)
            close = True
        if close:
            self.close()
        return status, data


def _parse_head(raw: bytes) -> tuple[int, int | None, bool, bool]:
    """Status, Content-Length, chunked, Connection: close, from the status line and headers."""
    lines = raw.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
        raise ProtocolError(f"bad status line {lines[0][:80]!r}")
    try:
        status = int(parts[1])
    except ValueError as exc:
        raise ProtocolError(f"bad status line {lines[0][:80]!r}") from exc
    length: int | None = None
    chunked = False
    close = parts[0] == b"HTTP/1.0"
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            continue
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value.strip())
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif name == b"connection":
            close = value.strip().lower() == b"close"
    if chunked:
        length = None
    return status, length, chunked, close


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            # Trailers (if any) end with an empty line.
            while (await reader.readuntil(b"\r\n")) != b"\r\n":
                pass
            return b"".join(chunks)
        total += size
        if total > MAX_BODY:
            raise ProtocolError("chunked response body too large")
        chunks.append(await reader.readexactly(size))
        await reader.readexactly(2)


CONNECTION_ERRORS = (OSError, EOFError, asyncio.LimitOverrunError, TimeoutError, ProtocolError, ValueError)


# --------------------------------------------------------------------------------------------------
# Scenarios
# --------------------------------------------------------------------------------------------------


@dataclass
class Window:
    """The measured interval, in time.perf_counter() seconds."""

    start: float
    end: float


@dataclass
class Stats:
    """What the clients of one scenario saw; only requests wholly inside the window are counted."""

    latencies: dict[str, array.array[float]] = field(default_factory=dict)
    requests: int = 0
    errors: int = 0
    connection_errors: int = 0
    pairs: int = 0
    warmup_requests: int = 0
    warmup_errors: int = 0
    error_samples: list[str] = field(default_factory=list)

    def sample(self, text: str) -> None:
        if len(self.error_samples) < MAX_ERROR_SAMPLES:
            self.error_samples.append(text)


async def timed(
    conn: Connection,
    stats: Stats,
    window: Window,
    label: str,
    method: str,
    target: str,
    body: bytes | None = None,
) -> bytes | None:
    """One request, counted in `stats`; the response body if it succeeded (2xx), else None."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(REQUEST_TIMEOUT):
            status, data = await conn.request(method, target, body)
    except CONNECTION_ERRORS as exc:
        conn.close()
        ended = time.perf_counter()
        if started >= window.start and ended <= window.end:
            stats.requests += 1
            stats.errors += 1
            stats.connection_errors += 1
        elif ended <= window.start:
            stats.warmup_errors += 1
        stats.sample(f"{method} {target}: connection error {type(exc).__name__}: {exc}")
        await asyncio.sleep(0.05)  # do not spin if the server is gone
        return None
    ended = time.perf_counter()
    ok = 200 <= status < 300
    if started >= window.start and ended <= window.end:
        stats.requests += 1
        stats.latencies.setdefault(label, array.array("d")).append(ended - started)
        if not ok:
            stats.errors += 1
    elif ended <= window.start:
        stats.warmup_requests += 1
        if not ok:
            stats.warmup_errors += 1
    if not ok:
        stats.sample(f"{method} {target} -> {status}: {data[:400].decode('utf-8', 'replace')}")
        return None
    return data


ClientLoop = Callable[[Connection, Stats, Window, random.Random], Awaitable[None]]


async def list_tickets_client(conn: Connection, stats: Stats, window: Window, _rng: random.Random) -> None:
    while time.perf_counter() < window.end:
        await timed(conn, stats, window, "list_tickets", "GET", TICKETS_PATH)


def make_conversation_client(customer_ids: list[str]) -> ClientLoop:
    async def client(conn: Connection, stats: Stats, window: Window, rng: random.Random) -> None:
        while time.perf_counter() < window.end:
            started = time.perf_counter()
            body = json.dumps({"customer_id": rng.choice(customer_ids), "channel": "webchat"}).encode()
            created = await timed(
                conn, stats, window, "create_conversation", "POST", "/api/v1/conversations", body
            )
            if created is None:
                continue
            try:
                conversation_id = str(json.loads(created)["id"])
            except (ValueError, KeyError, TypeError):
                stats.sample(f"POST /api/v1/conversations: unexpected body {created[:200]!r}")
                continue
            message = {"body": rng.choice(FRENCH_MESSAGES), "author_kind": "customer"}
            posted = await timed(
                conn,
                stats,
                window,
                "post_message",
                "POST",
                f"/api/v1/conversations/{conversation_id}/messages",
                json.dumps(message, ensure_ascii=False).encode(),
            )
            if posted is not None and started >= window.start and time.perf_counter() <= window.end:
                stats.pairs += 1

    return client


# --------------------------------------------------------------------------------------------------
# CPU accounting (Linux /proc; figures are None elsewhere)
# --------------------------------------------------------------------------------------------------

CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _proc_stats() -> dict[int, tuple[int, str, int]]:
    """pid -> (ppid, comm, utime+stime ticks) for every readable process."""
    found: dict[int, tuple[int, str, int]] = {}
    with contextlib.suppress(OSError):
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                raw = Path(entry.path, "stat").read_text()
            except OSError:
                continue
            comm = raw[raw.find("(") + 1 : raw.rfind(")")]
            rest = raw[raw.rfind(")") + 2 :].split()
            found[int(entry.name)] = (int(rest[1]), comm, int(rest[11]) + int(rest[12]))
    return found


def _machine_busy_ticks() -> tuple[int, int] | None:
    """(busy, total) jiffies of all CPUs since boot."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields) - idle, sum(fields)


@dataclass
class CpuSnapshot:
    at: float
    client: float
    server: int
    postgres: int
    machine: tuple[int, int] | None


def cpu_snapshot(server_pid: int) -> CpuSnapshot:
    procs = _proc_stats()
    tree = {server_pid}
    changed = True
    while changed:
        changed = False
        for pid, (ppid, _, _) in procs.items():
            if ppid in tree and pid not in tree:
                tree.add(pid)
                changed = True
    server = sum(procs[pid][2] for pid in tree if pid in procs)
    postgres = sum(ticks for _, comm, ticks in procs.values() if comm.startswith("postgres"))
    return CpuSnapshot(time.perf_counter(), time.process_time(), server, postgres, _machine_busy_ticks())


def cpu_usage(before: CpuSnapshot, after: CpuSnapshot) -> dict[str, float | None]:
    """CPU used during the window, in cores (1.0 = one core fully busy)."""
    wall = max(after.at - before.at, 1e-9)
    machine: float | None = None
    if before.machine is not None and after.machine is not None:
        busy = after.machine[0] - before.machine[0]
        total = max(after.machine[1] - before.machine[1], 1)
        machine = round(busy / total * (os.cpu_count() or 1), 2)
    server = (after.server - before.server) / CLK_TCK / wall
    loadgen = (after.client - before.client) / wall
    postgres = (after.postgres - before.postgres) / CLK_TCK / wall
    return {
        "server_cores": round(server, 2),
        "loadgen_cores": round(loadgen, 2),
        "postgres_cores": round(postgres, 2),
        "machine_cores": machine,
        # Anything else on the machine (other jobs) competes with the server and skews the figures.
        "other_cores": None if machine is None else round(max(0.0, machine - server - loadgen - postgres), 2),
    }


# --------------------------------------------------------------------------------------------------
# Running one scenario
# --------------------------------------------------------------------------------------------------


def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def latency_summary(values: list[float]) -> dict[str, float | None]:
    ordered = sorted(values)

    def ms(value: float) -> float | None:
        return None if math.isnan(value) else round(value * 1000, 2)

    return {
        "p50_ms": ms(percentile(ordered, 50)),
        "p95_ms": ms(percentile(ordered, 95)),
        "p99_ms": ms(percentile(ordered, 99)),
        "max_ms": ms(ordered[-1] if ordered else math.nan),
    }


async def run_scenario(
    name: str,
    client_loop: ClientLoop,
    *,
    port: int,
    api_key: str,
    clients: int,
    warmup: float,
    seconds: float,
    server_pid: int,
) -> dict[str, Any]:
    conns = [Connection(port, api_key) for _ in range(clients)]
    stats = Stats()
    try:
        async with asyncio.timeout(10):
            await asyncio.gather(*(conn.open() for conn in conns))
        now = time.perf_counter()
        window = Window(now + warmup, now + warmup + seconds)
        snapshots: list[CpuSnapshot] = []

        async def sample_cpu() -> None:
            await asyncio.sleep(max(0.0, window.start - time.perf_counter()))
            snapshots.append(cpu_snapshot(server_pid))
            await asyncio.sleep(max(0.0, window.end - time.perf_counter()))
            snapshots.append(cpu_snapshot(server_pid))

        seed = secrets.randbits(32)
        async with asyncio.timeout(warmup + seconds + REQUEST_TIMEOUT + 10):
            await asyncio.gather(
                sample_cpu(),
                *(client_loop(conn, stats, window, random.Random(seed + i)) for i, conn in enumerate(conns)),
            )
    finally:
        for conn in conns:
            conn.close()
    everything = [value for values in stats.latencies.values() for value in values]
    result: dict[str, Any] = {
        "requests": stats.requests,
        "errors": stats.errors,
        "rps": round(stats.requests / seconds, 1),
        **latency_summary(everything),
    }
    if len(stats.latencies) > 1:
        result["by_request"] = {
            label: {"requests": len(values), **latency_summary(list(values))}
            for label, values in stats.latencies.items()
        }
    if name == "create_conversation_and_message":
        result["pairs"] = stats.pairs
        result["pairs_per_s"] = round(stats.pairs / seconds, 1)
    if stats.connection_errors:
        result["connection_errors"] = stats.connection_errors
    if stats.warmup_errors:
        result["warmup_errors"] = stats.warmup_errors
    if len(snapshots) == 2:
        result["cpu"] = cpu_usage(snapshots[0], snapshots[1])
    if stats.error_samples:
        result["error_samples"] = [text[:300] for text in stats.error_samples]
    return result


# --------------------------------------------------------------------------------------------------
# Server and database management (synchronous; the load itself runs in an event loop)
# --------------------------------------------------------------------------------------------------


def allo_executable() -> str:
    candidate = ROOT / ".venv" / "bin" / "allo"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("allo")
    if found is None:
        raise BenchError("the `allo` command is not installed (.venv/bin/allo)")
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty)"


def allo_env(database_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "ALLO_DATABASE_URL": database_url,
            "ALLO_MODE": "dev",
            "ALLO_LOG_LEVEL": "warning",
            "PYTHONUNBUFFERED": "1",
            "NO_COLOR": "1",
        }
    )
    return env


def run_allo(args: list[str], env: dict[str, str], cwd: Path) -> str:
    """Run an `allo` command to completion; its stdout, or BenchError with its stderr."""
    try:
        done = subprocess.run(
            [allo_executable(), *args],
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"`allo {' '.join(args)}` took more than {CLI_TIMEOUT:.0f} s") from exc
    if done.returncode != 0:
        raise BenchError(
            f"`allo {' '.join(args)}` failed with code {done.returncode}:\n{done.stderr[-2000:]}"
        )
    return done.stdout


def prepare_database(env: dict[str, str], cwd: Path) -> str:
    """Migrate, seed the demo tenant and create an agent API key; the key."""
    started = time.perf_counter()
    run_allo(["db", "upgrade"], env, cwd)
    say(f"  migrated in {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    run_allo(["seed", "demo"], env, cwd)
    say(f"  demo data seeded in {time.perf_counter() - started:.1f} s")
    output = run_allo(
        ["apikey", "create", "--tenant", "demo", "--name", "bench", "--role", "agent"], env, cwd
    )
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    if not lines or not lines[-1].startswith("allo_"):
        raise BenchError(f"no API key in the output of `allo apikey create`: {output!r}")
    return lines[-1]


class Server:
    """`allo serve` as a subprocess in its own process group, its output in a log file."""

    def __init__(self, env: dict[str, str], cwd: Path, extra_args: list[str], log_path: Path) -> None:
        self.port = free_port()
        self.log_path = log_path
        self._log: TextIO = log_path.open("w")
        self.proc = subprocess.Popen(
            [allo_executable(), "serve", "--port", str(self.port), *extra_args],
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self) -> None:
        """SIGTERM, then SIGKILL to the whole group if it has not exited after STOP_TIMEOUT."""
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    say(f"  server did not stop within {STOP_TIMEOUT:.0f} s; killing it")
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait(timeout=10)
            # Web workers left behind by a killed supervisor share its process group.
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                try:
                    os.killpg(self.proc.pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
            else:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
        finally:
            self._log.close()


async def wait_ready(server: Server) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    last = "no answer"
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise BenchError(f"the server exited with code {server.proc.returncode} before it was ready")
        conn = Connection(server.port, None)
        try:
            async with asyncio.timeout(2):
                status, body = await conn.request("GET", "/readyz")
            if status == 200:
                return
            last = f"{status} {body[:200].decode('utf-8', 'replace')}"
        except CONNECTION_ERRORS as exc:
            last = f"{type(exc).__name__}: {exc}"
        finally:
            conn.close()
        await asyncio.sleep(0.2)
    raise BenchError(f"GET /readyz did not return 200 within {READY_TIMEOUT:.0f} s (last: {last})")


async def fetch_customer_ids(port: int, api_key: str) -> list[str]:
    conn = Connection(port, api_key)
    try:
        async with asyncio.timeout(30):
            status, body = await conn.request("GET", "/api/v1/customers?limit=200")
    finally:
        conn.close()
    if status != 200:
        raise BenchError(f"GET /api/v1/customers -> {status}: {body[:300]!r}")
    ids = [str(item["id"]) for item in json.loads(body)["items"]]
    if not ids:
        raise BenchError("the demo tenant has no customers")
    return ids


@dataclass(frozen=True)
class Options:
    clients: int
    seconds: float
    warmup: float
    scenarios: tuple[str, ...] = SCENARIOS


async def benchmark_server(server: Server, api_key: str, options: Options) -> dict[str, Any]:
    # SIGTERM cancels the run cleanly (the caller then stops the server) instead of raising SystemExit
    # inside some transport callback.
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    if task is not None:
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await _benchmark_server(server, api_key, options)
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
        signal.signal(signal.SIGTERM, _terminate)


async def _benchmark_server(server: Server, api_key: str, options: Options) -> dict[str, Any]:
    await wait_ready(server)
    customer_ids = await fetch_customer_ids(server.port, api_key)
    say(f"  server ready on port {server.port}; {len(customer_ids)} demo customers")
    scenarios: list[tuple[str, ClientLoop]] = [
        ("list_tickets", list_tickets_client),
        ("create_conversation_and_message", make_conversation_client(customer_ids)),
    ]
    results: dict[str, Any] = {}
    for name, loop in scenarios:
        if name not in options.scenarios:
            continue
        say(f"  {name}: {options.clients} clients, {options.warmup:g} s warm-up + {options.seconds:g} s …")
        result = await run_scenario(
            name,
            loop,
            port=server.port,
            api_key=api_key,
            clients=options.clients,
            warmup=options.warmup,
            seconds=options.seconds,
            server_pid=server.proc.pid,
        )
        results[name] = result
        say("    " + describe(result))
        for text in result.get("error_samples", []):
            say(f"    error: {text}")
        if server.proc.poll() is not None:
            raise BenchError(f"the server exited with code {server.proc.returncode} during {name}")
    return results


def describe(result: dict[str, Any]) -> str:
    text = (
        f"{result['requests']} requests, {result['errors']} errors, {result['rps']} req/s, "
        f"p50 {result['p50_ms']} ms, p95 {result['p95_ms']} ms, p99 {result['p99_ms']} ms, "
        f"max {result['max_ms']} ms"
    )
    if "pairs" in result:
        text += f"; {result['pairs']} pairs ({result['pairs_per_s']}/s)"
    cpu = result.get("cpu")
    if cpu:
        text += (
            f"; CPU cores: server {cpu['server_cores']}, load generator {cpu['loadgen_cores']}, "
            f"postgres {cpu['postgres_cores']}, other {cpu['other_cores']}, machine {cpu['machine_cores']}"
        )
    return text


def event_loop_factory(use_uvloop: bool) -> Callable[[], asyncio.AbstractEventLoop] | None:
    if not use_uvloop:
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run_configuration(
    label: str,
    database_url: str,
    extra_args: list[str],
    workdir: Path,
    options: Options,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None,
) -> dict[str, Any]:
    env = allo_env(database_url)
    api_key = prepare_database(env, workdir)
    log_path = workdir / f"server-{label}.log"
    server = Server(env, workdir, extra_args, log_path)
    command = " ".join(["allo serve --port", str(server.port), *extra_args])
    say(f"  started `{command}` (pid {server.proc.pid}), log in {log_path}")
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            results = runner.run(benchmark_server(server, api_key, options))
    except BaseException as exc:
        server.stop()
        say(f"  server log ({log_path}), last lines:\n{tail(log_path)}")
        if isinstance(exc, asyncio.CancelledError):  # SIGTERM
            raise SystemExit(128 + signal.SIGTERM) from None
        raise
    server.stop()
    log = log_path.read_text(errors="replace")
    problems = sum(1 for line in log.splitlines() if "Traceback" in line or "ERROR" in line)
    if problems or any(r["errors"] or r.get("warmup_errors") for r in results.values()):
        say(f"  server log: {problems} error/traceback lines; last lines:\n{tail(log_path)}")
    return results


# --------------------------------------------------------------------------------------------------
# PostgreSQL scratch databases
# --------------------------------------------------------------------------------------------------


async def _pg_execute(sql: str, wait: float = 30) -> None:
    import asyncpg

    async with asyncio.timeout(wait):
        conn = await asyncpg.connect(host=HOST, port=PG_PORT, user=PG_USER, database="postgres")
        try:
            await conn.execute(sql)
        finally:
            await conn.close()


def pg_unavailable_reason() -> str | None:
    try:
        asyncio.run(_pg_execute("SELECT 1", wait=5))
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


@contextlib.contextmanager
def scratch_pg_database() -> Iterator[str]:
    """A fresh database for the block, dropped afterwards even on error; its SQLAlchemy URL."""
    name = f"allo_bench_{secrets.token_hex(4)}"
    asyncio.run(_pg_execute(f'CREATE DATABASE "{name}"'))
    say(f"  created PostgreSQL database {name}")
    try:
        yield f"postgresql+asyncpg://{PG_USER}@{HOST}:{PG_PORT}/{name}"
    finally:
        try:
            asyncio.run(_pg_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        except Exception:  # before PostgreSQL 13 there is no FORCE
            try:
                asyncio.run(_pg_execute(f'DROP DATABASE IF EXISTS "{name}"'))
            except Exception as exc:
                say(f"  could not drop PostgreSQL database {name}: {type(exc).__name__}: {exc}")
            else:
                say(f"  dropped PostgreSQL database {name}")
        else:
            say(f"  dropped PostgreSQL database {name}")


# --------------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------------


def results_table(
    results: dict[str, dict[str, Any]], processes: dict[str, int], skipped: dict[str, str]
) -> str:
    header = (
        f"{'configuration':<20} {'procs':>5} {'scenario':<32} {'requests':>9} {'errors':>7} "
        f"{'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}  cpu server/pg/other"
    )
    rows = [header, "-" * len(header)]
    for config, scenarios in results.items():
        for name, r in scenarios.items():
            rows.append(
                f"{config:<20} {processes[config]:>5} {name:<32} {r['requests']:>9} {r['errors']:>7} "
                f"{r['rps']:>8} {r['p50_ms']!s:>8} {r['p95_ms']!s:>8} {r['p99_ms']!s:>8} {r['max_ms']!s:>8}"
                f"  {_cpu_cell(r.get('cpu'))}"
            )
            if "pairs" in r:
                rows.append(
                    f"{'':<20} {'':>5} {'  (pairs)':<32} {r['pairs']:>9} {'':>7} {r['pairs_per_s']:>8}"
                )
    rows.extend(f"{config:<20} skipped: {reason}" for config, reason in skipped.items())
    return "\n".join(rows)


def _cpu_cell(cpu: dict[str, float | None] | None) -> str:
    if not cpu:
        return ""
    return f"{cpu['server_cores']}/{cpu['postgres_cores']}/{cpu['other_cores']}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients (default 50)")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per scenario")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds, not counted")
    parser.add_argument(
        "--pg-workers", type=int, default=2, help="also run PostgreSQL with this many web processes"
    )
    parser.add_argument(
        "--databases", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql"
    )
    parser.add_argument(
        "--scenarios", default=",".join(SCENARIOS), help=f"comma-separated, of: {', '.join(SCENARIOS)}"
    )
    parser.add_argument("--no-uvloop", action="store_true", help="plain asyncio loop for the load generator")
    args = parser.parse_args(argv)
    if not 1 <= args.clients <= 1000:
        parser.error("--clients must be between 1 and 1000")
    if not 1 <= args.seconds <= 300:
        parser.error("--seconds must be between 1 and 300")
    if not 0 <= args.warmup <= 60:
        parser.error("--warmup must be between 0 and 60")
    if not 0 <= args.pg_workers <= 16:
        parser.error("--pg-workers must be between 0 and 16")
    unknown = set(args.databases.split(",")) - {"sqlite", "postgresql"}
    if unknown:
        parser.error(f"unknown databases: {', '.join(sorted(unknown))}")
    unknown = set(args.scenarios.split(",")) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    return args


def cpu_model() -> str | None:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return None


def _number(value: float) -> float | int:
    return int(value) if value.is_integer() else value


def _terminate(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # run the finally blocks: stop the server, drop the database


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    options = Options(
        clients=args.clients,
        seconds=args.seconds,
        warmup=args.warmup,
        scenarios=tuple(args.scenarios.split(",")),
    )
    loop_factory = event_loop_factory(not args.no_uvloop)
    databases = args.databases.split(",")
    say(
        f"Allo API benchmark: {options.clients} clients, {options.warmup:g} s warm-up + "
        f"{options.seconds:g} s per scenario; load generator on "
        f"{'uvloop' if loop_factory else 'asyncio'} in this process; {os.cpu_count()} CPUs"
    )
    results: dict[str, dict[str, Any]] = {}
    processes: dict[str, int] = {}
    skipped: dict[str, str] = {}
    failures: dict[str, str] = {}

    def attempt(label: str, run: Callable[[], dict[str, Any]]) -> None:
        try:
            results[label] = run()
        except BenchError as exc:
            say(f"  {label} FAILED: {exc}")
            failures[label] = str(exc)[:1000]
        except Exception as exc:
            say(f"  {label} FAILED:\n{traceback.format_exc()}")
            failures[label] = f"{type(exc).__name__}: {exc}"[:1000]

    with tempfile.TemporaryDirectory(prefix="allo-bench-") as tmp:
        workdir = Path(tmp)
        if "sqlite" in databases:
            say("\n== sqlite (1 process) ==")
            url = f"sqlite+aiosqlite:///{workdir / 'allo.db'}"
            processes["sqlite"] = 1
            attempt("sqlite", lambda: run_configuration("sqlite", url, [], workdir, options, loop_factory))
        if "postgresql" in databases:
            reason = pg_unavailable_reason()
            pg_configs: list[tuple[str, int, list[str]]] = [("postgresql", 1, [])]
            if args.pg_workers > 1:
                k = args.pg_workers
                pg_configs.append((f"postgresql_{k}proc", k, ["--workers", str(k), "--no-worker"]))
            for label, procs, extra in pg_configs:
                processes[label] = procs
                if reason is not None:
                    skipped[label] = f"PostgreSQL does not answer on {HOST}:{PG_PORT} ({reason})"
                    say(f"\n== {label}: skipped, {skipped[label]} ==")
                    continue
                say(f"\n== {label} ({procs} process{'es' if procs > 1 else ''}) ==")

                def run_pg(label: str = label, extra: list[str] = extra) -> dict[str, Any]:
                    with scratch_pg_database() as pg_url:
                        return run_configuration(label, pg_url, extra, workdir, options, loop_factory)

                attempt(label, run_pg)

    say("\n== results ==")
    say(results_table(results, processes, skipped))
    say(
        "(cpu: cores used during the measured window by the server processes, PostgreSQL, and anything "
        "else on the machine; 'other' above ~0.2 means the figures are skewed by other jobs)"
    )
    summary: dict[str, Any] = {
        "benchmark": "api",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "cpu_model": cpu_model(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "clients": options.clients,
        "seconds": _number(options.seconds),
        "warmup_seconds": _number(options.warmup),
        "load_generator": "uvloop" if loop_factory else "asyncio",
        "server_processes": processes,
        "results": {
            **results,
            **{label: {"skipped": reason} for label, reason in skipped.items()},
            **{label: {"failed": reason} for label, reason in failures.items()},
        },
    }
    print(json.dumps(summary, ensure_ascii=False), flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
