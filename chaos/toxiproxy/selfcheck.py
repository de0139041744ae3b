"""``python -m chaos.toxiproxy.selfcheck``: a few-second check that the embedded proxy works.

It starts the embedded server and an echo server on loopback, creates a proxy, sends data
through it without and with a 100 ms latency toxic, checks the bytes and the added delay, prints
one line per check and a PASS/FAIL summary, and exits 0 or 1. Everything it starts is stopped.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import dataclass
from typing import Final

import aiohttp

from chaos.toxiproxy.server import ToxiproxyServer

__all__ = ["Check", "main", "run_selfcheck"]

LATENCY_MS: Final = 100
"""The latency toxic the check applies (downstream)."""
TOLERANCE_MS: Final = 30
"""How far above ``LATENCY_MS`` the measured delay may be on a busy machine."""
_PAYLOAD: Final = bytes(range(256)) * 64


@dataclass(frozen=True)
class Check:
    """One check: its name, whether it passed, and what was measured."""

    name: str
    passed: bool
    detail: str


async def run_selfcheck() -> list[Check]:
    """Run every check against a fresh embedded server; never raises for a failed check."""
    checks: list[Check] = []
    echo = await asyncio.start_server(_echo, "127.0.0.1", 0)
    echo_port = echo.sockets[0].getsockname()[1]
    try:
        async with ToxiproxyServer() as server, aiohttp.ClientSession() as session:
            checks.append(Check("server started", True, server.url))
            listen = await _create_proxy(session, server.url, f"127.0.0.1:{echo_port}")
            port = int(listen.rsplit(":", 1)[1])
            plain_ok, plain_ms = await _round_trip(port)
            checks.append(
                Check("bytes relayed intact", plain_ok, f"{len(_PAYLOAD)} bytes, {plain_ms:.1f} ms")
            )
            async with session.post(
                f"{server.url}/proxies/selfcheck/toxics",
                json={"type": "latency", "attributes": {"latency": LATENCY_MS}},
            ) as reply:
                checks.append(Check("latency toxic added", reply.status == 200, str(reply.status)))
            toxic_ok, toxic_ms = await _round_trip(port)
            added = toxic_ms - plain_ms
            in_range = LATENCY_MS - 1 <= added <= LATENCY_MS + TOLERANCE_MS
            checks.append(
                Check(
                    "latency applied",
                    toxic_ok and in_range,
                    f"added {added:.1f} ms (want {LATENCY_MS}..{LATENCY_MS + TOLERANCE_MS})",
                )
            )
    except (OSError, aiohttp.ClientError, RuntimeError) as error:
        checks.append(Check("unexpected error", False, repr(error)))
    finally:
        echo.close()
        await echo.wait_closed()
    return checks


async def _create_proxy(session: aiohttp.ClientSession, url: str, upstream: str) -> str:
    body = {"name": "selfcheck", "listen": "127.0.0.1:0", "upstream": upstream}
    async with session.post(f"{url}/proxies", data=json.dumps(body)) as reply:
        if reply.status != 201:
            raise RuntimeError(f"create proxy: HTTP {reply.status}: {await reply.text()}")
        created = await reply.json(content_type=None)
    return str(created["listen"])


async def _round_trip(port: int) -> tuple[bool, float]:
    """(bytes came back intact, milliseconds) for one payload through the proxy."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        started = time.perf_counter()
        writer.write(_PAYLOAD)
        received = await asyncio.wait_for(reader.readexactly(len(_PAYLOAD)), 5)
        return received == _PAYLOAD, (time.perf_counter() - started) * 1000
    finally:
        writer.close()


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


def main() -> int:
    """Print the checks and a summary; 0 when all passed."""
    started = time.perf_counter()
    checks = asyncio.run(run_selfcheck())
    for check in checks:
        print(f"  {'ok  ' if check.passed else 'FAIL'} {check.name}: {check.detail}")
    passed = all(check.passed for check in checks)
    elapsed = time.perf_counter() - started
    print(f"toxiproxy selfcheck: {'PASS' if passed else 'FAIL'} ({elapsed:.1f} s)")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
