"""Each toxic's effect, measured on real sockets through a proxy to a loopback peer.

Delays are tens of milliseconds; every timing is bounded on both sides, loose enough for a busy
2-core machine but tight enough that a toxic doing nothing, or waiting far too long, fails. The
exact waits and pieces are pinned in virtual time in ``test_toxic_stages.py``.
"""

from __future__ import annotations

import asyncio
import statistics
import time

import aiohttp
import pytest

from chaos.toxiproxy import ToxiproxyServer
from tests.chaos.toxiproxy.conftest import (
    Peer,
    ToxiproxyApi,
    read_until_eof,
    round_trip,
)

pytestmark = pytest.mark.real_server


async def _median_round_trip(proxy_port: int, samples: int = 5) -> float:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy_port)
    try:
        return statistics.median([await round_trip(reader, writer) for _ in range(samples)])
    finally:
        writer.close()


async def test_latency_adds_its_delay_to_each_round_trip(
    toxiproxy: ToxiproxyApi, echo_peer: Peer
) -> None:
    proxy = await toxiproxy.create_proxy("latency", echo_peer.address)
    await proxy.add_toxic("latency", attributes={"latency": 40})
    added_ms = await _median_round_trip(proxy.port) * 1000
    assert 40 <= added_ms <= 45


async def test_latency_in_both_directions_adds_up(toxiproxy: ToxiproxyApi, echo_peer: Peer) -> None:
    proxy = await toxiproxy.create_proxy("both", echo_peer.address)
    await proxy.add_toxic("latency", stream="upstream", attributes={"latency": 25})
    await proxy.add_toxic("latency", stream="downstream", attributes={"latency": 25})
    added_ms = await _median_round_trip(proxy.port) * 1000
    assert 50 <= added_ms <= 55


async def test_latency_is_pipelined_so_a_burst_arrives_about_one_latency_later(
    toxiproxy: ToxiproxyApi, sink_peer: Peer, echo_peer: Peer
) -> None:
    proxy = await toxiproxy.create_proxy("burst", echo_peer.address)
    await proxy.add_toxic("latency", attributes={"latency": 50})
    reader, writer = await proxy.connect()
    started = time.perf_counter()
    for _ in range(10):
        writer.write(b"x" * 100)
        await writer.drain()
        await asyncio.sleep(0.002)
    await asyncio.wait_for(reader.readexactly(1000), 5)
    elapsed_ms = (time.perf_counter() - started) * 1000
    writer.close()
    assert 50 <= elapsed_ms <= 100  # additive would be >= 500 ms


async def test_jitter_stays_inside_its_range(toxiproxy: ToxiproxyApi, echo_peer: Peer) -> None:
    proxy = await toxiproxy.create_proxy("jitter", echo_peer.address)
    await proxy.add_toxic("latency", attributes={"latency": 40, "jitter": 20})
    reader, writer = await proxy.connect()
    samples = [await round_trip(reader, writer) * 1000 for _ in range(12)]
    writer.close()
    assert all(20 <= sample <= 65 for sample in samples), samples
    assert max(samples) - min(samples) > 5, samples  # the jitter does vary


async def test_seed_makes_jitter_reproducible(echo_peer: Peer) -> None:
    async def samples(seed: int) -> list[float]:
        async with ToxiproxyServer(seed=seed) as server, aiohttp.ClientSession() as session:
            api = ToxiproxyApi(session, server.url)
            api.prefix = "same_name_"  # the seed's draws are per proxy name
            proxy = await api.create_proxy("seeded", echo_peer.address)
            await proxy.add_toxic("latency", attributes={"latency": 50, "jitter": 40})
            reader, writer = await proxy.connect()
            result = [await round_trip(reader, writer) * 1000 for _ in range(8)]
            writer.close()
            return result

    first, again, other = await samples(7), await samples(7), await samples(8)
    assert all(abs(a - b) < 8 for a, b in zip(first, again, strict=True)), (first, again)
    assert any(abs(a - b) > 10 for a, b in zip(first, other, strict=True)), (first, other)


async def test_bandwidth_throttles_to_its_rate(toxiproxy: ToxiproxyApi, echo_peer: Peer) -> None:
    proxy = await toxiproxy.create_proxy("bandwidth", echo_peer.address)
    await proxy.add_toxic("bandwidth", attributes={"rate": 200})  # 200 KB/s
    reader, writer = await proxy.connect()
    payload = b"b" * 80_000  # 0.4 s at 200 000 B/s
    started = time.perf_counter()
    writer.write(payload)
    received = await asyncio.wait_for(reader.readexactly(len(payload)), 5)
    elapsed = time.perf_counter() - started
    writer.close()
    assert received == payload
    assert 0.4 * 0.85 <= elapsed <= 0.4 * 1.15


async def test_bandwidth_zero_stalls_until_removed_then_flushes(
    toxiproxy: ToxiproxyApi, echo_peer: Peer
) -> None:
    proxy = await toxiproxy.create_proxy("stall", echo_peer.address)
    await proxy.add_toxic("bandwidth", attributes={"rate": 0})
    reader, writer = await proxy.connect()
    writer.write(b"held")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.readexactly(4), 0.15)
    started = time.perf_counter()
    await proxy.remove_toxic("bandwidth_downstream")
    assert await asyncio.wait_for(reader.readexactly(4), 2) == b"held"
    assert time.perf_counter() - started < 0.5  # flushed at once, not after some wait
    writer.close()


async def test_timeout_drops_data_and_closes_after_its_idle_time(
    toxiproxy: ToxiproxyApi, echo_peer: Peer
) -> None:
    proxy = await toxiproxy.create_proxy("timeout", echo_peer.address)
    await proxy.add_toxic("timeout", stream="upstream", attributes={"timeout": 100})
    reader, writer = await proxy.connect()
    await asyncio.sleep(0.06)
    writer.write(b"dropped")  # restarts the idle timer
    started = time.perf_counter()
    assert await read_until_eof(reader) == b""
    elapsed_ms = (time.perf_counter() - started) * 1000
    writer.close()
    assert 90 <= elapsed_ms <= 160
    assert echo_peer.reads == []


async def test_timeout_zero_holds_forever_and_removing_it_closes(
    toxiproxy: ToxiproxyApi, echo_peer: Peer
) -> None:
    proxy = await toxiproxy.create_proxy("blackhole", echo_peer.address)
    await proxy.add_toxic("timeout", stream="upstream", attributes={"timeout": 0})
    reader, writer = await proxy.connect()
    writer.write(b"dropped")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.read(1), 0.2)
    started = time.perf_counter()
    await proxy.remove_toxic("timeout_upstream")
    assert await read_until_eof(reader, 2) == b""
    assert time.perf_counter() - started < 0.5
    writer.close()
    assert echo_peer.reads == []


async def test_reset_peer_resets_the_client_connection(
    toxiproxy: ToxiproxyApi, echo_peer: Peer
) -> None:
    proxy = await toxiproxy.create_proxy("reset", echo_peer.address)
    await proxy.add_toxic("reset_peer", stream="upstream", attributes={"timeout": 0})
    reader, writer = await proxy.connect()
    started = time.perf_counter()
    writer.write(b"hello")
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(100), 2)
    assert time.perf_counter() - started < 0.3  # timeout 0: at once
    writer.close()


async def test_reset_peer_waits_its_timeout_first(toxiproxy: ToxiproxyApi, echo_peer: Peer) -> None:
    proxy = await toxiproxy.create_proxy("reset_later", echo_peer.address)
    await proxy.add_toxic("reset_peer", stream="upstream", attributes={"timeout": 80})
    reader, writer = await proxy.connect()
    started = time.perf_counter()
    writer.write(b"hello")
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(100), 2)
    elapsed_ms = (time.perf_counter() - started) * 1000
    writer.close()
    assert 75 <= elapsed_ms <= 150


async def test_limit_data_forwards_exactly_its_bytes_then_closes(
    toxiproxy: ToxiproxyApi, echo_peer: Peer
) -> None:
    proxy = await toxiproxy.create_proxy("limit", echo_peer.address)
    await proxy.add_toxic("limit_data", attributes={"bytes": 10})
    reader, writer = await proxy.connect()
    writer.write(b"0123456789abcdefghij")
    assert await read_until_eof(reader) == b"0123456789"
    writer.close()


async def test_slicer_delivers_every_byte_in_small_writes(
    toxiproxy: ToxiproxyApi, sink_peer: Peer
) -> None:
    proxy = await toxiproxy.create_proxy("slicer", sink_peer.address)
    await proxy.add_toxic(
        "slicer", stream="upstream", attributes={"average_size": 10, "delay": 3000}
    )
    _reader, writer = await proxy.connect()
    payload = bytes(range(100))
    started = time.perf_counter()
    writer.write(payload)
    await writer.drain()
    for _ in range(100):
        if sum(len(read) for read in sink_peer.reads) >= len(payload):
            break
        await asyncio.sleep(0.005)
    elapsed = time.perf_counter() - started
    writer.close()
    assert b"".join(sink_peer.reads) == payload
    assert len(sink_peer.reads) >= 5, sink_peer.reads
    assert 0.045 <= elapsed <= 0.4  # 16 pieces of 6-7 bytes, 3 ms apart: 45 ms of delays


async def test_slow_close_delays_the_close(toxiproxy: ToxiproxyApi, closing_peer: Peer) -> None:
    proxy = await toxiproxy.create_proxy("slow_close", closing_peer.address)
    reader, writer = await proxy.connect()
    started = time.perf_counter()
    writer.write(b"bye")
    await read_until_eof(reader)
    plain_ms = (time.perf_counter() - started) * 1000
    writer.close()

    await proxy.add_toxic("slow_close", attributes={"delay": 100})
    reader, writer = await proxy.connect()
    started = time.perf_counter()
    writer.write(b"bye")
    await read_until_eof(reader)
    slow_ms = (time.perf_counter() - started) * 1000
    writer.close()
    assert plain_ms < 50
    assert 100 <= slow_ms <= 160


async def test_toxicity_zero_never_applies_and_one_always_does(
    toxiproxy: ToxiproxyApi, echo_peer: Peer
) -> None:
    proxy = await toxiproxy.create_proxy("toxicity", echo_peer.address)
    await proxy.add_toxic("latency", toxicity=0, attributes={"latency": 200})
    never = [await _median_round_trip(proxy.port, 1) for _ in range(5)]
    await proxy.update_toxic("latency_downstream", toxicity=1)
    always = [await _median_round_trip(proxy.port, 1) for _ in range(5)]
    assert max(never) < 0.15, never  # far below the latency, even on a busy machine
    assert min(always) >= 0.2, always
    assert max(always) <= 0.35, always


async def test_toxics_added_and_updated_take_effect_on_an_open_connection(
    toxiproxy: ToxiproxyApi, echo_peer: Peer
) -> None:
    proxy = await toxiproxy.create_proxy("live", echo_peer.address)
    reader, writer = await proxy.connect()
    before = await round_trip(reader, writer)
    await proxy.add_toxic("latency", attributes={"latency": 30})
    added = await round_trip(reader, writer)
    await proxy.update_toxic("latency_downstream", attributes={"latency": 80})
    updated = await round_trip(reader, writer)
    await proxy.remove_toxic("latency_downstream")
    removed = await round_trip(reader, writer)
    writer.close()
    assert before < 0.02
    assert 0.03 <= added <= 0.07
    assert 0.08 <= updated <= 0.12
    assert removed < 0.02


async def test_disabling_closes_live_connections_and_refuses_new_ones(
    toxiproxy: ToxiproxyApi, echo_peer: Peer
) -> None:
    proxy = await toxiproxy.create_proxy("down", echo_peer.address)
    reader, writer = await proxy.connect()
    await round_trip(reader, writer)
    await proxy.set_enabled(False)
    assert await read_until_eof(reader, 2) == b""
    writer.close()
    with pytest.raises(ConnectionRefusedError):
        await proxy.connect()
    await proxy.set_enabled(True)
    reader, writer = await proxy.connect()  # the same concrete port again
    assert await round_trip(reader, writer) < 1
    writer.close()


async def test_bytes_survive_switching_between_direct_and_toxic_relay(
    toxiproxy: ToxiproxyApi, echo_peer: Peer
) -> None:
    proxy = await toxiproxy.create_proxy("switch", echo_peer.address)
    reader, writer = await proxy.connect()
    payload = bytes(range(256)) * 4096  # 1 MiB
    received = bytearray()

    async def read_all() -> None:
        while len(received) < len(payload):
            received.extend(await reader.read(65536))

    reading = asyncio.create_task(read_all())
    for index in range(16):
        writer.write(payload[index * 65536 : (index + 1) * 65536])
        await writer.drain()
        if index % 4 == 1:
            await proxy.add_toxic("noop", name="n_up", stream="upstream")
            await proxy.add_toxic("slicer", attributes={"average_size": 4096})
        elif index % 4 == 3:
            await proxy.remove_toxic("n_up")
            await proxy.remove_toxic("slicer_downstream")
    await asyncio.wait_for(reading, 10)
    writer.close()
    assert bytes(received) == payload
