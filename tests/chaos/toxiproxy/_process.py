"""The embedded server in a process of its own, and what the hostile-load tests measure on it.

A test that asks whether a toxic can starve the server must not share the server's event loop:
:func:`server_process` runs ``python -m chaos.toxiproxy`` (optionally with a low open-file limit)
and reports its open fds, resident memory and log. :func:`poll_version` records ``/version``
round trips from the test's own loop; :func:`poll_in_process` from a process of its own, so that
what the test process does meanwhile does not colour the figure; :func:`p99` summarises them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

_PREFIX = "toxiproxy: listening on "


@dataclass
class ServerProcess:
    """A running ``python -m chaos.toxiproxy``: its API URL, pid and log file."""

    url: str
    pid: int
    log: Path

    def open_fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS in /proc status")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


_LAUNCH = """
import resource, runpy, sys
nofile = int(sys.argv.pop(1))
if nofile:
    resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
sys.argv[0] = "chaos.toxiproxy"
runpy.run_module("chaos.toxiproxy", run_name="__main__", alter_sys=True)
"""


@contextlib.asynccontextmanager
async def server_process(
    *, nofile: int | None = None, log_level: str = "warn"
) -> AsyncIterator[ServerProcess]:
    """Start the server on a free port (``nofile``: its open-file limit); kill it on exit."""
    env = dict(os.environ, LOG_LEVEL=log_level)
    with tempfile.TemporaryDirectory() as directory:
        log = Path(directory) / "server.log"
        with log.open("wb") as log_file:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                _LAUNCH,
                str(nofile or 0),
                "-port",
                "0",
                "-seed",
                "1",
                stdout=asyncio.subprocess.PIPE,
                stderr=log_file,
                env=env,
            )
        try:
            assert process.stdout is not None
            line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
            assert line.startswith(_PREFIX), (line, log.read_text(errors="replace"))
            yield ServerProcess(line[len(_PREFIX) :].strip(), process.pid, log)
        finally:
            if process.returncode is None:
                process.kill()
            await asyncio.wait_for(process.wait(), 10)


async def poll_version(
    session: aiohttp.ClientSession,
    url: str,
    running: Callable[[], bool],
    *,
    interval: float = 0.01,
    limit: int = 5000,
) -> list[float]:
    """Seconds per ``GET /version`` (one every ``interval``) while ``running()``; at most ``limit``.

    A request that fails or takes over 5 s counts as 5 s.
    """
    samples: list[float] = []
    while running() and len(samples) < limit:
        started = time.perf_counter()
        try:
            async with session.get(url + "/version", timeout=aiohttp.ClientTimeout(5)) as reply:
                await reply.read()
                ok = reply.status == 200
        except (aiohttp.ClientError, TimeoutError):
            ok = False
        samples.append(time.perf_counter() - started if ok else 5.0)
        await asyncio.sleep(interval)
    return samples


_POLLER = """
import http.client, json, sys, time
host, port = sys.argv[1], int(sys.argv[2])
seconds, interval = float(sys.argv[3]), float(sys.argv[4])
samples, noise, failures = [], [], 0
deadline = time.monotonic() + seconds
while time.monotonic() < deadline and len(samples) < 5000:
    started = time.perf_counter()
    try:
        connection = http.client.HTTPConnection(host, port, timeout=5)
        connection.request("GET", "/version")
        reply = connection.getresponse()
        reply.read()
        connection.close()
        if reply.status != 200:
            failures += 1
    except OSError:
        failures += 1
    samples.append(time.perf_counter() - started)
    slept = time.perf_counter()
    time.sleep(interval)
    noise.append(time.perf_counter() - slept - interval)
print(json.dumps({"samples": samples, "noise": noise, "failures": failures}))
"""


@dataclass
class Polled:
    """What :func:`poll_in_process` saw: seconds per request, failures, and the machine's noise
    (how late the poller's own sleeps woke, in seconds: a busy machine, not a slow server)."""

    samples: list[float]
    noise: list[float]
    failures: int

    @property
    def busy_machine(self) -> bool:
        """Whether the poller itself could not run on time (its p99 wake-up over 10 ms late)."""
        return p99(self.noise) > NOISE_LIMIT

    def describe(self) -> str:
        return (
            f"/version p99 {p99(self.samples) * 1000:.1f} ms (max {max(self.samples) * 1000:.1f}"
            f" ms, {len(self.samples)} samples, {self.failures} failed; the poller's own wake-up"
            f" p99 {p99(self.noise) * 1000:.1f} ms late)"
        )


NOISE_LIMIT = 0.01
"""A poller whose sleeps wake more than this late (p99) is measuring the machine."""


async def poll_in_process(server: ServerProcess, seconds: float, interval: float = 0.02) -> Polled:
    """``GET /version`` on a new connection every ``interval`` for ``seconds``, from a process of
    its own."""
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    poller = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _POLLER,
        host,
        port,
        str(seconds),
        str(interval),
        stdout=asyncio.subprocess.PIPE,
    )
    output, _ = await asyncio.wait_for(poller.communicate(), seconds + 30)
    result = json.loads(output)
    return Polled(result["samples"], result["noise"], int(result["failures"]))


def p99(samples: list[float]) -> float:
    """The 99th percentile (nearest rank) of ``samples``."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


@contextlib.asynccontextmanager
async def source_peer(size: int) -> AsyncIterator[str]:
    """A server that sends ``size`` bytes (0, 1, 2, ... mod 256) to each client, then closes."""
    payload = pattern(size)

    async def send(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(payload)
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(send, "127.0.0.1", 0)
    try:
        yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        await server.wait_closed()


def pattern(size: int) -> bytes:
    """What :func:`source_peer` sends: ``size`` bytes counting 0..255 over and over."""
    return bytes(range(256)) * (size // 256) + bytes(range(size % 256))
