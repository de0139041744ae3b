"""No toxic configuration makes the API or the other proxies unresponsive (issue 8, point 9).

The server runs in a process of its own, and ``/version`` is polled from another, while a
1-byte slicer without delay (the most CPU a toxic can ask for) works through a transfer; this
process also round-trips through a second, toxic-free proxy meanwhile. Before the fix one
``/version`` took 1.7 s; the target is a p99 under 50 ms on a busy 2-core machine. A run in which
the poller itself could not wake on time measured the machine, not the server: it is taken again
(at most three runs), and a failure shows both figures.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import aiohttp
import pytest

from tests.chaos.toxiproxy._process import (
    Polled,
    p99,
    pattern,
    poll_in_process,
    server_process,
    source_peer,
)
from tests.chaos.toxiproxy.conftest import Peer, ToxiproxyApi, round_trip

pytestmark = pytest.mark.real_server

P99_LIMIT = 0.05
SIZE = 512 * 1024
ATTEMPTS = 3
MIN_SAMPLES = 50
"""``/version`` requests the 1.5 s of polling must make at least (about 120 on a quiet machine)."""


async def _drain(reader: asyncio.StreamReader, size: int) -> bytes:
    received = bytearray()
    while len(received) < size:
        data = await reader.read(1 << 20)
        if not data:
            break
        received.extend(data)
    return bytes(received)


@dataclass
class Run:
    polled: Polled
    proxy_samples: list[float]
    received: bytes
    elapsed: float


async def _run(echo_peer: Peer) -> Run:
    async with (
        server_process() as server,
        source_peer(SIZE) as source,
        aiohttp.ClientSession() as session,
    ):
        api = ToxiproxyApi(session, server.url)
        sliced = await api.create_proxy("sliced", source)
        await sliced.add_toxic("slicer", attributes={"average_size": 1, "delay": 0})
        plain = await api.create_proxy("plain", echo_peer.address)
        plain_reader, plain_writer = await plain.connect()
        await round_trip(plain_reader, plain_writer)  # warm up

        reader, writer = await sliced.connect()
        started = time.perf_counter()
        transfer = asyncio.create_task(_drain(reader, SIZE))
        polling = asyncio.create_task(poll_in_process(server, 1.5, interval=0.005))
        proxy_samples: list[float] = []
        while not polling.done() and len(proxy_samples) < 2000:
            proxy_samples.append(await round_trip(plain_reader, plain_writer))
            await asyncio.sleep(0.01)
        polled = await polling
        received = await asyncio.wait_for(transfer, 60)
        elapsed = time.perf_counter() - started
        writer.close()
        plain_writer.close()
    return Run(polled, proxy_samples, received, elapsed)


async def test_a_one_byte_slicer_without_delay_leaves_the_api_and_other_proxies_responsive(
    echo_peer: Peer,
) -> None:
    for _attempt in range(ATTEMPTS):  # measured again only when the machine itself was busy
        run = await _run(echo_peer)
        print(
            f"{run.polled.describe()}; other proxy p99 {p99(run.proxy_samples) * 1000:.1f} ms; "
            f"{SIZE} bytes in 1-byte pieces in {run.elapsed:.2f} s"
        )
        slow = max(p99(run.polled.samples), p99(run.proxy_samples)) >= P99_LIMIT
        few = len(run.polled.samples) < MIN_SAMPLES
        if not ((slow or few) and run.polled.busy_machine):
            break
    assert run.received == pattern(SIZE)
    assert run.elapsed > 1.5, "the transfer ended before the polling did: measure for longer"
    assert run.polled.failures == 0
    assert len(run.polled.samples) >= MIN_SAMPLES
    assert p99(run.polled.samples) < P99_LIMIT, run.polled.describe()
    assert p99(run.proxy_samples) < P99_LIMIT, (p99(run.proxy_samples), max(run.proxy_samples))
