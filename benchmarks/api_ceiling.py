"""The HTTP stack's ceiling on this machine, for reading `benchmarks/api.py`'s figures.

The same load as api.py's list_tickets scenario (N keep-alive clients, GET /api/v1/tickets?limit=20),
against servers that do no work: uvicorn (httptools, uvloop) serving a page of 20 tickets already
encoded, the size of Allo's, from

* asgi: a bare ASGI function;
* fastapi: a FastAPI route with one async dependency reading the Authorization header, as Allo's routes
  have, returning the bytes;

each with one and with two processes. Whatever Allo's list endpoint does, it cannot go faster than
these. The last line is one JSON object of the figures.

Run from the repository root: `.venv/bin/python benchmarks/api_ceiling.py [--clients 50] [--seconds 10]`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

# The checkout, not this folder, first: benchmarks/mastodon.py would shadow the Mastodon.py package.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

import orjson  # noqa: E402
from fastapi import Depends, FastAPI, Request, Response  # noqa: E402

from benchmarks.api import (  # noqa: E402
    HOST,
    READY_TIMEOUT,
    cpu_model,
    event_loop_factory,
    free_port,
    list_tickets_client,
    run_scenario,
    say,
)

PAGE_BYTES = 24_000  # a page of 20 demo tickets with their SLA clocks, as Allo serves it


def _page() -> bytes:
    ticket = {
        "id": "0b6f1c9e-4f39-4f7e-9d0e-6b1d6c3f2a10",
        "number": 42,
        "subject": "Plus de réseau depuis ce matin à Cotonou",
        "sla": {"first_response": {"state": "running"}, "resolution": {"state": "running"}},
    }
    items: list[dict[str, Any]] = []
    while len(orjson.dumps({"items": items, "next_cursor": None})) < PAGE_BYTES:
        items.append({**ticket, "padding": "x" * 1000})
    return orjson.dumps({"items": items[:20], "next_cursor": "eyJrIjoiMjAyNi0xMS0yMlQxMDowMDowMCJ9"})


PAGE = _page()
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(PAGE)).encode())]


async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": PAGE})


async def authorization(request: Request) -> str:
    return request.headers.get("authorization", "")


def fastapi_app() -> FastAPI:
    app = FastAPI()

    @app.get("/api/v1/tickets")
    async def tickets(_auth: Annotated[str, Depends(authorization)], limit: int = 20) -> Response:
        return Response(PAGE, media_type="application/json")

    return app


def _serve(target: str, port: int, processes: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            target,
            "--host",
            HOST,
            "--port",
            str(port),
            "--workers",
            str(processes),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--log-level",
            "warning",
            "--no-access-log",
            *(["--factory"] if target.endswith("fastapi_app") else []),
        ],
        cwd=Path(__file__).resolve().parent.parent,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


async def _wait_ready(port: int) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection(HOST, port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        writer.close()
        return
    raise RuntimeError(f"nothing answered on port {port}")


async def _measure(port: int, pid: int, options: argparse.Namespace) -> dict[str, Any]:
    await _wait_ready(port)
    await asyncio.sleep(0.5 if options.processes_started > 1 else 0)  # the second worker's start
    return await run_scenario(
        "list_tickets",
        list_tickets_client,
        port=port,
        api_key="ceiling",
        clients=options.clients,
        warmup=options.warmup,
        seconds=options.seconds,
        server_pid=pid,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    options = parser.parse_args()
    loop_factory = event_loop_factory(True)
    results: dict[str, Any] = {}
    for label, target in (
        ("asgi", "benchmarks.api_ceiling:asgi"),
        ("fastapi", "benchmarks.api_ceiling:fastapi_app"),
    ):
        for processes in (1, 2):
            port = free_port()
            server = _serve(target, port, processes)
            options.processes_started = processes
            try:
                with asyncio.Runner(loop_factory=loop_factory) as runner:
                    result = runner.run(_measure(port, server.pid, options))
            finally:
                server.terminate()
                server.wait(timeout=20)
            key = f"{label}_{processes}proc"
            results[key] = {k: result[k] for k in ("requests", "errors", "rps", "p50_ms", "p95_ms", "p99_ms")}
            results[key]["server_cores"] = (result.get("cpu") or {}).get("server_cores")
            say(
                f"{key:<14} {result['rps']:>8} req/s  p50 {result['p50_ms']} ms  p95 {result['p95_ms']} ms  "
                f"p99 {result['p99_ms']} ms  errors {result['errors']}  server cores "
                f"{results[key]['server_cores']}"
            )
    print(
        orjson.dumps(
            {
                "benchmark": "api_ceiling",
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": {
                    "cpus": os.cpu_count(),
                    "cpu_model": cpu_model(),
                    "python": platform.python_version(),
                },
                "clients": options.clients,
                "seconds": options.seconds,
                "page_bytes": len(PAGE),
                "results": results,
            }
        ).decode()
    )


if __name__ == "__main__":
    main()
